"""Command line: ``main(argv) -> exit code``; one module per command in ``commands/``.

Commands are discovered from the ``ociforge.cli.commands`` package: each module
defines ``register(subparsers)``.  Command modules import only light modules
at the top so that ``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import pkgutil
import sys
import typing
from collections.abc import Sequence

from .. import __version__
from ..display import human

PROG = "ociforge"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (exit 2), like every other bad input; --help has the rest."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Daemonless OCI image assembler: build, copy, push and export images "
        "without a Docker daemon.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument("-v", "--verbose", action="count", default=0,
                        help="more output (-v progress and steps, -vv HTTP exchanges)")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    parser.add_argument("--json", action="store_true", help="print a machine-readable result")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    from . import commands

    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda m: m.name):
        if info.name.startswith("_") or info.name == "common":
            continue
        module = importlib.import_module(f"{commands.__name__}.{info.name}")
        module.register(sub)
    return parser


class _OneLineFormatter(logging.Formatter):
    """Log messages carry file names and registry answers: their control characters
    are escaped, so no message can forge another log line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = human(record.message)
        return super().formatMessage(record)


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING
    if verbosity == 1:
        level = logging.INFO
    elif verbosity >= 2:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_OneLineFormatter("%(name)s: %(message)s"))
    logger = logging.getLogger("ociforge")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:
        print(f"{PROG} {__version__}")
        return 0
    parser = build_parser()
    try:
        args = parser.parse_args(args_list)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args.verbose)
    from ..errors import OciforgeError

    try:
        return int(args.func(args) or 0)
    except OciforgeError as exc:
        if args.debug:
            raise
        print(f"{PROG}: error: {_one_line(str(exc))}", file=sys.stderr)
        return exc.exit_code
    except BrokenPipeError:
        # `ociforge inspect X | head`: the reader left; that is not our failure.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except OSError as exc:
        if args.debug:
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        print(f"{PROG}: error: {_one_line(f'{exc.strerror or exc}{where}')}", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    """A message as one line: runs of white space joined, other control characters
    (an ANSI escape in a file name) escaped."""
    return human(" ".join(text.split())) or "unknown error"
