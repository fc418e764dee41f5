"""The ``xray-seg`` command line: one thin subcommand per module in ``xray_seg.commands``.

Each module in :mod:`xray_seg.commands` defines ``NAME`` (the subcommand), ``HELP``
(one line), ``add_arguments(parser)`` and ``run(args) -> int``. Modules keep heavy
imports (TensorFlow) inside ``run`` so that ``--help`` stays instant.

A :class:`~xray_seg.core.errors.XraySegError` is printed as one line and exits with 2;
``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import difflib
import errno
import importlib
import pkgutil
import re
import sys

from xray_seg import __version__, commands
from xray_seg.core.errors import XraySegError
from xray_seg.core.quiet import quiet_start


def _command_modules():
    for info in sorted(pkgutil.iter_modules(commands.__path__), key=lambda i: i.name):
        if not info.name.startswith("_"):
            yield importlib.import_module(f"{commands.__name__}.{info.name}")


_USER_OS_ERRORS = {
    errno.EACCES: "check the permissions, or choose a folder you can write to",
    errno.EPERM: "check the permissions, or choose a folder you can write to",
    errno.EROFS: "the file system is read-only; choose an output on a writable disk",
    errno.ENOSPC: "free disk space (or choose another disk), then run again",
    errno.EDQUOT: "free space within your disk quota, then run again",
    errno.ENAMETOOLONG: "use a shorter path",
}


def os_error_message(exc: OSError) -> str | None:
    """One line for an OS error a user can fix (permissions, full or read-only disk), else None."""
    fix = _USER_OS_ERRORS.get(exc.errno)
    if fix is None:
        return None
    where = exc.filename if exc.filename is not None else "output"
    return f"{where}: {exc.strerror or exc}. Fix: {fix}"


MAX_PIXELS_HELP = (
    "largest image (height x width) read, in pixels (default 64000000; also $XRAY_SEG_MAX_PIXELS); "
    "larger images are refused from their header, before decoding"
)


def _set_max_pixels(value: int) -> None:
    import os

    from xray_seg.core.errors import ConfigError
    from xray_seg.core.pixel_limit import MAX_PIXELS_ENV

    if value < 1:
        raise ConfigError(
            f"--max-pixels {value} must be a positive number of pixels", fix="e.g. --max-pixels 100000000"
        )
    os.environ[MAX_PIXELS_ENV] = str(value)


class UsageError(Exception):
    """A command line argparse refuses: the parser it belongs to (its usage is shown) and one line."""

    def __init__(self, parser: argparse.ArgumentParser, message: str):
        super().__init__(message)
        self.parser = parser
        self.message = message


def did_you_mean(word: str, candidates) -> str:
    """`` Did you mean 'X'?`` for the closest of ``candidates`` to ``word``, else ``""``."""
    close = difflib.get_close_matches(word, [c for c in candidates if c], n=1, cutoff=0.6)
    return f" Did you mean {close[0]!r}?" if close else ""


class Parser(argparse.ArgumentParser):
    """No abbreviated options (``--engin`` is not ``--engine``); an error names the closest
    command or option and is raised as :class:`UsageError`, so that ``main`` prints this
    (sub)command's usage and one ``error:`` line and returns 2."""

    def __init__(self, *args, **kwargs):
        kwargs["allow_abbrev"] = False
        super().__init__(*args, **kwargs)

    def option_strings(self) -> list[str]:
        return [s for action in self._actions for s in action.option_strings]

    def unknown(self, extras: list[str]) -> UsageError:
        """The error for arguments nothing took, with a hint for the first option-like one."""
        hint = ""
        for extra in extras:
            if extra.startswith("-"):
                hint = did_you_mean(extra.split("=", 1)[0], self.option_strings())
                break
        return UsageError(self, f"unrecognized arguments: {' '.join(extras)}" + (f".{hint}" if hint else ""))

    def error(self, message: str):
        choice = re.search(r"invalid choice: '([^']*)' \(choose from (.*)\)", message)
        if choice:
            message += "." + did_you_mean(choice.group(1), re.findall(r"'([^']*)'", choice.group(2)))
        raise UsageError(self, message)


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="xray-seg",
        description="Semantic segmentation of prohibited items in X-ray security images.",
    )
    parser.add_argument("--version", action="version", version=f"xray-seg {__version__}")
    parser.add_argument("--debug", action="store_true", help="show full tracebacks for errors")
    parser.add_argument("--max-pixels", type=int, metavar="N", help=MAX_PIXELS_HELP)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _command_modules():
        cmd = sub.add_parser(
            module.NAME,
            help=module.HELP,
            description=getattr(module, "DESCRIPTION", module.HELP),
            formatter_class=argparse.RawDescriptionHelpFormatter,
        )
        cmd.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help="show full tracebacks")
        cmd.add_argument("--max-pixels", type=int, metavar="N", default=argparse.SUPPRESS, help=MAX_PIXELS_HELP)
        module.add_arguments(cmd)
        cmd.set_defaults(_run=module.run)
    return parser


def _chosen_parser(parser: argparse.ArgumentParser, args) -> argparse.ArgumentParser:
    """The deepest (sub)command parser ``args`` went through (its usage fits an option typo)."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            name = getattr(args, action.dest, None) if action.dest != argparse.SUPPRESS else None
            if name in action.choices:
                return _chosen_parser(action.choices[name], args)
    return parser


def parse(parser: argparse.ArgumentParser, argv=None):
    """``parser.parse_args``, but arguments nothing took are refused by the subcommand they follow."""
    args, extras = parser.parse_known_args(argv)
    if extras:
        raise _chosen_parser(parser, args).unknown(extras)
    return args


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # file names that are not UTF-8 print escaped, never crash
        if hasattr(stream, "reconfigure"):
            try:
                stream.reconfigure(errors="backslashreplace")
            except (ValueError, OSError):
                pass
    parser = build_parser()
    try:
        args = parse(parser, argv)
    except UsageError as exc:
        exc.parser.print_usage(sys.stderr)
        print(f"error: {exc.parser.prog}: {exc.message}", file=sys.stderr)
        return 2
    if not getattr(args, "_run", None):
        parser.print_help()
        return 2
    try:
        if args.max_pixels is not None:
            _set_max_pixels(args.max_pixels)
        quiet_start(debug=args.debug)
        return int(args._run(args) or 0)
    except XraySegError as exc:
        if args.debug:
            raise
        print(f"error: {exc.message}", file=sys.stderr)
        return 2
    except ValueError as exc:
        if args.debug or "embedded null" not in str(exc):
            raise
        print("error: a path given contains a NUL byte (\\0). Fix: remove the NUL from the path", file=sys.stderr)
        return 2
    except OSError as exc:
        error = os_error_message(exc)
        if args.debug or error is None:
            raise
        print(f"error: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
