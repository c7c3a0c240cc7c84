"""Login state: which server and API key this process uses.

Order of precedence: explicit arguments, then ``em.login`` in this process, then the
``EM_HOST``/``EM_API_KEY`` environment variables, then ``~/.em/config.yaml``
(``~`` is ``Path.home()``). ``login`` checks the key against the server and writes the
config file with mode 0600; ``logout`` forgets both.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from filelock import FileLock, Timeout

from em_dist.client.http import HttpClient
from em_dist._warn import warn_once
from em_dist.errors import NotLoggedInError
from em_dist.settings import config_path, read_config

DEFAULT_LOGIN_TIMEOUT = 10.0


@dataclass(frozen=True)
class Credentials:
    """A server address and the API key to use there."""

    host: str
    api_key: str


_lock = threading.Lock()
_current: Credentials | None = None  # the one process-wide login, set by login()


_read_config = read_config


def _config_lock() -> FileLock:
    """Serialises read-modify-write of the config file across processes (every rank of a job may log in)."""
    path = config_path()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    return FileLock(str(path.with_name(path.name + ".lock")), timeout=30)


def _write_config(doc: dict[str, Any]) -> None:
    path = config_path()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        yaml.safe_dump(doc, fh, default_flow_style=False)
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def resolve(host: str | None = None, api_key: str | None = None) -> Credentials:
    """The credentials to use now; raises NotLoggedInError when no host or key is known."""
    config = None
    if host is None:
        host = (_current.host if _current else None) or os.environ.get("EM_HOST")
        if not host:
            config = _read_config()
            host = config.get("host")
    if api_key is None:
        api_key = (_current.api_key if _current else None) or os.environ.get("EM_API_KEY")
        if not api_key:
            config = _read_config() if config is None else config
            api_key = config.get("api_key")
    if not host or not api_key:
        missing = "server host" if not host else "API key"
        raise NotLoggedInError(
            f"no {missing} known: call em.login(host=..., api_key=...), run 'em login -H HOST -k KEY', "
            "or set EM_HOST and EM_API_KEY"
        )
    return Credentials(str(host), str(api_key))


def login(
    host: str | None = None, api_key: str | None = None, timeout: float | None = None, *, ais_host: str | None = None
) -> Credentials:
    """Check the key against the server and remember host and key (process and config file).

    Raises AuthenticationError for a refused key and ServerUnreachableError for a host
    that does not answer within ``timeout`` seconds (default 10).
    """
    global _current
    creds = resolve(host if host is not None else ais_host, api_key)
    client = HttpClient(creds.host, creds.api_key, timeout=timeout or DEFAULT_LOGIN_TIMEOUT, retries=1)
    try:
        client.request("GET", "/me")
    finally:
        client.close()
    with _lock:
        _current = creds
        try:
            with _config_lock():
                doc = _read_config()
                doc.update(host=creds.host, api_key=creds.api_key)
                _write_config(doc)
        except (OSError, Timeout) as exc:  # the login holds for this process anyway
            warn_once("config-write", f"em_dist: could not save the login to {config_path()} ({exc}); "
                      "it holds for this process only")
    return creds


def logout() -> None:
    """Forget the login of this process and remove host and key from the config file."""
    global _current
    with _lock, _config_lock():
        _current = None
        doc = _read_config()
        if doc.pop("api_key", None) is not None or doc.pop("host", None) is not None:
            doc.pop("host", None)
            if doc:
                _write_config(doc)
            else:
                config_path().unlink(missing_ok=True)


def client_for(host: str | None = None, api_key: str | None = None, *, timeout: float = 60.0) -> HttpClient:
    """An HttpClient for the resolved credentials."""
    creds = resolve(host, api_key)
    return HttpClient(creds.host, creds.api_key, timeout=timeout)
