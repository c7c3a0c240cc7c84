"""A non-zero rank's sink: ``log()`` costs what it costs on rank 0; one thread hands everything to rank 0.

The thread (a :class:`~em_dist.sink.QueuedSink` cycle every ``send_interval``) joins
rank 0 when it can, then each cycle sends this rank's changed metadata and its records,
encoded here so that rank 0 only appends lines (the encoding work is spread over the
ranks). ``send`` blocks until the engine took the messages, so while rank 0 is slow or
not there yet, records wait in the bounded buffer and nowhere else. The last cycle
sends the failure reason (if the run failed), ships the artifacts made here, and says
goodbye, all within the ``end`` timeout.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from .._warn import warn_once
from ..sink import CHUNK, EndReport, QueuedSink
from ..store import layout
from ..store.attempts import RunPlace
from ..store.writer import RunWriter
from .artifacts import artifact_messages
from .channel import PeerChannel
from .identity import fallback_run_id
from .timing import RankTimings


PEER_ENCODE_AT = 50_000
"""A peer's backlog at which ``log()`` encodes records itself. Higher than the writer's: the
writer's low mark bounds what a kill -9 loses on rank 0's disk, while a peer's records are
durable only once rank 0 wrote them anyway, and its thread sends in bursts."""


class PeerSink(QueuedSink):
    """Everything this rank's Run records, forwarded to rank 0 through ``channel``."""

    _drain_verb = "sent to rank 0"
    _slow_hint = "Is rank 0 alive and reachable?"

    def __init__(self, channel: PeerChannel | None, rank: int, *, timings: RankTimings, max_pending: int,
                 own_place: RunPlace, flush_interval: float, retired: RunWriter | None = None,
                 buffer: deque | None = None) -> None:
        super().__init__(interval=timings.send_interval, max_pending=max_pending, thread_name=f"em_dist-peer-{rank}",
                         buffer=retired.buffer if retired is not None else buffer, encode_at=PEER_ENCODE_AT)
        self.channel = channel
        if channel is not None:
            channel.on_backlog(self._wake_event.set)  # a node leader's relay may call for an early cycle
        self.rank = rank
        self._timings = timings
        self._own_place = own_place
        self._flush_interval = flush_interval
        self._joined = threading.Event()
        self._run_doc: dict[str, Any] = {}
        self._local: RunWriter | None = None
        """This rank's run of its own, when rank 0 has no run of this identity or became unreachable."""
        self._direct = False  # _local writes into rank 0's own folder (no engine)
        self._retired = retired
        """The writer of this process's own run before it learnt its rank (:mod:`.late`): this sink
        takes over its buffer (the very deque log() appends to, so no record can fall between the
        two), and its folder goes once rank 0 has everything."""
        self._handed_off = False
        self._lock = threading.Lock()  # the training thread writes metadata, the cycle reads it
        self._meta: dict[str, Any] = {}
        self._sent_meta: dict[str, Any] = {}
        self._artifacts: dict[str, dict] = {}
        self._created: list[Path] = []
        self._failure: str | None = None
        self._deadline = float("inf")
        self._broken = False

    # -- metadata: forwarded, not written ---------------------------------------------
    def write_run(self, doc: dict[str, Any]) -> None:
        self._run_doc = doc
        self._failure = doc.get("status_reason") if doc.get("status") == "Failed" else None

    def rank0_run(self, wait: float) -> dict[str, Any] | None:
        if self.channel is None or not self._joined.wait(wait):
            return None
        return self.channel.rank0_run

    def write_hparams(self, hparams: dict[str, Any]) -> None:
        with self._lock:
            self._meta["hparams"] = dict(hparams)

    def write_platform(self, world: dict[str, Any], platform: dict[str, Any]) -> None:
        with self._lock:
            self._meta["platform"] = platform

    def write_git(self, git: dict[str, Any]) -> None:
        """Rank 0 records the repository; a peer's is the same checkout."""

    def write_artifacts(self, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            for entry in entries:
                self._artifacts[str(entry.get("path"))] = dict(entry)

    def artifact_created(self, path: Path) -> None:
        with self._lock:
            self._created.append(Path(path))

    # -- the end ---------------------------------------------------------------------
    def end(self, timeout: float) -> EndReport:
        self._deadline = time.monotonic() + timeout
        if not self._stop(timeout):
            warn_once("peer-end", f"em_dist: rank {self.rank} could not hand its last records to rank 0 "
                      f"within {timeout:.0f}s; they are not in the run.")
        return EndReport()

    def close(self, timeout: float) -> bool:
        if self._retired is not None:
            self._retired.close(timeout)
            if self._handed_off and self._local is None:
                shutil.rmtree(self._retired.run_dir, ignore_errors=True)
        if self._local is not None and not self._thread.is_alive():
            if not self._direct:
                self._local.write_run(self._own_doc())
            return self._local.close(timeout)
        return not self._thread.is_alive()

    # -- the forwarding thread -----------------------------------------------------------
    def _cycle(self, final: bool) -> None:
        channel = self.channel
        if channel is None or self._broken:
            self._keep_locally()
            return
        try:
            if not channel.connected and not self._connect(channel, final):
                if final:
                    self._keep_locally(why="rank 0 made no run of this identity, or could not be reached")
                return
            self._joined.set()
            self._forward(channel)
            if final:
                if self._failure is not None:
                    channel.send([("failed", self._failure)])
                self._ship_artifacts(channel)
                self._handed_off = channel.goodbye(max(0.0, self._deadline - time.monotonic()))
                if not self._handed_off:
                    warn_once("peer-goodbye", f"em_dist: rank 0 did not acknowledge rank {self.rank}'s end in time; "
                              "its last records may be missing from the run.")
        except Exception as exc:  # noqa: BLE001 - any engine trouble means: rank 0 is out of reach
            self._broken = True
            self._keep_locally(why=f"the link to rank 0 broke ({exc})")
        finally:
            if final:
                try:
                    channel.shutdown()  # on this thread: gloo pairs are destroyed where they were used
                except Exception:  # noqa: BLE001 - best effort
                    pass

    def _connect(self, channel: PeerChannel, final: bool) -> bool:
        """Join rank 0: a quick look each cycle; at the end, wait for it within the deadline, but a
        rank 0 that never served gets only ``peer_join_grace`` from when we could first look."""
        if not final:
            return channel.connect(0.0)
        began = time.monotonic()
        if not channel.engine_started:
            return False  # the script started no engine: there is no rank 0 to wait for
        while not channel.connect(min(0.2, max(0.0, self._deadline - time.monotonic()))):
            now = time.monotonic()
            since = channel.ready_since
            if now >= self._deadline or (since is not None and now >= max(began, since) + self._timings.peer_join_grace):
                return False
        return True

    def _forward(self, channel: PeerChannel) -> None:
        messages: list[Any] = []
        with self._lock:
            meta, self._meta = self._meta, {}
        for kind, doc in meta.items():
            if self._sent_meta.get(kind) != doc:
                self._sent_meta[kind] = doc
                messages.append((kind, doc))
        buf = self.buffer
        enc = self.encode
        for _ in range(len(buf) // CHUNK + 1):  # bounded: a faster producer can't keep us here
            batch = self._take()
            lines = [r if r.__class__ is str else enc(r) for r in batch]
            if lines:
                messages.append(("rec", lines))
            try:
                channel.send(messages)  # at least once per cycle: Horovod's rank 0 needs our round
            except Exception:
                buf.extendleft(reversed(lines))  # not handed on: they stay this rank's to keep
                raise
            messages = []
            if not buf:
                break

    def _ship_artifacts(self, channel: PeerChannel) -> None:
        with self._lock:
            marked = {path: e.get("role") or "output" for path, e in self._artifacts.items()}
            entries = dict(self._artifacts)
            made_here = {str(p) for p in self._created}
        todo = {path: role for path, role in marked.items() if role == "output" or path in made_here}
        for path in made_here:
            todo.setdefault(path, "output")
        refs = [("art_ref", entries[path]) for path in marked if path not in todo]  # inputs made elsewhere
        if refs:
            channel.send(refs)
        for path, role in todo.items():
            folder = Path(path)
            if not (folder / layout.ARTIFACT_FILE).is_file():
                continue
            try:
                for msg in artifact_messages(folder, role):
                    if time.monotonic() >= self._deadline:
                        warn_once(f"ship-late:{path}", f"em_dist: artifact {path} did not fit in the time left "
                                  "to finish; rank 0 has part of it only.")
                        return
                    channel.send([msg])
            except OSError as exc:
                warn_once(f"ship:{path}", f"em_dist: could not send artifact {path} to rank 0 ({exc})")

    # -- a run of its own -----------------------------------------------------------------
    def _keep_locally(self, why: str = "") -> None:
        """Rank 0 has no run of this identity (or is gone): keep this rank's records rather than drop
        them, in rank 0's folder when there is no engine but a shared filesystem, else in a run of
        its own (warned once, naming it)."""
        if self._local is None:
            if not self.buffer:
                return  # nothing of this rank's is left to keep
            if self._joined.is_set() or not self._into_rank0_folder():
                self._start_own_run(why)
        local = self._local
        while self.buffer:  # bounded by the buffer's own size
            local.buffer.extend(self._take())
        local.wake()

    def _start_own_run(self, why: str) -> None:
        place = self._own_place
        self._local = RunWriter(place.path, flush_interval=self._flush_interval, max_pending=self._max_pending)
        self._local.start()
        with self._lock:
            meta = dict(self._sent_meta, **self._meta)
        self._local.write_run(self._own_doc())
        if "hparams" in meta:
            self._local.write_hparams(meta["hparams"])
        self._local.write_platform({"size": 1, "rank": 0}, meta.get("platform", {}))
        name = self._run_doc.get("name", "?")
        warn_once(f"peer-own-run:{place.path}", f"em_dist: rank {self.rank}'s run {name!r}: {why or 'rank 0 is out of reach'}; "
                  f"this rank's records are kept in a run of its own at {place.path}")

    def _into_rank0_folder(self) -> bool:
        """No engine, but rank 0's run folder is on a filesystem this rank sees (one node, or a shared
        filesystem as on most SLURM clusters): write ``metrics/rank-<r>.jsonl`` there directly."""
        if self.channel is not None and self.channel.engine_started:
            return False
        name, parent = self._run_doc.get("name"), self._own_place.path.parent
        until = time.monotonic() + self._timings.root_join_grace  # rank 0 may have started a moment later
        while (folder := layout.find_run_dir(self._own_place.id, name, parent)) is None:
            if time.monotonic() >= until:
                return False
            time.sleep(self._timings.poll)
        self._local = RunWriter(folder, flush_interval=self._flush_interval, max_pending=self._max_pending,
                                rank=self.rank, heartbeat=False)
        self._local.start()
        self._direct = True
        warn_once(f"peer-direct:{folder}", f"em_dist: rank {self.rank}: the script started no engine "
                  "(torch.distributed, Horovod or mpi4py), so this rank writes its records straight into "
                  f"rank 0's run folder {folder}")
        return True

    def _own_doc(self) -> dict[str, Any]:
        place = self._own_place
        doc = dict(self._run_doc)
        doc.update(id=fallback_run_id(place.id, self.rank), alternative_name=place.alternative_name,
                   world={"size": 1, "rank": 0, "of_rank": self.rank})
        return doc

