"""A rank's journal uploaded from its own host merges into the same server run, exactly once.

The job's run folder lives on rank 0's host and holds rank 1's records 1..60 (its link broke
for good); rank 1's host holds only its journal, records 1..100. Both reach one real server
(SQLite and PostgreSQL, over HTTP) in either order, each twice: every record of rank 1 is
there once. No one can add records to a run that is not theirs."""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path

import pytest
import requests

import em_dist as em
from em_dist.cli.main import main as cli_main
from em_dist.client.upload_journal import upload_journal
from em_dist.errors import ServerError
from em_dist.media.encode import media_record
from em_dist.store import journal as journals
from em_dist.store import layout
from em_dist.store.files import read_json, write_json_atomic
from em_dist.store.lines import MEDIA_MARK, LineEncoder, output_record

STEPS = 100
HELD = 60  # records of rank 1 that reached rank 0 before the link broke


def _records(first: int, last: int) -> list[str]:
    """Rank 1's records ``first..last`` as its journal holds them: a metric line each, every
    tenth also a captured output line after it, every 25th a media record (numbers count all)."""
    encode, out = LineEncoder(), []
    for step in range(STEPS):
        out.append(encode(("train", step, None, time.time(), {"loss": 1.0 / (step + 1)})))
        if step % 10 == 0:
            out.append(output_record(time.time(), "out", f"rank 1 at step {step}"))
        if step % 25 == 0:  # media records: numbered and merged like the rest, locally and by the server
            out.append(media_record("train", step, None, time.time(), "note", em.Text(f"rank 1 at step {step}")))
    return out[first - 1:last]


def _job(tmp_path: Path) -> tuple[Path, Path]:
    """Rank 0's run folder (host A) and rank 1's closed journal (host B)."""
    run = em.create_run(name="job", capture_output=False)
    for step in range(STEPS):
        run.log("train", {"loss": float(step)}, step=step)
    run.log("train", {"note": em.Text("rank 0"), "h": em.Histogram([1.0, 2.0], bins=2)}, step=0)
    run.finish()
    run_dir = Path(run.path)
    total = len(_records(1, 10**6))
    host_b = tmp_path / "host-b" / ".em" / "runs"
    journal = journals.Journal(journals.spool_dir(host_b, run.id), 1, {"run_id": run.id, "name": "job"})
    journal.append(_records(1, HELD))
    # what reached rank 0: a copy of the journal so far, merged into its folder (numbered lines, delivery)
    rank0_copy = journals.spool_dir(run_dir.parent, run.id) / "rank-1.1.journal"
    rank0_copy.parent.mkdir(parents=True)
    rank0_copy.write_bytes(journal.path.read_bytes())
    write_json_atomic(rank0_copy.with_suffix(".json"), {"run_id": run.id, "rank": 1, "closed": False})
    journals.merge(run_dir, rank0_copy)
    journals.remove_journal(rank0_copy)
    doc = read_json(run_dir / layout.RUN_FILE, {})
    doc["delivery"]["1"]["journal"] = f"host-b:{journal.path}"
    write_json_atomic(run_dir / layout.RUN_FILE, doc)
    journal.append(_records(HELD + 1, total))
    journal.close()
    return run_dir, journal.path


def _rank1(client: em.Client, run_id: str) -> tuple[list[int], list[str]]:
    steps = sorted(p["step"] for p in client.run(run_id).metrics(name="loss", rank=1))
    lines = [line["text"] for line in client.logs(run_id, rank=1)]
    return steps, lines


