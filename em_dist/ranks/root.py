"""Rank 0's sink: the run folder's writer, plus everything the other ranks send.

Peers' records go straight to the writer as finished lines; their platform entries,
hparams that differ from rank 0's, shipped artifacts and failure reasons are merged
into rank 0's metadata. At the end it waits (bounded) for the peers' last records and
reports what it saw; the Run decides what that means for its status.
"""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

from ..sink import EndReport, Sink
from ..store import layout
from ..store.writer import RunWriter
from .artifacts import ArtifactReceiver
from .channel import RootChannel
from .timing import RankTimings


class RootSink(Sink):
    """Rank 0: the writer's hot-path face and files, fed by the channel's receiving thread too."""

    def __init__(self, writer: RunWriter, channel: RootChannel | None, timings: RankTimings) -> None:
        self.writer = writer
        self.channel = channel
        self._timings = timings
        self.buffer = writer.buffer
        self.wake_at = writer.wake_at
        self.encode_at = writer.encode_at
        self.encode = writer.encode
        # The receiving thread and the training thread both update the merged documents.
        self._lock = threading.Lock()
        self._hparams: dict = {}
        self._peer_hparams: dict[int, dict] = {}
        self._written_hparams: set[int] = set()
        self._world: dict[str, Any] = {}
        self._platforms: dict[int, dict] = {}
        self._artifacts: list[dict] = []
        self._shipped: list[dict] = []
        self._peer_failures: dict[int, str] = {}
        self._backend: str | None = None
        self._receiver = ArtifactReceiver(Path(writer.run_dir))

    # -- the Sink face ----------------------------------------------------------------
    @property
    def step_mark(self) -> tuple[int, float] | None:  # type: ignore[override]
        return self.writer.step_mark

    def start(self) -> None:
        self.writer.start()
        if self.channel is not None:
            self.channel.start(self._deliver)

    def wake(self) -> None:
        self.writer.wake()

    def flush(self, timeout: float = 10.0) -> bool:
        return self.writer.flush(timeout)

    def write_run(self, doc: dict[str, Any]) -> None:
        self.writer.write_run(doc)

    def write_hparams(self, hparams: dict[str, Any]) -> None:
        with self._lock:
            self._hparams = dict(hparams)
            self.writer.write_hparams(self._hparams)
            self._write_rank_hparams()

    def write_platform(self, world: dict[str, Any], platform: dict[str, Any]) -> None:
        with self._lock:
            self._world = dict(world)
            self._platforms[int(world.get("rank", 0))] = platform
            self._write_platform()

    def write_git(self, git: dict[str, Any]) -> None:
        self.writer.write_git(git)

    def write_artifacts(self, entries: list[dict[str, Any]]) -> None:
        with self._lock:
            self._artifacts = list(entries)
            self.writer.write_artifacts(self._artifacts + self._shipped)

    def end(self, timeout: float) -> EndReport:
        report = EndReport(backend=self._backend or _torch_backend())
        if self.channel is not None and not self.channel.engine_started:
            # The script started no engine: peers write their records into this folder themselves
            # (when they see it); give them the join grace to show up, as over an engine.
            self.channel.close(0.0, 0.0)
            report.transport = "files"
            report.absent_ranks = self._ranks_without_files(min(timeout, self._timings.root_join_grace))
        elif self.channel is not None:
            end = self.channel.close(timeout, self._timings.root_join_grace)
            report.lost_ranks, report.absent_ranks = sorted(end.lost), sorted(end.absent)
            report.late_ranks = sorted(end.late)
            report.relayed_by = dict(end.relayed_by)
            report.transport = self.channel.transport
        with self._lock:
            report.peer_failures = dict(self._peer_failures)
            report.hosts = len({p.get("host") for p in self._platforms.values() if p.get("host")}) or None
        return report

    def close(self, timeout: float) -> bool:
        return self.writer.close(timeout)

    # -- what the channel delivers (its receiving thread) ---------------------------------
    def _deliver(self, rank: int, msg: Any) -> None:
        if self._backend is None:  # seen while the training group is alive (it may be gone at finish)
            self._backend = _torch_backend()
        kind = msg[0]
        if kind == "rec":
            self.writer.submit(rank, msg[1])
        elif kind == "art_file":
            _, alt, rel, offset, data = msg
            self._receiver.chunk(alt, rel, offset, data)
        elif kind == "art_done":
            _, alt, doc, role = msg
            self._add_shipped(self._receiver.done(rank, alt, doc, role))
        elif kind == "art_ref":
            self._add_shipped({**msg[1], "rank": rank})
        elif kind == "failed":
            with self._lock:
                self._peer_failures[rank] = str(msg[1])
        elif kind == "platform":
            with self._lock:
                self._platforms[rank] = msg[1]
                self._write_platform()
        elif kind == "hparams":
            with self._lock:
                self._peer_hparams[rank] = msg[1]
                self._write_rank_hparams()

    def _ranks_without_files(self, wait: float) -> list[int]:
        folder = Path(self.writer.run_dir)
        missing = set(range(1, self.channel.world_size))  # type: ignore[union-attr]
        until = time.monotonic() + wait
        while missing:
            missing = {r for r in missing if not layout.metrics_file(folder, r).exists()}
            if not missing or time.monotonic() >= until:
                break
            time.sleep(self._timings.poll)
        return sorted(missing)

    def _add_shipped(self, entry: dict) -> None:
        with self._lock:
            self._shipped.append(entry)
            self.writer.write_artifacts(self._artifacts + self._shipped)

    def _write_platform(self) -> None:
        ranks = {str(r): self._platforms[r] for r in sorted(self._platforms)}
        self.writer.set_meta(layout.PLATFORM_FILE, {"world": self._world, "ranks": ranks})

    def _write_rank_hparams(self) -> None:
        """hparams a peer set differently from rank 0 go to ``hparams-rank-<r>.json``."""
        mine = self._hparams
        for rank, theirs in self._peer_hparams.items():
            diff = {k: v for k, v in theirs.items() if k not in mine or mine[k] != v}
            if diff or rank in self._written_hparams:
                self._written_hparams.add(rank)
                self.writer.set_meta(layout.rank_hparams_file(Path("."), rank).name, diff)


def _torch_backend() -> str | None:
    """The training job's torch.distributed backend, if its default group is alive."""
    tdist = sys.modules.get("torch.distributed")
    try:
        if tdist is not None and tdist.is_available() and tdist.is_initialized():
            return str(tdist.get_backend())
    except Exception:  # noqa: BLE001
        pass
    return None
