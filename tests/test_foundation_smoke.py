from __future__ import annotations

from sqlalchemy import text


def test_migrated_database_answers(db) -> None:
    assert db.execute(text("SELECT count(*) FROM tickets")).scalar_one() == 0


def test_healthz(client) -> None:
    assert client.get("/healthz").json() == {"status": "ok"}
