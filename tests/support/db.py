"""Database helpers for tests (migrations on any URL)."""

from __future__ import annotations

from support import PROJECT_ROOT


def run_migrations(database_url: str, revision: str = "head", *, downgrade: bool = False) -> None:
    from alembic import command
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "models" / "migrations"))
    config.attributes["database_url"] = database_url
    config.attributes["configure_logging"] = False
    if downgrade:
        command.downgrade(config, revision)
    else:
        command.upgrade(config, revision)
