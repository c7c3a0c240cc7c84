"""A real full, deleted or read-only disk under a live run: nothing torn, nothing twice, nothing silent.

Each test runs the run folder on a tmpfs of its own (tests/disk.py), so the kernel
itself cuts writes short, refuses them, or loses the folder.
"""

from __future__ import annotations

import json
import shutil
import warnings

import pytest

import em_dist as em
from em_dist.store import layout
from tests.disk import fill, remount, tmpfs


@pytest.fixture
def disk(tmp_path, monkeypatch):
    with tmpfs(tmp_path / "disk", 48) as mnt:
        monkeypatch.setenv("EM_RUN_PARENT_DIR", str(mnt / "runs"))
        yield mnt


def _lines(run) -> list[bytes]:
    return layout.metrics_file(run.path, 0).read_bytes().split(b"\n")


def _assert_clean(run, steps: list[int]) -> None:
    raw = _lines(run)
    assert raw[-1] == b""
    parsed = [json.loads(line) for line in raw[:-1]]  # raises on a torn line
    assert [r["step"] for r in parsed] == steps


def _em_warnings(caught) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, em.EMWarning)]


def test_disk_full_then_freed_leaves_no_torn_line_and_no_duplicate(disk) -> None:
    run = em.create_run(name="full", flush_interval=30)
    run.log(type="train", metrics={"loss": 0.0}, step=0)
    assert run.flush()
    filler = fill(disk, leave_bytes=3 * 4096)  # room for part of the next batch only: a short write
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(1, 2001):
            run.log(type="train", metrics={"loss": 1.0 / step, "acc": step / 2000}, step=step)
        run.flush()
        for step in range(2001, 3001):
            run.log(type="train", metrics={"loss": 1.0 / step, "acc": step / 2000}, step=step)
        run.flush()
    assert sum("cannot write" in m for m in _em_warnings(caught)) == 1
    raw = layout.metrics_file(run.path, 0).read_bytes()
    assert raw.endswith(b"\n")  # cut back to the last complete line while the disk is full
    filler.unlink()  # the disk is back
    for step in range(3001, 3101):
        run.log(type="train", metrics={"loss": 1.0 / step, "acc": step / 2000}, step=step)
    run.finish()
    _assert_clean(run, list(range(3101)))
    assert em.load_run(run.path).status == "Succeeded"


def test_run_folder_deleted_while_training_is_recreated_with_everything_pending(disk) -> None:
    run = em.create_run(name="deleted", flush_interval=30, labels=["x"])
    run.hparams["lr"] = 0.1
    for step in range(100):
        run.log(type="train", metrics={"loss": 1.0}, step=step)
    assert run.flush()
    shutil.rmtree(run.path)  # a cleanup job
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(100, 3434):
            run.log(type="train", metrics={"loss": 2.0}, step=step)
            if step % 1000 == 0:
                run.flush()
        run.finish()
    assert sum("was deleted" in m for m in _em_warnings(caught)) == 1
    rec = em.load_run(run.path)
    assert rec.status == "Succeeded" and rec.hparams == {"lr": 0.1} and rec.labels == ["x"]
    assert (run.path / layout.PLATFORM_FILE).is_file()  # every metadata document is back
    _assert_clean(run, list(range(100, 3434)))  # every record logged after the deletion


def test_metrics_file_deleted_alone_is_started_again(disk) -> None:
    run = em.create_run(name="file_deleted", flush_interval=30)
    for step in range(10):
        run.log(type="train", metrics={"loss": 1.0}, step=step)
    assert run.flush()
    layout.metrics_file(run.path, 0).unlink()
    with pytest.warns(em.EMWarning, match="lost its file"):
        for step in range(10, 20):
            run.log(type="train", metrics={"loss": 1.0}, step=step)
        run.finish()
    _assert_clean(run, list(range(10, 20)))


def test_read_only_disk_finish_says_how_many_records_are_lost(disk) -> None:
    run = em.create_run(name="ro", flush_interval=30)
    assert run.flush()  # the metadata is written; no file stays open (the kernel refuses `ro` while one does)
    remount(disk, "ro")
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            for step in range(1000):
                run.log(type="train", metrics={"loss": 1.0}, step=step)
            run.flush()
            run.finish()
    finally:
        remount(disk, "rw")
    messages = _em_warnings(caught)
    assert sum("cannot write" in m for m in messages) == 1
    [lost] = [m for m in messages if "could not be written" in m]
    assert "1000 metric records could not be written" in lost and "Read-only" in lost and "still says the run is live" in lost
    assert not layout.metrics_file(run.path, 0).exists()


def test_an_artifact_bigger_than_the_disk_costs_no_metric_record(disk, tmp_path, monkeypatch) -> None:
    """Artifacts and the run on one small disk: the copy that can't fit leaves nothing behind, every
    metric record is kept, the run reads back Succeeded, and marking the artifact says it is incomplete."""
    monkeypatch.setenv("EM_ARTIFACT_PARENT_DIR", str(disk / "artifacts"))
    big = tmp_path / "model.bin"
    with open(big, "wb") as f:
        f.truncate(100 << 20)  # 100 MB of zeros (sparse: no room taken where it lies)
    small = tmp_path / "config.json"
    small.write_text("{}")
    run = em.create_run(name="bigartifact", flush_interval=30)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(500):
            run.log(type="train", metrics={"loss": 1.0}, step=step)
        art = em.create_artifact("model")
        art.add_file(small)
        art.add_file(big)
        for step in range(500, 1000):
            run.log(type="train", metrics={"loss": 1.0}, step=step)
        run.mark_output(art)
        run.finish()
    messages = _em_warnings(caught)
    content = art.path / layout.ARTIFACT_CONTENT_DIR
    assert sorted(p.name for p in content.iterdir()) == ["config.json"]  # no partial copy, not even a temp file
    assert any("model.bin" in m and "not copied" in m for m in messages)
    assert any("marked as output" in m and "model.bin" in m for m in messages)
    _assert_clean(run, list(range(1000)))
    rec = em.load_run(run.path)
    assert rec.status == "Succeeded"
    [ref] = rec.artifacts
    assert [f["path"] for f in ref.files] == ["config.json"] and [f["path"] for f in ref.failed] == ["model.bin"]
