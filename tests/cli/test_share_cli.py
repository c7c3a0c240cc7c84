"""``em server share list|add|revoke`` against a real server, as the folder's owner."""

from __future__ import annotations

import requests

from tests.server.harness import em_cli, fresh_server  # noqa: F401  (fixture)


def test_share_list_and_revoke_from_the_command_line(fresh_server) -> None:  # noqa: F811
    server = fresh_server
    _, alice = server.add_user()
    bob, bob_key = server.add_user()
    folder = requests.post(f"{server.url}/api/v1/folders", json={"path": "team/shared"},
                           headers={"Authorization": f"Bearer {alice}"}, timeout=30).json()
    login = ["-H", server.url, "-k", alice]
    assert "shared team/shared with" in em_cli("server", "share", "add", "team/shared", bob, "--permission", "edit", *login).stdout
    assert em_cli("server", "share", "list", folder["id"], *login).stdout.split() == [bob, "edit"]
    assert requests.get(f"{server.url}/api/v1/folders/{folder['id']}/runs", headers={"Authorization": f"Bearer {bob_key}"},
                        timeout=30).status_code == 200
    em_cli("server", "share", "revoke", "team/shared", bob, *login)
    assert em_cli("server", "share", "list", "team/shared", *login).stdout == ""
    assert requests.get(f"{server.url}/api/v1/folders/{folder['id']}/runs", headers={"Authorization": f"Bearer {bob_key}"},
                        timeout=30).status_code == 404  # a revoked share: the folder is a stranger's again
    refused = em_cli("server", "share", "add", "team/shared", bob, "-H", server.url, "-k", bob_key, check=False)
    assert refused.returncode == 1 and "you own no folder" in refused.stderr
