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


def test_seed_gives_the_ussd_channel_a_secret_shown_once(db: Session) -> None:
    from sqlalchemy import select

    from models.channels import Channel

    env = {
        "DEME_AFRICASTALKING_USERNAME": "sandbox",
        "DEME_AFRICASTALKING_API_KEY": "at-api-key",
        "DEME_AFRICASTALKING_USSD_CODE": "*384*123#",
    }
    first = deme("seed", "--no-demo", env=env)
    assert first.returncode == 0, first.stderr
    [line] = [x for x in first.stdout.splitlines() if "caller secret (shown once)" in x]
    secret = line.rsplit(" ", 1)[1]
    assert f"/webhooks/africastalking/ussd?token={secret}" in first.stdout
    channel = db.scalar(select(Channel).where(Channel.name == "africastalking"))
    assert channel is not None and channel.credentials["ussd_secret"] == secret
    sms_secret = channel.credentials["webhook_secret"]

    again = deme("seed", "--no-demo", env=env)
    assert again.returncode == 0, again.stderr
    assert "shown once" not in again.stdout and secret not in again.stdout
    db.expire_all()
    channel = db.scalar(select(Channel).where(Channel.name == "africastalking"))
    assert channel is not None
    assert channel.credentials["ussd_secret"] == secret  # kept, with the SMS webhook's
    assert channel.credentials["webhook_secret"] == sms_secret


def test_channel_secret_sets_a_given_secret_and_refuses_a_short_one(db: Session) -> None:
    from sqlalchemy import select

    from models.channels import Channel
    from models.enums import ChannelType

    db.add(Channel(name="orange", type=ChannelType.HTTP, config={"ussd_fields": {}}))
    db.commit()
    short = deme("channel-secret", "orange", "--set", "short")
    assert short.returncode != 0 and "at least 16 characters" in short.stderr
    done = deme("channel-secret", "orange", "--set", "a-chosen-secret-of-20")
    assert done.returncode == 0, done.stderr
    assert "X-Deme-Token: a-chosen-secret-of-20" in done.stdout
    db.expire_all()
    channel = db.scalar(select(Channel).where(Channel.name == "orange"))
    assert channel is not None and channel.credentials["ussd_secret"] == "a-chosen-secret-of-20"
    unknown = deme("channel-secret", "nope")
    assert unknown.returncode != 0 and "no channel named 'nope'" in unknown.stderr


def test_check_names_a_ussd_channel_nobody_can_authenticate(db: Session) -> None:
    from models.channels import Channel
    from models.enums import ChannelType

    db.add(Channel(name="at-open", type=ChannelType.AFRICASTALKING, config={"ussd_code": "*1#"}))
    db.commit()
    result = deme("check")
    assert result.returncode == 1
    assert "NOT AUTHENTICATED on at-open" in result.stdout


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
