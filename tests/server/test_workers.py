"""Several server processes on one PostgreSQL: concurrent uploads lose nothing and duplicate nothing."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import psutil

import em_dist as em
from tests.server.harness import ServerProcess, database_url, em_cli
from tests.server.runs import assert_same_run, make_run


def test_four_workers_take_forty_concurrent_uploads(request, tmp_path) -> None:  # type: ignore[no-untyped-def]
    srv = ServerProcess(tmp_path / "server", database_url("postgresql", request), workers=4).start()
    try:
        _, key = srv.add_user()
        runs = [make_run(f"w{i}", steps=100, artifact_bytes=f"model {i % 5}".encode() * 500) for i in range(30)]
        twins = [make_run("twin", steps=50, artifact_bytes=None) for _ in range(5)]  # one name, five runs
        # 30 distinct runs + 5 of them again at the same time + 5 runs under one name: 40 uploads at once
        jobs = [(r, "new") for r in runs] + [(r, "new") for r in runs[:5]] + [(r, "new") for r in twins]
        with ThreadPoolExecutor(max_workers=40) as pool:
            results = list(pool.map(lambda job: em.upload(job[0].path, folder="team/sweep", make_folder=True,
                                                          conflict_strategy=job[1], host=srv.url, api_key=key), jobs))
        assert all(not r.skipped for r in results)
        client = em.Client(host=srv.url, api_key=key)
        assert {f["path"] for f in client.folders()} == {"team", "team/sweep"}
        listed = client.runs("team/sweep")
        assert sorted(r["id"] for r in listed) == sorted(r.id for r in runs + twins)  # none lost, none twice
        names = [r["name"] for r in listed]
        assert len(set(names)) == len(names) and "twin" in names  # the twins were renamed, one keeps the name
        for run in runs + twins:
            assert_same_run(client, run.path)
        # conflict_strategy="error" at once: exactly one of four runs named alike gets in
        solos = [make_run("solo", steps=5, artifact_bytes=None) for _ in range(4)]

        def send(run):  # type: ignore[no-untyped-def]
            try:
                return em.upload(run.path, folder="team/sweep", conflict_strategy="error", host=srv.url, api_key=key)
            except em.ConflictError:
                return None

        with ThreadPoolExecutor(max_workers=4) as pool:
            landed = [r for r in pool.map(send, solos) if r is not None]
        assert len(landed) == 1 and [r["name"] for r in client.runs("team/sweep")].count("solo") == 1
        assert len(psutil.Process(srv.proc.pid).children()) >= 4  # the uploads met four server processes
    finally:
        srv.stop()


def test_several_workers_on_sqlite_are_refused(tmp_path) -> None:  # type: ignore[no-untyped-def]
    proc = em_cli("server", "start", "--workers", "2", "--data-dir", str(tmp_path / "d"), check=False)
    assert proc.returncode != 0 and "needs PostgreSQL" in proc.stderr
