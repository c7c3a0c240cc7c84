"""Keys and ownership: no key, wrong key, revoked key, another user's folder, sharing."""

from __future__ import annotations

import uuid

import pytest
import requests

import em_dist as em
from tests.server.harness import em_cli
from tests.server.runs import make_run


def _get(server, path: str, key: str | None) -> requests.Response:
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return requests.get(f"{server.url}/api/v1{path}", headers=headers, timeout=30)


def test_missing_and_wrong_key_are_401(server) -> None:
    for key in (None, "em_not-a-real-key"):
        response = _get(server, "/folders", key)
        assert response.status_code == 401
        assert "API key" in response.json()["detail"]
    with pytest.raises(em.AuthenticationError, match="invalid API key"):
        em.Client(host=server.url, api_key="em_wrong").folders()


def test_revoked_key_is_refused(server) -> None:
    name, key = server.add_user()
    assert _get(server, "/me", key).json()["name"] == name
    new_key = em_cli("server", "key", "create", name, *server.store_args()).stdout.strip()
    em_cli("server", "key", "revoke", key, *server.store_args())
    response = _get(server, "/me", key)
    assert response.status_code == 401 and "revoked" in response.json()["detail"]
    assert _get(server, "/me", new_key).status_code == 200


def test_other_users_runs_and_folders_are_not_found(server) -> None:
    """A stranger gets the answer for an id that does not exist: 404, the same words, no name."""
    _, alice = server.add_user()
    bob_name, bob = server.add_user()
    run = make_run("private", steps=3)
    result = em.upload(run.path, folder="secret", make_folder=True, host=server.url, api_key=alice)
    for path in (f"/runs/{run.id}", f"/runs/{run.id}/metrics", f"/runs/{run.id}/ranks", f"/folders/{result.folder_id}/runs",
                 f"/artifacts/{result.artifacts[0]}", f"/lineage/{run.id}"):
        response = _get(server, path, bob)
        missing = _get(server, path.replace(path.rsplit("/", 2)[1] if path.endswith(("/metrics", "/ranks", "/runs"))
                                            else path.rsplit("/", 1)[1], str(uuid.uuid4())), bob)
        assert response.status_code == missing.status_code == 404, path
        assert "private" not in response.text and "secret" not in response.text
    with pytest.raises(em.PermissionDeniedError):
        em.upload(run.path, host=server.url, api_key=bob)  # same run id: not bob's to update
    with pytest.raises(em.NotFoundError):  # another user's folder id: as if it did not exist
        em.upload(make_run("intruder", steps=1, artifact_bytes=None).path, folder_id=result.folder_id,
                  host=server.url, api_key=bob)
    assert em.Client(host=server.url, api_key=bob).folders() == []
    # a view share lets bob read, not write
    share = requests.post(f"{server.url}/api/v1/folders/{result.folder_id}/shares", json={"user": bob_name, "permission": "view"},
                          headers={"Authorization": f"Bearer {alice}"}, timeout=30)
    assert share.status_code == 201
    bob_client = em.Client(host=server.url, api_key=bob)
    assert bob_client.run(run.id).hparams == em.load_run(run.path).hparams
    assert [f["permission"] for f in bob_client.folders()] == ["view"]
    with pytest.raises(em.PermissionDeniedError):
        em.upload(make_run("intruder2", steps=1, artifact_bytes=None).path, folder_id=result.folder_id,
                  host=server.url, api_key=bob)