@pytest.mark.parametrize("order", ["folder-first", "journal-first"])
def test_a_journal_uploaded_from_its_own_host_lands_once_in_the_same_run(tmp_path: Path, server, order: str) -> None:
    _, key = server.add_user()
    run_dir, journal = _job(tmp_path)
    run_id = em.load_run(run_dir).id

    def folder() -> None:
        em.upload(run_dir, host=server.url, api_key=key)

    def from_host_b() -> None:  # twice: the second adds nothing
        for _ in range(2):
            upload_journal(journal, host=server.url, api_key=key)

    for step in ([from_host_b, folder, from_host_b] if order == "journal-first" else [folder, from_host_b, folder]):
        step()
    client = em.Client(host=server.url, api_key=key)
    steps, lines = _rank1(client, run_id)
    assert steps == list(range(STEPS))  # every record of rank 1 once
    # each line once (a journal sent first lands before the folder's lines: stored in the order uploaded)
    assert sorted(lines, key=lambda t: int(t.split()[-1])) == [f"rank 1 at step {s}" for s in range(0, STEPS, 10)]
    remote = client.run(run_id)
    assert remote.name == "job" and remote.status == "Succeeded"  # rank 0's metadata, not the placeholder's
    assert sorted(p["step"] for p in remote.metrics(name="loss", rank=0)) == list(range(STEPS))
    delivery = requests.get(f"{server.url}/api/v1/runs/{run_id}/delivery", headers={"Authorization": f"Bearer {key}"},
                            timeout=10).json()
    assert delivery["1"] == {"records": len(_records(1, 10**6)), "complete": True}
    local = em.load_run(run_dir)  # rank 1's media records that reached rank 0 (before the link broke), once
    held = [json.loads(r[1:])["text"] for r in _records(1, HELD) if r[:1] == MEDIA_MARK]
    assert held and [m.text for m in local.media(rank=1)] == held
    assert [m.kind for m in local.media(rank=0)] == ["text", "histogram"]
    assert [dataclasses.replace(m, path=None) for m in remote.media(rank=0)] == local.media(rank=0)
    # rank 1's media records on the server: every one, once, whichever way each came
    assert [m.text for m in remote.media(rank=1)] == [f"rank 1 at step {s}" for s in range(0, STEPS, 25)]


def test_em_run_upload_on_the_journals_host_sends_it_and_says_so(tmp_path: Path, server, capsys) -> None:
    """``em run upload`` in the runs folder of host B (no run folder there, only the spool), then
    ``em run upload -p JOURNAL``."""
    _, key = server.add_user()
    run_dir, journal = _job(tmp_path)
    run_id = em.load_run(run_dir).id
    em.upload(run_dir, host=server.url, api_key=key)
    host_b = journal.parents[2]
    args = ["run", "upload", "-d", str(host_b), "-H", server.url, "-k", key, "--no-progress"]
    assert cli_main(args) == 0
    stored = _records(HELD + 1, 10**6)  # metric, output and media records alike
    assert f"rank 1 of run {run_id}: {len(stored)} records merged, the server holds 1..{len(_records(1, 10**6))}" \
        in capsys.readouterr().out
    assert cli_main(["run", "upload", "-p", str(journal), *args[4:]]) == 0  # the journal named: nothing new
    assert f"rank 1 of run {run_id}: 0 records merged" in capsys.readouterr().out
    steps, _ = _rank1(em.Client(host=server.url, api_key=key), run_id)
    assert steps == list(range(STEPS))


def test_nobody_adds_records_to_a_run_that_is_not_theirs(tmp_path: Path, server) -> None:
    _, owner = server.add_user()
    _, other = server.add_user()
    run_dir, journal = _job(tmp_path)
    run_id = em.load_run(run_dir).id
    em.upload(run_dir, host=server.url, api_key=owner)
    with pytest.raises(ServerError):
        upload_journal(journal, host=server.url, api_key=other)
    forged = requests.post(f"{server.url}/api/v1/runs/{run_id}/journal/1", params={"last": 999},
                           data=b'999\t{"type":"train","step":7,"epoch":null,"time":0.0,"metrics":{"loss":666}}\n',
                           headers={"Authorization": f"Bearer {other}"}, timeout=10)
    assert forged.status_code in (403, 404), forged.text
    steps, _ = _rank1(em.Client(host=server.url, api_key=owner), run_id)
    assert steps == list(range(len(steps))) and len(steps) < STEPS  # rank 0's share only: nothing of the journal
    assert 666 not in [p["value"] for p in em.Client(host=server.url, api_key=owner).run(run_id).metrics(name="loss", rank=1)]
