"""The media part of an upload against a server that predates media: the run goes without them, one warning."""

from __future__ import annotations

from pathlib import Path

import pytest

from em_dist.client.upload_media import upload_media
from em_dist.store.media import append_lines, media_file


class _OldServer:
    host = "http://old.example"

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def request(self, method: str, path: str, **kwargs):  # type: ignore[no-untyped-def]
        self.calls.append((method, path))
        assert 404 in kwargs.get("accept", ())
        return type("Answer", (), {"status_code": 404, "json": lambda self: {"detail": "Not Found"}})()


def test_a_server_without_media_routes_gets_the_run_without_them(tmp_path: Path) -> None:
    append_lines(media_file(tmp_path, 0), ['{"kind":"text","type":"v","name":"s","step":0,"text":"a"}\n'], durable=False)
    old = _OldServer()
    with pytest.warns(UserWarning, match="stores no media"):
        assert upload_media(old, tmp_path, "run-1") == ({}, 0, 0)  # type: ignore[arg-type]
    assert old.calls == [("GET", "/runs/run-1/media/offsets")]
