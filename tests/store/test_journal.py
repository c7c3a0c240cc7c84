"""A rank's journal and its merge into a finished run: exactly once by (rank, number), whatever part
of it rank 0 already had, with the records of the attempt they belong to."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import em_dist as em
from em_dist.store import journal, layout
from em_dist.store.lines import LineEncoder, output_record
from em_dist.store.summary import RunSummary

ENC = LineEncoder()


def _line(step: int, name: str = "loss") -> str:
    return ENC(("train", step, None, 1.0 + step, {name: float(step)}))


def _finished_run(tmp_path: Path, peer_lines: list[str] | None = None, restarts: int = 0) -> Path:
    """A finished run folder whose rank-1 file holds ``peer_lines`` (numbered as rank 0 writes them)."""
    run = em.create_run(name="j", capture_output=False, system_metrics_interval=0)
    run.log(type="train", metrics={"loss": 0.5}, step=0)
    run.finish()
    folder = Path(run.path)
    if peer_lines:
        layout.metrics_file(folder, 1).write_text("".join(peer_lines))
    if restarts:
        doc = json.loads((folder / layout.RUN_FILE).read_text())
        doc["restarts"] = restarts
        (folder / layout.RUN_FILE).write_text(json.dumps(doc))
    return folder


def _journal(tmp_path: Path, run_id: str, records: list[str], closed: bool = True, attempt: int | None = None) -> Path:
    j = journal.Journal(journal.spool_dir(tmp_path / "runs", run_id), 1, {"run_id": run_id})
    j.append(records)
    if attempt is not None:
        j.describe(attempt=attempt)
    if closed:
        j.close()
    return j.path


def test_a_partly_delivered_batch_is_merged_exactly_once(tmp_path):
    records = [_line(i) for i in range(1, 11)] + [output_record(5.0, "out", "hello")]
    delivered = [journal.numbered(r, n, 0) for n, r in enumerate(records[:4], 1)]  # rank 0 wrote 1..4 of the batch
    folder = _finished_run(tmp_path, delivered)
    run_id = em.load_run(folder).id
    path = _journal(tmp_path, run_id, records)

    merged = journal.merge(folder, path)

    assert (merged.rank, merged.added, merged.last, merged.removed) == (1, 7, 11, True)
    steps = [p["step"] for p in em.load_run(folder).metrics(rank=1)]
    assert steps == list(range(1, 11))  # each once, in order
    assert [line["text"] for line in em.load_run(folder).logs(rank=1)] == ["hello"]
    assert not path.exists() and not path.parent.exists()  # a merged, closed journal goes, and its empty folders
    assert em.load_run(folder).delivery == {"1": {"records": 11, "complete": True}}
    # a second merge (another journal copy, `em run merge` run twice) adds nothing
    again = _journal(tmp_path, run_id, records)
    assert journal.merge(folder, again).added == 0
    assert len(em.load_run(folder).metrics(rank=1)) == 10


def test_an_open_journal_is_merged_but_kept_and_a_torn_tail_is_left_out(tmp_path):
    folder = _finished_run(tmp_path)
    run_id = em.load_run(folder).id
    path = _journal(tmp_path, run_id, [_line(i) for i in range(3)], closed=False)
    with open(path, "a") as f:
        f.write('4\t{"type":"train","st')  # a crash mid-write
    merged = journal.merge(folder, path)
    assert (merged.added, merged.last, merged.removed) == (3, 3, False)
    assert path.exists()
    assert em.load_run(folder).delivery["1"]["complete"] is False


def test_the_watermark_is_per_attempt(tmp_path):
    """A restarted job numbers its records afresh: attempt 1's records 1..3 are not attempt 0's."""
    attempt0 = [journal.numbered(_line(i), i, 0) for i in range(1, 4)]
    folder = _finished_run(tmp_path, attempt0, restarts=1)
    path = _journal(tmp_path, em.load_run(folder).id, [_line(100 + i) for i in range(3)], attempt=1)
    assert journal.merge(folder, path).added == 3
    assert [p["attempt"] for p in em.load_run(folder).metrics(rank=1)] == [0, 0, 0, 1, 1, 1]


def test_an_earlier_attempts_journal_never_overwrites_the_current_attempts_delivery(tmp_path):
    """A restarted job's run says how complete each rank is for its newest attempt. Merging a journal
    an earlier attempt left (``em run merge`` later) adds that attempt's records, but the rank's
    delivery stays the newest attempt's, not the old journal's."""
    attempt1 = [journal.numbered(_line(100 + i), i, 1) for i in range(1, 4)]
    folder = _finished_run(tmp_path, attempt1, restarts=1)
    doc = json.loads((folder / layout.RUN_FILE).read_text())
    doc["delivery"] = {"1": {"records": 3, "complete": True, "attempt": 1}}
    (folder / layout.RUN_FILE).write_text(json.dumps(doc))
    old = _journal(tmp_path, em.load_run(folder).id, [_line(i) for i in range(2)], closed=False, attempt=0)
    assert journal.merge(folder, old).added == 2
    rec = em.load_run(folder)
    assert [p["attempt"] for p in rec.metrics(rank=1)] == [1, 1, 1, 0, 0]
    assert rec.delivery == {"1": {"records": 3, "complete": True, "attempt": 1}}


def test_em_run_merge_takes_a_spool_folder_from_elsewhere(tmp_path):
    folder = _finished_run(tmp_path)
    run_id = em.load_run(folder).id
    elsewhere = tmp_path / "other-host-spool"
    j = journal.Journal(elsewhere, 2, {"run_id": run_id})
    j.append([_line(i) for i in range(5)])
    j.close()
    cmd = [sys.executable, "-m", "em_dist.cli.main", "run", "merge", str(folder), "--spool", str(elsewhere)]
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert "rank 2: 5 records added" in out.stdout
    assert len(em.load_run(folder).metrics(rank=2)) == 5
    show = subprocess.run([sys.executable, "-m", "em_dist.cli.main", "run", "show", str(folder)],
                          capture_output=True, text=True, timeout=60)
    assert "rank 2" in show.stdout and "5 records in the run, complete" in show.stdout


def test_summary_keeps_every_metric_of_every_type():
    """A loop that logs loss then lr each step: both are in the summary (the last record of a batch
    used to win), also when the writer got lines the loop encoded itself (never parsed: the
    encoder's newest record of each shape stands for them)."""
    enc = LineEncoder()
    s = RunSummary()
    s.add(0, [("train", 1, None, 1.0, {"loss": 0.5}), ("train", 1, None, 1.1, {"lr": 0.1}),
              enc(("train", 2, None, 2.0, {"loss": 2.0})), ("val", 1, None, 2.2, {"acc": 0.9}),
              enc(("train", 2, None, 3.0, {"lr": 0.05}))], enc.newest)
    last = s.doc()["last"]["0"]
    assert last["train"]["loss"]["value"] == 2.0 and last["train"]["lr"]["value"] == 0.05
    assert last["val"]["acc"]["value"] == 0.9
    assert s.doc()["records"] == {"0": 5}
    s.add(0, [("train", 3, None, 4.0, {"loss": 1.5})], enc.newest)  # tuples again: in order, newest wins
    assert s.doc()["last"]["0"]["train"]["loss"]["value"] == 1.5


def test_a_journal_reads_back_any_stretch_of_its_records(tmp_path):
    """What a rebuilt link re-sends: records from any number on, in chunks, as they were journaled."""
    j = journal.Journal(tmp_path / "spool", 1, {"run_id": "r"})
    batches = [[_line(i) for i in range(start, start + 7)] for start in range(0, 70, 7)]
    for batch in batches:
        j.append(batch)
    everything = [line for batch in batches for line in batch]
    assert j.read(1, 1000) == everything
    assert j.read(12, 5) == everything[11:16]  # from the middle of the second batch
    assert j.read(70, 10) == everything[69:] and j.read(71, 10) == []
