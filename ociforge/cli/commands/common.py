"""Argument helpers shared by commands: platform, registry transport, results."""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
from typing import Any

from ...errors import InvalidInputError


def add_platform_option(parser: argparse.ArgumentParser, allow_all: bool = True) -> None:
    extra = "; 'all' keeps every platform of an index" if allow_all else ""
    parser.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT]",
        help=f"platform to select or build (default: the host's){extra}",
    )


def add_registry_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("registry transport")
    group.add_argument("--insecure", action="append", default=[], metavar="REGISTRY",
                       help="allow plain HTTP and unverified TLS for this registry (repeatable)")
    group.add_argument("--ca-cert", metavar="FILE", help="extra CA certificates (PEM) for TLS")
    group.add_argument("--jobs", type=int, default=4, metavar="N",
                       help="parallel blob transfers (default 4)")
    group.add_argument("--chunk-size", action="append", metavar="[REGISTRY=]BYTES",
                       help="upload blobs in chunks of this size (e.g. 4M) where a registry "
                       "needs it; REGISTRY=SIZE for one registry only (repeatable; "
                       "default $OCIFORGE_CHUNK_SIZE)")
    group.add_argument("--timeout", type=float, metavar="SECONDS",
                       help="network timeout per request (default 60, or $OCIFORGE_TIMEOUT)")
    group.add_argument("--retries", type=int, metavar="N",
                       help="retries of a failed request (default 5, or $OCIFORGE_RETRIES)")


def add_cache_options(parser: argparse.ArgumentParser, keep_pulled_blobs: bool = True) -> None:
    """--cache-dir, --no-cache, --offline; ``keep_pulled_blobs`` False: registry blobs read
    are not stored (a copy's destination already is the copy)."""
    group = parser.add_argument_group("cache (see `ociforge cache --help`)")
    group.add_argument("--cache-dir", metavar="DIR",
                       help="the cache folder (default $OCIFORGE_CACHE_DIR, else "
                       "$XDG_CACHE_HOME/ociforge, else ~/.cache/ociforge)")
    group.add_argument("--no-cache", action="store_true",
                       help="neither read nor write the cache (the result is the same)")
    group.add_argument("--offline", action="store_true",
                       help="read registry images from the cache only; a tag means the digest "
                       "it last resolved to")
    parser.set_defaults(keep_pulled_blobs=keep_pulled_blobs)


MAX_CHUNK = 1 << 30     # a chunk is held in memory while it is sent


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30, "t": 1 << 40}
    raw = text.strip().lower().removesuffix("b").removesuffix("i")
    mult = 1
    if raw and raw[-1] in units:
        mult = units[raw[-1]]
        raw = raw[:-1]
    if not raw.isdigit() or int(raw) <= 0:
        raise InvalidInputError(f"size {text!r} is not a positive number of bytes (e.g. 4M)")
    return int(raw) * mult


def make_options(args: argparse.Namespace) -> Any:
    """Options from the parsed arguments (platform, registry transport, progress)."""
    from ...model.platform import Platform
    from ...options import Options, RegistryOptions

    platform_text = getattr(args, "platform", None)
    all_platforms = platform_text == "all"
    platform = Platform.parse(platform_text) if platform_text and not all_platforms else None
    ca_cert = getattr(args, "ca_cert", None)
    if ca_cert and not os.path.isfile(ca_cert):
        raise InvalidInputError(f"CA certificate file {ca_cert!r} does not exist")
    jobs = getattr(args, "jobs", None)
    jobs = 4 if jobs is None else jobs
    if jobs < 1 or jobs > 64:
        raise InvalidInputError("--jobs must be between 1 and 64")
    chunk_size, chunk_sizes = chunk_sizes_from(getattr(args, "chunk_size", None))
    registry = RegistryOptions(
        insecure=tuple(getattr(args, "insecure", []) or ()),
        ca_cert=ca_cert,
        jobs=jobs,
        chunk_size=chunk_size,
        chunk_sizes=chunk_sizes,
        retries=_number(getattr(args, "retries", None), "OCIFORGE_RETRIES", "--retries", 5,
                        int, 0, 100),
        timeout=_number(getattr(args, "timeout", None), "OCIFORGE_TIMEOUT", "--timeout", 60.0,
                        float, 0.1, 86400),
    )
    progress = sys.stderr.isatty() and not os.environ.get("CI")
    return Options(platform=platform, all_platforms=all_platforms, registry=registry,
                   progress=progress or getattr(args, "verbose", 0) > 0,
                   cache=_cache_options(args))


