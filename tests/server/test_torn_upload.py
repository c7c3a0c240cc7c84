"""A run whose metrics file holds a torn line (an older writer after a full disk) still uploads whole."""

from __future__ import annotations

import pytest

import em_dist as em
from tests.store.test_torn_lines import torn_run


def test_upload_skips_a_torn_line_and_sends_every_record(fresh_server) -> None:
    _, key = fresh_server.add_user()
    run = torn_run(steps=200, torn_at=100)
    with pytest.warns(em.EMWarning, match="damaged line"):
        result = em.upload(run.path, folder="torn", make_folder=True, host=fresh_server.url, api_key=key)
    assert not result.skipped
    client = em.Client(host=fresh_server.url, api_key=key)
    assert [p["step"] for p in client.run(run.id).metrics(type="train", name="loss")] == list(range(200))
    again = em.upload(run.path, folder="torn", host=fresh_server.url, api_key=key)  # resumable: nothing new
    assert again.metrics_sent == 0
