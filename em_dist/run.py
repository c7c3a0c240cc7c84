"""The Run: what a training script records, on any rank, without ever blocking or breaking training."""

from __future__ import annotations

import os
import shlex
import socket
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from . import capture, lifecycle, settings
from ._notice import console_url, notice
from ._warn import silence, warn_once
from .artifact import Artifact
from .hparams import Hparams
from .limits import log_max_bytes
from .store import attempts, layout
from .store.attempts import RunPlace
from .store.reader import load_artifact
from .store.records import ArtifactRecord
from .ranks import forked, signals
from .ranks.spawned import RunHandle, attach
from .ranks.attach import open_sink
from .ranks.deferred import torch_ready
from .ranks.host import RunIdentity
from .ranks.identity import derived_run_id, job_identity, next_occurrence
from .ranks.late import LateJoin
from .ranks.world import WorldInfo, detect_world
from .ranks.timing import RankTimings, positive_seconds
from .observe.sampler import SystemSampler, system_metrics_interval as _sampling_interval
from .observe.steps import STEP_METRIC
from .sink import EndReport, Record, RecordTuple, Sink
from .store.writer import DEFAULT_FLUSH_INTERVAL, DEFAULT_MAX_PENDING, RunWriter
from .limits import MAX_FLOAT, MAX_STEP
from .values import TYPE_ALIASES, check_epoch, check_log_call, check_metric_name, check_step, convert_value, has_device_values, normalize_type

_now = time.time


