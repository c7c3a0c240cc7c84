"""Twenty uploads of different runs at once, into one folder created on the fly."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import em_dist as em
from tests.server.runs import assert_same_run, make_run


def test_twenty_concurrent_uploads(server) -> None:
    _, key = server.add_user()
    runs = [make_run(f"conc{i}", steps=200, artifact_bytes=f"model {i}".encode() * 1000) for i in range(20)]
    with ThreadPoolExecutor(max_workers=20) as pool:
        results = list(pool.map(
            lambda r: em.upload(r.path, folder="team/sweep", make_folder=True, host=server.url, api_key=key), runs))
    assert all(not r.skipped for r in results)
    client = em.Client(host=server.url, api_key=key)
    assert {f["path"] for f in client.folders()} == {"team", "team/sweep"}
    listed = client.runs("team/sweep")
    assert sorted(r["id"] for r in listed) == sorted(r.id for r in runs)
    assert {r["name"] for r in listed} == {f"conc{i}" for i in range(20)}
    for run in runs:
        assert_same_run(client, run.path)
