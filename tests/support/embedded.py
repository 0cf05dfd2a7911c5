"""The embedded deployment (`make run` with no servers) for tests: a migrated SQLite file and
no Redis, with every cached engine and setting forgotten on the way in and out."""

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


@contextmanager
def embedded_deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """Point Deme at a fresh SQLite database under ``tmp_path`` (no Redis); yields its URL."""
    url = f"sqlite:///{tmp_path / 'deme.sqlite3'}"
    run_migrations(url)
    monkeypatch.setenv("DEME_DATABASE_URL", url)
    monkeypatch.delenv("DEME_REDIS_URL", raising=False)
    monkeypatch.setenv("DEME_VAR_DIR", str(tmp_path / "var"))
    forget_configuration()
    try:
        yield url
    finally:
        monkeypatch.undo()
        forget_configuration()