class Run:
    """One training run. Create it with :func:`em_dist.create_run`."""

    # Set in _setup (the one setup path of __init__ and from_handle); declared here for the type checker,
    # which reads __init__ first.
    world: dict[str, Any]
    _capturing: bool
    _late: LateJoin | None

    def __init__(
        self,
        name: str = "default",
        *,
        labels: list[str] | None = None,
        description: str = "",
        folder: str = "default",
        folder_id: str | None = None,
        make_folder: bool = False,
        conflict_strategy: str = "new",
        auto_upload: bool | None = None,
        dist_timeout: float | None = None,
        flush_interval: float | None = None,
        max_pending: int | None = None,
        id: str | None = None,
        resume: str | None = None,
        system_metrics_interval: float | None = None,
        capture_output: bool | None = None,
        max_output: int | None = None,
    ) -> None:
        name = layout.check_name(name, "run name")
        if id is not None:
            id = layout.check_name(id, "run id")
        resume = attempts.check_resume(resume)
        checked_labels = layout.check_labels(labels)
        if not isinstance(description, str):
            raise TypeError("description must be a string")
        layout.check_conflict_strategy(conflict_strategy)
        if not isinstance(folder, str) or not folder:
            raise ValueError("folder must be a non-empty folder path such as 'em-examples' or 'team/project'")
        uploads = settings.auto_upload_wanted() if auto_upload is None else bool(auto_upload)
        timings = RankTimings.from_env(dist_timeout)
        interval = positive_seconds(flush_interval, "flush_interval", os.environ.get("EM_FLUSH_INTERVAL"),
                                    DEFAULT_FLUSH_INTERVAL)
        sample_every = _sampling_interval(system_metrics_interval)
        capturing = _capture_wanted(capture_output)
        output_bound = _output_bound(max_output)
        if capturing:
            log_max_bytes()  # a bad EM_LOG_MAX_BYTES is refused here, at the call

        # Identity, not order: every rank derives the same id for the same create_run from the
        # job's identity, the name and how many runs of that name this process made before.
        started = _now()
        try:
            world = detect_world()
        except Exception as exc:  # noqa: BLE001 - never stop a run from starting over the layout
            warn_once("detect-world", f"em_dist: could not read the job layout ({exc!r}); recording as one process")
            world = WorldInfo()
        job = job_identity()
        occurrence = next_occurrence(name)
        derived = derived_run_id(job, name, occurrence)
        run_id = id or derived or str(uuid.uuid4())
        meeting_key = run_id if (id or derived) else f"anon/{name}/{occurrence}"
        if id is None and resume is None and not job.continues_runs:
            resume = "fresh"  # a first attempt continues nothing; only the launcher's restarts do
        if world.rank == 0:
            place = attempts.place_run(name, run_id, resume, started, world.world_size, explicit=id is not None)
        else:  # rank 0 decides where the run lives; a peer adopts that once it reached rank 0
            place = attempts.new_place(name, run_id, started, world.world_size)

        # The one call into the rank layer: a plain process gets the run folder's writer, rank 0
        # of a job the writer plus the other ranks' records, any other rank a forwarder to rank 0.
        sink, world_doc = open_sink(world, place, meeting_key=meeting_key, job_attempt=job.attempt,
                                    timings=timings, flush_interval=interval,
                                    max_pending=max_pending or DEFAULT_MAX_PENDING)
        self._setup(
            name=name, labels=checked_labels, description=description, folder=folder, folder_id=folder_id,
            make_folder=bool(make_folder), conflict_strategy=conflict_strategy,
            auto_upload=uploads,
            timings=timings, capturing=capturing, output_bound=output_bound, meeting_key=meeting_key,
            identity=RunIdentity(place.id, place.alternative_name, place.path, place.attempt),
            rank0_known=world.rank == 0, attempts=place.attempts, start_timestamp=place.start_timestamp,
            status="Initializing", world=world_doc, platform={}, git=None, artifacts=[],
        )
        self.use_sink(sink)
        if isinstance(sink, RunWriter):  # one process for now; an engine may make it a rank later
            # Processes that learn their rank late meet by name and occurrence alone: what the
            # environment said at create_run differs between them (Lightning sets MASTER_* later in rank 0).
            self._late = LateJoin(sink, place, f"late/{self.name}/{occurrence}", self._timings, self.adopt_sink,
                                  self._run_doc)

        self._probe_platform()
        self._save_meta()
        sink.start()
        if sample_every > 0:
            self._start_sampler(sample_every, world)
        if self._capturing:  # from here on what this process prints is recorded too
            self._capturing = capture.start(self._output_line, interval)
        if os.environ.get("EM_DIST_NO_SIGNALS") != "1":
            # schedulers preempt and launchers stop the survivors of a failed job with SIGTERM:
            # record that ending (single processes too)
            self.watch_signals()
        if self.auto_upload and self.world.get("rank", 0) == 0:  # rank 0 uploads the one run of the job
            self._start_auto_upload()
        if place.resumed:
            self._set_status("Running")
        lifecycle.register(self, self._lifecycle_hooks())

    # -- crossing to a spawned process (Lightning ddp_spawn, mp.spawn): see ranks/spawned.py ---
    def __reduce__(self) -> tuple[Any, tuple[RunHandle]]:
        """Pickled, a Run becomes a :class:`~em_dist.ranks.spawned.RunHandle` that re-attaches where it is unpickled."""
        sink = self._sink
        handle = RunHandle(
            pid=os.getpid(), id=self._id, name=self.name, alternative_name=self._alternative_name, path=str(self._path),
            restarts=self._restarts, start_timestamp=self.start_timestamp, status=self.status,
            join_key=self.late_join_key if not self._finished else None,
            timings=self._timings, flush_interval=getattr(sink, "interval", DEFAULT_FLUSH_INTERVAL),
            max_pending=self._max_pending if self._max_pending < 1 << 62 else DEFAULT_MAX_PENDING,
            max_output=self._output_bound,
            meeting_key=self._meeting_key, labels=list(self.labels), description=self.description, folder=self.folder,
            folder_id=self.folder_id, make_folder=self.make_folder, conflict_strategy=self.conflict_strategy,
            auto_upload=self.auto_upload, attempts=[dict(a) for a in self.attempts], hparams=dict(self.hparams),
            world=dict(self.world), platform=dict(self.platform), git=self.git, artifacts=list(self._artifacts),
        )
        return attach, (handle,)

    @classmethod
    def from_handle(cls, h: RunHandle) -> Run:
        """The Run of a spawned process, from its parent's handle: it records nothing of its own
        until its engine makes it a rank (:class:`~em_dist.ranks.forked.ForkedSink`).

        For :func:`em_dist.ranks.spawned.attach` (unpickling), not for scripts: no run folder is made,
        no sampler, output capture, signal watch or uploader is started here. The run is tracked by
        :mod:`em_dist.lifecycle` (finished at this process's end) and starts watching for the engine."""
        self = cls.__new__(cls)
        self._setup(
            name=h.name, labels=list(h.labels), description=h.description, folder=h.folder, folder_id=h.folder_id,
            make_folder=h.make_folder, conflict_strategy=h.conflict_strategy, auto_upload=h.auto_upload,
            timings=h.timings, capturing=False, output_bound=h.max_output, meeting_key=h.meeting_key,
            identity=RunIdentity(h.id, h.alternative_name, Path(h.path), h.restarts),
            rank0_known=True, attempts=[dict(a) for a in h.attempts], start_timestamp=h.start_timestamp,
            status=h.status, world=dict(h.world), platform=dict(h.platform), git=h.git, artifacts=list(h.artifacts),
        )
        sink: Sink
        if h.join_key is None:
            sink = forked.Orphaned(self, f"em_dist: run {h.name!r} was handed to this process (pid {os.getpid()}) by "
                                   f"process {h.pid}, where it already belongs to a job (or is finished); what this "
                                   "process logs there is not kept. Create a run in this process, or hand the run to "
                                   "processes that become the job's ranks (Lightning ddp_spawn, mp.spawn).")
        else:
            sink = forked.ForkedSink(self, h.join_key, interval=h.flush_interval, max_pending=h.max_pending)
        self.use_sink(sink)
        self.hparams.update(h.hparams)  # the sink keeps metadata for the one that replaces it
        lifecycle.adopt_spawned(self, self._lifecycle_hooks())
        return self

    def _setup(
        self,
        *,
        name: str,
        labels: list[str],
        description: str,
        folder: str,
        folder_id: str | None,
        make_folder: bool,
        conflict_strategy: str,
        auto_upload: bool,
        timings: RankTimings,
        capturing: bool,
        output_bound: int,
        meeting_key: str,
        identity: RunIdentity,
        rank0_known: bool,
        attempts: list[dict[str, Any]],
        start_timestamp: str,
        status: str,
        world: dict[str, Any],
        platform: dict[str, Any],
        git: dict[str, Any] | None,
        artifacts: list[dict[str, Any]],
    ) -> None:
        """Every field of a Run, set in one place: ``__init__`` (a new run, checked arguments) and
        :meth:`from_handle` (a spawned process's copy of its parent's run) both come through here, so
        a field added to one can't be missing from the other. Sets no sink and starts nothing."""
        self.name = name
        self.labels = labels
        self.description = description
        self.folder, self.folder_id, self.make_folder = folder, folder_id, make_folder
        self.conflict_strategy = conflict_strategy
        self.auto_upload = auto_upload
        self._timings = timings
        self.dist_timeout = timings.dist_timeout
        self._capturing = capturing
        self._output_bound = output_bound
        self._meeting_key = meeting_key
        self._id, self._alternative_name, self._path = identity.id, identity.alternative_name, identity.path
        self._restarts = identity.restarts
        # On a peer, rank 0's identity replaces this process's placeholder at the first read (_adopt_rank0).
        self._rank0_known = rank0_known
        self._rank0_wait = timings.peer_join_grace
        self.attempts = attempts
        self.start_timestamp = start_timestamp
        self.end_timestamp: str | None = None
        self.status = status
        self.status_reason: str | None = None
        self.world = world
        self.lost_ranks: list[int] = []
        self.late_ranks: list[int] = []
        self.signals: list[str] = []
        """The signals that came while the run was live (``["SIGTERM"]``), each once, in order: em_dist's
        signal handler appends to it (so it is known at once), the signal's thread writes it out."""
        self.dropped: dict[str, dict[str, int]] = {}
        """Rank -> records and output lines it accepted and dropped to bound memory (see :class:`~em_dist.sink.Drops`)."""
        self.delivery: dict[str, dict[str, Any]] = {}
        """Rank -> how many of its records the run holds, whether that is all, and where the rest is."""
        self.hparams = Hparams(on_change=self._hparams_changed)
        self.platform = platform
        self.git = git
        self.uploads: list[Any] = []
        self._artifacts = artifacts
        self._known_names: set[str] = set()
        self._finish_lock = threading.Lock()  # claimed once, never released: see _finish
        self._finish_done = threading.Event()
        # Orders a signal's note (a helper thread) before the finish's writes of run.json: a note
        # written after them would make the ended run read as live again.
        self._note_lock = threading.Lock()
        self._finished = False
        self._end_cause: str | None = None
        """``signal: SIGTERM`` once a signal that ends the process came while a finish was under way
        (:meth:`_cut_short`); that finish records it as how the run ended."""
        self._cause_taken = False
        self._end_by: float | None = None
        """``time.monotonic()`` by which the finish under way must be done (the signal's cap), once cut short."""
        self._auto_uploader: Any = None
        self._sampler: SystemSampler | None = None
        self._late = None
        self._watching_signals = False

    # -- identity: on a peer, rank 0's (known once this rank reached rank 0) -----------------
    @property
    def id(self) -> str:
        """The run's id: the same on every rank of the job."""
        self._adopt_rank0()
        return self._id

    @property
    def alternative_name(self) -> str:
        """The run folder's name (rank 0's: a peer may wait briefly for rank 0 the first time)."""
        self._adopt_rank0()
        return self._alternative_name

    @property
    def path(self) -> Path:
        """The run folder (rank 0's: a peer may wait briefly for rank 0 the first time)."""
        self._adopt_rank0()
        return self._path

    @property
    def restarts(self) -> int:
        """How many times the job was restarted into this run (0 for a run's first start)."""
        self._adopt_rank0()
        return self._restarts

    def _output_line(self, record: str) -> None:
        """A line this process printed (on the capture's thread): into the record buffer, like a metric,
        under its own bound: past ``max_output`` waiting records the line is dropped and counted, so
        output never evicts a metric record (the terminal has shown it)."""
        buf = self._buffer
        if len(buf) >= self._max_output:
            self._sink.refusing_output(self._max_output)
            return
        buf.append(record)

    # -- the rank layer's host interface (em_dist.ranks.host.RunHost) ---------------------------
    # Fork, spawn and late join re-home a Run through these, never through its private fields.
    @property
    def timings(self) -> RankTimings:
        """The run's waits and intervals (``dist_timeout`` and the environment), for the rank layer."""
        return self._timings

    @property
    def identity(self) -> RunIdentity:
        """The run's id, folder name, folder and restarts as this process knows them now. Never waits
        (unlike :attr:`id` and :attr:`path` on a peer): the rank layer reads it on background threads."""
        return RunIdentity(self._id, self._alternative_name, self._path, self._restarts)

    @property
    def sink(self) -> Sink:
        """The sink this run writes through now (for the rank layer: a fork child keeps its settings)."""
        return self._sink

    @property
    def late_join_key(self) -> str | None:
        """The key of the late join this run still waits for (its name and occurrence), else None."""
        late = self._late
        return late.key if late is not None and not late.done else None

    def forget_late_join(self) -> None:
        """Drop the late join: in a fork child a ForkedSink joins instead (it watches the parent's writer)."""
        self._late = None

    def relocate(self, place: RunPlace) -> None:
        """Move the run to ``place`` (id, folder name, folder): a fork child that found no job after all
        keeps a run of its own there. The restart count stays."""
        self._id, self._alternative_name, self._path = place.id, place.alternative_name, place.path

    def watch_signals(self) -> None:
        """Finish (or note) this run on SIGTERM/SIGINT/SIGHUP from now on; ``_finish`` stops the watch."""
        # The callback runs on em_dist's signal thread, never inside the handler (ranks/signals.py);
        # the handler itself only appends the signal's name to self.signals.
        self._watching_signals = signals.add_callback(self._on_signal, self._timings.signal_close_cap, self.signals)

    def detach_auto_uploader(self) -> None:
        """Forget the auto-uploader without stopping it: in a fork child it is the parent's (its thread
        stayed in the parent), and only the parent uploads its run."""
        self._auto_uploader = None

    def use_sink(self, sink: Sink) -> None:
        """Write through ``sink`` from now on (no metadata written: the at-fork hook calls this)."""
        self._sink = sink
        self._buffer = sink.buffer  # log()'s hot path reads these four without a call
        self._wake_at = sink.wake_at
        self._encode_at = sink.encode_at
        self._encode = sink.encode
        self._max_pending = sink.buffer.maxlen or 1 << 62
        self._max_output = min(self._output_bound, self._max_pending)

    def adopt_sink(self, sink: Sink, world: dict[str, Any]) -> None:
        """The engine started after create_run and made this process a rank (on the writer thread, or the
        forked sink's): write through ``sink`` as that rank and hand it the run's metadata at once."""
        self.world = world
        self.use_sink(sink)
        if world["rank"] != 0:
            self._rank0_known, self._rank0_wait = False, self._timings.peer_join_grace
        self._save_meta()

    def _adopt_rank0(self) -> None:
        # Decided once: the first read waits (bounded) for rank 0's announcement; later reads only
        # look whether it came meanwhile, so a run rank 0 never made costs one wait, not one per read.
        if self._rank0_known:
            return
        wait, self._rank0_wait = self._rank0_wait, 0.0
        doc = self._sink.rank0_run(wait)
        if doc is not None:
            self._id, self._alternative_name, self._path = doc["id"], doc["alternative_name"], Path(doc["path"])
            self._restarts = int(doc.get("restarts", 0))
            self._rank0_known = True

    # -- metrics ----------------------------------------------------------------------
    def log(self, type: str, metrics: Mapping[str, Any] | None = None, step: int | None = None,
            epoch: int | float | None = None) -> None:
        """Record ``metrics`` of kind ``type`` at ``step``; returns at once (a background thread writes).

        ``metrics`` and ``step`` are required; they default to None only so that a call of another
        tracker's shape (``run.log({"loss": 1.0})``) gets a TypeError that shows this call's shape.
        """
        t = TYPE_ALIASES.get(type) if type.__class__ is str else None
        if t is None or metrics is None or step is None:
            metrics, step = check_log_call(type, metrics, step)
            t = normalize_type(type)
        if step.__class__ is not int or not 0 <= step <= MAX_STEP:
            step = check_step(step)
        if epoch is not None and epoch.__class__ is not int:
            epoch = check_epoch(epoch)
        if metrics.__class__ is not dict and not isinstance(metrics, Mapping):
            raise TypeError(f"log(metrics=...) must be a dict of name -> number, got {metrics.__class__.__name__}")
        if not metrics:
            raise ValueError("log(metrics=...) must hold at least one metric")
        values = dict(metrics)  # a copy: the caller may reuse its dict
        known = self._known_names
        if not known.issuperset(values):
            for k in values:
                check_metric_name(k)
            known.update(values)
        for k, v in values.items():
            c = v.__class__
            if c is not float and (c is not int or not -MAX_FLOAT <= v <= MAX_FLOAT):
                values[k] = convert_value(k, v)  # same key: no resize during iteration
        if self._finished:
            warn_once(f"log-after-finish:{self._id}", f"em_dist: run {self.name!r} is finished; log() calls after finish() are ignored", 2)
            return
        buf = self._buffer
        rec: RecordTuple = (t, step, epoch, _now(), values)
        item: Record = rec
        n = len(buf)
        if n >= self._wake_at:
            if n >= self._encode_at and not has_device_values(rec):
                item = self._encode(rec)  # the writer is behind: hand it a finished line
            if n >= self._max_pending:
                self._sink.evicting()  # the append below evicts the oldest: counted, warned once
            elif not n & 1023:  # wake the writer early, but not on every call of a long backlog
                self._sink.wake()
        buf.append(item)
        if self.status == "Initializing":
            self._set_status("Running")

    def step(self, step: int) -> None:
        """Mark that this rank reached training ``step`` now (returns at once, like :meth:`log`).

        Step time and lag behind the other ranks are derived from the times of ``train``
        records; a script that logs less often than it steps marks its steps with this. It
        records the ``system`` metric ``step`` (its value is the step) in this rank's series.
        """
        self.log("system", {STEP_METRIC: step}, step)

    def flush(self, timeout: float = 10.0) -> bool:
        """Wait until everything logged so far is on disk (rank 0) or handed to the transport; True if it is."""
        try:
            return self._sink.flush(timeout)
        except Exception as exc:
            warn_once("flush", f"em_dist: flush failed: {exc!r}")
            return False

    # -- lineage ----------------------------------------------------------------------
    def mark_input(self, artifact: Artifact | ArtifactRecord | str | os.PathLike[str]) -> None:
        """Record that this run consumed ``artifact`` (a dataflow edge artifact -> run)."""
        self._mark(artifact, "input")

    def mark_output(self, artifact: Artifact | ArtifactRecord | str | os.PathLike[str]) -> None:
        """Record that this run produced ``artifact`` (a dataflow edge run -> artifact)."""
        self._mark(artifact, "output")

    def _mark(self, artifact: Any, role: str) -> None:
        if isinstance(artifact, (str, os.PathLike)):
            artifact = load_artifact(artifact)
        if not isinstance(artifact, (Artifact, ArtifactRecord)):
            raise TypeError(f"mark_{role} takes an Artifact (from em.create_artifact) or a saved artifact path, got {type(artifact).__name__}")
        if artifact.failed:
            missing = [f["path"] for f in artifact.failed]
            warn_once(f"incomplete-artifact:{artifact.id}:{role}", f"em_dist: artifact {artifact.name!r} marked as "
                      f"{role} of run {self.name!r} is incomplete: {len(missing)} file(s) were not copied "
                      f"({', '.join(missing[:5])}{', ...' if len(missing) > 5 else ''}); see its 'failed'.", 3)
        entry = {"id": artifact.id, "name": artifact.name, "path": str(artifact.path), "role": role}
        if entry not in self._artifacts:
            self._artifacts.append(entry)
            self._sink.write_artifacts(list(self._artifacts))

    def _artifact_created(self, artifact: Artifact) -> None:
        """Tell the sink about an artifact made while this run is live (non-zero ranks ship it)."""
        try:
            self._sink.artifact_created(Path(artifact.path))
        except Exception as exc:
            warn_once("artifact-ship", f"em_dist: artifact {artifact.name!r} will not reach rank 0 ({exc!r})")

    # -- end of the run ---------------------------------------------------------------
    def finish(self) -> None:
        """End the run as Succeeded: write everything and stop the background work."""
        self._finish("Succeeded", None)

    def __enter__(self) -> Run:
        return self

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> Literal[False]:
        if exc_type is None:
            self.finish()
        else:
            self._finish("Failed", f"exception: {exc_type.__name__}: {exc}")
        return False

    def _finish(self, status: str, reason: str | None, signalled: bool = False) -> None:
        # A non-blocking claim: the first caller finishes, any other waits (bounded) for it to be
        # done. Never a blocking acquire: a signal's finishing thread runs while the interrupted
        # thread may be anywhere, also in here.
        if not self._finish_lock.acquire(blocking=False):
            limit = self._timings.capped(self.dist_timeout, signalled)
            if signalled and reason:  # the process dies of it: the finish under way ends within the cap
                self._cut_short(reason)
            self._finish_done.wait(2 * limit + 1.0)  # e.g. the script ends while a signal is finishing the run
            return
        # Bounded: a note holds this lock only while it queues run.json; never taken in a handler.
        noted = self._note_lock.acquire(timeout=NOTE_LOCK_WAIT)
        self._finished = True
        if noted:
            self._note_lock.release()
        limit = self._timings.capped(self.dist_timeout, signalled)
        deadline = time.monotonic() + limit
        interrupted: BaseException | None = None
        try:
            if self._sampler is not None:  # before the sink ends: no record may follow its last cycle
                self._sampler.stop(min(limit, SAMPLER_STOP_WAIT))
            if self._continued_by_fork(limit):
                return
            joining = (self._late is not None and not self._late.done) or isinstance(self._sink, forked.ForkedSink)
            if joining and torch_ready():
                self._sink.flush(self._timings.signal_close_cap)  # let the writer's cycle join the job first
            if self._capturing:  # the last lines first: fds back, what was printed before now in the buffer
                self._capturing = False
                capture.stop(self._output_line, self._timings.capped(1.0, signalled))
            self.status, self.status_reason = status, reason
            self.end_timestamp = layout.iso_time(_now())
            self._sink.write_run(self._run_doc())  # a peer tells rank 0 why it failed
            report = self._sink.end(limit)  # a signal that comes meanwhile cuts its wait short (_cut_short)
            if report.interrupted is not None:  # the program's signal handler exits while rank 0 waits
                interrupted = report.interrupted
                self._cut_short(_interrupted_cause(interrupted, self.signals))
            self._take_end_cause()  # before _apply: lost ranks are added to the signal's reason
            self._apply(report)
            self._take_end_cause()
            attempts.end_attempt(self.attempts, self.end_timestamp, self.status, self.status_reason)
            self._refresh_platform()
            self._save_meta()
            self._sink.close(self._time_left(deadline, signalled, self.dist_timeout))
            if self._auto_uploader is not None:
                self._auto_uploader.stop(timeout=self._time_left(deadline, signalled, limit))
        except Exception as exc:  # finishing must never raise into the script
            warn_once("finish", f"em_dist: finishing run {self.name!r} hit {exc!r}; the data on disk is kept")
        finally:
            if self._watching_signals:
                signals.remove_callback(self._on_signal)
            lifecycle.unregister(self)
            self._finish_done.set()
        if interrupted is not None:  # recorded: now the program's handler has its way
            raise interrupted

    def _cut_short(self, cause: str) -> None:
        """A signal that ends the process came while another thread's finish is under way (rank 0
        waiting for a host that died or is cut off, say): that finish stops waiting for the other
        ranks within part of the signal's cap, records what it knows by then (late, lost and absent
        ranks, relays, nodes, delivery) with ``cause`` as how the run ended, and closes within the
        cap. Called on the signal's thread; never blocks."""
        if self._end_cause is None:
            self._end_cause = cause
        now = time.monotonic()
        cap = self._timings.signal_close_cap
        self._end_by = now + cap if self._end_by is None else min(self._end_by, now + cap)
        self._sink.hurry(now + cap * HURRY_SHARE)

    def _take_end_cause(self) -> None:
        """Once: a signal cut this finish short (:meth:`_cut_short`), so the run ended by it: a
        finish that would have Succeeded is Failed with ``signal: NAME``; any other reason gets
        ``; then signal: NAME`` (what ended it first stays first)."""
        cause = self._end_cause
        if cause is None or self._cause_taken:
            return
        self._cause_taken = True
        if self.status == "Succeeded":
            self.status, self.status_reason = "Failed", cause
        elif cause not in (self.status_reason or ""):
            self.status_reason = f"{self.status_reason}; then {cause}" if self.status_reason else cause

    def _time_left(self, deadline: float, signalled: bool, otherwise: float) -> float:
        """How long the finish's last steps may take: what is left of a signal's cap (at least 1 s
        when the finish is the signal's own; at least 0.5 s when a signal cut it short), else ``otherwise``."""
        now = time.monotonic()
        if signalled:
            return max(1.0, deadline - now)
        if self._end_by is not None:
            return max(0.5, min(otherwise, self._end_by - now))
        return otherwise

    def _continued_by_fork(self, timeout: float) -> bool:
        """True (and this process's writer retired) when ranks forked from this process made
        this run folder the job's Run (Lightning ``ddp_fork``): their rank 0 wrote it, not us."""
        if not isinstance(self._sink, RunWriter):
            return False
        doc = forked.taken_over(self._path)
        if doc is None:
            return False
        self._sink.retire(timeout)
        self.status, self.status_reason = doc.get("status", self.status), doc.get("status_reason")
        self.end_timestamp = doc.get("end_timestamp")
        self.world = doc.get("world", self.world)
        self.lost_ranks, self.late_ranks = doc.get("lost_ranks", []), doc.get("late_ranks", [])
        return True

    def _lifecycle_hooks(self) -> lifecycle.Hooks:
        """What :mod:`em_dist.lifecycle` calls on this run (at exit, at fork)."""
        return lifecycle.Hooks(finish=self._finish, after_fork=self._after_fork, settled=self._after_fork_settled)

    def _after_fork(self) -> bool:
        """In a fork child, from the at-fork hook: True if the child keeps this run (:mod:`em_dist.ranks.forked`)."""
        return forked.after_fork(self)

    def _after_fork_settled(self) -> None:
        """In a multiprocessing child after its set-up: a kept run starts watching for the engine."""
        if isinstance(self._sink, forked.ForkedSink):
            self._sink.start()

    def _apply(self, report: EndReport) -> None:
        """Record what the end of a multi-rank run found: absent and lost ranks, peers' failures."""
        world = dict(self.world)
        if report.absent_ranks:
            world["absent_ranks"] = report.absent_ranks
        world["backend"] = report.backend or world.get("backend")
        if report.transport:
            world["transport"] = report.transport
        if report.relayed_by:
            world["relayed_by"] = {str(r): leader for r, leader in sorted(report.relayed_by.items())}
        if report.hosts and world.get("size", 1) > 1:
            world["nodes"] = report.hosts
        self.world = world
        failures = report.peer_failures
        if failures and self.status == "Succeeded":
            first = min(failures)
            self.status, self.status_reason = "Failed", f"rank {first}: {failures[first]}"
        elif (self.status_reason or "").startswith("signal:"):
            # The launcher stops every rank once one failed: a peer's own failure (not the same
            # signal) is the cause, and it comes first.
            causes = {r: why for r, why in failures.items() if not why.startswith("signal:")}
            if causes:
                first = min(causes)
                self.status_reason = f"rank {first}: {causes[first]}; then rank 0: {self.status_reason}"
        if report.delivery:
            self.delivery = {str(r): e for r, e in sorted(report.delivery.items())}
            missing = {r: e.get("journal", "its journal") for r, e in report.delivery.items() if not e["complete"]}
            if missing:
                warn_once(f"incomplete-ranks:{self._id}", f"em_dist: not every record of ranks {sorted(missing)} is in run "
                          f"{self.name!r} yet; the rest is in their journals ({missing}). Each rank merges its "
                          "journal at its own end when it sees this run's folder; else run `em run merge "
                          f"{self._path}` where the journal is.")
        drops = {r: d for r, d in report.peer_drops.items() if d}
        own = self._sink.drops()
        if own:
            drops[int(self.world.get("rank", 0))] = own
        if drops:
            self.dropped = {str(r): drops[r].doc() for r in sorted(drops)}
            warn_once(f"dropped:{self._id}", f"em_dist: run {self.name!r} dropped records to bound memory (rank: counts): "
                      f"{self.dropped}; they are counted in run.json's 'dropped'. A larger max_pending, or "
                      "logging less often, keeps them.")
        if report.late_ranks:
            self.late_ranks = report.late_ranks
            warn_once("late-ranks", f"em_dist: ranks {self.late_ranks} were still running when this run ended "
                      f"(dist_timeout={self.dist_timeout:.0f}s); what they sent before is kept, what came later "
                      "stays in a run of their own.")
        if report.lost_ranks:
            self.lost_ranks = report.lost_ranks
            warn_once("lost-ranks", f"em_dist: ranks {self.lost_ranks} did not finish their run; "
                      "what they sent before is kept.")
            if self.status == "Succeeded":
                self.status, self.status_reason = "Failed", f"lost ranks: {self.lost_ranks}"
            elif self.status_reason and "lost ranks" not in self.status_reason:
                self.status_reason = f"{self.status_reason}; lost ranks: {self.lost_ranks}"

    def _on_signal(self, name: str, ends: bool) -> None:
        """SIGTERM/SIGINT/SIGHUP, on em_dist's signal thread (never inside the handler), while
        the training thread goes on (:mod:`em_dist.ranks.signals`).

        ``ends``: nobody else handles the signal and the process dies of it: finish as Failed,
        with every wait capped (a finish already under way is waited for instead, bounded).
        Otherwise the program handles it and decides how the run ends: note the signal in
        run.json and flush what was logged, so a SIGKILL after the grace period loses nothing.
        """
        if not ends:
            self._note_signal(name)
            return
        from .artifact import discard_partial

        discard_partial()  # the process dies of it: no copy in progress stays half-written
        # The training thread logs on until the signal is handed on: silence its warning. _id, not
        # id: on a peer that property may wait for rank 0, and this is the signal's thread.
        silence(f"log-after-finish:{self._id}")
        self._finish("Failed", f"signal: {name}", signalled=True)

    def _note_signal(self, name: str) -> None:
        """Record that ``name`` came (once per signal) and make what was logged durable (bounded)."""
        if not self._note_lock.acquire(timeout=NOTE_LOCK_WAIT):
            return
        try:
            if self._finished:
                return  # the finish writes run.json from here on, and it holds self.signals
            if name not in self.signals:  # the handler appended it, unless this run was made since
                self.signals.append(name)
            self._sink.write_run(self._run_doc())
        finally:
            self._note_lock.release()
        self._sink.flush(self._timings.signal_close_cap)

    # -- upload -----------------------------------------------------------------------
    def _upload_journal(self, folder: str | None, make_folder: bool | None, folder_id: str | None,
                        host: str | None, api_key: str | None) -> Any:
        """A non-zero rank: what rank 0 never acknowledged is in this rank's journal on this host; send
        it to the run on the server (merged once by number). None when there is none (rank 0 has all)."""
        from .client.upload_journal import upload_journal
        from .errors import NotLoggedInError, RunFormatError, ServerError
        from .store import journal as journals

        rank = int(self.world.get("rank", 0))
        mine = [p for p in journals.journals_of(self.id, Path(self.path).parent)
                if journals.read_meta(p).get("rank") == rank]
        results = []
        for path in mine:
            try:
                results.append(upload_journal(path, folder=folder if folder is not None else self.folder,
                                              folder_id=folder_id if folder_id is not None else self.folder_id,
                                              make_folder=self.make_folder if make_folder is None else bool(make_folder),
                                              host=host, api_key=api_key))
            except (ServerError, NotLoggedInError, RunFormatError, OSError) as exc:
                warn_once(f"upload-journal:{self.id}", f"em_dist: upload of rank {rank}'s journal of run {self.name!r} "
                          f"failed ({exc}); it is kept at {path}. Retry with: em run upload -p {path}", 3)
                return None
        return results or None

    def upload(
        self,
        folder: str | None = None,
        make_folder: bool | None = None,
        conflict_strategy: str | None = None,
        *,
        folder_id: str | None = None,
        host: str | None = None,
        api_key: str | None = None,
    ) -> Any:
        """Send the run with its hparams, platform, metrics and marked artifacts to the server (``em.login`` first).

        Goes to ``folder`` if named, else to the folder given at ``create_run``. On success it prints
        the run's console address. A folder that does not exist (and ``make_folder`` not set) raises
        :class:`~em_dist.errors.NotFoundError`, as ``em.upload`` does: no retry could fix it. A server
        that can't be reached is warned about, not raised: the run stays on disk and the warning names
        the command that sends it later, to the same folder.
        """
        if self.world.get("rank", 0) != 0:  # rank 0 uploads the one run of the job; a rank its journal
            return self._upload_journal(folder, make_folder, folder_id, host, api_key)
        from .client.upload import upload_run
        from .errors import ServerError, NotFoundError, NotLoggedInError

        if not self._finished:
            self.flush()
        if folder is not None or folder_id is not None:
            where, where_id = folder if folder is not None else self.folder, folder_id
        else:
            where, where_id = self.folder, self.folder_id
        make = self.make_folder if make_folder is None else bool(make_folder)
        try:
            result = upload_run(
                self.path,
                folder=where,
                folder_id=where_id,
                make_folder=make,
                conflict_strategy=conflict_strategy or self.conflict_strategy,  # upload_run checks it
                host=host,
                api_key=api_key,
            )
        except NotFoundError:
            raise  # a missing folder: retrying the same upload can't help (em.upload raises it too)
        except (ServerError, NotLoggedInError, OSError) as exc:
            retry = ["em", "run", "upload", "-p", str(self.path)]
            retry += ["--folder-id", where_id] if where_id else ["--folder", where]
            retry += ["--make-folder"] if make else []
            warn_once(
                f"upload:{self.id}",
                f"em_dist: upload of run {self.name!r} failed ({exc}); the run is kept at {self.path}. "
                f"Retry with: {shlex.join(retry)}",
                2,
            )
            return None
        self.uploads.append(result)
        if not result.skipped:
            notice(f"run {self.name!r} uploaded to folder {result.folder!r}: {result.url}")
        return result

    # -- internals --------------------------------------------------------------------
    def __repr__(self) -> str:
        return f"Run(name={self.name!r}, status={self.status!r}, path={str(self._path)!r})"

    def _set_status(self, status: str) -> None:
        self.status = status
        self._sink.write_run(self._run_doc())

    def _hparams_changed(self, data: dict[str, Any]) -> None:
        if self._finished:  # the run folder is closed: say so rather than drop the change unseen
            warn_once(f"hparams-after-finish:{self._id}",
                      f"em_dist: run {self.name!r} is finished; hparams set after finish() are not recorded "
                      "(set them before finish())", 5)
            return
        self._sink.write_hparams(data)

    def _run_doc(self) -> dict[str, Any]:
        return {
            "format_version": layout.FORMAT_VERSION,
            "id": self._id,
            "name": self.name,
            "alternative_name": self._alternative_name,
            "labels": self.labels,
            "description": self.description,
            "status": self.status,
            "status_reason": self.status_reason,
            "start_timestamp": self.start_timestamp,
            "end_timestamp": self.end_timestamp,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "folder": self.folder,
            "folder_id": self.folder_id,
            "make_folder": self.make_folder,
            "conflict_strategy": self.conflict_strategy,
            "auto_upload": self.auto_upload,
            "world": self.world,
            "lost_ranks": self.lost_ranks,
            "late_ranks": self.late_ranks,
            "signals": list(self.signals),  # a copy: the signal handler may append while this is written
            "dropped": self.dropped,
            "delivery": self.delivery,
            "restarts": self._restarts,
            "attempts": self.attempts,
            # the id every rank derived for this create_run: what a rank with no engine looks for
            # when rank 0 gave the run a fresh id (docs/format.md)
            "job_key": None if self._meeting_key.startswith("anon/") else self._meeting_key,
        }

    def _save_meta(self) -> None:
        self._sink.write_run(self._run_doc())
        self._sink.write_hparams(self.hparams.saved())
        self._sink.write_platform(self.world, self.platform)
        if self.git is not None:
            self._sink.write_git(self.git)
        if self._artifacts:  # marked while a forked/spawned rank had not joined yet: that sink kept none
            self._sink.write_artifacts(list(self._artifacts))

    def _probe_platform(self) -> None:
        try:
            from .platform import collect_git, collect_platform

            self.platform = collect_platform(self.world.get("local_rank"))
            self.git = collect_git()
        except Exception as exc:  # a probe must never stop a run from starting
            warn_once("platform", f"em_dist: platform probe failed ({exc!r}); the run goes on without it")

    def _refresh_platform(self) -> None:
        """Facts of libraries the script imported after ``create_run`` (torch, mpi4py), probed at the end."""
        try:
            from .platform.probe import mpi_fields, torch_fields

            if self.platform.get("torch") is None and "torch" in sys.modules:
                self.platform.update(torch_fields(self.world.get("local_rank")))
            if self.platform.get("mpi") is None and "mpi4py.MPI" in sys.modules:
                self.platform["mpi"] = mpi_fields()
        except Exception as exc:  # noqa: BLE001 - a probe must never stop a run from ending
            warn_once("platform-end", f"em_dist: platform probe at the end failed ({exc!r})")

    def _start_sampler(self, interval: float, world: WorldInfo) -> None:
        try:
            self._sampler = SystemSampler(interval, self._emit_system, lambda: self._sink.step_mark,
                                          local_rank=world.local_rank, host=world.local_rank == 0)
            self._sampler.start()
        except Exception as exc:  # noqa: BLE001 - a sampler must never stop a run from starting
            warn_once("system-metrics-start", f"em_dist: system metrics could not start ({exc!r})")
            self._sampler = None

    def _emit_system(self, sample: int, t: float, metrics: dict[str, Any]) -> None:
        """The sampler's record, on its thread: appended like a log() record (deque appends are atomic)."""
        if not self._finished:
            buf = self._buffer
            if len(buf) >= self._max_pending:
                self._sink.evicting()
            buf.append(("system", sample, None, t, metrics))

    def _start_auto_upload(self) -> None:
        try:
            from .client.sync import AutoUploader
            from .client.target import UploadTarget

            target = UploadTarget(self.folder, self.folder_id, self.make_folder)
            self._auto_uploader = AutoUploader(self.path, target, conflict_strategy=self.conflict_strategy)
            self._auto_uploader.start()
        except Exception as exc:
            warn_once("auto-upload", f"em_dist: auto_upload could not start ({exc}); the run is recorded locally only")
            self._auto_uploader = None
            return
        try:
            from .client.auth import resolve

            host = resolve().host
        except Exception:  # noqa: BLE001 - not logged in: the uploader's first pass says so, once
            return
        notice(f"run {self.name!r} syncs live to {console_url(host, self.id)}")


