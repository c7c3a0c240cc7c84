"""Who may use a blob by its hash.

Blobs are content-addressed and shared on disk, but a hash is not a capability: a user
may reference (attach to an artifact, or hear that the server holds) only a blob they
uploaded themselves or one that belongs to an artifact they can see. Anyone else is
told the blob is missing and must upload the bytes, which then costs the server one hash
check and no second copy.
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import select
from sqlalchemy.orm import Session

from em_dist.server import folders
from em_dist.server.models import Artifact, ArtifactFile, Blob, BlobOwner, Folder, User

_BATCH = 500


def usable(session: Session, user: User, hashes: Iterable[str]) -> dict[str, int]:
    """The hashes among ``hashes`` that ``user`` may reference, with each blob's size."""
    wanted = list(dict.fromkeys(hashes))
    out: dict[str, int] = {}
    for start in range(0, len(wanted), _BATCH):
        part = wanted[start : start + _BATCH]
        out.update(session.execute(
            select(Blob.sha256, Blob.size).join(BlobOwner, BlobOwner.sha256 == Blob.sha256)
            .where(BlobOwner.user_id == user.id, Blob.sha256.in_(part))
        ).tuples().all())
        rest = [h for h in part if h not in out]
        if not rest:
            continue
        seen: dict[str, bool] = {}
        rows = session.execute(
            select(ArtifactFile.sha256, ArtifactFile.size, Artifact.folder_id)
            .join(Artifact, Artifact.id == ArtifactFile.artifact_id).where(ArtifactFile.sha256.in_(rest))
        ).tuples()
        for sha, size, folder_id in rows:
            if sha in out:
                continue
            if folder_id not in seen:
                folder = session.get(Folder, folder_id)
                seen[folder_id] = folder is not None and folders.permission(session, user, folder) is not None
            if seen[folder_id]:
                out[sha] = size
    return out
