"""One Alembic history that upgrades and downgrades on PostgreSQL and SQLite, and matches
the models (a model change without its migration fails here)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine, inspect, text

import models
from core.db import make_engine
from support.db import run_migrations
from support.environment import PG_ADMIN_URL, TEST_DB

MIGRATION_DB = f"{TEST_DB}_migrations"


@pytest.fixture()
def postgres_url() -> Iterator[str]:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{MIGRATION_DB}"'))
        connection.execute(text(f'CREATE DATABASE "{MIGRATION_DB}"'))
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{MIGRATION_DB}"
    yield url
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{MIGRATION_DB}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture()
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'deme.sqlite3'}"


def _table_names(url: str) -> set[str]:
    engine = make_engine(url)
    try:
        return set(inspect(engine).get_table_names()) - {"alembic_version"}
    finally:
        engine.dispose()


def _schema_drift(url: str) -> list[object]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(connection, opts={"compare_type": False})
            return list(compare_metadata(context, models.Base.metadata))
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_upgrade_downgrade_upgrade(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    run_migrations(url)
    assert _table_names(url) == set(models.Base.metadata.tables)
    assert _schema_drift(url) == [], "models and migrations disagree: write a migration"
    run_migrations(url, "base", downgrade=True)
    assert _table_names(url) == set()
    run_migrations(url)
    assert _table_names(url) == set(models.Base.metadata.tables)


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_audit_log_is_append_only(backend: str, request: pytest.FixtureRequest) -> None:
    url = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    run_migrations(url)
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text(
                    "INSERT INTO audit_log (at, actor_label, action, details) "
                    "VALUES (CURRENT_TIMESTAMP, 'test', 'x.done', '{}')"
                )
            )
        for statement in ("UPDATE audit_log SET action = 'tampered'", "DELETE FROM audit_log"):
            with pytest.raises(Exception, match="append-only"), engine.begin() as connection:
                connection.execute(text(statement))
        with engine.connect() as connection:
            assert connection.execute(text("SELECT action FROM audit_log")).scalar_one() == "x.done"
    finally:
        engine.dispose()


_PLAIN_ROWS = (
    "INSERT INTO channels (id, name, type, config, active, created_at, updated_at) "
    "VALUES (1, 'c', 'simulator', '{}', TRUE, '2026-11-01', '2026-11-01')",
    "INSERT INTO tickets (id, reference, category, priority, status, sensitive, source, "
    "needs_review, sla_paused_seconds, created_at, updated_at, summary, description) VALUES "
    "(1, 'T-AAAA1', 'protection', 'high', 'new', TRUE, 'sms', FALSE, 0, '2026-11-01', "
    "'2026-11-01', 'Menace de mort', 'Menace de mort au camp de Sévaré'), "
    "(2, 'T-AAAA2', 'wash', 'normal', 'new', FALSE, 'sms', FALSE, 0, '2026-11-01', "
    "'2026-11-01', 'Forage cassé', 'Forage cassé depuis lundi')",
    "INSERT INTO messages (id, channel_id, direction, status, sanitized, flood_limited, "
    "transliterated, send_attempts, created_at, status_updated_at, body) VALUES "
    "(1, 1, 'in', 'received', FALSE, FALSE, FALSE, 0, '2026-11-01', '2026-11-01', "
    "'Menace de mort au camp de Sévaré')",
    "INSERT INTO ticket_events (id, ticket_id, kind, data, created_at, body) VALUES "
    "(1, 1, 'note', '{}', '2026-11-01', 'Menace confirmée par la voisine')",
    "INSERT INTO calls (id, direction, status, created_at, notes) VALUES "
    "(1, 'in', 'completed', '2026-11-01', 'Menace répétée au téléphone')",
)
_FREE_TEXT = (
    ("tickets", "summary"),
    ("tickets", "description"),
    ("messages", "body"),
    ("ticket_events", "body"),
    ("calls", "notes"),
)


def _free_text(url: str) -> dict[str, list[str]]:
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            return {
                f"{table}.{column}": [
                    str(value)
                    for value in connection.execute(
                        text(f"SELECT {column} FROM {table} ORDER BY id")
                    ).scalars()
                    if value is not None
                ]
                for table, column in _FREE_TEXT
            }
    finally:
        engine.dispose()


@pytest.mark.parametrize("backend", ["postgresql", "sqlite"])
def test_free_text_is_encrypted_in_place_and_decrypted_on_downgrade(
    backend: str, request: pytest.FixtureRequest
) -> None:
    from core.crypto import decrypt_text, search_hash

    url = request.getfixturevalue("postgres_url" if backend == "postgresql" else "sqlite_url")
    run_migrations(url, "0003_queue_index")
    engine = make_engine(url)
    try:
        with engine.begin() as connection:
            for statement in _PLAIN_ROWS:
                connection.execute(text(statement))
    finally:
        engine.dispose()
    before = _free_text(url)
    assert sum(len(values) for values in before.values()) == 7

    run_migrations(url)
    after = _free_text(url)
    dump = "\n".join(value for values in after.values() for value in values)
    for word in ("Menace", "Sévaré", "Forage", "voisine"):
        assert word not in dump
    assert {key: [decrypt_text(v) for v in values] for key, values in after.items()} == before
    engine = make_engine(url)
    try:
        with engine.connect() as connection:
            indexes = dict(connection.execute(text("SELECT id, search_index FROM tickets")).all())
    finally:
        engine.dispose()
    assert indexes[1] is None  # protection: no index at all
    assert f" {search_hash('forage')} " in indexes[2] and "Forage" not in indexes[2]
    run_migrations(url)  # idempotent: already-encrypted values are left as they are
    assert {k: [decrypt_text(v) for v in vs] for k, vs in _free_text(url).items()} == before

    run_migrations(url, "0003_queue_index", downgrade=True)
    assert _free_text(url) == before
