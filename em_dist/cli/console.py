"""``em console``: the experiment console over the local run folders (read-only, no account)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import CommandError

if TYPE_CHECKING:
    from . import Groups

READY_LINE = "em console at {url}"



def register(groups: Groups) -> None:
    p = groups["top"].add_parser(
        "console", help="open the experiment console on local runs",
        description="Serve the experiment console over the local run folders (read-only, no account) and print its address.")
    p.add_argument("-d", "--dir", default=".em", help="the .em folder (or a folder of runs) to show (default .em)")
    p.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=0, help="port (default 0: a free one; the address is printed)")
    p.set_defaults(func=_console)


def _console(args: argparse.Namespace) -> int:
    root = Path(args.dir)
    if not root.exists():
        raise CommandError(f"no run folder {root}: run a training script first (its runs land in .em/runs)")
    if (root / "artifacts").is_dir() and not os.environ.get("EM_ARTIFACT_PARENT_DIR"):
        os.environ["EM_ARTIFACT_PARENT_DIR"] = str((root / "artifacts").resolve())
    try:
        from ..server.console.local import LocalConsole
    except ImportError as exc:  # pragma: no cover - depends on installed extras
        raise CommandError(f"the console needs the server extras: pip install 'em-dist[server]' ({exc})") from None

    def ready(url: str) -> None:
        sys.stdout.write(READY_LINE.format(url=url) + "\n")
        sys.stdout.flush()

    LocalConsole(root, host=args.host, port=args.port).serve(on_ready=ready)
    return 0
