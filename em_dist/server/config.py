"""Server settings: where data lives and how big a request may be."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from em_dist.limits import MAX_JSON_BYTES, MAX_METRICS_CHUNK_BYTES


def default_data_dir() -> Path:
    """``~/.em/server``, resolved through ``Path.home()`` so tests can set HOME."""
    return Path.home() / ".em" / "server"


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one server instance.

    ``db_url`` defaults to SQLite at ``<data_dir>/em.db``; blobs always live under
    ``<data_dir>/blobs``.
    """

    data_dir: Path
    db_url: str | None = None
    max_json_bytes: int = MAX_JSON_BYTES
    max_metrics_chunk_bytes: int = MAX_METRICS_CHUNK_BYTES

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL, with ``postgresql://`` mapped to the psycopg 3 driver."""
        if self.db_url is None:
            return f"sqlite:///{self.data_dir / 'em.db'}"
        return normalize_db_url(self.db_url)

    @property
    def blob_dir(self) -> Path:
        return self.data_dir / "blobs"

    @classmethod
    def build(cls, data_dir: str | Path | None = None, db_url: str | None = None) -> "ServerConfig":
        """Config from CLI-style arguments (``None`` means the default)."""
        return cls(data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(), db_url=db_url)


def normalize_db_url(url: str) -> str:
    """Map ``postgresql://`` / ``postgres://`` to ``postgresql+psycopg://`` (psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
