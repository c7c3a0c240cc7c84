"""Issue 24, item 8, in headless Chromium under the server's CSP: on the run page a user with edit
permission renames a run and edits its labels and description, archives it (it leaves the folder's
listing until "archived runs" is ticked) and restores it, and deletes it after a confirmation that
names it. Every write goes over the console session with its CSRF token. A real server (SQLite)."""

from __future__ import annotations

import pytest

from tests.server.harness import ServerProcess
from tests.server.seed import Api, put_run

from .conftest import shot
from .test_console import sign_in

pytestmark = pytest.mark.timeout(180)


@pytest.fixture(scope="module")
def edit_server(tmp_path_factory):
    srv = ServerProcess(tmp_path_factory.mktemp("console-edit"), None).start()
    try:
        _, key = srv.add_user("erin")
        _, viewer_key = srv.add_user("victor")
        api = Api(srv.url, key)
        run_id = put_run(api, "first-try", "edits", labels=["draft"], metrics={"val/loss": [1.0, 0.5]})
        put_run(api, "neighbour", "edits")
        folder_id = api("GET", f"/runs/{run_id}").json()["folder_id"]
        assert api("POST", f"/folders/{folder_id}/shares", json={"user": "victor", "permission": "view"}).status_code == 201
        yield srv, key, viewer_key, api, run_id, folder_id
        api.close()
    finally:
        srv.stop()


def listed(page, folder_id: str, *, archived: bool = False) -> set[str]:
    page.goto(page.url.split("#")[0] + f"#/folder/{folder_id}" + ("?archived=1" if archived else ""))
    page.wait_for_selector("#runs-table[data-state=ready]")
    page.wait_for_selector('#runs-table tr[data-run-name="neighbour"]')
    return set(page.eval_on_selector_all("#runs-table tr[data-run-name]", "rows => rows.map(r => r.dataset.runName)"))


def test_edit_archive_restore_and_delete_a_run_from_its_page(page, edit_server) -> None:
    srv, key, _, api, run_id, folder_id = edit_server
    sign_in(page, srv.url, key)
    page.goto(f"{srv.url}/#/run/{run_id}/overview")
    page.wait_for_selector("h1#run-title:has-text('first-try')")

    # labels, description and name
    page.click("#run-edit")
    page.fill("#edit-name", "tuned-lr")
    page.fill("#edit-labels", "baseline, lr-sweep")
    page.fill("#edit-description", "lr 3e-4 with warmup: the one to beat")
    page.click("#edit-save")
    page.wait_for_selector("h1#run-title:has-text('tuned-lr')")
    page.wait_for_selector("#run-edit-form", state="detached")
    assert page.locator("#run-labels .label").all_inner_texts() == ["baseline", "lr-sweep"]
    assert "the one to beat" in page.inner_text("#tab-body")
    shot(page, "run-edited")
    stored = api("GET", f"/runs/{run_id}").json()
    assert (stored["name"], stored["labels"], stored["description"]) == (
        "tuned-lr", ["baseline", "lr-sweep"], "lr 3e-4 with warmup: the one to beat")

    # a refused edit says why and keeps the form: the neighbour's name is taken
    page.click("#run-edit")
    page.fill("#edit-name", "neighbour")
    page.click("#edit-save")
    page.wait_for_selector("#run-edit-error:has-text('already holds')")
    page.click("#edit-cancel")

    # archive: gone from the folder's listing unless archived runs are asked for; restore brings it back
    page.click("#run-archive")
    page.wait_for_selector("#archived-badge")
    assert page.inner_text("#run-archive") == "Restore"
    assert api("GET", f"/runs/{run_id}").json()["archived"] is True
    assert "tuned-lr" not in listed(page, folder_id)
    assert "tuned-lr" in listed(page, folder_id, archived=True)
    shot(page, "folder-with-archived")
    page.click('#runs-table tr[data-run-name="tuned-lr"] a')
    page.wait_for_selector("#archived-badge")
    page.click("#run-archive")
    page.wait_for_selector("#archived-badge", state="detached")
    assert page.inner_text("#run-archive") == "Archive"
    assert "tuned-lr" in listed(page, folder_id)

    # delete: the confirmation names the run and needs its name typed
    page.goto(f"{srv.url}/#/run/{run_id}/overview")
    page.click("#run-delete")
    assert "tuned-lr" in page.inner_text("#delete-question")
    assert page.is_disabled("#delete-confirm")
    page.click("#delete-cancel")
    page.wait_for_selector("#run-delete-form", state="detached")
    assert api("GET", f"/runs/{run_id}").status_code == 200
    page.click("#run-delete")
    page.fill("#delete-confirm-name", "tuned")
    assert page.is_disabled("#delete-confirm")
    page.fill("#delete-confirm-name", "tuned-lr")
    shot(page, "run-delete-confirm")
    page.click("#delete-confirm")
    page.wait_for_url(f"**/#/folder/{folder_id}*")
    page.wait_for_selector('#runs-table tr[data-run-name="neighbour"]')
    assert api("GET", f"/runs/{run_id}").status_code == 404


def test_a_viewer_sees_no_edit_controls(page, edit_server) -> None:
    srv, _, viewer_key, api, _, folder_id = edit_server
    other = put_run(api, "look-only", "edits")
    sign_in(page, srv.url, viewer_key)
    page.goto(f"{srv.url}/#/run/{other}/overview")
    page.wait_for_selector("h1#run-title:has-text('look-only')")
    assert page.locator("#run-edit, #run-archive, #run-delete").count() == 0
