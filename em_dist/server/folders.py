"""Folder paths, lookup, creation and access checks.

A path like ``a/b/c`` is under the caller's own root. ``/owner/a/b`` names another
user's folder, which the caller reaches only through a share (on it or an ancestor).
``folder_id`` wins over a path; neither means ``default``, which always exists.
"""

from __future__ import annotations

from fastapi import HTTPException
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from em_dist.limits import MAX_FOLDER_NAME_CHARS, MAX_FOLDER_PATH_CHARS
from em_dist.server.models import Folder, FolderShare, User

DEFAULT_FOLDER = "default"
_RANK = {"view": 1, "edit": 2, "owner": 3}
"""Permissions in increasing order; ``require(..., "owner")`` admits only the owner."""


def split_path(path: str) -> list[str]:
    """The segments of a relative folder path; raises 400 on empty, ``.`` or ``..`` segments, a name over
    :data:`MAX_FOLDER_NAME_CHARS` or a path over :data:`MAX_FOLDER_PATH_CHARS` (the column widths)."""
    parts = [p for p in path.strip().strip("/").split("/")]
    if not parts or any(p in ("", ".", "..") or len(p) > MAX_FOLDER_NAME_CHARS or "\\" in p for p in parts):
        raise HTTPException(400, f"invalid folder path {path[:200]!r}: use names of at most {MAX_FOLDER_NAME_CHARS} "
                                 f"characters separated by '/', without '.' or '..'")
    if len("/".join(parts)) > MAX_FOLDER_PATH_CHARS:
        raise HTTPException(400, f"a folder path is at most {MAX_FOLDER_PATH_CHARS} characters")
    return parts


def permission(session: Session, user: User, folder: Folder) -> str | None:
    """``owner``, ``edit``, ``view`` or None: what ``user`` may do in ``folder``."""
    if folder.owner_id == user.id:
        return "owner"
    best: str | None = None
    node: Folder | None = folder
    while node is not None:
        share = session.get(FolderShare, (node.id, user.id))
        if share is not None and _RANK[share.permission] > _RANK.get(best or "", 0):
            best = share.permission
        node = session.get(Folder, node.parent_id) if node.parent_id else None
    return best


def can_see(session: Session, user: User, folder_id: str) -> bool:
    """True when ``user`` may view the folder ``folder_id`` (False for an unknown folder)."""
    folder = session.get(Folder, folder_id)
    return folder is not None and permission(session, user, folder) is not None


def require(session: Session, user: User, folder: Folder, need: str) -> str:
    """Raise 403 unless ``user`` has at least ``need`` (view/edit) on ``folder``.

    The message names the folder's path only to a user who can already see it."""
    have = permission(session, user, folder)
    if have is None:  # a stranger learns neither the folder's name nor its owner
        raise HTTPException(403, f"folder {folder.id} is not yours to {need}")
    if _RANK[have] < _RANK[need]:
        raise HTTPException(403, f"folder {folder.path!r} ({folder.id}) is not yours to {need}")
    return have


def lock(session: Session, folder: Folder) -> None:
    """Hold ``folder``'s row lock until the transaction ends (PostgreSQL ``FOR UPDATE``; on
    SQLite the write transaction already excludes every other writer)."""
    session.execute(select(Folder.id).where(Folder.id == folder.id).with_for_update()).all()


def _create_levels(session: Session, owner: User, parts: list[str]) -> Folder:
    parent: Folder | None = None
    for depth in range(1, len(parts) + 1):
        path = "/".join(parts[:depth])
        found = session.scalars(select(Folder).where(Folder.owner_id == owner.id, Folder.path == path)).first()
        if found is None:
            try:
                with session.begin_nested():
                    found = Folder(owner_id=owner.id, parent_id=parent.id if parent else None, name=parts[depth - 1], path=path)
                    session.add(found)
            except IntegrityError:  # created concurrently
                found = session.scalars(select(Folder).where(Folder.owner_id == owner.id, Folder.path == path)).one()
        parent = found
    if parent is None:  # split_path never returns an empty list
        raise HTTPException(400, "empty folder path")
    return parent


def resolve(
    session: Session,
    user: User,
    *,
    path: str | None = None,
    folder_id: str | None = None,
    make: bool = False,
    need: str = "edit",
) -> Folder:
    """The folder named by ``folder_id`` or ``path`` (default ``default``), checked for ``need``.

    ``make`` creates missing levels under the caller's own root. 404 when missing.
    """
    if folder_id:
        folder = session.get(Folder, folder_id)
        if folder is None or permission(session, user, folder) is None:  # a stranger: as if missing
            raise HTTPException(404, f"no folder with id {folder_id}")
        require(session, user, folder, need)
        return folder
    path = path or DEFAULT_FOLDER
    owner: User | None = user
    shown = path
    if path.startswith("/"):
        owner_name, _, rest = path.lstrip("/").partition("/")
        owner = session.scalars(select(User).where(User.name == owner_name)).first()
        path = rest
    parts = split_path(path)
    norm = "/".join(parts)
    if owner is None or owner.id != user.id:
        # Another user's path: a missing user, a missing folder and a folder the caller has
        # no share on get one and the same answer, so paths can't be probed for existence.
        folder = None
        if owner is not None:
            folder = session.scalars(select(Folder).where(Folder.owner_id == owner.id, Folder.path == norm)).first()
        if folder is None or permission(session, user, folder) is None:
            raise HTTPException(404, f"no folder {shown!r} that you can see (another user's folder is /<user>/<path>)")
        require(session, user, folder, need)
        return folder
    folder = session.scalars(select(Folder).where(Folder.owner_id == owner.id, Folder.path == norm)).first()
    if folder is None:
        if not make and not (norm == DEFAULT_FOLDER and need != "view"):
            raise HTTPException(404, f"folder {norm!r} does not exist; pass make_folder=True to create it")
        folder = _create_levels(session, owner, parts)
    require(session, user, folder, need)
    return folder


def visible_folders(session: Session, user: User) -> list[tuple[Folder, str]]:
    """Every folder ``user`` owns or reaches through a share, with the permission."""
    out: dict[str, tuple[Folder, str]] = {}
    for folder in session.scalars(select(Folder).where(Folder.owner_id == user.id)):
        out[folder.id] = (folder, "owner")
    shared = session.execute(
        select(Folder, FolderShare.permission).join(FolderShare, FolderShare.folder_id == Folder.id).where(
            FolderShare.user_id == user.id
        )
    ).all()
    frontier = [(f, p) for f, p in shared]
    while frontier:
        folder, perm = frontier.pop()
        if folder.id in out and _RANK[out[folder.id][1]] >= _RANK[perm]:
            continue
        out[folder.id] = (folder, perm)
        frontier.extend((child, perm) for child in session.scalars(select(Folder).where(Folder.parent_id == folder.id)))
    return sorted(out.values(), key=lambda fp: (fp[0].owner_id != user.id, fp[0].path))
