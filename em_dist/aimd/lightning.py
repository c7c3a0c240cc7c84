"""``t9k.aimd.lightning``'s place: the same callback as :mod:`em_dist.lightning`."""

from __future__ import annotations

from ..lightning import AIMDCallback, EMCallback, EMLogger

__all__ = ["AIMDCallback", "EMCallback", "EMLogger"]
