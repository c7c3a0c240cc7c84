"""Validation and conversion of what users pass to ``Run.log``.

The hot path accepts Python ``int``/``float`` as they are; everything else goes
through :func:`convert_value`. Device tensors are kept as tensors here and turned
into numbers later, in bulk, by :func:`materialize` on the writer thread, so that
``log()`` never synchronises a GPU.
"""

from __future__ import annotations

import numbers
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any, Callable

from .limits import MAX_FLOAT as MAX_FLOAT  # re-exported: Run.log checks it inline
from .limits import MAX_STEP as MAX_STEP
from .limits import MAX_NAME_CHARS, MAX_TYPE_CHARS, number_problem, text_problem
from .media.values import MEDIA_TYPES

if TYPE_CHECKING:
    from .store.lines import MetricRecord

TYPE_ALIASES: dict[str, str] = {
    "train": "train",
    "training": "train",
    "val": "val",
    "validate": "val",
    "validation": "val",
    "test": "test",
    "testing": "test",
    "eval": "test",
    "evaluate": "test",
    "evaluation": "test",
}


LOG_CALL = "run.log(type='train', metrics={'loss': 0.3}, step=step)"
"""The shape of a ``log`` call, shown when a call of another shape arrives."""


def check_log_call(type_: Any, metrics: Mapping[str, Any] | None, step: int | None) -> tuple[Mapping[str, Any], int]:
    """``(metrics, step)`` of a ``log`` call that has both; else a TypeError that shows the call's shape.

    Users of other trackers write ``run.log({"loss": 1.0})`` (W&B) or forget the step; Python's own
    "missing 2 required positional arguments" does not say what the call should look like.
    """
    if isinstance(type_, Mapping):
        raise TypeError(f"log() takes the record's type first, then its metrics and step: {LOG_CALL} "
                        f"(got a dict as the first argument; put it in metrics=... and add step=...)")
    missing = [name for name, value in (("metrics", metrics), ("step", step)) if value is None]
    if metrics is None or step is None:
        raise TypeError(f"log() needs {' and '.join(missing)}: {LOG_CALL}")
    return metrics, step


def normalize_type(type_: Any) -> str:
    """Map the SDK's type aliases to ``train``/``val``/``test``; keep any other string as a custom type."""
    if not isinstance(type_, str):
        raise TypeError(f"log(type=...) must be a string such as 'train', 'val' or 'test', got {type(type_).__name__}")
    if not type_.strip():
        raise ValueError("log(type=...) must not be empty; use 'train', 'val', 'test' or a custom name")
    problem = text_problem(type_, max_chars=MAX_TYPE_CHARS)
    if problem:
        raise ValueError(f"log(type=...) {problem}; use a shorter, printable name")
    return TYPE_ALIASES.get(type_.lower(), type_)


def check_metric_name(name: Any) -> None:
    """Metric names are non-empty strings the server can store (see :mod:`em_dist.limits`).

    ``Run.log`` calls this once per new name, so the limits cost nothing per point.
    """
    if not isinstance(name, str):
        raise TypeError(f"metric names must be strings, got {name!r} ({type(name).__name__})")
    if not name.strip():
        raise ValueError("metric names must not be empty")
    problem = text_problem(name, max_chars=MAX_NAME_CHARS)
    if problem:
        raise ValueError(f"metric name {name[:60]!r}{'...' if len(name) > 60 else ''} {problem}; use a shorter, printable name")


def check_step(step: Any) -> int:
    """A step is an integer in 0..2**63-1 (Python or NumPy), never a bool or a float."""
    if isinstance(step, bool) or not isinstance(step, numbers.Integral):
        raise TypeError(f"log(step=...) must be a non-negative integer, got {step!r} ({type(step).__name__})")
    n = int(step)
    if n < 0:
        raise ValueError(f"log(step=...) must be non-negative, got {n}")
    if n > MAX_STEP:
        raise ValueError(f"log(step=...) must be at most 2**63-1 (a 64-bit integer), got {n}")
    return n


def check_epoch(epoch: Any) -> int | float | None:
    """An epoch is optional; when given it is a real number (fractional epochs are allowed)."""
    if epoch is None:
        return None
    if isinstance(epoch, bool) or not isinstance(epoch, numbers.Real):
        raise TypeError(f"log(epoch=...) must be a number or None, got {epoch!r} ({type(epoch).__name__})")
    if isinstance(epoch, numbers.Integral):
        whole = int(epoch)
        if number_problem(whole):
            raise ValueError(f"log(epoch=...) {number_problem(whole)}")
        return whole
    return float(epoch)


class DeviceScalar:
    """A one-element tensor on an accelerator, kept until the writer converts a batch at once."""

    __slots__ = ("tensor",)

    def __init__(self, tensor: Any) -> None:
        self.tensor = tensor


def convert_value(key: str, value: Any) -> Any:
    """Turn a metric value into an ``int``/``float`` (or a :class:`DeviceScalar`), or raise naming ``key``."""
    cls = value.__class__
    convert = _CONVERTERS.get(cls)
    if convert is None:
        convert = _CONVERTERS[cls] = _converter_for(value)
    return convert(key, value)


