"""Shared test fixtures: a real PostgreSQL database, real Redis, a real Celery worker.

Each test session gets its own PostgreSQL database (``DEME_TEST_DB``, default ``deme_test``)
and Redis database number (``DEME_TEST_REDIS_DB``, default 15) so parallel runs on one
machine never clobber each other. The environment is set here, before any Deme module reads
its settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from support.environment import (
    PG_ADMIN_URL,
    TEST_DATABASE_URL,
    TEST_DB,
    TEST_REDIS_URL,
    TEST_VAR_DIR,
)

os.environ.update(
    {
        "DEME_ENV": "test",
        "DEME_DATABASE_URL": TEST_DATABASE_URL,
        "DEME_REDIS_URL": TEST_REDIS_URL,
        "DEME_VAR_DIR": str(TEST_VAR_DIR),
        "DEME_BOT": os.environ.get("DEME_TEST_BOT", "fallback"),
        "DEME_PUBLIC_URL": "https://deme.test",
    }
)
for _name in list(os.environ):
    # A developer's own DEME_* settings must not leak into the tests.
    if (
        _name.startswith("DEME_")
        and _name
        not in {
            "DEME_ENV",
            "DEME_DATABASE_URL",
            "DEME_REDIS_URL",
            "DEME_VAR_DIR",
            "DEME_BOT",
            "DEME_PUBLIC_URL",
        }
        and not _name.startswith("DEME_TEST")
    ):
        del os.environ[_name]

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from support.db import run_migrations  # noqa: E402
from support.workers import BeatProcess, WorkerProcess  # noqa: E402


def _recreate_database() -> None:
    admin = create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": TEST_DB},
        )
        connection.execute(text(f'DROP DATABASE IF EXISTS "{TEST_DB}"'))
        connection.execute(text(f'CREATE DATABASE "{TEST_DB}"'))
    admin.dispose()


@pytest.fixture(scope="session")
def database() -> Iterator[str]:
    """A freshly migrated PostgreSQL database for this test session."""
    _recreate_database()
    run_migrations(TEST_DATABASE_URL)
    TEST_VAR_DIR.mkdir(parents=True, exist_ok=True)
    yield TEST_DATABASE_URL
    from core.db import reset_engine_cache

    reset_engine_cache()


def truncate_all() -> None:
    """Empty every table. A worker left idle in a transaction would block TRUNCATE (it needs
    an exclusive lock), so such sessions are ended first and the statement is retried."""
    import models
    from core.db import get_engine

    tables = ", ".join(f'"{t.name}"' for t in models.Base.metadata.sorted_tables)
    for attempt in range(5):
        try:
            with get_engine().begin() as connection:
                connection.execute(text("SET LOCAL lock_timeout = '5s'"))
                connection.execute(
                    text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                        "WHERE datname = current_database() AND pid <> pg_backend_pid() "
                        "AND state LIKE 'idle in transaction%'"
                    )
                )
                connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
            return
        except OperationalError:
            if attempt == 4:
                raise


@pytest.fixture()
def db(database: str) -> Iterator[Session]:
    """A session on the test database; every table is emptied after the test."""
    from core.db import get_sessionmaker

    session = get_sessionmaker()()
    try:
        yield session
    finally:
        session.rollback()
        session.close()
        truncate_all()


@pytest.fixture(scope="session")
def redis_client() -> Iterator[object]:
    import redis

    client = redis.Redis.from_url(TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture(scope="session")
def celery_worker(database: str, redis_client: object) -> Iterator[WorkerProcess]:
    """A real Celery worker on the real Redis broker, shared by the session's tests."""
    worker = WorkerProcess()
    yield worker
    worker.stop()


@pytest.fixture()
def beat(celery_worker: WorkerProcess) -> Iterator[BeatProcess]:
    """Real beat next to the session's worker: the due-sweep publishes sends waiting in the
    database for their retry or their channel's breaker (every 0.5 s here)."""
    process = BeatProcess()
    yield process
    process.stop()


@pytest.fixture()
def client(database: str) -> Iterator[object]:
    """The real FastAPI app in-process (Starlette's TestClient over ASGI)."""
    from fastapi.testclient import TestClient

    from deme.app import create_app

    with TestClient(create_app(), base_url="https://deme.test") as test_client:
        yield test_client
    truncate_all()


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """One line with how many requests the fuzz tests (tests/fuzz) tried and how many 5xx."""
    from tests.fuzz.tally import summary_line

    line = summary_line()
    if line:
        terminalreporter.write_line(line)
