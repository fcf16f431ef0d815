"""Command line: ``main(argv) -> exit code``; one module per command in ``commands/``.

Commands are discovered from the ``ociforge.cli.commands`` package: each module
defines ``register(subparsers)``.  Command modules import only light modules
at the top so that ``--help`` and ``--version`` stay fast.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import pkgutil
import sys
import typing
from collections.abc import Iterator, Sequence

from .. import __version__
from ..display import human, json_safe

PROG = "ociforge"


class UsageError(Exception):
    """A command line argparse refused: main() prints it as one line (exit 2)."""

    def __init__(self, prog: str, message: str):
        self.message = f"{_one_line(message)} (see `{prog} --help`)"
        super().__init__(f"{prog}: error: {self.message}")


class _Parser(argparse.ArgumentParser):
    """Usage errors as one line (exit 2), like every other bad input; --help has the rest."""

    def error(self, message: str) -> typing.NoReturn:
        raise UsageError(self.prog, message)


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
                        help="more output (-v steps and retries, -vv HTTP exchanges)")
    parser.add_argument("-q", "--quiet", action="store_true",
                        help="print only the result (and errors)")
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


class _OneLineFormatter(logging.Formatter):
    """Log messages carry file names and registry answers: their control characters
    are escaped, so no message can forge another log line."""

    def formatMessage(self, record: logging.LogRecord) -> str:
        record.message = human(record.message)
        return super().formatMessage(record)


def _command_module(argv: Sequence[str], names: list[str]) -> str | None:
    """The module of the command ``argv`` names, if it names one before any --help."""
    for arg in argv:
        if arg in ("-h", "--help"):
            return None
        if not arg.startswith("-"):
            name = arg.replace("-", "_")
            return name if name in names and "_" not in arg else None
    return None


class _CurrentStderr:
    """Whatever sys.stderr is when a log line is written: the terminal's live progress
    view puts its own there while it draws, so log lines go above the view."""

    def write(self, text: str) -> int:
        return sys.stderr.write(text)

    def flush(self) -> None:
        sys.stderr.flush()


def _setup_logging(verbosity: int, quiet: bool = False) -> None:
    level = logging.WARNING
    if quiet:
        level = logging.ERROR
    elif verbosity == 1:
        level = logging.INFO
    elif verbosity >= 2:
        level = logging.DEBUG
    handler = logging.StreamHandler(_CurrentStderr())
    handler.setFormatter(_OneLineFormatter("%(name)s: %(message)s"))
    logger = logging.getLogger("ociforge")
    logger.handlers[:] = [handler]
    logger.setLevel(level)
    logger.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command; the exit code: 0 done, 1 failed, 2 bad input, 130 Ctrl-C, 143 SIGTERM.

    A failure is one line on stderr (with --json also one JSON object on stdout:
    ``error``, ``exit_code``, and ``completed``/``not_completed`` once writing began).
    """
    args_list = list(sys.argv[1:] if argv is None else argv)
    if args_list == ["--version"]:
        print(f"{PROG} {__version__}")
        return 0
    parser = build_parser(args_list)
    try:
        args, extra = parser.parse_known_args(args_list)
        if extra:
            raise _unrecognized(parser, getattr(args, "command", None), extra)
    except UsageError as refused:
        exc = _misplaced(parser, args_list) or refused
        print(exc, file=sys.stderr)
        if "--json" in args_list:
            _print_json({"error": exc.message, "exit_code": 2}, None)
        return 2
    except SystemExit as exc:  # argparse: 0 for --help (and --version with other words)
        return int(exc.code or 0)
    if not getattr(args, "func", None):
        parser.print_help(sys.stderr)
        return 2
    _setup_logging(args.verbose, args.quiet)
    args.outputs = None             # a writing command's Outputs (commands/common.track)
    args.failure_details = None     # extra fields of the --json error object
    args.progress_sink = None       # the --progress sink (commands/common.progress_sink)
    with _sigterm_raises():
        try:
            return _run(args)
        finally:
            if args.progress_sink is not None:
                args.progress_sink.close()


def _run(args: argparse.Namespace) -> int:
    from ..errors import Cancelled, OciforgeError, Terminated

    try:
        return int(args.func(args) or 0)
    except OciforgeError as exc:
        if args.debug:
            raise
        return _failed(args, str(exc), exc.exit_code)
    except BrokenPipeError:
        # `ociforge inspect X | head`: the reader left; that is not our failure.
        import os

        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 0
    except KeyboardInterrupt as exc:
        if isinstance(exc, Terminated):
            return _failed(args, "terminated", 143, prefix="")
        if isinstance(exc, Cancelled):
            return _failed(args, "cancelled", exc.exit_code, prefix="")
        return _failed(args, "interrupted", 130, prefix="")
    except OSError as exc:
        if args.debug:
            raise
        where = f": {exc.filename}" if getattr(exc, "filename", None) else ""
        return _failed(args, f"{exc.strerror or exc}{where}", 1)


