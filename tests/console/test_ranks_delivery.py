"""The Ranks tab says for each rank whether the server holds all its records, and where the rest is
(headless Chromium, the console's CSP on): a rank whose journal is still on its own host shows as
incomplete with that journal's host and path; once the journal is uploaded there, as complete."""

from __future__ import annotations

import pytest

import em_dist as em
from em_dist.client.upload_journal import upload_journal
from tests.client.test_upload_journal import _job
from tests.console.test_console_security import strict_page  # noqa: F401  (fixture: the real CSP on)
from tests.server.harness import fresh_server  # noqa: F401  (fixture)

from .test_console import sign_in

pytestmark = pytest.mark.timeout(120)


def _row(page, rank: int) -> list[str]:
    row = page.locator(f'#delivery-table tr[data-rank="{rank}"]')
    return [row.locator("td").nth(i).inner_text() for i in range(4)] + [row.get_attribute("class") or ""]


def test_the_ranks_tab_shows_each_ranks_completeness_and_where_the_rest_is(strict_page, tmp_path, fresh_server):  # noqa: F811
    page = strict_page
    _, key = fresh_server.add_user()
    run_dir, journal = _job(tmp_path)
    run_id = em.load_run(run_dir).id
    em.upload(run_dir, host=fresh_server.url, api_key=key)
    sign_in(page, fresh_server.url, key)
    page.goto(f"{fresh_server.url}/#/run/{run_id}/ranks")
    page.wait_for_selector("#delivery-table")
    rank, held, complete, rest, cls = _row(page, 1)
    assert (rank, held, complete, cls) == ("1", "60", "no", "incomplete")
    assert f"host-b:{journal}" in rest  # where the rest is: the journal's host and path

    upload_journal(journal, host=fresh_server.url, api_key=key)  # on host B
    page.reload()
    page.wait_for_selector("#delivery-table")
    rank, held, complete, rest, cls = _row(page, 1)
    assert (rank, complete, rest, cls) == ("1", "yes", "—", "complete")
    assert int(held) > 60
