"""Weight and gradient histograms for the framework hooks (issue 25 item 6).

The Keras, Lightning and Transformers callbacks take ``histograms_every_n_*``; every n-th step
they hand this module the model's ``(name, tensor)`` pairs and log one :class:`~em_dist.media.Histogram`
per tensor with the type :data:`WEIGHTS` or :data:`GRADIENTS`. Tensors are passed as they are
(no ``.item()``/``.cpu()``): the histogram clones them and the writer thread bins them, so no
device is synchronised in the hook. At most :data:`~em_dist.limits.MAX_HOOK_HISTOGRAMS` per call.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from .._warn import warn_once
from ..limits import MAX_HOOK_HISTOGRAMS
from ..media import Histogram
from ..run import Run

WEIGHTS = "weights"
"""The type of the weight histograms."""
GRADIENTS = "gradients"
"""The type of the gradient histograms."""
BINS = 64
"""Bins per histogram."""


def check_every(value: Any, option: str) -> int:
    """``histograms_every_n_*``: None or 0 (off), else a positive step interval."""
    if value is None:
        return 0
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{option} must be a non-negative integer or None, got {value!r}")
    return value


def due(every: int, step: int) -> bool:
    """Whether histograms are logged at ``step`` (``every`` 0: never)."""
    return every > 0 and step % every == 0


def log_histograms(run: Run, type_: str, named: Iterable[tuple[str, Any]], step: int, epoch: int | float | None = None) -> None:
    """Log one histogram per ``(name, tensor)`` (None tensors, as a gradient not computed, are left
    out) under ``type_`` at ``step``; past :data:`MAX_HOOK_HISTOGRAMS` the rest are skipped with one
    warning. A tensor a histogram refuses (too many values, not real numbers) is skipped with one warning."""
    metrics: dict[str, Histogram] = {}
    skipped: list[str] = []
    for name, tensor in named:
        if tensor is None:
            continue
        if len(metrics) >= MAX_HOOK_HISTOGRAMS:
            skipped.append(name)
            continue
        try:
            metrics[name] = Histogram(tensor, bins=BINS)
        except (TypeError, ValueError) as exc:
            warn_once(f"hook-histogram:{type_}:{name}", f"em_dist: no {type_} histogram of {name!r}: {exc}")
    if skipped:
        warn_once(f"hook-histograms-skipped:{type_}",
                  f"em_dist: {type_} histograms cover the first {MAX_HOOK_HISTOGRAMS} parameter tensors "
                  f"(em_dist.limits.MAX_HOOK_HISTOGRAMS); {len(skipped)} skipped, from {skipped[0]!r} on")
    if metrics:
        run.log(type_, metrics, step=step, epoch=epoch)
