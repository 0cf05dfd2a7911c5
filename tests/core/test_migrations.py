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
