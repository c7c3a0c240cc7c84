"""``GET /me``: who the API key belongs to (used by ``em.login`` to check a key)."""

from __future__ import annotations

from fastapi import APIRouter

from em_dist.server.deps import CurrentUser

router = APIRouter(tags=["auth"])


@router.get("/me")
def me(user: CurrentUser) -> dict:
    """The calling user."""
    return {"id": user.id, "name": user.name}
