"""Background upload while a run trains (``create_run(auto_upload=True)``).

A daemon thread runs the ordinary, resumable :func:`upload_run` every few seconds, so
each pass sends only what is new. It never raises into the training process: trouble is
warned about once and retried on the next pass. ``stop`` does a last pass.
"""

from __future__ import annotations

import logging
import os
import threading
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from em_dist.errors import AuthenticationError, EMWarning, NotLoggedInError, PermissionDeniedError

from em_dist.client.target import UploadTarget

if TYPE_CHECKING:  # the upload module (and requests) is imported on the first pass only
    from em_dist.client.upload import UploadResult

log = logging.getLogger(__name__)
DEFAULT_INTERVAL_S = 5.0


def _interval() -> float:
    try:
        return max(0.05, float(os.environ.get("EM_AUTO_UPLOAD_INTERVAL", DEFAULT_INTERVAL_S)))
    except ValueError:
        return DEFAULT_INTERVAL_S


class AutoUploader:
    """Syncs one run folder to the server in the background."""

    def __init__(
        self,
        run_path: str | os.PathLike[str],
        target: UploadTarget | None = None,
        *,
        conflict_strategy: str = "new",
        interval: float | None = None,
    ) -> None:
        self.run_path = Path(run_path)
        self.target = target if target is not None else UploadTarget()
        self.conflict_strategy = conflict_strategy
        self.interval = interval if interval is not None else _interval()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False
        self._fatal = False
        self.passes = 0
        self.last_result: UploadResult | None = None

    def start(self) -> None:
        """Start the background thread (returns at once)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="em-auto-upload", daemon=True)
            self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask for a last pass and wait up to ``timeout`` seconds for it. Never raises."""
        self._stop.set()
        thread = self._thread
        if thread is None:
            return
        thread.join(max(0.0, timeout))
        if thread.is_alive():
            self._warn(f"the final auto-upload of {self.run_path} is still running after {timeout:.0f} s; "
                       f"finish it with: em run upload -p {self.run_path}")

    def _loop(self) -> None:
        while not self._stop.wait(self.interval) and not self._fatal:
            self._sync()
        if not self._fatal:
            self._sync()

    def _sync(self) -> None:
        if not (self.run_path / "run.json").is_file():
            return  # the writer has not created the folder yet
        try:
            from em_dist.client.upload import send_run

            self.last_result = send_run(self.run_path, self.target, conflict_strategy=self.conflict_strategy)
            self.passes += 1
        except (NotLoggedInError, AuthenticationError, PermissionDeniedError) as exc:
            self._fatal = True  # retrying cannot help
            self._warn(f"auto_upload stopped: {exc}")
        except Exception as exc:  # never into the training loop; the next pass retries
            log.debug("auto-upload pass failed", exc_info=True)
            self._warn(f"auto_upload pass failed ({exc}); it keeps retrying in the background")

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(f"em_dist: {message}", EMWarning, stacklevel=2)
