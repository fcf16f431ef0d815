"""Argument helpers shared by commands: platform, registry transport, results."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from ..errors import InvalidInputError


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
    group.add_argument("--chunk-size", metavar="BYTES",
                       help="upload blobs in chunks of this size (e.g. 4M) where a registry "
                       "needs it")
    group.add_argument("--timeout", type=float, metavar="SECONDS",
                       help="network timeout per request (default 60, or $OCIFORGE_TIMEOUT)")
    group.add_argument("--retries", type=int, metavar="N",
                       help="retries of a failed request (default 5, or $OCIFORGE_RETRIES)")


def parse_size(text: str) -> int:
    units = {"k": 1 << 10, "m": 1 << 20, "g": 1 << 30}
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
    from ..options import Options, RegistryOptions
    from ..platform import Platform

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
    chunk = getattr(args, "chunk_size", None)
    registry = RegistryOptions(
        insecure=tuple(getattr(args, "insecure", []) or ()),
        ca_cert=ca_cert,
        jobs=jobs,
        chunk_size=parse_size(chunk) if chunk else None,
        retries=_number(getattr(args, "retries", None), "OCIFORGE_RETRIES", "--retries", 5,
                        int, 0, 100),
        timeout=_number(getattr(args, "timeout", None), "OCIFORGE_TIMEOUT", "--timeout", 60.0,
                        float, 0.1, 86400),
    )
    progress = sys.stderr.isatty() and not os.environ.get("CI")
    return Options(platform=platform, all_platforms=all_platforms, registry=registry,
                   progress=progress or getattr(args, "verbose", 0) > 0)


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
    """Print the result: JSON with --json, else the human line."""
    if getattr(args, "json", False):
        print(json.dumps(result, indent=2, sort_keys=True))
    else:
        print(human)


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
