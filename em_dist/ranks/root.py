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
from typing import Any, Callable

from ..sink import Drops, EndReport, Sink
from .._warn import warn_once
from ..store import journal as journals
from ..store import layout
from ..store.writer import RunWriter
from . import messages
from .artifacts import ArtifactReceiver
from .channel import RootChannel
from .timing import RankTimings
from .world import ask_engine


ACK_WAIT = 2.0
"""The most a goodbye's answer waits for the writer to put the peer's records on disk (one cycle,
woken at once, is usually milliseconds); past it the answer confirms what is on disk by then."""


class RootSink(Sink):
    """Rank 0: the writer's hot-path face and files, fed by the channel's receiving thread too."""

    def __init__(self, writer: RunWriter, channel: RootChannel | None, timings: RankTimings,
                 run_id: str = "") -> None:
        self.writer = writer
        self.run_id = run_id
        self.channel = channel
        self._timings = timings
        self.buffer = writer.buffer
        self.wake_at = writer.wake_at
        self.encode_at = writer.encode_at
        self.encode = writer.encode
        # The receiving thread and the training thread both update the merged documents.
        self._lock = threading.Lock()
        self._hparams: dict[str, Any] = {}
        self._peer_hparams: dict[int, dict[str, Any]] = {}
        self._written_hparams: set[int] = set()
        self._world: dict[str, Any] = {}
        self._platforms: dict[int, dict[str, Any]] = {}
        self._artifacts: list[dict[str, Any]] = []
        self._shipped: list[dict[str, Any]] = []
        self._peer_failures: dict[int, str] = {}
        self._peer_drops: dict[int, Drops] = {}
        self._have: dict[int, int] = {}  # peer -> the newest record number handed to the writer (contiguous)
        self._said: dict[int, int] = {}  # peer -> the newest number it journaled, as its goodbye said
        self._journals: dict[int, dict[str, Any]] = {}  # peer -> where its journal is (as it announced it)
        self._read_journals: list[tuple[int, Path]] = []  # journals merged at the end (this host)
        self._backend: str | None = None
        self._end_by: float | None = None  # set by hurry(): a signal is ending the process
        self._receiver = ArtifactReceiver(Path(writer.run_dir))
        self._handlers: dict[type[Any], Callable[[int, Any], None]] = {
            messages.Records: self._on_records, messages.JournalAt: self._on_journal,
            messages.ArtifactChunk: self._on_chunk, messages.ArtifactDone: self._on_artifact,
            messages.ArtifactRef: self._on_ref, messages.Summary: self._on_summary,
            messages.Dropped: self._on_dropped, messages.Failed: self._on_failed,
            messages.Platform: self._on_platform, messages.Hparams: self._on_hparams,
        }
        """What rank 0 does with each kind of message (relay wrappers are unwrapped by the channel)."""

    # -- the Sink face ----------------------------------------------------------------
    @property
    def step_mark(self) -> tuple[int, float] | None:  # type: ignore[override]
        return self.writer.step_mark

    def evicting(self) -> None:
        self.writer.evicting()

    def refusing_output(self, bound: int) -> None:
        self.writer.refusing_output(bound)

    def drops(self) -> Drops:
        return self.writer.drops()

    def start(self) -> None:
        self.writer.start()
        if self.channel is not None:
            self.channel.start(self._deliver, self._acknowledge, self._resume)

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
            report.interrupted = end.interrupted
            report.transport = self.channel.transport
        if self.channel is not None:
            report.delivery = self._merge_journals()
        with self._lock:
            report.peer_failures = dict(self._peer_failures)
            report.peer_drops = dict(self._peer_drops)
            report.hosts = len({p.get("host") for p in self._platforms.values() if p.get("host")}) or None
        return report

    def hurry(self, by: float) -> None:
        self._end_by = by if self._end_by is None else min(self._end_by, by)
        if self.channel is not None:
            self.channel.hurry(by)

    def close(self, timeout: float) -> bool:
        done = self.writer.close(timeout)
        for rank, path in self._read_journals:  # a closed journal whose records are all on disk now goes
            journals.remove_if_covered(path.parent, rank, self.writer.written(rank))
        return done

    # -- what the channel delivers (its receiving thread) ---------------------------------
    def _deliver(self, rank: int, msg: messages.Message) -> None:
        if self._backend is None:  # seen while the training group is alive (it may be gone at finish)
            self._backend = _torch_backend()
        handle = self._handlers.get(type(msg))
        if handle is not None:
            handle(rank, msg)

    def _on_records(self, rank: int, msg: messages.Records) -> None:
        self._records(rank, msg.lines, msg.first)

    def _on_journal(self, rank: int, msg: messages.JournalAt) -> None:
        with self._lock:
            self._journals[rank] = {"host": msg.host, "path": msg.path}

    def _on_chunk(self, rank: int, msg: messages.ArtifactChunk) -> None:
        self._receiver.chunk(msg.alt, msg.rel, msg.offset, msg.data)

    def _on_artifact(self, rank: int, msg: messages.ArtifactDone) -> None:
        self._add_shipped(self._receiver.done(rank, msg.alt, msg.doc, msg.role))

    def _on_ref(self, rank: int, msg: messages.ArtifactRef) -> None:
        self._add_shipped({**msg.entry, "rank": rank})

    def _on_summary(self, rank: int, msg: messages.Summary) -> None:
        self.writer.submit_summary(rank, int(msg.records), msg.last)

    def _on_dropped(self, rank: int, msg: messages.Dropped) -> None:
        with self._lock:
            self._peer_drops[rank] = Drops(int(msg.records), int(msg.output_lines))

    def _on_failed(self, rank: int, msg: messages.Failed) -> None:
        with self._lock:
            self._peer_failures[rank] = str(msg.reason)

    def _on_platform(self, rank: int, msg: messages.Platform) -> None:
        with self._lock:
            self._platforms[rank] = msg.doc
            self._write_platform()

    def _on_hparams(self, rank: int, msg: messages.Hparams) -> None:
        with self._lock:
            self._peer_hparams[rank] = msg.doc
            self._write_rank_hparams()

    def _records(self, rank: int, lines: list[str], first: int) -> None:
        """A peer's numbered records: each number is written once; a repeat (a batch re-sent after a
        broken link) is skipped, and a gap stops this peer's records here (the rest is in its
        journal, merged at the end), so its file always holds numbers 1..n without a hole."""
        have = self._have.get(rank, 0)
        if first > have + 1:
            warn_once(f"gap:{rank}", f"em_dist: records {have + 1}..{first - 1} of rank {rank} did not arrive; "
                      "its later records wait in its journal and are merged at the end.")
            return
        skip = have + 1 - first
        if skip >= len(lines):
            return
        if skip:
            lines, first = lines[skip:], first + skip
        self._have[rank] = first + len(lines) - 1
        self.writer.submit(rank, lines, first)

    def _resume(self, rank: int) -> int:
        """A peer's link is (re)built: the newest of its records rank 0 has; it re-sends what follows."""
        return self._have.get(rank, 0)

    def _acknowledge(self, rank: int, records: int, members: dict[int, int | None]) -> dict[int, int]:
        """A goodbye's answer: what of ``rank`` (and the members it relayed) is on disk. Waits (bounded)
        for the writer to write what arrived, so the answer means *on rank 0's disk*. A member's
        goodbye number (relayed) is what its delivery is measured against: rank 0 may not be able
        to read its journal (another host)."""
        self._said[rank] = records
        until = time.monotonic() + ACK_WAIT
        on_disk = {rank: self.writer.wait_written(rank, min(records, self._have.get(rank, 0)), ACK_WAIT)}
        for member, said in members.items():
            have = self._have.get(member, 0)
            if said is not None:
                self._said[member] = said
                have = min(have, said)
            left = max(0.0, until - time.monotonic())
            on_disk[member] = self.writer.wait_written(member, have, left)
        return on_disk

    def _merge_journals(self) -> dict[int, dict[str, Any]]:
        """At the end: the journals of this run on this host (a peer that lost its link, or answered
        late) hand what they hold beyond what arrived to the writer, exactly once by number; then
        each peer's delivery: how many records the run holds, complete or not, and where the rest is."""
        world = self.channel.world_size  # type: ignore[union-attr]
        attempt = self.writer.attempt
        merged: dict[int, int] = {}
        parent = Path(self.writer.run_dir).parent
        for path in journals.journals_of(self.run_id, parent) if self.run_id else []:
            meta = journals.read_meta(path)
            rank = int(meta.get("rank", -1))
            if not 0 < rank < world or int(meta.get("attempt", attempt)) != attempt:
                continue
            self._journals.setdefault(rank, {"host": meta.get("host"), "path": str(path.resolve())})
            self._read_journals.append((rank, path))
            first = self._have.get(rank, 0) + 1
            batch = [record for _n, record in journals.read_records(path, first - 1)]
            if batch:
                self._records(rank, batch, first)
                merged[rank] = len(batch)
            if meta.get("closed") and int(meta.get("last", -1)) <= self._have.get(rank, 0):
                self._said.setdefault(rank, int(meta["last"]))
        if merged:
            warn_once("journals-merged", f"em_dist: records of ranks {sorted(merged)} that had not reached rank 0 "
                      f"were merged from their journals ({sum(merged.values())} records).")
        delivery: dict[int, dict[str, Any]] = {}
        for rank in range(1, world):
            have, said = self._have.get(rank, 0), self._said.get(rank)
            entry: dict[str, Any] = {"records": have, "complete": said is not None and have >= said}
            if attempt:
                entry["attempt"] = attempt
            where = self._journals.get(rank)
            if not entry["complete"] and where:
                entry["journal"] = f"{where.get('host')}:{where.get('path')}"
            if have or said is not None or where:
                delivery[rank] = entry
        return delivery

    def _ranks_without_files(self, wait: float) -> list[int]:
        folder = Path(self.writer.run_dir)
        missing = set(range(1, self.channel.world_size))  # type: ignore[union-attr]
        until = time.monotonic() + wait
        while missing:
            missing = {r for r in missing if not layout.metrics_file(folder, r).exists()}
            if not missing or time.monotonic() >= min(until, self._end_by or until):
                break
            time.sleep(self._timings.poll)
        return sorted(missing)

    def _add_shipped(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._shipped.append(entry)
            self.writer.write_artifacts(self._artifacts + self._shipped)

    def _write_platform(self) -> None:
        ranks = {str(r): self._platforms[r] for r in sorted(self._platforms)}
        link = self.channel.link if self.channel is not None else None
        if link and "0" in ranks:  # where rank 0's links listen (peers send theirs in their entries)
            ranks["0"] = {**ranks["0"], "link": link}
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
    if tdist is None or not ask_engine(lambda: tdist.is_available() and tdist.is_initialized(), False):
        return None
    return ask_engine(lambda: str(tdist.get_backend()), None)
