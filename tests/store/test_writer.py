"""Disk trouble never reaches the training loop, and the data is kept until the disk is back."""

from __future__ import annotations

import os
import warnings

import pytest

import em_dist as em
from em_dist.store import layout

pytestmark = pytest.mark.skipif(not os.path.exists("/dev/full"), reason="needs /dev/full to produce a real ENOSPC")


def test_disk_full_warns_once_keeps_data_and_recovers() -> None:
    run = em.create_run(name="full", flush_interval=30)
    metrics_path = layout.metrics_file(run.path, 0)
    os.symlink("/dev/full", metrics_path)  # every write to it fails with ENOSPC, from the kernel
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(30):
            run.log(type="train", metrics={"loss": float(step)}, step=step)
            if step % 10 == 9:
                run.flush()
    disk_warnings = [w for w in caught if issubclass(w.category, em.EMWarning) and "cannot write" in str(w.message)]
    assert len(disk_warnings) == 1, [str(w.message) for w in caught]
    assert "No space left" in str(disk_warnings[0].message)
    os.unlink(metrics_path)  # the disk is back
    run.log(type="train", metrics={"loss": 30.0}, step=30)
    run.finish()
    assert [p["step"] for p in em.load_run(run.path).metrics()] == list(range(31))


def test_unwritable_backlog_is_bounded_and_keeps_the_newest() -> None:
    run = em.create_run(name="bounded", flush_interval=30, max_pending=100)
    metrics_path = layout.metrics_file(run.path, 0)
    os.symlink("/dev/full", metrics_path)
    with pytest.warns(em.EMWarning):
        for step in range(300):
            run.log(type="train", metrics={"loss": 1.0}, step=step)
            if step % 50 == 49:
                run.flush()
    os.unlink(metrics_path)
    run.finish()
    assert [p["step"] for p in em.load_run(run.path).metrics()] == list(range(200, 300))


def test_a_runs_folder_that_cannot_be_made_is_refused_at_create_run(monkeypatch) -> None:
    """Nothing could be recorded there: create_run says so at the call (it used to warn later that a
    run.json that never existed still said the run was live). A disk that turns read-only *after*
    create_run is the writer's to survive (tests/store/test_disk_faults.py)."""
    monkeypatch.setenv("EM_RUN_PARENT_DIR", "/proc/em_dist_cannot_write_here")
    with pytest.raises(OSError, match="cannot write in /proc/em_dist_cannot_write_here"):
        em.create_run(name="readonly")


def test_unwritable_captured_output_is_bounded_counted_and_keeps_the_newest(tmp_path, monkeypatch) -> None:
    """Captured lines the disk refuses wait in memory up to their own bound; past it the oldest go,
    each counted in the writer's drops (which finish() and the run report), with one warning."""
    from em_dist.store import writer as writer_mod
    from em_dist.store.lines import OUTPUT_MARK
    from em_dist.store.logs import log_file

    monkeypatch.setattr(writer_mod, "MAX_UNWRITTEN_OUTPUT", 40)  # the bound, small enough to pass here
    w = writer_mod.RunWriter(tmp_path / "run", flush_interval=30)
    path = log_file(w.run_dir, 0)
    path.parent.mkdir(parents=True, exist_ok=True)
    os.symlink("/dev/full", path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        w.start()
        for batch in range(3):
            w.buffer.extend(OUTPUT_MARK + f"line {batch * 30 + i}\n" for i in range(30))
            assert w.flush()
    said = [str(c.message) for c in caught if issubclass(c.category, em.EMWarning)]
    assert sum("more than 40 captured lines of rank 0" in m for m in said) == 1, said
    assert w.drops().output_lines == 50
    os.unlink(path)  # the disk is back: the newest 40 are written
    assert w.close()
    assert path.read_text().splitlines() == [f"line {i}" for i in range(50, 90)]
