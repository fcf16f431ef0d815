"""``ociforge cache info|prune``: what the local cache holds, and making it smaller.

The cache (see docs/performance.md) keeps built layers, registry manifests and
blobs, and what pushes taught; removing any of it never changes a result,
only how long the next command takes.
"""

from __future__ import annotations

import argparse
from typing import Any

from .common import add_command, emit


def register(sub: Any) -> None:
    parser = add_command(sub, "cache", "show or prune the local cache (layers, bases, pushes)",
                         "The cache makes repeated exports, pulls and pushes cheap; it never "
                         "changes a result.  It is pruned automatically above its cap "
                         "($OCIFORGE_CACHE_MAX_SIZE, default 10G), least recently used first.")
    actions = parser.add_subparsers(dest="cache_action", metavar="ACTION", required=True)
    info = add_command(actions, "info", "size, entries and location of the cache")
    prune = add_command(actions, "prune", "remove entries, least recently used first")
    prune.add_argument("--max-size", metavar="SIZE",
                       help="keep at most this much (e.g. 2G; default: the cache's cap)")
    prune.add_argument("--all", action="store_true", help="empty the cache")
    for parser_ in (info, prune):
        parser_.add_argument("--cache-dir", metavar="DIR",
                             help="the cache folder (default $OCIFORGE_CACHE_DIR, else "
                             "$XDG_CACHE_HOME/ociforge, else ~/.cache/ociforge)")
        parser_.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import os

    from ...cache.location import Unusable, check_usable, default_cache_dir
    from ...cache.store import Cache
    from ...errors import InvalidInputError, OperationError
    from ...options import CacheOptions, parse_size
    from ...progress.render import human_size

    if args.cache_action == "prune" and args.all and args.max_size:
        raise InvalidInputError("--all and --max-size contradict each other")
    target = parse_size(args.max_size) if getattr(args, "max_size", None) else None
    try:
        folder = (os.path.abspath(os.path.expanduser(args.cache_dir)) if args.cache_dir
                  else default_cache_dir())
        check_usable(folder)
    except Unusable as exc:
        raise OperationError(f"cache: {exc}") from None
    cache = Cache(folder, CacheOptions.from_env().max_size)
    if args.cache_action == "prune":
        result = cache.prune(target, everything=args.all)
        emit(args, {"location": folder, "removed_files": result.removed_files,
                    "removed_bytes": result.removed_bytes, "size": result.size_after},
             f"removed {result.removed_files} entries ({human_size(result.removed_bytes)}); "
             f"{human_size(result.size_after)} left in {folder}")
        return 0
    usage = cache.usage()
    records = {kind: count for kind, count in usage.records.items()}
    lines = [f"location  {usage.location}",
             f"size      {human_size(usage.size)} (cap {human_size(cache.max_size)})",
             f"blobs     {usage.blobs} ({human_size(usage.blob_bytes)})"]
    lines += [f"{kind:<9} {count}" for kind, count in records.items()]
    emit(args, {"location": usage.location, "size": usage.size, "max_size": cache.max_size,
                "blobs": usage.blobs, "blob_bytes": usage.blob_bytes, "records": records},
         "\n".join(lines))
    return 0
