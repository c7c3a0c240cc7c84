"""One metric record -> one JSON line of ``metrics/rank-<r>.jsonl`` (docs/format.md), fast.

A record is ``(type, step, epoch, time, metrics)``. Lines are built from a template
cached per (type, metric names), so encoding costs little more than the float reprs.
"""

from __future__ import annotations

import json

from ..values import DeviceScalar, encode_number


class LineEncoder:
    """Encodes records; its template cache is shared by the training thread and the writer."""

    def __init__(self) -> None:
        self._templates: dict[tuple, str] = {}

    def __call__(self, rec: tuple) -> str:
        type_, step, epoch, t, metrics = rec
        keys = tuple(metrics)
        tpl = self._templates.get((type_, keys))
        if tpl is None:
            tpl = self._templates[(type_, keys)] = _template(type_, keys)
        enc = encode_number
        return tpl % (
            step,
            "null" if epoch is None else enc(epoch),
            repr(t),
            *[enc(v) for v in metrics.values()],
        )


def has_device_values(rec: tuple) -> bool:
    """True if the record still holds accelerator tensors (which only the writer may convert)."""
    for v in rec[4].values():
        if v.__class__ is DeviceScalar:
            return True
    return False


def _template(type_: str, keys: tuple[str, ...]) -> str:
    def q(s: str) -> str:
        return json.dumps(s).replace("%", "%%")

    body = ",".join(f"{q(k)}:%s" for k in keys)
    return f'{{"type":{q(type_)},"step":%d,"epoch":%s,"time":%s,"metrics":{{{body}}}}}\n'
