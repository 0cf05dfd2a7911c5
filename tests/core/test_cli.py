"""The ``deme`` CLI: usage errors, users and tokens, checks — run as a real subprocess."""

from __future__ import annotations

import os
import subprocess

from sqlalchemy import select
from sqlalchemy.orm import Session

from models import ApiToken, User
from support import PROJECT_ROOT

DEME = str(PROJECT_ROOT / ".venv" / "bin" / "deme")


def deme(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [DEME, *args],
        cwd=PROJECT_ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_no_arguments_prints_usage() -> None:
    result = deme()
    assert "Usage" in result.stdout + result.stderr
    assert "migrate" in result.stdout + result.stderr


def test_unknown_command_is_a_usage_error() -> None:
    result = deme("frobnicate")
    assert result.returncode == 2
    assert "Usage" in result.stderr and "frobnicate" in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_role_is_rejected_with_the_choices(db: Session) -> None:
    result = deme("create-user", "amadou", "--role", "king")
    assert result.returncode == 2
    assert "--role must be one of" in result.stderr and "Traceback" not in result.stderr


def test_bad_setting_stops_the_cli_with_its_name() -> None:
    result = deme("check", env={"DEME_PORT": "not-a-port"})
    assert result.returncode == 2
    assert "DEME_PORT" in result.stderr and "Traceback" not in result.stderr


def test_create_user_then_token(db: Session) -> None:
    created = deme("create-user", "fatoumata", "--role", "operator", "--display-name", "Fatou")
    assert created.returncode == 0, created.stderr
    assert "Password:" in created.stdout
    duplicate = deme("create-user", "fatoumata", "--role", "operator")
    assert duplicate.returncode == 1 and "already exists" in duplicate.stderr

    token = deme("create-token", "fatoumata", "--name", "integration")
    assert token.returncode == 0, token.stderr
    bearer = token.stdout.strip().splitlines()[-1]
    assert len(bearer) >= 32
    user = db.scalar(select(User).where(User.username == "fatoumata"))
    assert user is not None and user.role == "operator"
    stored = db.scalar(select(ApiToken).where(ApiToken.user_id == user.id))
    assert stored is not None and bearer not in stored.token_hash

    missing = deme("create-token", "nobody")
    assert missing.returncode == 1 and "no active user" in missing.stderr


def test_check_reports_what_is_reachable(database: str) -> None:
    result = deme("check")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "database: ok" in result.stdout
    assert "broker: ok" in result.stdout


def test_check_names_what_is_unreachable(database: str) -> None:
    result = deme("check", env={"DEME_REDIS_URL": "redis://127.0.0.1:1/0"})
    assert result.returncode == 1
    assert "broker: NOT REACHABLE" in result.stdout


def test_rotate_keys_re_encrypts_with_the_new_key(db: Session) -> None:
    from core.crypto import generate_key
    from core.settings import get_settings
    from tickets.contacts import get_or_create_contact

    old = get_settings().pii_key.get_secret_value()
    get_or_create_contact(db, "+22376123456")
    db.commit()
    new = generate_key()
    result = deme("rotate-keys", env={"DEME_PII_KEY": f"{new},{old}"})
    assert result.returncode == 0, result.stderr
    assert "contacts.phone_hash: 1" in result.stdout
    assert "+22376123456" not in result.stdout + result.stderr
    # The old key alone no longer reads the number: it was re-encrypted with the new one.
    broken = deme("rotate-keys", env={"DEME_PII_KEY": old})
    assert broken.returncode != 0
    again = deme("rotate-keys", env={"DEME_PII_KEY": new})
    assert again.returncode == 0 and "contacts.phone: 0" in again.stdout
