"""Argument helpers shared by commands: platform, registry transport, results."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TextIO

from ...errors import InvalidInputError

if TYPE_CHECKING:
    from ...model.index import Artifact
    from ...model.jsonutil import JSONObject
    from ...model.platform import Platform
    from ...options import CacheOptions, Options
    from ...pipeline.outputs import Outputs
    from ...progress import Sink
    from ...stores.locations import WriteResult


def add_platform_option(parser: argparse.ArgumentParser, help_text: str | None = None) -> None:
    """--platform: one OS/ARCH[/VARIANT], a comma list of them, or ``all``."""
    parser.add_argument(
        "--platform", metavar="OS/ARCH[/VARIANT][,...]|all",
        help=help_text or ("platform to select (default: the host's); a comma list selects "
                           "several, 'all' keeps every platform of an index"),
    )


def add_registry_options(parser: argparse.ArgumentParser, *, jobs: bool = True,
                         uploads: bool = True) -> None:
    """The registry transport flags a command uses: ``jobs`` for commands that move
    blobs in parallel, ``uploads`` (--chunk-size) for commands that push."""
    group = parser.add_argument_group("registry transport")
    group.add_argument("--insecure", action="append", default=[], metavar="REGISTRY",
                       help="allow plain HTTP and unverified TLS for this registry (repeatable)")
    group.add_argument("--ca-cert", metavar="FILE", help="extra CA certificates (PEM) for TLS")
    if jobs:
        group.add_argument("--jobs", type=int, default=4, metavar="N",
                           help="parallel blob transfers (default 4)")
    if uploads:
        group.add_argument("--chunk-size", action="append", metavar="[REGISTRY=]BYTES",
                           help="upload blobs in chunks of this size (e.g. 4M) where a "
                           "registry needs it; REGISTRY=SIZE for one registry only "
                           "(repeatable; default $OCIFORGE_CHUNK_SIZE)")
    group.add_argument("--timeout", type=float, metavar="SECONDS",
                       help="time limit for each registry answer, and for a blob transfer "
                       "that stops making progress (default 60, or $OCIFORGE_TIMEOUT)")
    group.add_argument("--retries", type=int, metavar="N",
                       help="retries of a failed or timed-out request (default 5, or "
                       "$OCIFORGE_RETRIES)")


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



def add_transfer_options(parser: argparse.ArgumentParser, keep_pulled_blobs: bool = True
                         ) -> None:
    """The flag groups of a command that reads and writes images: registry transport,
    the cache and --progress."""
    add_registry_options(parser)
    add_cache_options(parser, keep_pulled_blobs)
    add_progress_option(parser)


def add_image_options(parser: argparse.ArgumentParser, tag_help: str) -> None:
    """How a command that builds an image writes it: --compression, --tag, --format,
    --source-date-epoch."""
    parser.add_argument("--compression", choices=("gzip", "zstd", "none"), default="gzip",
                        help="layer compression (default gzip)")
    parser.add_argument("--tag", metavar="NAME:TAG", help=tag_help)
    parser.add_argument("--format", choices=("oci", "docker"),
                        help="media types of the result (default: the base's; OCI for scratch)")
    parser.add_argument("--source-date-epoch", type=int, metavar="N",
                        help="timestamp of every file and of the image "
                        "(default $SOURCE_DATE_EPOCH, else 0)")

def make_options(args: argparse.Namespace) -> Options:
    """Options.from_env() with the command's flags laid over it."""
    from dataclasses import replace

    from ...options import RETRIES_RANGE, TIMEOUT_RANGE, Options, check_number

    base = Options.from_env()
    platform, platforms, all_platforms = platform_choice(getattr(args, "platform", None))
    ca_cert = getattr(args, "ca_cert", None)
    if ca_cert:
        from ...fsutil import open_regular

        with open_regular(ca_cert, "CA certificate file"):
            pass  # a missing file, a folder or a FIFO is bad input now, not a hang later
    jobs = getattr(args, "jobs", None)
    jobs = 4 if jobs is None else jobs
    if jobs < 1 or jobs > 64:
        raise InvalidInputError("--jobs must be between 1 and 64")
    chunk_size, chunk_sizes = chunk_sizes_from(getattr(args, "chunk_size", None), base)
    retries = getattr(args, "retries", None)
    timeout = getattr(args, "timeout", None)
    registry = replace(
        base.registry,
        insecure=tuple(getattr(args, "insecure", []) or ()),
        ca_cert=ca_cert,
        jobs=jobs,
        chunk_size=chunk_size,
        chunk_sizes=chunk_sizes,
        retries=base.registry.retries if retries is None else int(
            check_number(retries, "--retries", *RETRIES_RANGE)),
        timeout=base.registry.timeout if timeout is None else float(
            check_number(timeout, "--timeout", *TIMEOUT_RANGE)),
    )
    return replace(base, platform=platform, platforms=platforms, all_platforms=all_platforms,
                   registry=registry, cache=_cache_options(args, base.cache),
                   on_progress=progress_sink(args))


def add_progress_option(parser: argparse.ArgumentParser) -> None:
    """--progress auto|tty|plain|json (docker buildx's names), for commands that report it."""
    from ...progress import PROGRESS_MODES

    parser.add_argument("--progress", choices=PROGRESS_MODES, default="auto",
                        help="how to show progress on stderr: auto (a live view on a "
                        "terminal, else plain lines), tty, plain, or json (one event per "
                        "line, see docs/cli.md); -q shows none but json")


