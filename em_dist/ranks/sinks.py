"""The two sinks a Run gets in a multi-rank job (same interface as :class:`RunWriter`).

``RootSink`` (rank 0) keeps the run folder's writer and feeds it what the other ranks
send: records, platform entries, per-rank hparams, shipped artifacts; at ``close`` it
waits (bounded) for the peers' last records and records lost ranks in ``run.json``.

``PeerSink`` (other ranks) has the writer's hot-path face (``buffer``, ``wake_at``,
``wake()``), so ``log()`` costs the same as on rank 0; its thread drains the buffer
and posts batches to the channel. Metadata a peer's Run "writes" is forwarded instead.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from .._warn import warn_once
from ..store import layout
from ..store.writer import CycleClock, RunWriter
from ..values import materialize
from .channel import Channel
from .frames import PEER_JOIN_GRACE
from .artifacts import ArtifactReceiver, artifact_messages

FORWARD_INTERVAL = 0.2
BATCH = 20_000
SIGNAL_CLOSE_CAP = 5.0
"""When the job is being stopped by a signal, waits are capped at this many seconds:
the launcher kills for good soon after (torchrun: 30 s)."""


class RootSink:
    """Rank 0: the run's writer plus everything other ranks deliver through the channel."""

    def __init__(self, writer: RunWriter, channel: Channel | None, run: Any) -> None:
        self.writer = writer
        self.channel = channel
        self.run = run
        self.buffer = writer.buffer
        self.wake_at = writer.wake_at
        self.encode_at = writer.encode_at
        self.encode = writer.encode
        self.signalled = False
        self.on_close: list = []
        self._lock = threading.Lock()
        self._run_doc: dict | None = None
        self._hparams: dict = {}
        self._peer_hparams: dict[int, dict] = {}
        self._written_hparams: set[int] = set()
        self._platform: dict[str, Any] = {"world": {}, "ranks": {}}
        self._artifacts: list[dict] = []
        self._shipped: list[dict] = []
        self._peer_failures: dict[int, str] = {}
        self._receiver = ArtifactReceiver(Path(writer.run_dir))

    # -- the RunWriter face -----------------------------------------------------------
    def start(self) -> None:
        self.writer.start()
        if self.channel is not None:
            self.channel.start(self._deliver)

    def wake(self) -> None:
        self.writer.wake()

    def flush(self, timeout: float = 10.0) -> bool:
        return self.writer.flush(timeout)

    def set_meta(self, relpath: str, doc: Any) -> None:
        with self._lock:
            if relpath == layout.RUN_FILE:
                self._run_doc = doc
            elif relpath == layout.HPARAMS_FILE:
                self._hparams = dict(doc)
                self._rank_hparams_locked()
            elif relpath == layout.PLATFORM_FILE:
                self._platform["world"] = doc.get("world", {})
                self._platform["ranks"].update(doc.get("ranks", {}))
                doc = self._platform_doc()
            elif relpath == layout.ARTIFACTS_FILE:
                self._artifacts = list(doc)
                doc = self._artifacts + self._shipped
        self.writer.set_meta(relpath, doc)

    def close(self, timeout: float = 30.0) -> bool:
        lost: set[int] = set()
        absent: set[int] = set()
        if self.channel is not None:
            try:
                lost = self.channel.close(min(timeout, SIGNAL_CLOSE_CAP) if self.signalled else timeout)
                absent = set(getattr(self.channel, "absent", ()) or ())
            except Exception as exc:  # noqa: BLE001
                warn_once("root-close", f"em_dist: closing the distributed transport failed ({exc!r})")
        self._record_end(lost, absent)
        _run_hooks(self.on_close)
        return self.writer.close(timeout)

    # -- what the channel delivers (receiving thread) -------------------------------------
    def _deliver(self, rank: int, msg: Any) -> None:
        kind = msg[0]
        if kind == "rec":
            self.writer.submit(rank, msg[1])
        elif kind == "art_file":
            _, alt, rel, offset, data = msg
            self._receiver.chunk(alt, rel, offset, data)
        elif kind == "art_done":
            _, alt, doc, role = msg
            entry = self._receiver.done(rank, alt, doc, role)
            with self._lock:
                self._shipped.append(entry)
                self.writer.set_meta(layout.ARTIFACTS_FILE, self._artifacts + self._shipped)
        elif kind == "failed":
            with self._lock:
                self._peer_failures[rank] = str(msg[1])
        elif kind == "art_ref":
            with self._lock:
                self._shipped.append({**msg[1], "rank": rank})
                self.writer.set_meta(layout.ARTIFACTS_FILE, self._artifacts + self._shipped)
        elif kind == "platform":
            with self._lock:
                self._platform["ranks"][str(rank)] = msg[1]
                self.writer.set_meta(layout.PLATFORM_FILE, self._platform_doc())
        elif kind == "hparams":
            with self._lock:
                self._peer_hparams[rank] = msg[1]
                self._rank_hparams_locked()

    def _platform_doc(self) -> dict:
        ranks = self._platform["ranks"]
        return {"world": self._platform["world"],
                "ranks": {k: ranks[k] for k in sorted(ranks, key=lambda r: int(r))}}

    def _rank_hparams_locked(self) -> None:
        """hparams a peer set differently from rank 0 go to ``hparams-rank-<r>.json``."""
        mine = self._hparams
        for rank, theirs in self._peer_hparams.items():
            diff = {k: v for k, v in theirs.items() if k not in mine or mine[k] != v}
            if diff or rank in self._written_hparams:
                self._written_hparams.add(rank)
                self.writer.set_meta(layout.rank_hparams_file(Path("."), rank).name, diff)

    def _record_end(self, lost: set[int], absent: set[int]) -> None:
        run = self.run
        with self._lock:
            world = dict(run.world)
            if absent:
                world["absent_ranks"] = sorted(absent)
            world["backend"] = _torch_backend() or world.get("backend")
            transport = getattr(getattr(self.channel, "wire", None), "transport", None)
            if transport:
                world["transport"] = transport
            run.world = world
            self._platform["world"] = {**self._platform["world"], **world}
            self.writer.set_meta(layout.PLATFORM_FILE, self._platform_doc())
            if self._peer_failures and run.status == "Succeeded":
                first = min(self._peer_failures)
                run.status, run.status_reason = "Failed", f"rank {first}: {self._peer_failures[first]}"
            if lost:
                run.lost_ranks = sorted(lost)
                warn_once("lost-ranks", f"em_dist: ranks {run.lost_ranks} did not finish their run; "
                          "what they sent before is kept.")
                if run.status == "Succeeded":
                    run.status, run.status_reason = "Failed", f"lost ranks: {run.lost_ranks}"
                elif run.status_reason and "lost ranks" not in run.status_reason:
                    run.status_reason = f"{run.status_reason}; lost ranks: {run.lost_ranks}"
            self._run_doc = run._run_doc()
            self.writer.set_meta(layout.RUN_FILE, self._run_doc)


