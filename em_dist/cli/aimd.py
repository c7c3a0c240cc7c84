"""The ``aimd`` command of the older SDK: ``aimd login``, ``aimd logout``, ``aimd trial upload``.

The same code as ``em login`` / ``em logout`` / ``em run upload``; a trial is a run saved
under ``.aimd/trials`` (``$AIMD_TRIAL_PARENT_DIR``), which ``trial upload`` reads by default.
"""

from __future__ import annotations

import argparse
import sys
from typing import Sequence

from ..store import layout
from . import auth, upload
from .main import dispatch


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aimd", description="em_dist's aimd command: log in and upload saved trials")
    top = parser.add_subparsers(dest="command", metavar="COMMAND")
    top.required = True
    auth.register({"top": top})
    p = top.add_parser("trial", help="upload local trials", description="upload local trials")
    sub = p.add_subparsers(dest="trial_command", metavar="SUBCOMMAND")
    sub.required = True
    upload.add_run_upload(sub, "trial", "$AIMD_TRIAL_PARENT_DIR or .aimd/trials", layout.trial_parent_dir)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    return dispatch(build_parser(), argv)


if __name__ == "__main__":
    sys.exit(main())
