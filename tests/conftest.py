"""Shared test fixtures: a real database, a real broker, a real Celery worker — on either
deployment of the product (``--deployment``, see support.environment):

- ``server`` (default): each session gets its own PostgreSQL database (``DEME_TEST_DB``,
  default ``deme_test``) and Redis database number (``DEME_TEST_REDIS_DB``, default 15) so
  parallel runs on one machine never clobber each other;
- ``embedded``: no server at all, as `make run` starts it — a SQLite file and the embedded
  broker in the session's own var folder (``var/test-<DEME_TEST_DB>-embedded``).

The environment is set here, before any Deme module reads its settings.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from support.environment import (
    DEPLOYMENT,
    DEPLOYMENTS,
    EMBEDDED,
    PG_ADMIN_URL,
    TEST_DATABASE_URL,
    TEST_DB,
    TEST_REDIS_URL,
    TEST_VAR_DIR,
)

os.environ.update(
    {
        "DEME_ENV": "test",
        "DEME_VAR_DIR": str(TEST_VAR_DIR),
        "DEME_BOT": os.environ.get("DEME_TEST_BOT", "fallback"),
        "DEME_PUBLIC_URL": "https://deme.test",
    }
)
if EMBEDDED:
    # Exactly what `deme run` gives its children on a bare machine: no database URL (the SQLite
    # file in the var folder) and the embedded broker's socket as DEME_REDIS_URL (core.broker;
    # started by the `database` fixture, as `deme run` starts it before the others).
    from support.environment import embedded_broker_url

    os.environ.pop("DEME_DATABASE_URL", None)
    os.environ["DEME_REDIS_URL"] = embedded_broker_url()
else:
    os.environ.update({"DEME_DATABASE_URL": TEST_DATABASE_URL, "DEME_REDIS_URL": TEST_REDIS_URL})
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

import shutil  # noqa: E402

from sqlalchemy import create_engine, text  # noqa: E402
from sqlalchemy.exc import OperationalError  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from support.db import run_migrations  # noqa: E402
from support.workers import BeatProcess, WorkerProcess  # noqa: E402


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--deployment",
        choices=DEPLOYMENTS,
        default="server",
        help="run against the server stack (PostgreSQL + Redis, default) or the embedded "
        "default of `make run` (SQLite + embedded broker); also DEME_TEST_DEPLOYMENT",
    )


def pytest_configure(config: pytest.Config) -> None:
    chosen = config.getoption("deployment")
    if chosen != "server" and chosen != DEPLOYMENT:
        # support.environment read the command line itself (it had to, before pytest); a
        # value it could not see (pytest.main(args), an ini addopts) would be half-applied.
        raise pytest.UsageError(
            f"--deployment={chosen} was not seen early enough; set DEME_TEST_DEPLOYMENT={chosen}"
        )


def pytest_report_header() -> str:
    where = TEST_DATABASE_URL if not EMBEDDED else f"SQLite + embedded broker in {TEST_VAR_DIR}"
    return f"deployment: {DEPLOYMENT} ({where})"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if not EMBEDDED:
        return
    for item in items:
        marker = item.get_closest_marker("server_only")
        if marker is not None:
            reason = marker.kwargs.get("reason") or (marker.args[0] if marker.args else "")
            if not reason:
                raise pytest.UsageError(f"{item.nodeid}: server_only needs a reason")
            item.add_marker(pytest.mark.skip(reason=f"server stack only: {reason}"))


def _recreate_sqlite_database() -> None:
    """A fresh var folder: the database file (and its WAL) and the broker's folders."""
    if TEST_VAR_DIR.exists():
        shutil.rmtree(TEST_VAR_DIR)
    TEST_VAR_DIR.mkdir(parents=True)


