"""``t9k.aimd.keras``'s place: the same callbacks as :mod:`em_dist.keras`."""

from __future__ import annotations

from ..keras import AIMDEvalCallback, AIMDFitCallback, EMEvalCallback, EMFitCallback

__all__ = ["AIMDFitCallback", "AIMDEvalCallback", "EMFitCallback", "EMEvalCallback"]
