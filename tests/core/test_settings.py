"""Settings: DEME_* variables, clear errors naming the variable, no defaults in production."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from core.settings import DEV_PII_KEY, Settings, SettingsError, load_settings
from support import PROJECT_ROOT

PRODUCTION_SECRETS = {
    "DEME_ENV": "production",
    "DEME_SECRET_KEY": "s" * 40,
    "DEME_PII_KEY": "b6Yw3Qm9mE5m3ZtT1C7i3yV9wZr9a2Zc0Zk7mP2q3sI=",
    "DEME_BOT_SHARED_SECRET": "bot-secret-for-production-1234",
    "DEME_DATABASE_URL": "postgresql://deme@db/deme",
}


def test_defaults_are_the_embedded_platform(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in list(os.environ):
        if name.startswith("DEME_"):
            monkeypatch.delenv(name)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.effective_database_url.startswith("sqlite:///")
    assert settings.effective_database_url.endswith("var/deme.sqlite3")
    assert settings.redis_url is None
    assert settings.port == 8000


def test_postgresql_urls_use_psycopg3(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEME_DATABASE_URL", "postgresql://u@h/db")
    assert load_settings().database_url == "postgresql+psycopg://u@h/db"


@pytest.mark.parametrize(
    ("variable", "value", "fragment"),
    [
        ("DEME_PORT", "eighty", "DEME_PORT"),
        ("DEME_PORT", "70000", "DEME_PORT"),
        ("DEME_DATABASE_URL", "mysql://x", "DEME_DATABASE_URL"),
        ("DEME_REDIS_URL", "localhost:6379", "DEME_REDIS_URL"),
        ("DEME_PUBLIC_URL", "deme.example.org", "DEME_PUBLIC_URL"),
        ("DEME_BOT", "gpt", "DEME_BOT"),
    ],
)
def test_wrong_setting_names_the_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, fragment: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=fragment):
        load_settings()


@pytest.mark.parametrize("missing", ["DEME_SECRET_KEY", "DEME_PII_KEY", "DEME_BOT_SHARED_SECRET"])
def test_production_refuses_default_secrets(monkeypatch: pytest.MonkeyPatch, missing: str) -> None:
    for name, value in PRODUCTION_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv(missing)
    with pytest.raises(SettingsError, match=f"{missing} is missing or still the development"):
        load_settings()


def test_production_refuses_the_development_pii_key(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEME_PII_KEY", DEV_PII_KEY)
    with pytest.raises(SettingsError, match="DEME_PII_KEY"):
        load_settings()


def test_production_accepts_real_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    for name, value in PRODUCTION_SECRETS.items():
        monkeypatch.setenv(name, value)
    assert load_settings().env == "production"


def test_web_start_up_stops_with_a_message_naming_the_variable() -> None:
    env = {**os.environ, **PRODUCTION_SECRETS}
    del env["DEME_SECRET_KEY"]
    result = subprocess.run(
        [sys.executable, "-c", "import deme.asgi"],
        cwd=PROJECT_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "DEME_SECRET_KEY" in result.stderr
    assert "Traceback" not in result.stderr


def test_production_refuses_the_development_pii_key_even_as_a_secondary_key(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name, value in PRODUCTION_SECRETS.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DEME_PII_KEY", f"{PRODUCTION_SECRETS['DEME_PII_KEY']}, {DEV_PII_KEY}")
    with pytest.raises(SettingsError, match=r"DEME_PII_KEY .*development default"):
        load_settings()
