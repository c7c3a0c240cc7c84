"""UploadTarget: the folder and credentials every upload shares (no server needed)."""

from __future__ import annotations

import json
from pathlib import Path

from em_dist.client.target import UploadTarget
from em_dist.client.upload import requested_folder


def _run_dir(tmp_path: Path, **doc: object) -> Path:
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "run.json").write_text(json.dumps(doc), encoding="utf-8")
    return run_dir


def test_folder_spec_defaults() -> None:
    assert UploadTarget().folder_spec() == {"folder": "default", "folder_id": None, "make_folder": False}
    assert UploadTarget("team/a", "f1", True).folder_spec() == {"folder": "team/a", "folder_id": "f1", "make_folder": True}


def test_for_run_takes_the_runs_own_folder_when_none_is_named(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, folder="team/mnist", folder_id=None, make_folder=True)
    target = UploadTarget(host="h", api_key="k").for_run(run_dir)
    assert (target.folder, target.folder_id, target.make_folder, target.host, target.api_key) == \
        ("team/mnist", None, True, "h", "k")
    assert requested_folder(run_dir, None, None, False) == ("team/mnist", None, False)


def test_for_run_keeps_a_named_folder(tmp_path: Path) -> None:
    run_dir = _run_dir(tmp_path, folder="team/mnist")
    assert UploadTarget(folder_id="f9").for_run(run_dir).folder_spec() == \
        {"folder": "default", "folder_id": "f9", "make_folder": False}
    assert requested_folder(run_dir, "other", None, None) == ("other", None, False)
