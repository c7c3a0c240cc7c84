"""Entry point of the ``em`` command: builds the parser from one module per command group."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Sequence

from ..errors import EMError
from . import auth, console, interop, runs, server, share, upload

# Each module exposes ``register(groups)``; ``groups`` maps a group name to its sub-parser collection.
_COMMAND_MODULES = (runs, auth, upload, server, share, console, interop)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="em", description="em_dist: experiment tracking for distributed training")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    top.required = True
    groups = {"top": top}
    for group, help_text in (
        ("run", "inspect and upload local runs"),
        ("artifact", "upload local artifacts"),
        ("server", "run the tracking server and manage its users"),
    ):
        p = top.add_parser(group, help=help_text, description=help_text)
        sub = p.add_subparsers(dest=f"{group}_command", metavar="SUBCOMMAND")
        sub.required = True
        groups[group] = sub
    for module in _COMMAND_MODULES:
        module.register(groups)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


def dispatch(parser: argparse.ArgumentParser, argv: Sequence[str] | None) -> int:
    """Parse ``argv`` and run the chosen command; em_dist errors become one line on stderr and exit 1."""
    args = parser.parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except EMError as exc:
        print(f"{parser.prog}: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{parser.prog}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        return _reader_gone()


def _reader_gone() -> int:
    """``em run show ... | head``: the reader closed the pipe. Exit quietly, as ``cat`` does, with
    no traceback; stdout points at /dev/null so the interpreter's last flush can't fail again."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass
    return 141  # 128 + SIGPIPE, what a shell reports for a command its pipe's reader left


if __name__ == "__main__":
    sys.exit(main())
