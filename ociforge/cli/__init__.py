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

PROG = "ociforge"


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (exit 2), like every other bad input; --help has the rest."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(2, f"{self.prog}: error: {_one_line(message)} (see `{self.prog} --help`)\n")


def build_parser(argv: Sequence[str] = ()) -> argparse.ArgumentParser:
    """The parser; for ``ociforge COMMAND ...`` only that command's module is loaded.

    Building every command's parser costs more than many commands take to run
    (a no-op push, say); ``--help`` and unknown commands still see them all.
    """
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

    names = sorted(info.name for info in pkgutil.iter_modules(commands.__path__)
                   if not info.name.startswith("_") and info.name != "common")
    wanted = _command_module(argv, names)
    for name in [wanted] if wanted else names:
        module = importlib.import_module(f"{commands.__name__}.{name}")
        module.register(sub)
    return parser


def _command_module(argv: Sequence[str], names: list[str]) -> str | None:
    """The module of the command ``argv`` names, if it names one before any --help."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            name = arg.replace("-", "_")
            return name if name in names and "_" not in arg else None
    return None


def _setup_logging(verbosity: int) -> None:
    level = logging.WARNING
    if verbosity == 1:
        level = logging.INFO
    elif verbosity >= 2:
        level = logging.DEBUG
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(name)s: %(message)s"))
    logger = logging.getLogger("ociforge")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:
        print(f"{PROG} {__version__}")
        return 0
    parser = build_parser(args_list)
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
        print(f"{PROG}: error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1


def _one_line(text: str) -> str:
    return " ".join(text.split()) or "unknown error"
