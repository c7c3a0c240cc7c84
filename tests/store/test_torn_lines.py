"""A torn line anywhere in a metrics file (what an older writer left after a full disk) is skipped, once warned."""

from __future__ import annotations

import json

import pytest

import em_dist as em
from em_dist.store import layout
from em_dist.store.reader import repair_chunk, repair_line


def torn_run(steps: int = 20, torn_at: int = 10) -> em.Run:
    """A finished run whose metrics file has, at ``torn_at``, half a record glued to the next whole one."""
    run = em.create_run(name="torn")
    for step in range(steps):
        run.log(type="train", metrics={"loss": 1.0 / (step + 1)}, step=step)
    run.finish()
    path = layout.metrics_file(run.path, 0)
    lines = path.read_bytes().splitlines(keepends=True)
    lines.insert(torn_at, lines[torn_at][: len(lines[torn_at]) // 2])  # the cut-short write
    path.write_bytes(b"".join(lines))
    return run


def test_reader_skips_a_torn_line_in_the_middle_and_keeps_the_glued_record() -> None:
    run = torn_run()
    with pytest.warns(em.EMWarning, match="damaged line"):
        steps = [p["step"] for p in em.load_run(run.path).metrics()]
    assert steps == list(range(20))


def test_repair_keeps_the_length_so_upload_offsets_hold() -> None:
    good = b'{"type":"train","step":7,"epoch":null,"time":1.0,"metrics":{"loss":0.5}}\n'
    glued = good[:20] + good
    fixed = repair_line(glued)
    assert len(fixed) == len(glued) and json.loads(fixed)["step"] == 7
    assert repair_line(good[:20] + b"\n").strip() == b""
    chunk = good + glued + b"garbage\n" + good
    fixed = repair_chunk(chunk)
    assert len(fixed) == len(chunk)
    assert [json.loads(x)["step"] for x in fixed.splitlines() if x.strip()] == [7, 7, 7]
