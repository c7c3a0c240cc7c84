"""Which em_dist type a framework's metric name means: ``val_loss`` is ``val``'s ``loss``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

Prefixes = tuple[tuple[str, str], ...]
"""``(prefix, type)`` pairs, tried in order; the prefix is stripped from the name."""


def group_by_type(
    metrics: Mapping[str, Any],
    prefixes: Prefixes,
    skip: frozenset[str] = frozenset(),
    fixed: Mapping[str, str] | None = None,
) -> dict[str, dict[str, Any]]:
    """Split one dict of metrics into one dict per type; names in ``skip`` and non-numbers (str, None) are left out.

    ``fixed`` maps whole names to a type (kept unstripped); other names take the type of their
    first matching prefix, or ``train``.
    """
    out: dict[str, dict[str, Any]] = {}
    for key, value in metrics.items():
        if key in skip or value is None or isinstance(value, (str, bytes)):
            continue
        kind, name = "train", key
        if fixed and key in fixed:
            kind = fixed[key]
        else:
            for prefix, t in prefixes:
                if key.startswith(prefix) and len(key) > len(prefix):
                    kind, name = t, key[len(prefix):]
                    break
        out.setdefault(kind, {})[name] = value
    return out
