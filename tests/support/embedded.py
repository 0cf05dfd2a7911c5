"""The embedded deployment (`make run` with no servers) for tests: a migrated SQLite file and
the embedded broker (``core.broker``, a real Valkey under ``var/broker``) handed over exactly
as ``deme run`` hands it to its children, with every cached engine and setting forgotten on
the way in and out."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from support.db import run_migrations


def forget_configuration() -> None:
    from core import fastpublish
    from core.db import reset_engine_cache
    from core.settings import get_settings
    from gateway.ussd.service import reset_default_service

    get_settings.cache_clear()
    reset_engine_cache()
    reset_default_service()
    fastpublish.reset()


def reset_redis_clients() -> None:
    """Every cached Redis connection (they name the URL they were made for)."""
    from core import locks
    from gateway import limits

    locks._redis_for.cache_clear()
    limits.reset_redis_client()


@contextmanager
def embedded_deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point Deme at a fresh SQLite database under ``tmp_path`` and a running embedded broker
    (started, and its URL obtained, by the functions ``deme run`` uses); yields the database
    URL. The broker is stopped on the way out."""
    from core import broker
    from core.settings import get_settings

    url = f"sqlite:///{tmp_path / 'deme.sqlite3'}"
    run_migrations(url)
    monkeypatch.setenv("DEME_DATABASE_URL", url)
    monkeypatch.delenv("DEME_REDIS_URL", raising=False)
    monkeypatch.setenv("DEME_VAR_DIR", str(tmp_path / "var"))
    forget_configuration()
    settings = get_settings()
    server = broker.EmbeddedBroker.for_settings(settings).start()
    for name, value in broker.child_environment(settings).items():
        monkeypatch.setenv(name, value)
    forget_configuration()
    reset_redis_clients()
    try:
        yield url
    finally:
        broker.stop(server)
        monkeypatch.undo()
        forget_configuration()
        reset_redis_clients()
