"""The one exception tree of em_dist.

Every error em_dist raises on purpose derives from :class:`EMError`, except misuse
at a call site, which raises the built-in ``TypeError``/``ValueError``/``FileNotFoundError``
a Python user expects.
"""

from __future__ import annotations


class EMError(Exception):
    """Base class of every em_dist error."""


class RunFormatError(EMError):
    """A run or artifact folder is missing, unreadable or of an unknown format version."""


class NotLoggedInError(EMError):
    """An operation needs a server, but neither ``em.login`` nor a config file gave one."""


class ServerError(EMError):
    """The server answered with an error; ``status_code`` and the server's message say which."""

    def __init__(self, message: str, status_code: int | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code


class AuthenticationError(ServerError):
    """The server refused the API key (missing, wrong or revoked)."""


class PermissionDeniedError(ServerError):
    """The API key is valid but the object belongs to someone else."""


class NotFoundError(ServerError):
    """The server has no such folder, run or artifact."""


class ConflictError(ServerError):
    """The folder already holds a run of that name and ``conflict_strategy='error'`` was asked for."""


class ServerUnreachableError(ServerError):
    """The server could not be reached (refused, timed out, DNS) after retries."""


class CommandError(EMError):
    """An ``em`` command could not do what was asked (nothing to upload, missing extras, a bad admin request)."""


class DistributedError(EMError):
    """The distributed transport failed to set up; the run falls back to local-only recording."""


class WireVersionError(DistributedError):
    """Two ranks of a job run em_dist versions whose wire encodings differ: they refuse each other's frames
    (the records stay in the sending rank's journal). Install the same em_dist on every node."""


class LinkClosed(DistributedError):
    """A link between two ranks broke: the other process died, the engine shut down, or the other end
    closed the run. The sending rank keeps its records in its journal and may rebuild the link."""


LINK_ERRORS: tuple[type[Exception], ...] = (RuntimeError, OSError, ValueError, DistributedError)
"""What a transport call may raise when a link or an engine fails, and the one rule for catching it:
torch.distributed and gloo raise ``RuntimeError`` (``DistBackendError``, ``DistStoreError`` and
``DistNetworkError`` are subclasses), as do mpi4py (``MPI.Exception``) and Horovod
(``HorovodInternalError``); sockets and stores raise ``OSError`` (``TimeoutError`` included); an
unreadable frame is a ``ValueError``; our own are :class:`DistributedError` (:class:`LinkClosed`,
:class:`WireVersionError`). Anything else is a bug, and is left to the catch-all barrier at the top
of the thread it happened on, which warns with its type."""


__all__ = [
    "EMError",
    "RunFormatError",
    "NotLoggedInError",
    "ServerError",
    "AuthenticationError",
    "PermissionDeniedError",
    "NotFoundError",
    "ConflictError",
    "ServerUnreachableError",
    "CommandError",
    "DistributedError",
    "WireVersionError",
    "LinkClosed",
    "LINK_ERRORS",
]


class EMWarning(UserWarning):
    """Recoverable trouble (disk full, server down, lost rank): training goes on, the data is kept."""


__all__.append("EMWarning")