def create_run(
    config_path: str | os.PathLike[str] | None = None,
    name: str = "default",
    hparams: Mapping[str, Any] | None = None,
    labels: list[str] | None = None,
    description: str = "",
    auto_upload: bool | None = None,
    folder: str = "default",
    make_folder: bool = False,
    conflict_strategy: str = "new",
    *,
    folder_id: str | None = None,
    dist_timeout: float | None = None,
    flush_interval: float | None = None,
    max_pending: int | None = None,
    id: str | None = None,
    resume: str | None = None,
    system_metrics_interval: float | None = None,
    capture_output: bool | None = None,
    max_output: int | None = None,
) -> Run:
    """Start a run: a local run folder now, every ``log()`` written in the background, uploadable later.

    The positional order is the original SDK's (``config_path`` first); pass the rest by
    keyword. ``config_path`` names a YAML file with any of these keys; an argument left at its
    default takes the file's value. Under a distributed launcher every rank calls this; rank 0 owns the run.

    ``id`` and ``resume`` continue a run: ``resume="allow"`` (the default when ``id`` is given, and
    for a job restarted by its launcher) appends to the run with that id if it exists,
    ``"must"`` raises ``ValueError`` when it does not, ``"never"`` when it does.

    ``system_metrics_interval`` (else ``$EM_SYSTEM_METRICS_INTERVAL``, else 10) is the seconds
    between samples of each rank's system metrics (type ``system``); 0 turns them off.

    ``capture_output`` (default on, or ``$EM_CAPTURE_OUTPUT``): what the process writes to
    stdout and stderr is still shown and also saved, per rank, in ``logs/rank-<r>.log`` of
    rank 0's run folder (:mod:`em_dist.capture`). ``max_output`` (default 100,000) is the output's
    own bound: a line printed while that many records wait is dropped and counted (run.json's
    ``dropped``), so printing never evicts a metric record.
    """
    args: dict[str, Any] = dict(
        name=name, hparams=hparams, labels=labels, description=description, folder=folder,
        make_folder=make_folder, conflict_strategy=conflict_strategy, auto_upload=auto_upload,
    )
    if config_path is not None:
        args = _apply_config(args, Path(config_path))
    run = Run(
        args["name"],
        labels=args["labels"],
        description=args["description"],
        folder=args["folder"],
        folder_id=folder_id,
        make_folder=args["make_folder"],
        conflict_strategy=args["conflict_strategy"],
        auto_upload=args["auto_upload"],
        dist_timeout=dist_timeout,
        flush_interval=flush_interval,
        max_pending=max_pending,
        id=id,
        resume=resume,
        system_metrics_interval=system_metrics_interval,
        capture_output=capture_output,
        max_output=max_output,
    )
    if args["hparams"]:
        run.hparams.update(args["hparams"])
    return run