class PeerSink:
    """A non-zero rank: ``log()`` appends here; a thread forwards to rank 0 through the channel."""

    def __init__(self, channel: Channel | None, rank: int, like: RunWriter) -> None:
        self.channel = channel
        self.rank = rank
        # the same hot-path face as rank 0's writer, so log() behaves and costs the same
        self.buffer: deque = deque(maxlen=like.buffer.maxlen)
        self.wake_at = like.wake_at
        self.encode_at = like.encode_at
        self.encode = like.encode
        self.signalled = False
        self.on_close: list = []
        self._wake = threading.Event()
        self._stopping = False
        self._lock = threading.Lock()
        self._meta: dict[str, Any] = {}
        self._sent_meta: dict[str, Any] = {}
        self._artifacts: dict[str, dict] = {}
        self._end: tuple[Any, Any] = (None, None)
        self._abandon = threading.Event()
        self._created: list[Path] = []
        self._clock = CycleClock()
        self._thread = threading.Thread(target=self._loop, name=f"em_dist-forward-{rank}", daemon=True)

    def start(self) -> None:
        if self.channel is not None:
            self.channel.start(None)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def set_meta(self, relpath: str, doc: Any) -> None:
        with self._lock:
            if relpath == layout.ARTIFACTS_FILE:
                for entry in doc:
                    self._artifacts[str(entry.get("path"))] = dict(entry)
            elif relpath in (layout.HPARAMS_FILE, layout.PLATFORM_FILE):
                self._meta[relpath] = doc
            elif relpath == layout.RUN_FILE:
                self._end = (doc.get("status"), doc.get("status_reason"))

    def artifact_created(self, path: Path) -> None:
        """An artifact made in this process while the run is live: shipped at ``close``."""
        with self._lock:
            self._created.append(Path(path))

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until what was logged so far is handed to the channel."""
        if not self._thread.is_alive():
            return False
        return self._clock.wait_next(self._wake, self._thread, timeout)

    def close(self, timeout: float = 30.0) -> bool:
        if self.signalled:
            timeout = min(timeout, SIGNAL_CLOSE_CAP)
        deadline = time.monotonic() + timeout
        self._stopping = True
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(max(0.0, deadline - time.monotonic()))
        self._abandon.set()  # shipping that did not fit in the timeout stops here
        if self.channel is not None:
            try:
                self.channel.close(max(0.0, deadline - time.monotonic()))
            except Exception as exc:  # noqa: BLE001
                warn_once("peer-close", f"em_dist: closing the distributed transport failed ({exc!r})")
        _run_hooks(self.on_close)
        return True

    # -- the forwarding thread ----------------------------------------------------------
    def _loop(self) -> None:
        while True:
            self._wake.wait(FORWARD_INTERVAL)
            self._wake.clear()
            stopping = self._stopping
            self._clock.begin()
            try:
                self._forward()
                if stopping:
                    if self._end[0] == "Failed":
                        self._post(("failed", self._end[1]))
                    self._ship_artifacts()
            except Exception as exc:  # noqa: BLE001 - the thread must outlive any surprise
                warn_once("forward", f"em_dist: rank {self.rank} could not forward records ({exc!r})")
            self._clock.end()
            if stopping:
                return

    def _wait_backlog(self, limit: int = 8) -> bool:
        """Hold file chunks back while the channel is behind (memory stays ~limit MB); False once abandoned."""
        channel = self.channel
        started = time.monotonic()
        while getattr(channel, "pending", 0) > limit:
            if self._abandon.wait(0.01):
                return False
            if not getattr(channel, "connected", True) and time.monotonic() - started > PEER_JOIN_GRACE:
                return False  # rank 0 never answered: don't hold finish() for the whole timeout
        return True

    def _post(self, msg: Any) -> None:
        if self.channel is not None:
            self.channel.post(msg)

    def _forward(self) -> None:
        with self._lock:
            meta, self._meta = self._meta, {}
        for relpath, doc in meta.items():
            if self._sent_meta.get(relpath) == doc:
                continue
            self._sent_meta[relpath] = doc
            if relpath == layout.PLATFORM_FILE:
                self._post(("platform", doc.get("ranks", {}).get(str(self.rank), {})))
            else:
                self._post(("hparams", dict(doc)))
        buf = self.buffer
        for _ in range(len(buf) // BATCH + 1):  # bounded: a faster producer can't keep us here
            batch = [buf.popleft() for _ in range(min(len(buf), BATCH))]
            if not batch:
                break
            materialize(batch)
            enc = self.encode  # encoded here, so rank 0 only appends lines: the work is spread over the ranks
            self._post(("rec", [r if r.__class__ is str else enc(r) for r in batch]))

    def _ship_artifacts(self) -> None:
        with self._lock:
            marked = {path: e.get("role") or "output" for path, e in self._artifacts.items()}
            entries = dict(self._artifacts)
            created = list(self._created)
        made_here = {str(p) for p in created}
        todo = {path: role for path, role in marked.items() if role == "output" or path in made_here}
        for path in made_here:
            todo.setdefault(path, "output")
        for path, role in marked.items():
            if path not in todo:  # an input made elsewhere: list it, don't copy it
                self._post(("art_ref", entries[path]))
        for path, role in todo.items():
            folder = Path(path)
            if not (folder / layout.ARTIFACT_FILE).is_file():
                continue
            try:
                for msg in artifact_messages(folder, role):
                    self._post(msg)
                    if not self._wait_backlog():
                        return
            except OSError as exc:
                warn_once(f"ship:{path}", f"em_dist: could not send artifact {path} to rank 0 ({exc})")


def _run_hooks(hooks: list) -> None:
    for hook in hooks:
        try:
            hook()
        except Exception:  # noqa: BLE001 - clean-up is best effort
            pass


def _torch_backend() -> str | None:
    import sys

    tdist = sys.modules.get("torch.distributed")
    try:
        if tdist is not None and tdist.is_available() and tdist.is_initialized():
            return str(tdist.get_backend())
    except Exception:  # noqa: BLE001
        pass
    return None
