"""The framework hooks' shared histogram helper: the per-call bound, gradients not computed, the option check."""

from __future__ import annotations

import numpy as np
import pytest

import em_dist as em
from em_dist import _warn
from em_dist.errors import EMWarning
from em_dist.integrations import _histograms


def test_log_histograms_bounds_the_tensors_per_call_and_says_which_are_skipped(monkeypatch) -> None:
    monkeypatch.setattr(_histograms, "MAX_HOOK_HISTOGRAMS", 2)
    monkeypatch.setattr(_warn, "_seen", {})
    run = em.create_run(name="hook_hist")
    named = [("a", np.arange(4.0)), ("none", None), ("b", np.ones(3)), ("c", np.zeros(2)), ("d", np.zeros(2))]
    with pytest.warns(EMWarning, match=r"first 2 parameter tensors .*2 skipped, from 'c' on"):
        _histograms.log_histograms(run, "weights", named, step=5)
    run.finish()
    media = em.load_run(run.path).media()
    assert [(m.type, m.name, m.step, sum(m.counts)) for m in media] == [("weights", "a", 5, 4), ("weights", "b", 5, 3)]


def test_check_every() -> None:
    assert _histograms.check_every(None, "x") == 0 and _histograms.check_every(3, "x") == 3
    for bad in (-1, True, 1.5):
        with pytest.raises(ValueError, match="histograms_every_n_steps"):
            _histograms.check_every(bad, "histograms_every_n_steps")
    assert not _histograms.due(0, 0) and _histograms.due(2, 4) and not _histograms.due(2, 3)
