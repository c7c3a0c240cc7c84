"""What ranks say to rank 0: one frozen dataclass per kind, and their versioned encoding (msgpack).

Every message a rank sends travels inside a *frame* (``{"v", "seq", "msgs"[, "bye"]}``, see
:mod:`.frames` and :mod:`.horovod`). A message is encoded as a list ``[kind, field, ...]``
in its dataclass's field order; the frame carries :data:`WIRE_VERSION`, so two ranks with
different em_dist versions refuse each other with :class:`~em_dist.errors.WireVersionError`
instead of misreading a frame. Nothing a rank receives is unpickled: a frame is msgpack,
which decodes to plain lists, maps, strings, numbers and bytes only.

Rank 0 handles each kind through one dispatch table (:class:`~em_dist.ranks.root.RootSink`);
a node leader wraps its members' traffic in :class:`RelayJoin`, :class:`Relayed` and
:class:`RelayLost` (:mod:`.relay`), which rank 0 unwraps.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass
from typing import Any, ClassVar, Union

import msgpack

from ..errors import WireVersionError

WIRE_VERSION = 3
"""The encoding of frames and messages. 1 was pickled frames (em_dist before the record journal); 2 had
no trailer after a gloo frame's body (a receiver could not see a frame complete without waiting on it)."""


@dataclass(frozen=True)
class Records:
    """A batch of this rank's records (encoded metric lines and captured-output records), numbered
    from ``first`` in its journal (:mod:`em_dist.store.journal`)."""

    kind: ClassVar[str] = "rec"
    lines: list[str]
    first: int


@dataclass(frozen=True)
class Summary:
    """The rank's own summary: how many records it logged and the last value of each metric."""

    kind: ClassVar[str] = "summary"
    records: int
    last: dict[str, Any]


@dataclass(frozen=True)
class Dropped:
    """Records the rank accepted and dropped to bound its memory (sent once, at its end)."""

    kind: ClassVar[str] = "dropped"
    records: int
    output_lines: int


@dataclass(frozen=True)
class JournalAt:
    """Where the rank's journal is, for the run to say where records rank 0 lacks are."""

    kind: ClassVar[str] = "journal"
    host: str
    path: str


@dataclass(frozen=True)
class Failed:
    """Why the rank's run ended as Failed (an exception, a signal, an exit code)."""

    kind: ClassVar[str] = "failed"
    reason: str


@dataclass(frozen=True)
class Platform:
    """The rank's platform entry (host, devices, versions)."""

    kind: ClassVar[str] = "platform"
    doc: dict[str, Any]


@dataclass(frozen=True)
class Hparams:
    """The rank's hyperparameters (rank 0 keeps those that differ from its own)."""

    kind: ClassVar[str] = "hparams"
    doc: dict[str, Any]


@dataclass(frozen=True)
class ArtifactChunk:
    """Part of a file of an artifact made on the rank (:mod:`.artifacts`)."""

    kind: ClassVar[str] = "art_file"
    alt: str
    rel: str
    offset: int
    data: bytes


@dataclass(frozen=True)
class ArtifactDone:
    """An artifact's last message: its document and its role in the run."""

    kind: ClassVar[str] = "art_done"
    alt: str
    doc: dict[str, Any]
    role: str


@dataclass(frozen=True)
class ArtifactRef:
    """An artifact the rank marked that was made elsewhere (only its entry travels)."""

    kind: ClassVar[str] = "art_ref"
    entry: dict[str, Any]


@dataclass(frozen=True)
class RelayJoin:
    """A node leader: ``member`` joined it."""

    kind: ClassVar[str] = "relay_join"
    member: int


@dataclass(frozen=True)
class Relayed:
    """A node leader: one of ``member``'s frames, unopened."""

    kind: ClassVar[str] = "relay"
    member: int
    frame: bytes