_DEFAULTS = dict(
    name="default", hparams=None, labels=None, description="", folder="default",
    make_folder=False, conflict_strategy="new", auto_upload=None,
)


def _apply_config(args: dict[str, Any], path: Path) -> dict[str, Any]:
    import yaml

    if not path.is_file():
        hint = (f" create_run's first argument is config_path, as in the original SDK: did you mean "
                f"create_run(name={str(path)!r})?" if path.suffix not in (".yaml", ".yml") else "")
        raise FileNotFoundError(f"create_run(config_path=...): no such file: {path}.{hint}")
    with open(path, encoding="utf-8") as f:
        doc = yaml.safe_load(f) or {}
    if not isinstance(doc, dict):
        raise ValueError(f"{path}: the config file must be a YAML mapping of create_run arguments")
    unknown = set(doc) - set(_DEFAULTS)
    if unknown:
        raise ValueError(f"{path}: unknown keys {sorted(unknown)}; allowed: {sorted(_DEFAULTS)}")
    return {k: (doc[k] if k in doc and args[k] == _DEFAULTS[k] else args[k]) for k in args}


SAMPLER_STOP_WAIT = 2.0
"""The most ``finish()`` waits for the system sampler's thread (one reading is milliseconds)."""

def _interrupted_cause(exc: BaseException, arrived: list[str]) -> str:
    """How a run ended whose finish a signal handler of the program interrupted with ``exc``: the
    signal (the last that came), then a non-zero exit code; ``exception: KeyboardInterrupt`` when no
    signal was seen (em_dist's handler not installed)."""
    cause = f"signal: {arrived[-1]}" if arrived else f"exception: {type(exc).__name__}"
    if isinstance(exc, SystemExit) and exc.code not in (None, 0):
        cause += f"; then exit code: {exc.code}"
    return cause


