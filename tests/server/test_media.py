"""Media over a real server (SQLite and PostgreSQL): a run folder's media records and images upload
resumably and once, a rank's journal brings its media records once too, ``Client().run(id).media()``
reads back what ``em.load_run(path).media()`` reads, and nobody without a share sees any of it."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import requests

import em_dist as em
from em_dist.errors import NotFoundError
from em_dist.media.encode import media_record
from em_dist.store.journal import numbered
from em_dist.store.media import append_lines, media_file, stored_line

pytest.importorskip("PIL.Image")


def _run_with_two_ranks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A run folder whose rank 0 logged media itself and holds rank 1's numbered media records,
    as rank 0's writer stores a peer's (the same image twice: one PNG)."""
    monkeypatch.setenv("EM_RUN_PARENT_DIR", str(tmp_path / "runs"))
    run = em.create_run(name="media-upload")
    for step in range(2):
        run.log("val", {"loss": 1.0 / (step + 1), "img": em.Image(np.full((4, 5, 3), 10 * step, dtype=np.uint8),
                                                                   caption=f"s{step}"),
                        "h": em.Histogram(np.arange(8.0) + step, bins=4), "t": em.Table(["k", "v"], [["a", step]]),
                        "s": em.Text(f"step {step}")}, step=step)
    run.finish()
    run_dir = Path(run.path)
    peer = [media_record("val", s, None, 2.0 + s, "img", em.Image(np.full((4, 5), 100 + s, dtype=np.uint8)))
            for s in range(2)]
    peer += [media_record("val", 0, 1, 3.0, "img", em.Image(np.full((4, 5), 100, dtype=np.uint8))),
             media_record("val", 1, None, 4.0, "h", em.Histogram([1.0, float("nan")], bins=2))]
    append_lines(media_file(run_dir, 1), [stored_line(run_dir, numbered(rec[1:], n, 0)) for n, rec in enumerate(peer, 1)],
                 durable=False)
    return run.path


def _plain(entries: list[em.MediaEntry]) -> list[em.MediaEntry]:
    return [dataclasses.replace(m, path=None) for m in entries]


def test_upload_reads_back_equal_once_and_only_for_the_owner(server, tmp_path, monkeypatch) -> None:
    _, key = server.add_user()
    _, stranger = server.add_user()
    path = _run_with_two_ranks(tmp_path, monkeypatch)
    local = em.load_run(path)
    assert {m.rank for m in local.media()} == {0, 1}
    first = em.upload(path, host=server.url, api_key=key)
    pngs = list((Path(path) / "media").glob("*.png"))
    assert len(pngs) == 4
    assert first.images_sent == sum(p.stat().st_size for p in pngs)  # each image once
    assert first.media_sent == sum(media_file(Path(path), r).stat().st_size for r in (0, 1))
    client = em.Client(host=server.url, api_key=key)
    remote = client.run(first.server_run_id)
    assert _plain(remote.media()) == _plain(local.media())
    assert _plain(remote.media(type="val", name="img", rank=1)) == _plain(local.media(type="val", name="img", rank=1))
    for r, l in zip(remote.media(name="img"), local.media(name="img")):
        assert r.sha256 == l.sha256 and r.image_bytes() == Path(l.path).read_bytes() == l.image_bytes()
    again = em.upload(path, host=server.url, api_key=key)
    assert (again.media_sent, again.images_sent) == (0, 0)
    assert _plain(client.run(first.server_run_id).media()) == _plain(local.media())  # nothing twice
    sha = local.media(name="img")[0].sha256
    outsider = em.Client(host=server.url, api_key=stranger)
    for call in (lambda: outsider.run(first.server_run_id), lambda: outsider.media(first.server_run_id),
                 lambda: outsider.image(first.server_run_id, sha)):
        with pytest.raises(NotFoundError):
            call()
    friend_name, friend = server.add_user()
    client.share(first.folder_id, friend_name, "view")
    shared = em.Client(host=server.url, api_key=friend).run(first.server_run_id).media(name="img", rank=1)
    assert shared[0].image_bytes() == local.media(name="img", rank=1)[0].image_bytes()  # a viewer sees them
    other = em.create_run(name="other")
    other.finish()
    mine = em.upload(other.path, host=server.url, api_key=stranger)
    with pytest.raises(NotFoundError):  # a hash another run logged is no key to it
        outsider.image(mine.server_run_id, sha)


