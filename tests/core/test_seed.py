"""``deme seed`` loads the gazetteer, demo teams and rules, channels from the environment
and a first admin — and running it again changes nothing."""

from __future__ import annotations

import os
import subprocess

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from models import Channel, Place, PlaceAlias, RoutingRule, Team, User
from support import PROJECT_ROOT
from tickets.gazetteer import load_place_records

TWILIO_ENV = {
    "DEME_TWILIO_ACCOUNT_SID": "AC" + "1" * 32,
    "DEME_TWILIO_AUTH_TOKEN": "twilio-secret-token-0123456789",
    "DEME_TWILIO_FROM": "+22370000000",
}


def seed() -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(PROJECT_ROOT / ".venv" / "bin" / "deme"), "seed"],
        cwd=PROJECT_ROOT,
        env={**os.environ, **TWILIO_ENV},
        capture_output=True,
        text=True,
        timeout=300,
    )


def _counts(db: Session) -> dict[str, int]:
    return {
        model.__tablename__: db.scalar(select(func.count()).select_from(model)) or 0
        for model in (Place, PlaceAlias, Team, RoutingRule, Channel, User)
    }


def test_seed_loads_everything_once(db: Session) -> None:
    first = seed()
    assert first.returncode == 0, first.stderr
    assert "Seeding the gazetteer" in first.stdout and "Seed complete." in first.stdout
    assert "First admin: username 'admin', password " in first.stdout
    counts = _counts(db)
    assert counts["places"] == len(load_place_records())
    assert counts["place_aliases"] > counts["places"]
    assert counts["teams"] >= 5 and counts["routing_rules"] >= 5

    douentza = db.scalar(select(Place).where(Place.name == "Douentza", Place.kind == "cercle"))
    assert douentza is not None and douentza.parent is not None
    assert douentza.parent.name == "Douentza" and douentza.former_parent is not None
    assert douentza.former_parent.name == "Mopti"

    gao_rule = db.scalar(select(RoutingRule).where(RoutingRule.name == "Protection — Gao"))
    assert gao_rule is not None and gao_rule.place_id is not None

    twilio = db.scalar(select(Channel).where(Channel.name == "twilio"))
    assert twilio is not None and twilio.address == "+22370000000"
    assert twilio.credentials == {
        "account_sid": TWILIO_ENV["DEME_TWILIO_ACCOUNT_SID"],
        "auth_token": TWILIO_ENV["DEME_TWILIO_AUTH_TOKEN"],
    }
    raw = db.execute(text("SELECT credentials FROM channels WHERE name = 'twilio'")).scalar_one()
    assert TWILIO_ENV["DEME_TWILIO_AUTH_TOKEN"] not in raw

    second = seed()
    assert second.returncode == 0, second.stderr
    assert "First admin" not in second.stdout
    db.expire_all()
    assert _counts(db) == counts
