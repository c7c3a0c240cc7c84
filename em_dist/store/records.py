"""What a saved run reads back as: plain dataclasses shared by the local reader and the server client."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, TypedDict

from ..observe.process import HOST_METRICS
from ..observe.steps import rank_timing, reach_times
from .lines import aggregate_across_ranks


class _MetricPointKeys(TypedDict):
    type: str
    name: str
    value: int | float
    step: int
    epoch: int | None
    rank: int
    time: float | None


class MetricPoint(_MetricPointKeys, total=False):
    """One metric value of one record: what :meth:`RunRecord.metrics` lists."""

    attempt: int
    """Which start of the run logged it (absent in points read from a server)."""


@dataclass
class ArtifactRef:
    """An artifact as a run sees it: which one, where, and whether the run consumed or produced it."""

    id: str
    name: str
    path: str | None
    role: str  # "input" | "output"
    files: list[dict[str, Any]] = field(default_factory=list)
    failed: list[dict[str, Any]] = field(default_factory=list)
    """Files that were not copied into the artifact (``path``, ``source``, ``reason``): it is incomplete."""


@dataclass
class ArtifactRecord:
    """A saved artifact."""

    id: str
    name: str
    alternative_name: str
    path: str | None
    labels: list[str]
    description: str
    created_timestamp: str | None
    files: list[dict[str, Any]]
    references: list[dict[str, Any]]
    failed: list[dict[str, Any]] = field(default_factory=list)
    """Files that were not copied into the artifact (``path``, ``source``, ``reason``): it is incomplete."""


@dataclass(frozen=True)
class MediaEntry:
    """One logged media value (``em.Histogram``, ``em.Image``, ``em.Table``, ``em.Text``): what
    :meth:`RunRecord.media` lists. The fields of other kinds are None."""

    kind: str
    """``histogram``, ``image``, ``table`` or ``text``."""
    type: str
    name: str
    step: int
    epoch: int | float | None
    rank: int
    time: float | None
    path: str | None = None
    """An image: its PNG file (``<run>/media/<sha256>.png``); None for a run read from a server
    (:meth:`image_bytes` fetches it)."""
    sha256: str | None = None
    """An image: the sha256 of its PNG."""
    caption: str | None = None
    width: int | None = None
    height: int | None = None
    bins: list[float] | None = None
    """A histogram: the bin edges (one more than ``counts``)."""
    counts: list[int] | None = None
    nonfinite: int | None = None
    """A histogram: values left out of the bins (NaN, infinities)."""
    columns: list[str] | None = None
    rows: list[list[Any]] | None = None
    text: str | None = None
    fetch: Callable[[], bytes] | None = field(default=None, repr=False, compare=False)
    """An image read from a server: what :meth:`image_bytes` calls (None otherwise)."""

    def image_bytes(self) -> bytes:
        """An image's PNG: read from the run folder, or fetched from the server (a run read with
        ``em.Client``). ValueError for another kind."""
        if self.kind != "image":
            raise ValueError(f"a {self.kind} has no image bytes")
        if self.path is not None:
            with open(self.path, "rb") as f:
                return f.read()
        if self.fetch is None:
            raise ValueError(f"image {self.name!r} has neither a file nor a server to fetch it from")
        return self.fetch()


READER_FIELDS = ("points", "output", "media_reader")
"""The fields of :class:`RunRecord` that read data on demand (functions, or points read already):
what a summary of the run's metadata (``em run list --json``, ``em run show --json``) leaves out."""


