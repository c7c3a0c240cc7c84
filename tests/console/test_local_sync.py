"""The local console's sync (no browser): runs keep their own folders, and ``.aimd/trials`` runs show too."""

from __future__ import annotations

import time

import em_dist as em
from em_dist.server.console.local import RunSync, find_run_dirs
from tests.server.harness import ServerProcess


def test_local_runs_keep_their_folders_and_aimd_trials_are_found(tmp_path, monkeypatch) -> None:
    root = tmp_path / "work"
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(root / ".em" / "runs"))
    a = em.create_run(name="in-project", folder="proj/a")
    a.log(type="train", metrics={"loss": 1.0}, step=0)
    a.finish()
    monkeypatch.setenv("AIMD_TRIAL_PARENT_DIR", str(root / ".aimd" / "trials"))  # where create_trial saves
    trial = em.create_trial(trial_name="old-style", folder_path="legacy")
    trial.finish()
    assert {p.parent.name for p in find_run_dirs(root)} == {"runs", "trials"}

    srv = ServerProcess(tmp_path / "srv", None).start()
    try:
        _, key = srv.add_user()
        assert RunSync(root, srv.url, key).sync_once(time.monotonic()) == 2
        client = em.Client(host=srv.url, api_key=key)
        assert [r["name"] for r in client.runs("proj/a")] == ["in-project"]
        assert [r["name"] for r in client.runs("legacy")] == ["old-style"]
        assert client.runs("default") == []
        client.close()
    finally:
        srv.stop()
