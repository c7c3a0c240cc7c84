"""Server settings: where data lives and how big a request may be."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from em_dist.limits import MAX_JSON_BYTES, MAX_METRICS_CHUNK_BYTES
from em_dist.server.base_path import normalize_root_path

DEFAULT_LOST_AFTER_S = 600.0
"""A live run silent this long shows as lost (the auto-uploader sends every 5 s by default)."""


def default_data_dir() -> Path:
    """``~/.em/server``, resolved through ``Path.home()`` so tests can set HOME."""
    return Path.home() / ".em" / "server"


@dataclass(frozen=True)
class ServerConfig:
    """Settings of one server instance.

    ``db_url`` defaults to SQLite at ``<data_dir>/em.db``; ``blobs`` (a directory or
    ``s3://bucket/prefix``) defaults to ``<data_dir>/blobs``; ``s3_endpoint_url`` names a
    non-AWS S3 endpoint (otherwise boto3's ``AWS_ENDPOINT_URL``, or AWS itself).
    """

    data_dir: Path
    db_url: str | None = None
    blobs: str | None = None
    s3_endpoint_url: str | None = None
    max_json_bytes: int = MAX_JSON_BYTES
    max_metrics_chunk_bytes: int = MAX_METRICS_CHUNK_BYTES
    lost_after_s: float = DEFAULT_LOST_AFTER_S
    root_path: str = ""
    """A path prefix the server answers under (``/t9k/experiment/server``): see :mod:`em_dist.server.base_path`."""

    @property
    def database_url(self) -> str:
        """The SQLAlchemy URL, with ``postgresql://`` mapped to the psycopg 3 driver."""
        if self.db_url is None:
            return f"sqlite:///{self.data_dir / 'em.db'}"
        return normalize_db_url(self.db_url)

    @property
    def blob_location(self) -> str:
        """Where blobs live: ``blobs`` when given, else ``<data_dir>/blobs``."""
        return self.blobs or str(self.data_dir / "blobs")

    @classmethod
    def build(cls, data_dir: str | Path | None = None, db_url: str | None = None, *, blobs: str | None = None,
              s3_endpoint_url: str | None = None, root_path: str | None = None) -> "ServerConfig":
        """Config from CLI-style arguments (``None`` means the default); ``EM_LOST_AFTER_S`` sets
        how long a live run may stay silent before it shows as lost."""
        return cls(data_dir=Path(data_dir).expanduser() if data_dir else default_data_dir(), db_url=db_url,
                   blobs=blobs or None, s3_endpoint_url=s3_endpoint_url or None, lost_after_s=lost_after_from_env(),
                   root_path=normalize_root_path(root_path))


def lost_after_from_env() -> float:
    """``EM_LOST_AFTER_S`` as seconds (> 0), or the default when unset or not a positive number."""
    try:
        value = float(os.environ.get("EM_LOST_AFTER_S", DEFAULT_LOST_AFTER_S))
    except ValueError:
        return DEFAULT_LOST_AFTER_S
    return value if value > 0 else DEFAULT_LOST_AFTER_S


def normalize_db_url(url: str) -> str:
    """Map ``postgresql://`` / ``postgres://`` to ``postgresql+psycopg://`` (psycopg 3)."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix):]
    return url