def test_upload_resumes_past_what_the_server_holds(server, tmp_path, monkeypatch) -> None:
    _, key = server.add_user()
    path = _run_with_two_ranks(tmp_path, monkeypatch)
    run_dir = Path(path)
    whole = media_file(run_dir, 1).read_bytes()
    lines = whole.splitlines(keepends=True)
    media_file(run_dir, 1).write_bytes(b"".join(lines[:2]) + lines[2][:10])  # a torn last line waits
    first = em.upload(path, host=server.url, api_key=key)
    client = em.Client(host=server.url, api_key=key)
    assert len(client.media(first.server_run_id, rank=1)) == 2
    media_file(run_dir, 1).write_bytes(whole)
    second = em.upload(path, host=server.url, api_key=key)
    assert second.media_sent == len(whole) - len(lines[0]) - len(lines[1])
    assert _plain(client.run(first.server_run_id).media()) == _plain(em.load_run(path).media())


def _post(server, key: str, route: str, data: bytes, **params) -> requests.Response:
    return requests.post(f"{server.url}/api/v1{route}", data=data, params=params,
                         headers={"Authorization": f"Bearer {key}"}, timeout=30)


def test_journal_media_merge_once_with_the_folder(server, tmp_path, monkeypatch) -> None:
    _, key = server.add_user()
    path = _run_with_two_ranks(tmp_path, monkeypatch)
    run_id = em.load_run(path).id
    peer = [line for line in media_file(Path(path), 1).read_text().splitlines()]
    first = em.upload(path, host=server.url, api_key=key)
    assert first.server_run_id == run_id
    # rank 1's journal: its four records again (inline PNG, as a journal holds them), then a new text
    img = media_record("val", 0, None, 2.0, "img", em.Image(np.full((4, 5), 100, dtype=np.uint8)))
    new = media_record("val", 7, None, 9.0, "note", em.Text("from the journal"))
    journal = "".join(f"{n}\t{img}" for n in range(1, 5)) + f"5\t{new}"
    answer = _post(server, key, f"/runs/{run_id}/journal/1", journal.encode(), last=5)
    assert answer.status_code == 200, answer.text
    assert answer.json()["added"] == 1
    client = em.Client(host=server.url, api_key=key)
    got = client.media(run_id, rank=1)
    assert len(got) == len(peer) + 1 and got[-1].text == "from the journal"
    assert _post(server, key, f"/runs/{run_id}/journal/1", journal.encode(), last=5).json()["added"] == 0


def test_journal_image_arrives_before_the_folder(server, tmp_path, monkeypatch) -> None:
    _, key = server.add_user()
    path = _run_with_two_ranks(tmp_path, monkeypatch)
    run_id = em.load_run(path).id
    folder_media = Path(path) / "media"
    rank1 = media_file(Path(path), 1).read_bytes()
    media_file(Path(path), 1).unlink()  # the folder's first upload lacks rank 1's media
    em.upload(path, host=server.url, api_key=key)
    img = media_record("val", 0, None, 2.0, "img", em.Image(np.full((4, 5), 100, dtype=np.uint8)))
    answer = _post(server, key, f"/runs/{run_id}/journal/1", f"1\t{img}".encode())
    assert answer.status_code == 200 and answer.json()["added"] == 1
    media_file(Path(path), 1).write_bytes(rank1)
    em.upload(path, host=server.url, api_key=key)  # record 1 is held already: skipped
    client = em.Client(host=server.url, api_key=key)
    got = client.media(run_id, rank=1)
    assert [m.step for m in got] == [0, 1, 0, 1]
    assert got[0].image_bytes() == (folder_media / f"{got[0].sha256}.png").read_bytes()