def _failed(args: argparse.Namespace, message: str, code: int, prefix: str = "error: ") -> int:
    """One line on stderr saying what failed and, when a run with several destinations
    stopped part-way, which were written; with --json one object on stdout too."""
    message = _one_line(message)
    result: dict[str, object] = dict(args.failure_details or {})
    result.update({"error": message, "exit_code": code})
    line = f"{PROG}: {prefix}{message}"
    outputs = args.outputs
    if outputs is not None and outputs.started:
        completed = [str(location) for location in outputs.completed]
        missing = [str(location) for location in outputs.not_completed]
        result.update({"completed": completed, "not_completed": missing})
        if len(outputs) > 1:  # a location names a file: one name cannot break the line
            line += (f" (completed: {', '.join(map(human, completed)) or 'none'}; "
                     f"not completed: {', '.join(map(human, missing)) or 'none'})")
    _finish_progress(args, result)
    print(line, file=sys.stderr)
    if args.json:
        _print_json(result, args)
    return code


def _finish_progress(args: argparse.Namespace, result: dict[str, object]) -> None:
    """A run that failed before its pipeline ran (bad input) still ends its progress
    stream with a ``finish`` event (a pipeline's own comes first when there is one)."""
    sink = args.progress_sink
    if sink is None:
        return
    from ..progress.events import ProgressEvent
    from ..progress.render import JsonLines

    if isinstance(sink, JsonLines) and not sink.finished:
        code = result["exit_code"]
        event: ProgressEvent = {"event": "finish", "phase": None, "item": None, "done": None,
                                "total": None, "status": "cancelled" if code in (130, 143)
                                else "failed", "error": str(result["error"]),
                                "exit_code": int(code) if isinstance(code, int) else 1}
        sink(event)
    sink.close()


def _print_json(result: dict[str, object], args: argparse.Namespace | None) -> None:
    import json

    from .commands.common import result_stream

    stream = sys.stdout if args is None else result_stream(args)
    print(json.dumps(json_safe(result), indent=2, sort_keys=True), file=stream)


@contextlib.contextmanager
def _sigterm_raises() -> Iterator[None]:
    """SIGTERM raises Terminated (a KeyboardInterrupt): temporary files and half-made
    layouts are cleaned up exactly as after Ctrl-C.  Only in the main thread, and the
    previous handler comes back afterwards (tests run main() in-process)."""
    import signal
    import threading

    if threading.current_thread() is not threading.main_thread():
        yield
        return
    from ..errors import Terminated

    def terminate(signum: int, frame: object) -> None:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the clean-up is not cut short again
        raise Terminated()

    previous = signal.signal(signal.SIGTERM, terminate)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)


def _unrecognized(parser: argparse.ArgumentParser, command: str | None,
                  extra: list[str]) -> UsageError:
    """An option the command does not take: named, with the command's nearest option,
    pointing at that command's --help (not the top level's)."""
    import difflib

    if command is None:
        return UsageError(PROG, f"unrecognized arguments: {' '.join(extra)}")
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    known = list(sub.choices[command]._option_string_actions)
    first = extra[0].split("=", 1)[0]
    guess = difflib.get_close_matches(first, known, 1, 0.7) if first.startswith("-") else []
    hint = f" (did you mean {guess[0]}?)" if guess else ""
    return UsageError(f"{PROG} {command}",
                      f"unrecognized arguments: {' '.join(extra)}{hint}")


def _misplaced(parser: argparse.ArgumentParser, argv: Sequence[str]) -> UsageError | None:
    """An option of a command given before the command (``ociforge --with-files export``):
    argparse would call it unknown, or take its value for the command's name."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    at = next((i for i, arg in enumerate(argv) if arg in sub.choices), None)
    if at is None:
        return None
    command = argv[at]
    for arg in argv[:at]:
        option = arg.split("=", 1)[0]
        if not option.startswith("-") or option in parser._option_string_actions:
            continue
        if option in sub.choices[command]._option_string_actions:
            return UsageError(f"{PROG} {command}", f"{option} is an option of "
                              f"`{PROG} {command}`: put it after the command")
        others = sorted(name for name, p in _all_commands().items()
                        if option in p._option_string_actions)
        if others:
            return UsageError(f"{PROG} {command}", f"{option} is not an option of "
                              f"`{PROG} {command}` (it is one of "
                              + " and ".join(f"`{PROG} {name}`" for name in others) + ")")
    return None


def _all_commands() -> dict[str, argparse.ArgumentParser]:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def _one_line(text: str) -> str:
    """A message as one line: runs of white space joined, other control characters
    (an ANSI escape in a file name) escaped."""
    return human(" ".join(text.split())) or "unknown error"
