"""collect_git against real git repositories in temporary folders."""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from em_dist.platform import collect_git
from em_dist.platform.git import strip_credentials

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed"),
]


def _git(repo: Path, *args: str) -> str:
    out = subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo, capture_output=True, text=True, check=True, timeout=30,
    )
    return out.stdout.strip()


@pytest.fixture
def isolated_git(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Keep the user's git config and any enclosing repository out of the tests."""
    monkeypatch.setenv("GIT_CONFIG_GLOBAL", "/dev/null")
    monkeypatch.setenv("GIT_CONFIG_NOSYSTEM", "1")
    monkeypatch.setenv("GIT_CEILING_DIRECTORIES", str(tmp_path))
    return tmp_path


@pytest.fixture
def repo(isolated_git: Path) -> Path:
    path = isolated_git / "repo"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    (path / "train.py").write_text("print('hi')\n")
    _git(path, "add", "train.py")
    _git(path, "commit", "-q", "-m", "first")
    return path


def test_commit_branch_clean(repo: Path) -> None:
    info = collect_git(repo)
    assert info == {"commit": _git(repo, "rev-parse", "HEAD"), "branch": "main", "dirty": False, "remote": None}
    json.dumps(info)


def test_dirty_flips_on_tracked_edit_not_on_untracked_file(repo: Path) -> None:
    (repo / "notes.txt").write_text("untracked\n")  # e.g. a run folder written inside the tree
    assert collect_git(repo)["dirty"] is False
    (repo / "train.py").write_text("print('changed')\n")
    assert collect_git(repo)["dirty"] is True
    _git(repo, "checkout", "-q", "--", "train.py")
    assert collect_git(repo)["dirty"] is False


def test_subdirectory_and_default_cwd(repo: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    sub = repo / "src"
    sub.mkdir()
    monkeypatch.chdir(sub)
    assert collect_git()["commit"] == _git(repo, "rev-parse", "HEAD")


def test_remote_credentials_stripped_origin_preferred(repo: Path) -> None:
    _git(repo, "remote", "add", "backup", "https://example.org/backup.git")
    _git(repo, "remote", "add", "origin", "https://alice:s3cr3t-pw@git.example.com/team/proj.git")
    info = collect_git(repo)
    assert info["remote"] == "https://git.example.com/team/proj.git"
    assert "s3cr3t" not in json.dumps(info) and "alice" not in json.dumps(info)


def test_detached_head_and_new_branch(repo: Path) -> None:
    _git(repo, "checkout", "-q", "-b", "feature/x")
    assert collect_git(repo)["branch"] == "feature/x"
    _git(repo, "checkout", "-q", "--detach")
    info = collect_git(repo)
    assert info["branch"] is None and info["commit"] == _git(repo, "rev-parse", "HEAD")


def test_repository_without_commits(isolated_git: Path) -> None:
    path = isolated_git / "empty"
    path.mkdir()
    _git(path, "init", "-q", "-b", "main")
    assert collect_git(path) == {"commit": None, "branch": "main", "dirty": False, "remote": None}


def test_none_outside_a_repository(isolated_git: Path) -> None:
    plain = isolated_git / "plain"
    plain.mkdir()
    assert collect_git(plain) is None
    assert collect_git(isolated_git / "does-not-exist") is None


def test_none_without_git_executable(repo: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    empty_bin = tmp_path / "bin"
    empty_bin.mkdir()
    monkeypatch.setenv("PATH", str(empty_bin))
    assert collect_git(repo) is None


@pytest.mark.parametrize(
    ("url", "clean"),
    [
        ("https://user:pass@github.com/o/r.git", "https://github.com/o/r.git"),
        ("https://ghp_TOKEN123@github.com/o/r.git", "https://github.com/o/r.git"),
        ("http://u:p@host:8080/r", "http://host:8080/r"),
        ("ssh://git:pw@host/r.git", "ssh://git@host/r.git"),
        ("ssh://git@host/r.git", "ssh://git@host/r.git"),
        ("git@github.com:o/r.git", "git@github.com:o/r.git"),
        ("/srv/git/r.git", "/srv/git/r.git"),
    ],
)
def test_strip_credentials(url: str, clean: str) -> None:
    assert strip_credentials(url) == clean
