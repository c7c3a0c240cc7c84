"""``em run upload`` and ``em artifact upload``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from ..errors import CommandError
from ..store import layout

if TYPE_CHECKING:
    from . import Groups


def _add_target_args(p: argparse.ArgumentParser, what: str, default_dir: str) -> None:
    p.add_argument("-p", "--path", default=None, help=f"{what} folder to upload")
    p.add_argument("-n", "--name", default=None, help=f"upload every {what} with this name under the parent folder")
    p.add_argument("-d", "--dir", default=None, help=f"parent folder of {what}s (default {default_dir})")
    where = p.add_mutually_exclusive_group()
    where.add_argument("--folder", default=None,
                       help=f"server folder path (default: the folder the {what}'s script asked for, else 'default')")
    where.add_argument("--folder-id", default=None, help="server folder id (wins over a path)")
    p.add_argument("--make-folder", action="store_true", default=None,
                   help=f"create missing folder levels (default: as the {what}'s script asked)")
    p.add_argument("-H", "--host", default=None, help="server (default: em login / $EM_HOST)")
    p.add_argument("-k", "--api-key", default=None, help="API key (default: em login / $EM_API_KEY)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")


def register(groups: Groups) -> None:
    add_run_upload(groups["run"], "run", "$EM_RUN_PARENT_DIR or .em/runs", layout.run_parent_dir)
    p = groups["artifact"].add_parser("upload", help="upload saved artifacts",
                                      description="Upload saved artifacts (files the server has are not sent again).")
    _add_target_args(p, "artifact", "$EM_ARTIFACT_PARENT_DIR or .em/artifacts")
    p.set_defaults(func=_artifact_upload)


def add_run_upload(sub: argparse._SubParsersAction[argparse.ArgumentParser], what: str, default_dir: str, parent_dir: Callable[[], Path]) -> None:
    """The ``upload`` command of runs under ``sub`` (``em run upload``; ``aimd trial upload`` with ``what="trial"``)."""
    p = sub.add_parser("upload", help=f"upload saved {what}s with their artifacts",
                       description=f"Upload saved {what}s (resumable: only what the server lacks is sent).")
    _add_target_args(p, what, default_dir)
    p.add_argument("--conflict-strategy", choices=layout.CONFLICT_STRATEGIES, default="new",
                   help=f"when the folder holds another {what} of that name (default new)")
    if what == "run":
        p.set_defaults(journals=True)  # also the journals of ranks whose run folder is on another host
    p.set_defaults(func=_run_upload, parent_dir=parent_dir)


def _targets(args: argparse.Namespace, marker: str, parent: Path) -> list[Path]:
    if args.path:
        return [Path(args.path)]
    base = Path(args.dir) if args.dir else parent
    if not base.is_dir():
        raise CommandError(f"no folder {base}")
    found = sorted(p for p in base.iterdir() if (p / marker).is_file())
    if args.name:
        found = [p for p in found if json.loads((p / marker).read_text(encoding="utf-8")).get("name") == args.name]
    if not found:
        raise CommandError(f"nothing to upload under {base}" + (f" named {args.name!r}" if args.name else ""))
    return found


def _run_upload(args: argparse.Namespace) -> int:
    from ..client.upload import upload_run
    from ..client.upload_journal import is_journal, journals_under

    spools: list[Path] = []
    if args.path and (is_journal(Path(args.path)) or journals_under(Path(args.path))) \
            and not (Path(args.path) / layout.RUN_FILE).is_file():
        runs, spools = [], [Path(args.path)]  # a rank's journal (or a spool of them) on its own host
    elif not args.path and getattr(args, "journals", False):
        base = Path(args.dir) if args.dir else args.parent_dir()
        if not journals_under(base):
            runs = _targets(args, layout.RUN_FILE, base)  # its errors: no folder, nothing (named so) there
        else:
            runs = sorted(p for p in base.iterdir() if (p / layout.RUN_FILE).is_file())
            if args.name:
                runs = [p for p in runs if json.loads((p / layout.RUN_FILE).read_text(encoding="utf-8")).get("name") == args.name]
            spools = [base]
    else:
        runs = _targets(args, layout.RUN_FILE, args.parent_dir())
    for path in runs:
        r = upload_run(path, folder=args.folder, folder_id=args.folder_id, make_folder=args.make_folder,
                       conflict_strategy=args.conflict_strategy, host=args.host, api_key=args.api_key,
                       progress=not args.no_progress)
        state = "skipped (name taken)" if r.skipped else f"{r.bytes_sent} bytes sent: {r.url}"
        print(f"{path}: run {r.server_run_id} in folder {r.folder!r}: {state}")
    for spool in spools:
        _upload_journals(args, spool)
    return 0


def _upload_journals(args: argparse.Namespace, where: Path) -> None:
    """Each journal at ``where`` (a journal, a spool, a runs folder) into its run on the server."""
    from ..client.auth import client_for
    from ..client.upload_journal import is_journal, journals_under, upload_journal
    from ..store.journal import read_meta

    found = [where] if is_journal(where) else journals_under(where)
    if args.name:
        found = [p for p in found if read_meta(p).get("name") == args.name]
    if not found:
        return
    http = client_for(args.host, args.api_key)
    try:
        for journal in found:
            j = upload_journal(journal, folder=args.folder, folder_id=args.folder_id, make_folder=args.make_folder,
                               http=http)
            print(f"{journal}: rank {j.rank} of run {j.run_id}: {j.added} records merged, "
                  f"the server holds 1..{j.records}")
    finally:
        http.close()


def _artifact_upload(args: argparse.Namespace) -> int:
    from ..client.upload import upload_artifact

    for path in _targets(args, layout.ARTIFACT_FILE, layout.artifact_parent_dir()):
        r = upload_artifact(path, folder=args.folder, folder_id=args.folder_id, make_folder=args.make_folder,
                            host=args.host, api_key=args.api_key, progress=not args.no_progress)
        print(f"{path}: artifact {r.artifact_id}: {r.files} files, {r.blobs_sent} new blobs, {r.bytes_sent} bytes sent")
    return 0
