"""The local cache: built layers, base-layer scans, table snapshots, registry content by
digest, tags and where pushed blobs live -- reused only where it cannot change a byte
(see docs/performance.md, "The cache")."""