@dataclass(frozen=True)
class RelayLost:
    """A node leader: ``member``'s link broke."""

    kind: ClassVar[str] = "relay_lost"
    member: int


Message = Union[Records, Summary, Dropped, JournalAt, Failed, Platform, Hparams, ArtifactChunk, ArtifactDone,
                ArtifactRef, RelayJoin, Relayed, RelayLost]

KINDS: dict[str, type[Any]] = {cls.kind: cls for cls in (
    Records, Summary, Dropped, JournalAt, Failed, Platform, Hparams, ArtifactChunk, ArtifactDone, ArtifactRef,
    RelayJoin, Relayed, RelayLost)}
"""The dispatch table of the wire: kind -> dataclass."""

_FIELDS: dict[type[Any], tuple[str, ...]] = {cls: tuple(f.name for f in dataclasses.fields(cls)) for cls in KINDS.values()}
_DOCS: dict[type[Any], frozenset[str]] = {
    cls: frozenset(f.name for f in dataclasses.fields(cls) if str(f.type).startswith("dict")) for cls in KINDS.values()}
"""Document fields travel as JSON text: the run folder's own format, and any integer JSON holds
(msgpack stops at 64 bits, and an hparam of 10**30 must not break a rank's link)."""

RELAYED = (RelayJoin, Relayed, RelayLost)


def encode(msg: Message) -> list[Any]:
    """``[kind, field, ...]`` of one message."""
    docs = _DOCS[type(msg)]
    return [msg.kind, *(json.dumps(getattr(msg, name), default=repr) if name in docs else getattr(msg, name)
                        for name in _FIELDS[type(msg)])]


def decode(item: Any) -> Message:
    """The message an encoded list stands for; ValueError for anything else."""
    if not isinstance(item, list) or not item or not isinstance(item[0], str):
        raise ValueError(f"not an em_dist message: {type(item).__name__}")
    cls = KINDS.get(item[0])
    if cls is None:
        raise ValueError(f"unknown em_dist message kind {item[0]!r}")
    fields = _FIELDS[cls]
    if len(item) != len(fields) + 1:
        raise ValueError(f"em_dist message {item[0]!r} has {len(item) - 1} fields, expected {len(fields)}")
    docs = _DOCS[cls]
    args = [json.loads(value) if name in docs and isinstance(value, str) else value
            for name, value in zip(fields, item[1:])]
    msg: Message = cls(*args)
    return msg


def dumps(frame: dict[str, Any]) -> bytes:
    """A frame's bytes: ``frame`` with its ``msgs`` encoded and the wire version added."""
    body = dict(frame, v=WIRE_VERSION, msgs=[encode(m) for m in frame.get("msgs", ())])
    data: bytes = msgpack.packb(body, use_bin_type=True)
    return data


def loads(data: bytes) -> dict[str, Any]:
    """The frame in ``data`` (uncompressed), its messages decoded; :class:`WireVersionError` when the
    sender speaks another version of the wire (or pickles, as em_dist did before version 2)."""
    if data[:1] == b"\x80" and data[1:2] in (b"\x02", b"\x03", b"\x04", b"\x05"):
        raise WireVersionError(f"a rank sent a pickled frame (em_dist wire version 1); this rank speaks version "
                               f"{WIRE_VERSION}. Install the same em_dist version on every node of the job.")
    try:
        frame = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.ExtraData, msgpack.FormatError, msgpack.StackError) as exc:
        raise ValueError(f"an unreadable em_dist frame ({exc})") from None
    if not isinstance(frame, dict):
        raise ValueError("an em_dist frame is a map")
    version = frame.get("v")
    if version != WIRE_VERSION:
        raise WireVersionError(f"a rank sent a frame of em_dist wire version {version!r}; this rank speaks version "
                               f"{WIRE_VERSION}. Install the same em_dist version on every node of the job.")
    frame["msgs"] = [decode(m) for m in frame.get("msgs") or ()]
    return frame
