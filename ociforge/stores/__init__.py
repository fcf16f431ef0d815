"""Where images live: the Location interface and its kinds (OCI layouts, archives,
registries), reading, writing and verifying.
"""