@pytest.mark.parametrize("line", [
    b"not json\n", b"[1]\n", b'{"kind":"video","type":"v","name":"x","step":0}\n',
    b'{"kind":"text","type":"v","name":"x","step":-1,"text":"a"}\n',
    b'{"kind":"text","type":"v","name":"x","step":0,"text":5}\n',
    b'{"kind":"text","type":"v","name":"x","step":0,"text":"a\\u0000"}\n',
    b'{"kind":"histogram","type":"v","name":"x","step":0,"bins":[0,1],"counts":[1,2]}\n',
    b'{"kind":"histogram","type":"v","name":"x","step":0,"bins":[0,NaN],"counts":[1]}\n',
    b'{"kind":"table","type":"v","name":"x","step":0,"columns":["a"],"rows":[[1,2]]}\n',
    b'{"kind":"image","type":"v","name":"x","step":0,"width":1,"height":1,"sha256":"../../etc"}\n',
    b'{"kind":"image","type":"v","name":"x","step":0,"width":100000,"height":100000,"sha256":"' + b"a" * 64 + b'"}\n',
    b'{"kind":"text","type":"v","name":"x","step":0,"text":"a"}',  # no newline
    b"[" * 100000 + b"\n",
])
def test_hostile_media_lines_are_refused_with_400(server, tmp_path, line: bytes) -> None:
    _, key = server.add_user()
    run = em.create_run(name="hostile")
    run.finish()
    run_id = em.upload(run.path, host=server.url, api_key=key).server_run_id
    answer = _post(server, key, f"/runs/{run_id}/media/0", line, offset=0)
    assert answer.status_code == 400, answer.text
    if line.endswith(b"\n"):  # the same record in a journal
        journal = _post(server, key, f"/runs/{run_id}/journal/1", b"1\t\x1d" + line)
        assert journal.status_code == 400, journal.text


def test_an_image_not_uploaded_is_a_409_naming_it(server, tmp_path) -> None:
    _, key = server.add_user()
    run = em.create_run(name="noblob")
    run.finish()
    run_id = em.upload(run.path, host=server.url, api_key=key).server_run_id
    sha = "b" * 64
    line = json.dumps({"kind": "image", "type": "v", "name": "x", "step": 0, "width": 1, "height": 1, "sha256": sha})
    answer = _post(server, key, f"/runs/{run_id}/media/0", line.encode() + b"\n", offset=0)
    assert answer.status_code == 409 and answer.json()["missing"] == [sha]
    # a journal's image must carry its PNG: a bare hash would name a blob the sender may not hold
    journal = _post(server, key, f"/runs/{run_id}/journal/1", b"1\t\x1d" + line.encode() + b"\n")
    assert journal.status_code == 400 and "carries its PNG" in journal.json()["detail"]


def test_gc_keeps_the_images_runs_logged(fresh_server, tmp_path, monkeypatch) -> None:
    from em_dist.server import blob_gc
    from em_dist.server.blobs_dir import DirectoryBlobStore
    from em_dist.server.config import ServerConfig
    from em_dist.server.db import open_database

    _, key = fresh_server.add_user()
    path = _run_with_two_ranks(tmp_path, monkeypatch)
    run_id = em.upload(path, host=fresh_server.url, api_key=key).server_run_id
    config = ServerConfig.build(fresh_server.data_dir, fresh_server.db_url)
    report = blob_gc.collect(open_database(config), DirectoryBlobStore(config.data_dir / "blobs"), grace_s=0)
    assert report.blobs == 0
    for m in em.Client(host=fresh_server.url, api_key=key).run(run_id).media(name="img"):
        assert m.image_bytes()


@pytest.mark.parametrize("kind", ["sqlite", "postgresql"])
def test_reads_page_by_count_and_bytes(request: pytest.FixtureRequest, tmp_path: Path, kind: str) -> None:
    from em_dist.server import admin, media_store, migrate
    from em_dist.server.config import ServerConfig
    from em_dist.server.db import open_database
    from em_dist.server.models import Folder, Run, User
    from tests.server.harness import database_url

    config = ServerConfig.build(tmp_path / "server", database_url(kind, request))
    migrate.upgrade(config)
    db = open_database(config)
    admin.add_user(db, "alice")
    with db.write_session() as session:
        user = session.query(User).filter_by(name="alice").one()
        folder = Folder(owner_id=user.id, name="f", path="f")
        session.add(folder)
        session.flush()
        session.add(Run(id="r1", folder_id=folder.id, owner_id=user.id, name="r", local_name="r",
                        alternative_name="r", status="Running"))
        session.flush()
        docs = [{"kind": "text", "type": "v", "name": "s", "step": i, "text": "x" * 100} for i in range(7)]
        media_store.insert_rows(session, [media_store.row_for("r1", i % 2, d) for i, d in enumerate(docs)])
        session.commit()
    with db.read_session() as session:
        seen, after, pages = [], None, 0
        while True:
            page, more = media_store.read(session, "r1", after=after, limit=3, max_bytes=400)
            seen += page
            pages += 1
            if not more:
                break
            after = page[-1]["id"]
        assert [d["step"] for d in seen] == list(range(7)) and pages == 4  # two a page: about 150 bytes each, 400 at most
        assert media_store.read(session, "r1", limit=3)[0][-1]["step"] == 2
