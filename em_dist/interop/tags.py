"""The one rule that maps a TensorBoard tag to em_dist's (type, name) and back.

``train/loss`` is type ``train``, name ``loss`` (any alias of train/val/test, or ``system``,
first, as ``log(type=...)`` takes it); ``Loss/val`` (the PyTorch tutorials' order) is type ``val``, name
``Loss``; any other tag is a ``train`` metric named by the whole tag. Going out, a point becomes
``<type>/<name>``, so em_dist → TensorBoard → em_dist keeps both.
"""

from __future__ import annotations

from ..values import TYPE_ALIASES

DEFAULT_TYPE = "train"
_TYPES = {**TYPE_ALIASES, "system": "system"}  # system metrics go out as system/<name> and come back so


def split_tag(tag: str) -> tuple[str, str]:
    """``(type, name)`` of a TensorBoard tag."""
    first, sep, rest = tag.partition("/")
    if sep and rest and first.lower() in _TYPES:
        return _TYPES[first.lower()], rest
    head, sep, last = tag.rpartition("/")
    if sep and head and last.lower() in _TYPES:
        return _TYPES[last.lower()], head
    return DEFAULT_TYPE, tag


def join_tag(type_: str, name: str) -> str:
    """The TensorBoard tag of an em_dist metric."""
    return f"{type_}/{name}"
