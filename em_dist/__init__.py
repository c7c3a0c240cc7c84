"""em_dist: experiment tracking that knows it runs inside a distributed training job.

    import em_dist as em
    run = em.create_run(name="mnist")
    run.hparams.update({"lr": 1e-3})
    run.log(type="train", metrics={"loss": 0.3}, step=10, epoch=1)
    run.finish()
"""

from typing import Any as _Any

from .artifact import Artifact, create_artifact
from .errors import (
    AuthenticationError,
    ConflictError,
    EMError,
    EMWarning,
    NotFoundError,
    NotLoggedInError,
    PermissionDeniedError,
    RunFormatError,
    ServerError,
    ServerUnreachableError,
)
from .media import Histogram, Image, Table, Text
from .run import Run, create_run
from .store.reader import list_runs, load_artifact, load_run
from .store.records import ArtifactRecord, ArtifactRef, MediaEntry, RunRecord
from .trial import Trial, create_trial

__version__ = "0.1.0"


def login(host: str | None = None, api_key: str | None = None, timeout: float | None = None, *, ais_host: str | None = None) -> None:
    """Check ``api_key`` against the server at ``host`` and remember both for this process (see README)."""
    from .client.auth import login as _login

    _login(host=host, api_key=api_key, timeout=timeout, ais_host=ais_host)


def logout() -> None:
    """Forget the host and key of this process and the config file."""
    from .client.auth import logout as _logout

    _logout()


def upload(path: _Any, folder: str | None = None, make_folder: bool | None = None, conflict_strategy: str = "new", **kwargs: _Any) -> _Any:
    """Upload a saved run folder, or every run under a parent folder, with its artifacts."""
    from .client.upload import upload as _upload

    return _upload(path, folder=folder, make_folder=make_folder, conflict_strategy=conflict_strategy, **kwargs)


def __getattr__(name: str) -> _Any:
    if name == "Client":  # imported on first use: the HTTP client is not needed to train
        from .client.read import Client

        return Client
    raise AttributeError(f"module 'em_dist' has no attribute {name!r}")


__all__ = [
    "Artifact",
    "ArtifactRecord",
    "ArtifactRef",
    "AuthenticationError",
    "Client",
    "ConflictError",
    "EMError",
    "EMWarning",
    "Histogram",
    "Image",
    "MediaEntry",
    "NotFoundError",
    "NotLoggedInError",
    "PermissionDeniedError",
    "Run",
    "RunFormatError",
    "RunRecord",
    "ServerError",
    "ServerUnreachableError",
    "Table",
    "Text",
    "Trial",
    "create_artifact",
    "create_run",
    "create_trial",
    "list_runs",
    "load_artifact",
    "load_run",
    "login",
    "logout",
    "upload",
]