@dataclass
class RunRecord:
    """A saved run: metadata, hparams, platform, lineage and every metric point of every rank."""

    id: str
    name: str
    alternative_name: str
    path: str | None
    status: str
    status_reason: str | None = None
    labels: list[str] = field(default_factory=list)
    description: str = ""
    start_timestamp: str | None = None
    end_timestamp: str | None = None
    hparams: dict[str, Any] = field(default_factory=dict)
    rank_hparams: dict[int, dict[str, Any]] = field(default_factory=dict)
    platform: dict[str, Any] = field(default_factory=dict)
    git: dict[str, Any] | None = None
    world: dict[str, Any] = field(default_factory=dict)
    lost_ranks: list[int] = field(default_factory=list)
    late_ranks: list[int] = field(default_factory=list)
    """Ranks alive but not finished when the run ended (their later records are not in it)."""
    signals: list[str] = field(default_factory=list)
    """Signals that came while the run was live (``["SIGTERM"]``); the program decided how the run ended."""
    dropped: dict[str, dict[str, int]] = field(default_factory=dict)
    """Rank -> ``{records, output_lines}`` it accepted and dropped to bound memory (absent: none)."""
    delivery: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Rank -> where its records are: ``{records, complete}`` and, for a rank whose records are not all
    in the run yet, ``journal`` (the rank's journal, merged later by ``em run merge``)."""
    restarts: int = 0
    """How many times a restarted job continued this run."""
    attempts: list[dict[str, Any]] = field(default_factory=list)
    """One entry per start: ``{start, end, world_size, status, reason}``."""
    artifacts: list[ArtifactRef] = field(default_factory=list)
    points: list[MetricPoint] | Callable[[], list[MetricPoint]] = field(default_factory=list, repr=False)
    output: Callable[[int | None, int | None], list[dict[str, Any]]] | None = field(default=None, repr=False)
    """Reads captured output: ``(rank, tail) -> lines`` (the run folder's logs, or the server's)."""
    media_reader: Callable[[int | None], list[MediaEntry]] | None = field(default=None, repr=False)
    """Reads media records: ``rank -> entries`` (the run folder's, or the server's)."""

    def _all_points(self) -> list[MetricPoint]:
        if callable(self.points):
            self.points = self.points()
        return self.points

    def metrics(self, type: str | None = None, name: str | None = None, rank: int | None = None) -> list[MetricPoint]:
        """Metric points as dicts ``{type, name, value, step, epoch, rank, time, attempt}``, in logging order per rank."""
        return [
            p
            for p in self._all_points()
            if (type is None or p["type"] == type)
            and (name is None or p["name"] == name)
            and (rank is None or p["rank"] == rank)
        ]

    def dataframe(self, type: str | None = None, name: str | None = None, rank: int | None = None) -> Any:
        """The points :meth:`metrics` lists, as a ``pandas.DataFrame`` with one row per point and the
        columns ``type, name, rank, step, epoch, value, time, attempt`` (pandas is the optional extra
        ``em_dist[dataframe]``). One column per series:
        ``df.pivot_table(index="step", columns=["name", "rank"], values="value")``."""
        from ..frames import points_frame

        return points_frame(self.metrics(type=type, name=name, rank=rank))

    def logs(self, rank: int | None = None, tail: int | None = None) -> list[dict[str, Any]]:
        """What the ranks printed: lines ``{rank, time, stream, text}`` (stream ``out``, ``err``, or ``em``
        for a marker of dropped output), of one rank in the order printed or of all ranks by time;
        ``tail`` keeps each rank's last lines. Empty when the run captured no output."""
        return [] if self.output is None else self.output(rank, tail)

    def media(self, type: str | None = None, name: str | None = None, rank: int | None = None) -> list[MediaEntry]:
        """Logged media values (histograms, images, tables, texts), rank by rank in the order logged.
        For a run read from a server, what its uploads sent (an image's :meth:`MediaEntry.image_bytes`
        fetches the PNG)."""
        if self.media_reader is None:
            return []
        return [m for m in self.media_reader(rank)
                if (type is None or m.type == type) and (name is None or m.name == name)]

    def host_metrics(self, name: str | None = None) -> dict[str, list[MetricPoint]]:
        """The host metrics (``host_*``, ``disk_*``, ``net_*``; each host's local rank 0 samples them),
        by host name from the ranks' platform entries (``rank <r>`` for a rank without one)."""
        ranks = self.platform.get("ranks") or {}
        out: dict[str, list[MetricPoint]] = {}
        for p in self.metrics(type="system", name=name):
            if p["name"] in HOST_METRICS:
                entry = ranks.get(str(p["rank"])) or {}
                out.setdefault(str(entry.get("host") or f"rank {p['rank']}"), []).append(p)
        return out

    def ranks(self) -> list[int]:
        """The ranks that reported at least one point."""
        return sorted({p["rank"] for p in self._all_points()})

    def cross_rank(self, type: str | None = None, name: str | None = None) -> list[dict[str, Any]]:
        """Mean/min/max across ranks per (type, name, step), by the one rule of :func:`em_dist.store.lines.aggregate_across_ranks`."""
        return aggregate_across_ranks(self.metrics(type=type, name=name))

    def rank_timing(self) -> dict[str, Any]:
        """Step time per rank, lag behind the first rank and the slowest rank, by the rule of :mod:`em_dist.observe.steps`."""
        return rank_timing(reach_times(self._all_points()))
