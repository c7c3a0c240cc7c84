"""One line for the user on stderr (the address of an uploaded run): information, not a warning.

Library code prints nothing else; this is the one place that does, so a test (and a reader)
find every line em_dist itself writes to the terminal here. It never raises: a closed or
broken stderr must not break training.
"""

from __future__ import annotations

import sys


def notice(message: str) -> None:
    """Write ``em_dist: <message>`` as one line to stderr."""
    try:
        sys.stderr.write(f"em_dist: {message}\n")
        sys.stderr.flush()
    except Exception:  # noqa: BLE001 - a closed stderr must not break training
        pass


def console_url(host: str, run_id: str) -> str:
    """The console page of the run ``run_id`` on the server ``host`` (a base path kept)."""
    host = host.strip().rstrip("/")
    if "://" not in host:
        host = "http://" + host
    return f"{host}/#/run/{run_id}"
