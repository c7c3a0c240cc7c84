"""The user's standing choices: ``$EM_*`` environment variables, then ``~/.em/config.yaml``.

``em login`` writes ``host`` and ``api_key`` to that file (:mod:`em_dist.client.auth`); a user
may add ``auto_upload: true`` to it to sync every run live without editing a script. This module
reads it without importing the HTTP client, so ``create_run`` stays cheap.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off", "")


def config_path() -> Path:
    """``~/.em/config.yaml`` (``~`` is ``Path.home()``)."""
    return Path.home() / ".em" / "config.yaml"


def read_config() -> dict[str, Any]:
    """The config file as a mapping; empty when it is missing, unreadable or not a mapping."""
    path = config_path()
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return {}
    import yaml

    try:
        doc = yaml.safe_load(text)
    except yaml.YAMLError:
        return {}
    return doc if isinstance(doc, dict) else {}


def auto_upload_wanted() -> bool:
    """Whether a run that did not say ``auto_upload=`` syncs live: ``$EM_AUTO_UPLOAD`` (``1``/``true``/``yes``/``on``
    or ``0``/``false``/``no``/``off``), else ``auto_upload:`` in the config file, else off (the original SDK's default)."""
    env = os.environ.get("EM_AUTO_UPLOAD")
    if env is not None:
        value = env.strip().lower()
        if value in _TRUE:
            return True
        if value in _FALSE:
            return False
        raise ValueError(f"EM_AUTO_UPLOAD must be 1/true/yes/on or 0/false/no/off, got {env!r}")
    return read_config().get("auto_upload") is True