def _converter_for(value: Any) -> Callable[[str, Any], Any]:
    """Pick, once per value class, how to convert it (duck-typed: torch/NumPy/TF are never imported)."""
    if isinstance(value, bool):
        return lambda key, v: int(v)
    if value.__class__ in MEDIA_TYPES:  # exactly these: the writer finds them by class
        return _keep_media
    if isinstance(value, (str, bytes)):
        return _reject_string
    if isinstance(value, numbers.Integral):
        return lambda key, v: _number(key, int(v))
    if isinstance(value, numbers.Real):
        return lambda key, v: float(v)
    if callable(getattr(value, "numel", None)) and hasattr(value, "detach"):
        return _from_tensor
    if isinstance(getattr(value, "size", None), int) and hasattr(value, "dtype") and hasattr(value, "item"):
        return _from_array
    if callable(getattr(value, "numpy", None)):
        return lambda key, v: convert_value(key, v.numpy())  # TensorFlow eager tensors
    return _reject_unsupported


def _keep_media(key: str, value: Any) -> Any:
    return value  # checked by its constructor; encoded on the writer thread (em_dist.media.encode)


def _reject_string(key: str, value: Any) -> Any:
    raise TypeError(f"metric {key!r}: value must be a number, got a string {value!r}; "
                    "log text as em.Text(...)")


def _reject_unsupported(key: str, value: Any) -> Any:
    raise TypeError(
        f"metric {key!r}: unsupported value type {value.__class__.__name__}; "
        "use a Python number or a one-element NumPy array / torch / TensorFlow tensor, "
        "or em.Histogram / em.Image / em.Table / em.Text"
    )


def _from_tensor(key: str, value: Any) -> Any:
    if value.numel() != 1:
        raise ValueError(f"metric {key!r}: a tensor value must hold exactly one element, got shape {tuple(value.shape)}")
    if getattr(value, "is_cpu", True):
        return _number(key, value.item())
    # clone: an async device copy, so a later in-place update can't change what was logged.
    return DeviceScalar(value.detach().clone())


def _from_array(key: str, value: Any) -> Any:
    if value.size != 1:
        raise ValueError(f"metric {key!r}: an array value must hold exactly one element, got shape {getattr(value, 'shape', '?')}")
    return _number(key, value.item())


_CONVERTERS: dict[type, Callable[[str, Any], Any]] = {}


def _number(key: str, value: Any) -> int | float:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, float):
        return value
    if isinstance(value, int):
        problem = number_problem(value)
        if problem:
            raise ValueError(f"metric {key!r}: the value {problem}; log it as a float")
        return value
    if isinstance(value, complex):
        raise TypeError(f"metric {key!r}: complex values are not supported")
    raise TypeError(f"metric {key!r}: unsupported element type {type(value).__name__}")


def materialize(records: Iterable[MetricRecord | str]) -> list[int]:
    """Replace every :class:`DeviceScalar` in ``records`` by a Python number, one device sync per batch.

    A record is ``(type, step, epoch, time, metrics_dict)``; dicts are updated in place. Returns the
    indexes of the records that hold media values (:mod:`em_dist.media`; usually none), which
    :func:`em_dist.media.encode.split_media` turns into media records: one pass finds both.
    """
    pending: list[tuple[dict[str, Any], str, Any]] = []
    media: list[int] = []
    for i, rec in enumerate(records):
        if isinstance(rec, str):  # already encoded on the training thread
            continue
        metrics = rec[4]
        for key, value in metrics.items():
            c = value.__class__
            if c is float or c is int:
                continue
            if c is DeviceScalar:
                pending.append((metrics, key, value.tensor))
            elif c in _MEDIA_CLASSES and (not media or media[-1] != i):
                media.append(i)
    if pending:
        _convert_pending(pending)
    return media


_MEDIA_CLASSES = frozenset(MEDIA_TYPES)
_DEFERRED = _MEDIA_CLASSES | {DeviceScalar}
"""Values only the writer thread may turn into what a line holds."""


def _convert_pending(pending: list[tuple[dict[str, Any], str, Any]]) -> None:
    try:
        import torch  # only reached when the user logged torch tensors

        by_device: dict[Any, list[int]] = {}
        for i, (_, _, t) in enumerate(pending):
            by_device.setdefault(t.device, []).append(i)
        for idxs in by_device.values():
            stacked = torch.stack([pending[i][2].reshape(()).to(torch.float64) for i in idxs])
            for i, number in zip(idxs, stacked.cpu().tolist()):
                metrics, key, t = pending[i]
                metrics[key] = int(number) if not t.is_floating_point() and not t.is_complex() else number
    except Exception:  # never lose the point: fall back to one conversion each
        for metrics, key, t in pending:
            try:
                metrics[key] = t.reshape(()).item()
            except Exception:
                metrics[key] = float("nan")


def has_device_values(rec: MetricRecord) -> bool:
    """True if the record still holds accelerator tensors or media values (which only the writer may convert)."""
    for v in rec[4].values():
        if v.__class__ in _DEFERRED:
            return True
    return False