HURRY_SHARE = 0.5
"""When a signal cuts a finish short, the share of ``signal_close_cap`` left for the other ranks' last
goodbyes; the rest is for writing and closing the run before the process dies of the signal."""

NOTE_LOCK_WAIT = 1.0
"""The most a signal's note and a finish wait for each other's hold of run.json (a queue append)."""


DEFAULT_MAX_OUTPUT = 100_000
"""Records waiting past which a captured output line is dropped (counted) instead of buffered."""


def _output_bound(max_output: int | None) -> int:
    """``max_output`` checked (a positive int), or the default."""
    if max_output is None:
        return DEFAULT_MAX_OUTPUT
    if isinstance(max_output, bool) or not isinstance(max_output, int):
        raise TypeError(f"max_output must be an int, got {max_output!r}")
    if max_output < 1:
        raise ValueError(f"max_output must be at least 1, got {max_output}")
    return max_output


def _capture_wanted(capture_output: bool | None) -> bool:
    """``capture_output`` as given, else ``$EM_CAPTURE_OUTPUT`` (``0`` / ``false`` / ``no`` / ``off`` turn it off),
    else on, except in an interactive session and inside pytest's own fd capture (``capfd``; asking for it
    either way still captures)."""
    if capture_output is not None:
        if not isinstance(capture_output, bool):
            raise TypeError(f"capture_output must be True or False, got {capture_output!r}")
        return capture_output
    asked = os.environ.get("EM_CAPTURE_OUTPUT")
    if asked is not None and asked.strip():
        return asked.strip().lower() not in ("0", "false", "no", "off")
    # An interactive session (the REPL, python -i): its prompts and echo are the terminal's, not the
    # run's output, and a REPL whose stderr became a pipe loses its line editing. Asked for, it captures.
    if hasattr(sys, "ps1") or sys.flags.interactive:
        return False
    return not capture.pytest_capturing()
