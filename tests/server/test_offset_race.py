"""Two uploads of one run send the same metrics chunk at once on PostgreSQL (two server
processes): the second waits for the first and acknowledges the bytes it stored."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from sqlalchemy import text

from em_dist.server import admin, metric_store, migrate
from em_dist.server.config import ServerConfig
from em_dist.server.db import open_database
from em_dist.server.models import Folder, RankOffset, Run, User
from tests.poll import wait_for
from tests.server.harness import database_url

CHUNK = b'{"type": "train", "step": 0, "metrics": {"loss": 1.0}}\n'


def test_the_second_of_two_concurrent_ingests_acknowledges_the_first(request: pytest.FixtureRequest, tmp_path: Path) -> None:
    config = ServerConfig.build(tmp_path / "server", database_url("postgresql", request))
    migrate.upgrade(config)
    db = open_database(config)
    try:
        admin.add_user(db, "alice")
        with db.write_session() as session:
            user = session.query(User).filter_by(name="alice").one()
            folder = Folder(owner_id=user.id, name="f", path="f")
            session.add(folder)
            session.flush()
            session.add(Run(id="r1", folder_id=folder.id, owner_id=user.id, name="r", local_name="r",
                            alternative_name="r", status="Running"))
            session.flush()
            session.add(RankOffset(run_id="r1", rank=0, offset=0, lines=0))
            session.commit()
        first = db.write_session()
        assert metric_store.ingest(first, "r1", 0, 0, CHUNK).offset == len(CHUNK)  # not committed yet
        outcome: list[object] = []

        def second() -> None:
            with db.write_session() as session:
                try:
                    outcome.append(metric_store.ingest(session, "r1", 0, 0, CHUNK))
                except Exception as exc:  # noqa: BLE001 - the test reports it
                    outcome.append(exc)
                session.rollback()

        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        def waiting() -> int:  # a fresh transaction per look: pg_stat_activity is frozen within one
            with db.read_session() as probe:
                return probe.execute(text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock'")).scalar()

        wait_for(waiting, what="the second ingest to wait on the first's offset row")
        first.commit()
        first.close()
        thread.join(30)
        (result,) = outcome
        assert isinstance(result, metric_store.IngestResult), result
        assert (result.offset, result.lines, result.points) == (len(CHUNK), 1, 0)
    finally:
        db.dispose()
