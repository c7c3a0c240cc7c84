"""``em login``, ``em run upload``, ``em artifact upload``, ``em logout`` as a user types them."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import em_dist as em
from tests.conftest import python_env
from tests.server.harness import em_cli, fresh_server  # noqa: F401  (fixture)
from tests.server.runs import assert_same_run, make_run


def test_login_upload_logout(fresh_server, run_parent: Path) -> None:  # noqa: F811
    _, key = fresh_server.add_user()
    env = python_env()  # HOME, EM_RUN_PARENT_DIR and EM_ARTIFACT_PARENT_DIR are per test (tests/conftest.py)
    bad = em_cli("login", "-H", fresh_server.url, "-k", "em_wrong", env=env, check=False)
    assert bad.returncode == 1 and "invalid API key" in bad.stderr
    em_cli("login", "-H", fresh_server.url, "-k", key, env=env)
    config = Path(os.environ["HOME"]) / ".em" / "config.yaml"
    assert stat.S_IMODE(config.stat().st_mode) == 0o600

    first = make_run("cli", steps=20)
    second = make_run("cli", steps=5, artifact_bytes=None)
    out = em_cli("run", "upload", "-p", first.path, "--folder", "proj/cli", "--make-folder", "--no-progress", env=env)
    assert f"run {first.id}" in out.stdout
    out = em_cli("run", "upload", "-d", str(run_parent), "-n", "cli", "--folder", "proj/cli",
                 "--conflict-strategy", "skip", "--no-progress", env=env)
    assert "skipped" in out.stdout  # the second run's name is taken; the first is re-sent as nothing new
    client = em.Client(host=fresh_server.url, api_key=key)
    assert [r["id"] for r in client.runs("proj/cli")] == [first.id]
    assert_same_run(client, first.path)

    artifact = em.create_artifact(name="dataset")
    src = run_parent.parent / "data.csv"
    src.write_text("a,b\n1,2\n")
    artifact.add_file(str(src))
    out = em_cli("artifact", "upload", "-p", str(artifact.path), "--folder", "proj/cli", "--no-progress", env=env)
    assert "1 files, 1 new blobs" in out.stdout
    assert client.artifact(artifact.id).read("data.csv") == b"a,b\n1,2\n"

    missing = em_cli("run", "upload", "-p", second.path, "--folder", "nowhere", env=env, check=False)
    assert missing.returncode == 1 and "make_folder" in missing.stderr
    em_cli("logout", env=env)
    assert not config.exists()
    after = em_cli("run", "upload", "-p", second.path, env=env, check=False)
    assert after.returncode == 1 and "em login" in after.stderr
