"""The rank layer re-homes a Run only through its host interface (ranks/host.py), never its private fields."""

from __future__ import annotations

import re
from pathlib import Path

from em_dist.ranks.host import RunIdentity

RANKS = Path(__file__).resolve().parents[2] / "em_dist" / "ranks"


def test_rank_layer_touches_no_private_field_of_a_run() -> None:
    reach = re.compile(r"\b(run|live|r|host)\._[a-z]")
    found = [f"{p.name}:{i}: {line.strip()}" for p in sorted(RANKS.glob("*.py"))
             for i, line in enumerate(p.read_text(encoding="utf-8").splitlines(), 1) if reach.search(line)]
    assert found == []


def test_identity_doc_is_what_ranks_meet_with() -> None:
    me = RunIdentity("abc", "default-1", Path("/runs/default-1"), 2)
    assert me.doc() == {"id": "abc", "alternative_name": "default-1", "path": "/runs/default-1", "restarts": 2}
