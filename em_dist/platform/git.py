"""``collect_git``: commit, branch, dirty flag and remote of the working directory.

Asks the ``git`` executable (two short subprocesses with a timeout) rather than
reading ``.git`` by hand, so worktrees, submodules and packed refs just work.
Returns None outside a git work tree, without git, or when git is too slow.
"""

from __future__ import annotations

import os
import subprocess
from typing import Any
from urllib.parse import urlsplit, urlunsplit

_TIMEOUT_S = 3.0
# No optional locks: `git status` must not take index.lock while the user's own git runs.
_GIT_ENV = {"GIT_OPTIONAL_LOCKS": "0", "GIT_TERMINAL_PROMPT": "0", "LC_ALL": "C"}


def _git(args: list[str], cwd: str | None) -> subprocess.CompletedProcess[str] | None:
    try:
        return subprocess.run(
            ["git", *args],
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT_S,
            check=False,
            env={**os.environ, **_GIT_ENV},
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.SubprocessError, ValueError):
        return None


def strip_credentials(url: str) -> str:
    """Remove credentials from a remote URL.

    ``https://user:token@host/x.git`` and ``https://token@host/x.git`` become
    ``https://host/x.git``; for other schemes a password is dropped and the user
    kept (``ssh://git@host/x``). scp-like ``git@host:org/x.git`` has no password
    and is returned as is.
    """
    if "://" not in url:
        return url
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc:
        return url
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, has_password, _ = userinfo.partition(":")
    if parts.scheme.lower() in ("http", "https") or not user:
        netloc = hostport
    elif has_password:
        netloc = f"{user}@{hostport}"
    else:
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _parse_status(text: str) -> dict[str, Any]:
    """Read ``git status --porcelain=v2 --branch`` output."""
    commit: str | None = None
    branch: str | None = None
    dirty = False
    for line in text.splitlines():
        if line.startswith("# branch.oid "):
            value = line[len("# branch.oid ") :].strip()
            commit = None if value == "(initial)" else value
        elif line.startswith("# branch.head "):
            value = line[len("# branch.head ") :].strip()
            branch = None if value == "(detached)" else value
        elif line and not line.startswith("#"):
            dirty = True
    return {"commit": commit, "branch": branch, "dirty": dirty}


def _pick_remote(text: str) -> str | None:
    """From ``git config --get-regexp remote\\..*\\.url`` output, prefer origin, else the first."""
    remotes: list[tuple[str, str]] = []
    for line in text.splitlines():
        key, _, url = line.partition(" ")
        if key.startswith("remote.") and key.endswith(".url") and url.strip():
            remotes.append((key[len("remote.") : -len(".url")], url.strip()))
    if not remotes:
        return None
    chosen = dict(remotes).get("origin", remotes[0][1])
    return strip_credentials(chosen)


def collect_git(cwd: str | os.PathLike[str] | None = None) -> dict[str, Any] | None:
    """Return ``{'commit', 'branch', 'dirty', 'remote'}`` for the git work tree at ``cwd``.

    ``dirty`` means tracked files differ from HEAD (staged or not); untracked files
    do not count, so a run folder written inside the tree doesn't make every later
    run dirty. ``branch`` is None on a detached HEAD, ``commit`` None before the
    first commit, ``remote`` None without remotes. Returns None outside a work
    tree or when git is missing or fails. Never raises.
    """
    where = os.fspath(cwd) if cwd is not None else None
    status = _git(["status", "--porcelain=v2", "--branch", "--untracked-files=no"], where)
    if status is None or status.returncode != 0:
        return None
    info = _parse_status(status.stdout)
    remotes = _git(["config", "--get-regexp", r"^remote\..*\.url$"], where)
    info["remote"] = _pick_remote(remotes.stdout) if remotes is not None and remotes.returncode == 0 else None
    return info
