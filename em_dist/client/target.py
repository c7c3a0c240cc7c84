"""Where an upload goes and as whom: :class:`UploadTarget`, the arguments every upload shares.

:func:`~em_dist.client.upload.upload_run`, :func:`~em_dist.client.upload.upload_artifact`
and :func:`~em_dist.client.upload_journal.upload_journal` all take the same five keywords
(``folder``, ``folder_id``, ``make_folder``, ``host``, ``api_key``) and turn them into the
same two things: the folder document the server's ``PUT`` takes and an HTTP client for the
resolved credentials. Bundled here, that rule is written once. The public functions keep
their keywords; they build the target from them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from em_dist.store import layout
from em_dist.store.files import read_json_in

if TYPE_CHECKING:  # requests is imported with the client, not with this module (the auto-uploader imports late)
    from em_dist.client.http import HttpClient


@dataclass(frozen=True)
class UploadTarget:
    """The server folder an upload lands in (by path, or by id; made if ``make_folder``), and the
    server and key it is sent with (None: the logged-in ones, :func:`~em_dist.client.auth.resolve`)."""

    folder: str | None = None
    """The folder path (``team/mnist``); None or empty means ``default``."""
    folder_id: str | None = None
    """The folder's id; the server prefers it to ``folder`` when both are given."""
    make_folder: bool | None = None
    """Make the folder if it does not exist. None: not given (a run upload then takes the run's own)."""
    host: str | None = None
    api_key: str | None = None

    def folder_spec(self) -> dict[str, Any]:
        """The folder part of the server's ``PUT /runs/{id}`` and ``PUT /artifacts/{id}`` bodies."""
        return {"folder": self.folder or "default", "folder_id": self.folder_id, "make_folder": bool(self.make_folder)}

    def client(self) -> HttpClient:
        """An HTTP client for this target's server and key (the caller closes it)."""
        from em_dist.client.auth import client_for

        return client_for(self.host, self.api_key)

    def for_run(self, run_dir: Path) -> UploadTarget:
        """This target with the folder made explicit for the run at ``run_dir``: as given, or, when
        neither ``folder`` nor ``folder_id`` was given, the one the run asked for at ``create_run``
        (kept in its ``run.json``), so ``em run upload -p PATH`` of a run made with
        ``folder='team/mnist'`` lands there, not in ``default``. A ``make_folder`` left at None is
        the run's too when the run's folder is used."""
        if self.folder is not None or self.folder_id is not None:
            return UploadTarget(self.folder or "default", self.folder_id, bool(self.make_folder), self.host, self.api_key)
        doc = read_json_in(run_dir, layout.RUN_FILE, {}) or {}
        recorded, recorded_id = doc.get("folder"), doc.get("folder_id")
        asked = recorded if isinstance(recorded, str) and recorded else "default"
        asked_id = recorded_id if isinstance(recorded_id, str) and recorded_id else None
        make = bool(doc.get("make_folder")) if self.make_folder is None else bool(self.make_folder)
        return UploadTarget(asked, asked_id, make, self.host, self.api_key)