def progress_sink(args: argparse.Namespace) -> Sink | None:
    """The command's progress sink on stderr, made once (main() closes it); None for a
    command without --progress, and with -q unless --progress json was asked for."""
    mode = getattr(args, "progress", None)
    if mode is None or (getattr(args, "quiet", False) and mode != "json"):
        return None
    made = getattr(args, "progress_sink", None)
    if made is None:
        from ...progress import sink

        made = sink(mode, sys.stderr, verbose=getattr(args, "verbose", 0) > 0)
        args.progress_sink = made
    return made


def platform_choice(text: str | None
                    ) -> tuple[Platform | None, tuple[Platform, ...], bool]:
    """(one platform, several platforms, all) from --platform's text."""
    from ...model.platform import ALL_PLATFORMS, parse_platforms

    if text is None:
        return None, (), False
    if text.strip().lower() == ALL_PLATFORMS:
        return None, (), True
    found = parse_platforms(text)
    return (found[0], (), False) if len(found) == 1 else (None, found, False)


def _cache_options(args: argparse.Namespace, base: CacheOptions) -> CacheOptions:
    """The cache of a command that takes --cache-dir/--no-cache/--offline (else none)."""
    if not hasattr(args, "no_cache"):
        return base
    from ...cache.location import cache_options

    return cache_options(args.cache_dir, args.no_cache, args.offline,
                         max_size=base.max_size,
                         keep_pulled_blobs=getattr(args, "keep_pulled_blobs", True))


def chunk_sizes_from(flags: list[str] | None, base: Options | None = None
                     ) -> tuple[int | None, tuple[tuple[str, int], ...]]:
    """(size for every registry, per-registry sizes): --chunk-size items laid over the
    environment's ($OCIFORGE_CHUNK_SIZE, read by Options.from_env)."""
    from ...options import Options, parse_chunk_sizes

    start = (base or Options.from_env()).registry
    return parse_chunk_sizes([(item, "--chunk-size") for item in flags or []],
                             (start.chunk_size, start.chunk_sizes))


def parse_key_value(items: list[str] | None, what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidInputError(f"{what} {item!r} must be KEY=VALUE")
        out[key] = value
    return out


def emit(args: argparse.Namespace, result: JSONObject | dict[str, Any] | list[Any],
         human: str) -> None:
    """Print the result: JSON with --json, else the human line.

    Names in a result come from users, files and registries: the JSON gets valid
    Unicode, and each human line its control characters escaped, so that no name
    can forge a line of output.
    """
    from ...display import human_lines, json_safe

    stream = result_stream(args)
    if getattr(args, "json", False):
        print(json.dumps(json_safe(result), indent=2, sort_keys=True), file=stream)
    else:
        print(human_lines(human), file=stream)


def result_stream(args: argparse.Namespace) -> TextIO:
    """stdout, unless an output goes to our own stdout (``-o /dev/stdout``): then stderr,
    so the image stream stays exactly the image."""
    outputs = getattr(args, "outputs", None)
    return sys.stderr if outputs is not None and outputs.to_stdout else sys.stdout



def write_stdout_bytes(data: bytes) -> None:
    """Exact bytes on stdout (no decoding, no newline added), after any text before them."""
    sys.stdout.flush()
    sys.stdout.buffer.write(data)
    sys.stdout.buffer.flush()

def track(args: argparse.Namespace, outputs: Outputs) -> None:
    """Let main() say which destinations were written when the run stops part-way."""
    args.outputs = outputs


def fail_with(args: argparse.Namespace, details: JSONObject) -> None:
    """Fields the --json error object carries besides ``error`` and ``exit_code``."""
    args.failure_details = details


def result_json(artifact: Artifact, results: Sequence[WriteResult],
                **extra: Any) -> dict[str, Any]:
    """The --json success object of commands that write an image."""
    from ...pipeline.outputs import result_entry

    out: dict[str, Any] = {
        "digest": str(artifact.digest),
        "mediaType": artifact.media_type,
        "destinations": [result_entry(r) for r in results],
    }
    out.update(extra)
    return out


def result_lines(artifact: Artifact, results: Sequence[WriteResult]) -> str:
    """The human result: one line per destination written (emit escapes them)."""
    return "\n".join(f"{r.digest} {r.location}" + (f" ({r.name})" if r.name else "")
                     for r in results) or str(artifact.digest)


def _global_flags() -> argparse.ArgumentParser:
    """-v/-q/--json/--debug accepted after the command too (``ociforge copy A B --json``)."""
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS,
                        help="more output (-v steps and retries, -vv HTTP exchanges)")
    parent.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                        help="print only the result (and errors)")
    parent.add_argument("--json", action="store_true", default=argparse.SUPPRESS,
                        help="print a machine-readable result")
    parent.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                        help=argparse.SUPPRESS)
    return parent


def add_command(sub: Any, name: str, help_text: str, description: str | None = None) -> Any:
    """Create a subcommand parser that also takes the global flags."""
    return sub.add_parser(name, help=help_text, description=description or help_text,
                          parents=[_global_flags()])
