"""``run.hparams``: a dict that saves itself."""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, MutableMapping
from typing import Any, Callable, Iterator

from ._warn import warn_once
from .platform.redact import redact_record


def json_safe(value: Any, key: str = "") -> Any:
    """``value`` if JSON holds it (tuples become lists); otherwise its ``repr``, with one warning."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value - value == 0.0 else repr(value)
    if isinstance(value, Mapping):
        return {str(k): json_safe(v, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(v, key) for v in value]
    if isinstance(value, os.PathLike):
        return os.fspath(value)
    numel = getattr(value, "numel", None)
    size = numel() if callable(numel) else getattr(value, "size", None)
    if size == 1 and callable(getattr(value, "item", None)):  # NumPy scalars, one-element tensors
        return json_safe(value.item(), key)
    if callable(getattr(value, "tolist", None)):
        return json_safe(value.tolist(), key)
    try:
        json.dumps(value)
        return value
    except (TypeError, ValueError):
        warn_once(
            f"hparam-repr:{type(value).__name__}",
            f"em_dist: hparam {key!r} of type {type(value).__name__} is not JSON; stored as its repr",
            stacklevel=4,
        )
        return repr(value)


class Hparams(MutableMapping[str, Any]):
    """Hyperparameters of a run; every change is saved in the background without a call from the user."""

    def __init__(self, on_change: Callable[[dict[str, Any]], None] | None = None) -> None:
        self._data: dict[str, Any] = {}
        self._on_change = on_change

    def __getitem__(self, key: str) -> Any:
        return self._data[key]

    def __setitem__(self, key: str, value: Any) -> None:
        self._data[self._check_key(key)] = json_safe(value, key)
        self._changed()

    def __delitem__(self, key: str) -> None:
        del self._data[key]
        self._changed()

    def __iter__(self) -> Iterator[str]:
        return iter(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __repr__(self) -> str:
        return f"Hparams({self._data!r})"

    def update(self, new: Mapping[str, Any] | Any = (), /, override: bool = True, **kwargs: Any) -> None:
        """Merge ``new`` (a mapping, an ``argparse.Namespace`` or pairs) and ``kwargs``; keep old values if not ``override``."""
        if new is None:
            new = {}
        elif not isinstance(new, Mapping) and hasattr(new, "__dict__") and not isinstance(new, (list, tuple)):
            new = vars(new)
        items = dict(new, **kwargs)
        for key in items:
            self._check_key(key)
        for key, value in items.items():
            if override or key not in self._data:
                self._data[key] = json_safe(value, key)
        self._changed()

    @staticmethod
    def _check_key(key: Any) -> str:
        if not isinstance(key, str):
            raise TypeError(f"hparam names must be strings, got {key!r} ({type(key).__name__})")
        if not key:
            raise ValueError("hparam names must not be empty")
        return key

    def saved(self) -> dict[str, Any]:
        """What is written to disk: a copy with secrets redacted (the dict itself keeps them,
        so the script can still read its own values)."""
        return redact_record(self._data)

    def _changed(self) -> None:
        if self._on_change is not None:
            self._on_change(self.saved())
