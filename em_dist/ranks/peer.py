"""A non-zero rank's sink: ``log()`` costs what it costs on rank 0; two threads hand everything to rank 0.

The sink's thread (a :class:`~em_dist.sink.QueuedSink` cycle every ``send_interval``)
takes what ``log()`` appended, encodes it and journals it: from then on the records are
durable on this rank, whatever the link does. A second thread, the sending thread, owns
the link: it joins rank 0 when it can, then sends this rank's changed metadata and the
journaled records not sent yet (encoded here, so rank 0 only appends lines). Every send
is bounded (a link that can't drain within the silence bound is given up and rebuilt),
so a cut link never stops records becoming durable, and never holds the process at its
end. The last pass sends the failure reason (if the run failed), ships the artifacts made
here, and says goodbye, all within the ``end`` timeout.
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any

from .._warn import warn_once
from ..sink import CHUNK, EndReport, QueuedSink, Record
from ..store import journal as journals
from ..store import layout
from ..store.journal import Journal
from ..store.attempts import RunPlace
from ..store.lines import SIDE_MARKS
from ..errors import LINK_ERRORS, WireVersionError
from ..store.summary import RunSummary
from ..store.writer import RunWriter
from . import messages
from .artifacts import artifact_messages
from .channel import PeerChannel
from .timing import RankTimings


RETRY_FIRST = 0.5
RETRY_MAX = 10.0
"""A broken link is rebuilt after 0.5 s, then after twice the last wait, at most 10 s apart, until finish()."""

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
                 buffer: deque[Record] | None = None) -> None:
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
        self._decided = threading.Event()
        """Set when rank 0 accepted this rank, or at the end: then where this rank's records are is known."""
        self._landed: Path | None = None
        """The run folder that took this rank's records at the end without a link (rank 0's ended run,
        or a stand-in): where :meth:`rank0_run` says the run is once rank 0 never answered."""
        self._run_doc: dict[str, Any] = {}
        self._local: RunWriter | None = None
        """A writer into rank 0's own folder, when the script started no engine (a shared filesystem)."""
        self._direct = False
        self._retired = retired
        """The writer of this process's own run before it learnt its rank (:mod:`.late`): this sink
        takes over its buffer (the very deque log() appends to, so no record can fall between the
        two), and its folder goes once rank 0 has everything."""
        self._handed_off = False
        self._lock = threading.Lock()  # the training thread writes metadata, the cycle reads it
        self._meta: dict[str, Any] = {}
        self._sent_meta: dict[str, Any] = {}
        self._platform: dict[str, Any] | None = None
        self._sent_link: dict[str, Any] | None = None
        self._artifacts: dict[str, dict[str, Any]] = {}
        self._created: list[Path] = []
        self._failure: str | None = None
        self._deadline = float("inf")
        self._broken = False
        self._retry_at: float | None = None  # the link broke: when to try rebuilding it
        self._backoff = RETRY_FIRST
        self.relinks = 0
        """How many times this rank's link to rank 0 broke and was retried."""
        self._journal: Journal | None = None
        """This rank's journal (made at its first record): numbered, on this rank's disk until rank 0 confirms."""
        self._unsent: deque[tuple[int, list[str] | None, int]] = deque()
        """Journaled, not sent yet: (first number, the lines, or None once spilled to the journal alone, count)."""
        self._unsent_count = 0
        self._unsent_lock = threading.Lock()
        """The journal, :attr:`_unsent` and :attr:`summary`: the sink's thread adds, the sending thread takes."""
        self._sender = threading.Thread(target=self._send_loop, name=f"em_dist-send-{rank}", daemon=True)
        self._send_wake = threading.Event()
        self._send_final = False
        self._pending_meta: list[messages.Message] = []
        self.summary = RunSummary()
        """This rank's own summary (last value of every metric), sent to rank 0 when it changed."""

    # -- metadata: forwarded, not written ---------------------------------------------
    def write_run(self, doc: dict[str, Any]) -> None:
        self._run_doc = doc
        self._failure = doc.get("status_reason") if doc.get("status") == "Failed" else None

    def rank0_run(self, wait: float) -> dict[str, Any] | None:
        """Rank 0's run once it accepted this rank; after the end without a link, the run folder that
        took this rank's records (no wait then: the end decided it)."""
        if self.channel is not None:
            self._decided.wait(wait)
        if self.channel is not None and self._joined.is_set():
            return self.channel.rank0_run
        return _folder_doc(self._landed) if self._landed is not None and self._decided.is_set() else None

    def write_hparams(self, hparams: dict[str, Any]) -> None:
        with self._lock:
            self._meta["hparams"] = dict(hparams)

    def write_platform(self, world: dict[str, Any], platform: dict[str, Any]) -> None:
        with self._lock:
            self._meta["platform"] = platform
            self._platform = platform

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
    def _release_reserve(self) -> float:
        """Past the end's deadline, how long the sending thread may take to release its links (a node
        leader's serving ones too: each of its bounded waits): the process must not exit while that
        thread is inside a gloo call (that aborts it), and every send stopped at the deadline."""
        return 2 * self._timings.release_wait + 1.0

    def end(self, timeout: float) -> EndReport:
        self._deadline = time.monotonic() + timeout
        if not self._stop(timeout + self._release_reserve()):
            warn_once("peer-end", f"em_dist: rank {self.rank} could not hand its last records to rank 0 "
                      f"within {timeout:.0f}s; they stay in its journal {self._journal_path()}.")
        self._decided.set()  # a read of run.path after the end waits no more for rank 0
        return EndReport()

    def close(self, timeout: float) -> bool:
        if self._retired is not None:
            self._retired.close(timeout)
            if self._handed_off and self._local is None:
                shutil.rmtree(self._retired.run_dir, ignore_errors=True)
        if self._local is not None and not self._thread.is_alive():
            return self._local.close(timeout)
        return not self._thread.is_alive()

    # -- the sink's thread: journaling -------------------------------------------------------
    def start(self) -> None:
        super().start()
        if self.channel is not None and self._sender.ident is None:
            self._sender.start()  # here, never at the end: the shutdown path starts no thread

    def _cycle(self, final: bool) -> None:
        """Journal what ``log()`` appended (durable on this rank from now on), then let the sending
        thread take it on; the last cycle waits for the sending thread's last pass, until the deadline
        (what it could not send stays in the journal)."""
        self._journal_taken()
        if self.channel is None:
            if final:  # no engine: rank 0's folder on a filesystem this rank sees takes the records directly
                self._end_without_link()
            return
        if self._sender.ident is None:  # never started (create_run failed half-way): the last pass runs here
            if final:
                self._send_pass(final=True)
            return
        if final:
            self._send_final = True
        self._send_wake.set()
        if final:
            self._sender.join(max(0.0, self._deadline + self._release_reserve() - time.monotonic()))

    # -- the sending thread: the link ------------------------------------------------------
    def _send_loop(self) -> None:
        """Pass after pass (woken by each journaling cycle), until the last one."""
        while True:
            self._send_wake.wait(self._timings.send_interval)
            self._send_wake.clear()
            final = self._send_final
            try:
                self._send_pass(final)
            except Exception as exc:  # noqa: BLE001 - never out of this thread: the journal keeps the records
                warn_once(f"peer-send:{self.rank}", f"em_dist: rank {self.rank}: sending to rank 0 failed ({exc!r}); "
                          f"its records are kept in its journal {self._journal_path()}.")
            if final:
                return

    def _send_pass(self, final: bool) -> None:
        channel = self.channel
        if channel is None:
            return
        if final and not self._joined.is_set() and not channel.engine_started:
            # No engine: rank 0's folder on a filesystem this rank sees takes the records directly.
            self._end_without_link()
            return
        if final:
            channel.send_until(self._deadline)  # no wait of the last pass outlives the end's deadline
        if self._broken:
            if final:
                self._end_without_link()
            return
        if self._retry_at is not None and not final and time.monotonic() < self._retry_at:
            return  # the link broke: journaled meanwhile, the next try is later (back-off)
        retries = 1 if final else 0  # the last pass rebuilds a link that breaks under it once, within the deadline
        try:
            while True:
                try:
                    self._attempt(channel, final)
                    return
                except LINK_ERRORS as exc:  # rank 0 is out of reach for now
                    if self._joined.is_set() and channel.reconnects and not isinstance(exc, WireVersionError) \
                            and (not final or (retries and time.monotonic() < self._deadline)):
                        self._link_broke(channel, exc)
                        if not final:
                            return
                        retries -= 1
                        continue
                    self._give_up_link(str(exc), final)
                    return
                except Exception as exc:  # noqa: BLE001 - a fault of ours, not of the link: never retried, and the
                    # records still go where a broken link's go (the journal, merged later)
                    self._give_up_link(f"internal error {exc!r}", final)
                    return
        finally:
            if final:
                try:
                    channel.shutdown()  # on this thread: gloo pairs are destroyed where they were used
                except LINK_ERRORS:  # what it held is gone either way
                    pass

    def _give_up_link(self, why: str, final: bool) -> None:
        """No more tries to reach rank 0: the records stay in the journal (merged into the run later)."""
        self._broken = True
        warn_once(f"peer-link:{self.rank}", f"em_dist: rank {self.rank}: the link to rank 0 broke ({why}); "
                  f"its records are kept in its journal {self._journal_path()} and merged into the run later.")
        if final:
            self._end_without_link()

    def _attempt(self, channel: PeerChannel, final: bool) -> None:
        """Join (or rejoin) rank 0 and send what is new; on the last pass also the end (failure, drops,
        artifacts, goodbye). Raises when the link breaks."""
        if not channel.connected and not self._connect(channel, final):
            if final:
                self._end_without_link("rank 0 made no run of this identity, or could not be reached")
            return
        if not self._joined.is_set():
            self._joined_rank0(channel)
        elif self._retry_at is not None:
            self._relinked(channel)
        self._forward(channel)
        if final:
            if self._failure is not None:
                channel.send([messages.Failed(self._failure)])
            drops = self.drops()
            if drops:
                channel.send([messages.Dropped(drops.records, drops.output_lines)])
            self._ship_artifacts(channel)
            self._goodbye(channel)

    def _link_broke(self, channel: PeerChannel, exc: BaseException) -> None:
        """Keep journaling, and rebuild the link later (back-off doubling to :data:`RETRY_MAX`) until
        ``finish()``: a partition or a frozen moment costs no record."""
        if self._retry_at is None:
            warn_once(f"peer-relink:{self.rank}", f"em_dist: rank {self.rank}: the link to rank 0 broke ({exc}); "
                      f"its records wait in its journal {self._journal_path()} and the link is retried.")
        try:
            channel.reset()  # on this thread: gloo pairs are destroyed where they were used
        except LINK_ERRORS:  # what it held is gone either way
            pass
        self._backoff = min(RETRY_MAX, self._backoff * 2) if self._retry_at is not None else RETRY_FIRST
        self._retry_at = time.monotonic() + self._backoff
        self.relinks += 1

    def _relinked(self, channel: PeerChannel) -> None:
        """The link is back: re-send what rank 0 lacks, from its journal (rank 0 said how far it got;
        it skips any number it has), and the metadata and summary again."""
        self._retry_at = None
        resume = channel.resume_after
        with self._unsent_lock:
            journal = self._journal
            if journal is not None:
                start = (resume if resume is not None else 0) + 1
                self._unsent.clear()
                self._unsent_count = 0
                if journal.last >= start:
                    self._unsent.append((start, None, journal.last - start + 1))
            self.summary.changed = True
        self._sent_meta.clear()
        warn_once(f"peer-relinked:{self.rank}", f"em_dist: rank {self.rank}: the link to rank 0 is back; "
                  f"records after {resume or 0} are re-sent from its journal.")

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
            # a rank 0 never seen (its store gone with it: it finished and exited) gets the grace from now
            since = channel.ready_since or began
            if now >= self._deadline or now >= max(began, since) + self._timings.peer_join_grace:
                return False
        return True

    def _journal_taken(self) -> None:
        """Take what ``log()`` appended off the buffer, number it and journal it (durable on this rank
        before it leaves), whether or not rank 0 is reachable: the buffer never fills while rank 0 is
        slow or gone; what is not sent yet waits in :attr:`_unsent` (or, past ``max_pending``, in the
        journal alone)."""
        buf, enc = self.buffer, self.encode
        for _ in range(len(buf) // CHUNK + 1):  # bounded: a faster producer can't keep us here
            batch = self._take()
            if not batch:
                break
            lines = [r if isinstance(r, str) else enc(r) for r in batch]
            with self._unsent_lock:
                self.summary.add(self.rank, [r for r in batch if not (isinstance(r, str) and r[:1] in SIDE_MARKS)],
                                 self.encode.newest)
                journal = self._open_journal()
                first = journal.append(lines)
                self._unsent.append((first, lines, len(lines)))
                self._unsent_count += len(lines)
                self._spill()
            if journal.failed is not None:
                warn_once(f"journal:{self.rank}", f"em_dist: rank {self.rank} cannot write its journal "
                          f"{journal.path} ({journal.failed}); its records still go to rank 0, without a copy here.")
            if not buf:
                break

    def _spill(self) -> None:
        """Past ``max_pending`` unsent records in memory, the oldest batches keep only their numbers:
        their lines are in the journal, and are read back from it when sent (the newest batch stays)."""
        unsent = self._unsent
        i = 0
        while self._unsent_count > self._max_pending and i < len(unsent) - 1:
            first, lines, count = unsent[i]
            if lines is not None:
                unsent[i] = (first, None, count)
                self._unsent_count -= len(lines)
            i += 1

    def _open_journal(self) -> Journal:
        if self._journal is None:
            place = self._own_place
            self._journal = Journal(journals.spool_dir(place.path.parent, place.id), self.rank,
                                    {"run_id": place.id, "name": self._run_doc.get("name")})
        return self._journal

    def _journal_path(self) -> str:
        return str(self._journal.path) if self._journal is not None else "(none: nothing was logged)"

    def _joined_rank0(self, channel: PeerChannel) -> None:
        """Rank 0 accepted this rank: the journal learns whose run it feeds; rank 0 learns where it is."""
        self._joined.set()
        self._decided.set()
        doc = channel.rank0_run or {}
        with self._unsent_lock:
            journal = self._open_journal()
            journal.describe(run_id=doc.get("id", self._own_place.id), run_path=doc.get("path"),
                             attempt=int(doc.get("restarts", 0) or 0))
        self._pending_meta.append(messages.JournalAt(socket.gethostname(), str(journal.path.resolve())))

    def _forward(self, channel: PeerChannel) -> None:
        out: list[messages.Message] = list(self._pending_meta)
        self._pending_meta.clear()
        link = channel.link  # where this rank's link listens: its platform entry says so (again when it changed)
        with self._lock:
            meta, self._meta = self._meta, {}
            if link != self._sent_link and self._platform is not None:
                meta.setdefault("platform", self._platform)
        if "platform" in meta:
            self._sent_link = link
            if link:
                meta["platform"] = {**meta["platform"], "link": link}
        for kind, doc in meta.items():
            if self._sent_meta.get(kind) != doc:
                self._sent_meta[kind] = doc
                out.append(messages.Hparams(doc) if kind == "hparams" else messages.Platform(doc))
        with self._unsent_lock:
            if self.summary.changed:
                self.summary.changed = False
                out.append(messages.Summary(*self.summary.rank(self.rank)))
        unsent = self._unsent
        with self._unsent_lock:
            chunks = sum(-(-count // CHUNK) for _first, _lines, count in unsent)
        for _ in range(chunks + 1):  # bounded: what was journaled before this pass (at least one send)
            batch = self._next_unsent()
            if batch is not None:
                out.append(batch)
                # popped before the send: a send that fails breaks the link, and a rebuilt link
                # re-sends from what rank 0 has (its journal holds everything)
            channel.send(out)  # at least once per cycle: Horovod's rank 0 needs our round
            out = []
            if not unsent:
                break

    def _next_unsent(self) -> messages.Records | None:
        """The oldest journaled records not sent yet (a chunk at most), off :attr:`_unsent`."""
        with self._unsent_lock:
            unsent = self._unsent
            while unsent:
                first, lines, count = unsent[0]
                if lines is None:  # spilled (or to re-send after a broken link): from the journal, a chunk at a time
                    lines = self._read_back(first, min(count, CHUNK))
                    if not lines:  # the journal lost them (its disk refused): nothing to re-send
                        unsent.popleft()
                        continue
                    if count > len(lines):
                        unsent[0] = (first + len(lines), None, count - len(lines))
                    else:
                        unsent.popleft()
                else:
                    unsent.popleft()
                    self._unsent_count -= len(lines)
                return messages.Records(lines, first)
        return None

    def _read_back(self, first: int, count: int) -> list[str]:
        """Records ``first``.. (at most ``count``) from the journal."""
        return self._journal.read(first, count) if self._journal is not None else []

    def _goodbye(self, channel: PeerChannel) -> None:
        """Say goodbye with the newest number journaled; rank 0's answer says what is on its disk, and
        only that deletes the journal (a node leader's answer confirms nothing: the leader deletes
        its members' journals once rank 0 confirmed them)."""
        journal = self._journal
        last = journal.last if journal is not None else 0
        if journal is not None:
            # closed before the goodbye, not after its answer: a node leader deletes its members'
            # journals once rank 0 confirmed them, which may be before this thread reads its own
            # answer, and it deletes only a closed journal (one that can't grow any more)
            journal.close()
        ack = channel.goodbye(max(0.0, self._deadline - time.monotonic()), records=last)
        if ack is None:
            warn_once("peer-goodbye", f"em_dist: rank 0 did not answer rank {self.rank}'s end in time; its "
                      f"records stay in its journal {self._journal_path()} and are merged into the run later.")
            self._end_without_link()
            return
        confirmed = ack.on_disk.get(self.rank)
        self._handed_off = journal is None or (confirmed is not None and confirmed >= last)
        if journal is not None and self._handed_off:
            journal.remove()
        for member, on_disk in ack.on_disk.items():  # a leader: its members' journals, on this node
            if member != self.rank:
                journals.remove_if_covered(self._spool(), member, on_disk)
        if not self._handed_off and journal is not None and ack.on_disk:
            self._end_without_link()

    def _spool(self) -> Path:
        return journals.spool_dir(self._own_place.path.parent, self._own_place.id)

    def _end_without_link(self, why: str = "") -> None:
        """The end, with records that rank 0 has not confirmed: merge the journal into rank 0's run
        folder when this rank can see it and rank 0 has finished (exactly once by number); with no
        engine at all, write into rank 0's folder directly; else leave the journal, named in a warning."""
        journal = self._journal
        if journal is None:
            return
        journal.close()
        if self.channel is None or not self.channel.engine_started:
            # no engine: only this launch's folder may take the records (another launch's run may
            # have this id: a script that reuses MASTER_PORT), else a stand-in keeps them
            if self._into_rank0_folder():
                return
            folder = None
        else:
            folder = self._rank0_folder()
        if folder is None and not self._joined.is_set():
            folder = self._stand_in_folder()
        if folder is not None and journals.finished(folder):
            try:
                merged = journals.merge(folder, journal.path)
                self._handed_off = merged.removed
                self._landed = folder
                return
            except journals.MERGE_ERRORS as exc:  # the journal stays; the warning below says where
                why = f"{why}; merging it into {folder} failed ({exc!r})".lstrip("; ")
        warn_once(f"peer-journal:{self.rank}", f"em_dist: rank {self.rank}'s records {1}..{journal.last} are "
                  f"not all confirmed by rank 0{f' ({why})' if why else ''}; they are kept in its journal "
                  f"{journal.path}: rank 0 merges it at its end when it can read it, else run "
                  f"`em run merge <run folder> --spool {journal.folder}`.")

    def _rank0_folder(self) -> Path | None:
        doc = self.channel.rank0_run if self.channel is not None else None
        if doc and doc.get("path") and Path(doc["path"]).is_dir():
            return Path(doc["path"])
        return layout.find_run_dir(self._own_place.id, self._run_doc.get("name"), self._own_place.path.parent)

    def _stand_in_folder(self) -> Path | None:
        """Rank 0 never served this run (it made no run of this identity): the run is made here, with
        this rank's records under its own rank number and a world that says only it was there."""
        place = self._own_place
        doc = dict(self._run_doc, id=place.id, alternative_name=place.alternative_name,
                   world={**self._run_doc.get("world", {}), "ranks_present": [self.rank], "made_by_rank": self.rank})
        writer = RunWriter(place.path, flush_interval=self._flush_interval, max_pending=self._max_pending,
                           rank=self.rank, heartbeat=False)
        writer.write_run(doc)
        with self._lock:
            meta = dict(self._sent_meta, **self._meta)
        if "hparams" in meta:
            writer.write_hparams(meta["hparams"])
        writer.close(self._timings.signal_close_cap)  # never started: its one cycle runs here (no thread at exit)
        warn_once(f"peer-stand-in:{place.path}", f"em_dist: rank {self.rank}'s run {doc.get('name')!r}: rank 0 made "
                  f"no run of this identity; it is kept at {place.path} with this rank's records (rank {self.rank}).")
        return place.path

    def _into_rank0_folder(self) -> bool:
        """No engine, but rank 0's run folder is on a filesystem this rank sees (one node, or a shared
        filesystem as on most SLURM clusters): write ``metrics/rank-<r>.jsonl`` there directly, or
        merge the journal when rank 0's run ended without this rank.

        Rank 0 may start seconds after this rank ended (a loaded machine starts Python slowly), so
        this waits for it up to ``dist_timeout``, the bound on waiting for other ranks at the end.
        """
        name, parent = self._run_doc.get("name"), self._own_place.path.parent
        until = time.monotonic() + self._timings.dist_timeout
        while (found := launch_folder(self._own_place.id, name, parent, self.rank)) is None:
            if time.monotonic() >= until:
                return False
            time.sleep(self._timings.poll * 4)  # each look reads the run.json of this name's folders
        folder, live = found
        if not live:
            journal = self._journal
            if journal is None:
                return False
            try:
                self._handed_off = journals.merge(folder, journal.path).removed
            except journals.MERGE_ERRORS as exc:  # the journal stays; the caller's warning says where
                warn_once(f"peer-merge:{folder}", f"em_dist: rank {self.rank} could not merge its journal into "
                          f"{folder} ({exc!r})")
                return False
            self._landed = folder
            warn_once(f"peer-direct:{folder}", f"em_dist: rank {self.rank}: rank 0's run {folder} had ended "
                      "without this rank (no engine connects them); its records are merged there now")
            return True
        self._local = RunWriter(folder, flush_interval=self._flush_interval, max_pending=self._max_pending,
                                rank=self.rank, heartbeat=False)
        if self._journal is not None:
            self._local.buffer.extend(record for _n, record in journals.read_records(self._journal.path))
        self._local.start()
        self._direct = True
        self._landed = folder
        if self._journal is not None:
            self._journal.remove()  # the local writer holds them now, and writes them before close
        warn_once(f"peer-direct:{folder}", f"em_dist: rank {self.rank}: the script started no engine "
                  "(torch.distributed, Horovod or mpi4py), so this rank writes its records straight into "
                  f"rank 0's run folder {folder}")
        return True

    def _ship_artifacts(self, channel: PeerChannel) -> None:
        with self._lock:
            marked = {path: e.get("role") or "output" for path, e in self._artifacts.items()}
            entries = dict(self._artifacts)
            made_here = {str(p) for p in self._created}
        todo = {path: role for path, role in marked.items() if role == "output" or path in made_here}
        for path in made_here:
            todo.setdefault(path, "output")
        refs = [messages.ArtifactRef(entries[path]) for path in marked if path not in todo]  # inputs made elsewhere
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


def _folder_doc(folder: Path) -> dict[str, Any] | None:
    """A run folder's identity as rank 0 announces its run (``id``, ``alternative_name``, ``path``)."""
    from ..store.files import read_json

    try:
        doc = read_json(folder / layout.RUN_FILE, {})
    except (OSError, ValueError):
        return None
    if not isinstance(doc, dict) or not doc.get("id"):
        return None
    return {"id": doc["id"], "alternative_name": doc.get("alternative_name"), "path": str(folder),
            "restarts": doc.get("restarts", 0)}


def launch_folder(job_key: str, name: str | None, parent: Path, rank: int) -> tuple[Path, bool] | None:
    """Rank 0's run folder of this launch, for a rank with no engine to ask rank 0 where it is, and
    whether that run is live.

    A folder counts when its run has this job key (its ``id``, or ``job_key`` when rank 0 gave a
    first attempt a fresh id) and it is live (its writer alive: :func:`~em_dist.store.reader.effective_status`)
    or it ended listing ``rank`` as absent. A run of an earlier launch under the same key (a script
    that reuses MASTER_PORT) ended with every rank: it never counts. The newest start wins.
    """
    from ..store.files import read_json
    from ..store.reader import LIVE_STATUSES, effective_status

    best: tuple[str, Path, bool] | None = None
    if not parent.is_dir():
        return None
    for folder in parent.glob(f"{layout.glob_escape(name)}_*") if name else parent.iterdir():
        try:
            doc = read_json(folder / layout.RUN_FILE, None)
        except (OSError, ValueError):
            continue
        if not isinstance(doc, dict) or job_key not in (doc.get("id"), doc.get("job_key")):
            continue
        live = effective_status(folder, doc)[0] in LIVE_STATUSES
        awaited = rank in ((doc.get("world") or {}).get("absent_ranks") or [])
        if (live or awaited) and (best is None or str(doc.get("start_timestamp")) > best[0]):
            best = (str(doc.get("start_timestamp")), folder, live)
    return None if best is None else (best[1], best[2])