def _cache_options(args: argparse.Namespace) -> Any:
    """The cache of a command that takes --cache-dir/--no-cache/--offline (else none)."""
    from ...options import CacheOptions

    if not hasattr(args, "no_cache"):
        return CacheOptions()
    from ...cache.location import cache_options

    return cache_options(args.cache_dir, args.no_cache, args.offline,
                         max_size=cache_max_size(),
                         keep_pulled_blobs=getattr(args, "keep_pulled_blobs", True))


def cache_max_size() -> int:
    """$OCIFORGE_CACHE_MAX_SIZE (e.g. 20G), else the default cap."""
    from ...options import DEFAULT_CACHE_MAX

    text = os.environ.get("OCIFORGE_CACHE_MAX_SIZE", "").strip()
    try:
        return parse_size(text) if text else DEFAULT_CACHE_MAX
    except InvalidInputError as exc:
        raise InvalidInputError(f"$OCIFORGE_CACHE_MAX_SIZE: {exc}") from None


_REGISTRY_NAME = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9]([A-Za-z0-9.-]*[A-Za-z0-9])?)"
                            r"(:[0-9]{1,5})?")


def chunk_sizes_from(flags: list[str] | None
                     ) -> tuple[int | None, tuple[tuple[str, int], ...]]:
    """(size for every registry, per-registry sizes) from $OCIFORGE_CHUNK_SIZE and --chunk-size.

    Each item is ``SIZE`` (every registry) or ``REGISTRY=SIZE``; the variable
    holds comma-separated items.  Flags come after the variable, a later item
    wins over an earlier one for the same registry, and a registry's own size
    wins over the size for every registry.
    """
    items = [(item, "$OCIFORGE_CHUNK_SIZE")
             for item in os.environ.get("OCIFORGE_CHUNK_SIZE", "").split(",") if item.strip()]
    items += [(item, "--chunk-size") for item in flags or []]
    default: int | None = None
    per_registry: dict[str, int] = {}
    for item, origin in items:
        name, sep, size_text = item.strip().rpartition("=")
        name = name.strip()
        if sep and not _REGISTRY_NAME.fullmatch(name):
            raise InvalidInputError(f"{origin} {item.strip()!r}: {name!r} is not a registry "
                                    "host[:port] (e.g. ghcr.io=4M)")
        try:
            size = parse_size(size_text)
        except InvalidInputError as exc:
            raise InvalidInputError(f"{origin} {item.strip()!r}: {exc}") from None
        if size > MAX_CHUNK:
            raise InvalidInputError(f"{origin} {item.strip()!r}: a chunk is held in memory; "
                                    "at most 1G")
        if sep:
            per_registry.pop(name.lower(), None)    # re-insert: the latest item is last
            per_registry[name.lower()] = size
        else:
            default = size
    return default, tuple(per_registry.items())


def _number(value: Any, env: str, flag: str, default: Any, kind: type, low: float,
            high: float) -> Any:
    """A bounded number from the flag, else the environment variable, else the default."""
    if value is None:
        text = os.environ.get(env)
        if not text:
            return default
        try:
            value = kind(text)
        except ValueError:
            raise InvalidInputError(f"${env}={text!r} is not a number") from None
        flag = f"${env}"
    if not low <= value <= high:
        raise InvalidInputError(f"{flag} must be between {low:g} and {high:g}")
    return value


def parse_key_value(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"{what} {item!r} must be KEY=VALUE")
        out[key] = value
    return out


def emit(args: argparse.Namespace, result: dict[str, Any], human: str) -> None:
    """Print the result: JSON with --json, else the human line.

    When an output went to our own stdout (``-o /dev/stdout``) the result goes to
    stderr, so the image stream stays exactly the image.
    """
    from ... import fsutil

    stream = sys.stderr if fsutil.stdout_is_output else sys.stdout
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=True), file=stream)
    else:
        print(human, file=stream)


def _global_flags() -> argparse.ArgumentParser:
    """-v/--json/--debug accepted after the command too (``ociforge copy A B --json``)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS)
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print a machine-readable result")
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    return parent


def add_command(sub: Any, name: str, help_text: str, description: str | None = None) -> Any:
    """Create a subcommand parser that also takes the global flags."""
    return sub.add_parser(name, help=help_text, description=description or help_text,
                          parents=[_global_flags()])