def _recreate_database() -> None:
    if EMBEDDED:
        _recreate_sqlite_database()
        return
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
    """A freshly migrated database (PostgreSQL or the embedded SQLite file) for this session;
    on the embedded deployment also its broker, started as `deme run` starts it."""
    _recreate_database()
    run_migrations(TEST_DATABASE_URL)
    TEST_VAR_DIR.mkdir(parents=True, exist_ok=True)
    server = None
    if EMBEDDED:
        from core import broker

        server = broker.EmbeddedBroker(TEST_VAR_DIR / "broker").start()
    yield TEST_DATABASE_URL
    from core.db import reset_engine_cache

    reset_engine_cache()
    if server is not None:
        from core import broker

        broker.stop(server)


def purge_broker() -> None:
    """Drop every task still queued: a test's leftover task (a notification, an alert) must
    not run during the next test, against rows that reuse its ids. Through Kombu on the
    app's own broker, so it follows core.celery_app.broker_options on either deployment."""
    from core.celery_app import ALL_QUEUES, celery_app

    with celery_app.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in ALL_QUEUES.split(","):
            channel.queue_purge(queue)  # a queue never used holds nothing: 0


def forget_redis_state() -> None:
    """Drop what Deme keeps in Redis about people and channels (flood counts, send-rate
    windows, USSD sessions): keyed by row ids, which restart with every emptied table, so a
    later test's contact 1 would inherit an earlier test's flood count. The configuration
    cache's version token goes too: every process reloads rules, targets and places that
    the emptied tables no longer hold (models.config_cache)."""
    import redis

    from models.config_cache import TOKEN_KEY

    client = redis.Redis.from_url(os.environ["DEME_REDIS_URL"])
    try:
        client.delete(TOKEN_KEY)
        for pattern in ("deme:flood:*", "deme:rate:*", "deme:ussd:*"):
            keys = list(client.scan_iter(match=pattern, count=1000))
            if keys:
                client.delete(*keys)
    finally:
        client.close()


def truncate_all() -> None:
    """Empty the broker's queues, Deme's Redis state and every table, on the session's
    deployment."""
    purge_broker()
    forget_redis_state()
    if EMBEDDED:
        _delete_all_sqlite()
    else:
        _truncate_all_postgresql()


def _delete_all_sqlite() -> None:
    """SQLite has no TRUNCATE: DELETE FROM every table, children before parents so the
    foreign keys (enforced, see core.db) hold at every step, in one transaction. A writer
    still busy in the worker makes it wait (busy_timeout), not fail. As TRUNCATE does on
    PostgreSQL, no trigger fires (the audit log's append-only triggers are set aside and
    restored in the same transaction) and AUTOINCREMENT counters restart."""
    import models
    from core.db import get_engine

    with get_engine().begin() as connection:
        triggers = connection.execute(
            text("SELECT name, sql FROM sqlite_master WHERE type = 'trigger'")
        ).all()
        for name, _sql in triggers:
            connection.execute(text(f'DROP TRIGGER "{name}"'))
        for table in reversed(models.Base.metadata.sorted_tables):
            connection.execute(table.delete())
        for _name, sql in triggers:
            connection.execute(text(sql))
        has_sequences = connection.execute(
            text("SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'")
        ).first()
        if has_sequences:
            connection.execute(text("DELETE FROM sqlite_sequence"))


def _truncate_all_postgresql() -> None:
    """A worker left idle in a transaction would block TRUNCATE (it needs an exclusive lock),
    so such sessions are ended first and the statement is retried."""
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
def redis_client(request: pytest.FixtureRequest) -> Iterator[object]:
    """The deployment's Redis: the server stack's (its own database number) or the embedded
    broker (a Valkey server, started by the `database` fixture)."""
    import redis

    if EMBEDDED:
        request.getfixturevalue("database")  # starts the embedded broker
    client = redis.Redis.from_url(os.environ["DEME_REDIS_URL"] if EMBEDDED else TEST_REDIS_URL)
    client.flushdb()
    yield client
    client.flushdb()


@pytest.fixture(scope="session")
def celery_worker(request: pytest.FixtureRequest, database: str) -> Iterator[WorkerProcess]:
    """A real Celery worker on the deployment's broker (Redis, or the embedded broker of
    core.celery_app.broker_options), shared by the session's tests."""
    request.getfixturevalue("redis_client")  # flushed: no task of an earlier run left
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
