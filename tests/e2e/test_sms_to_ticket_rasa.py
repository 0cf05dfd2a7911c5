"""The message path with the real bot: Rasa server + action server (bot/scripts/run.sh, the
bot's own Python 3.10 environment), the platform under uvicorn (the actions call its
/api/v1), a real Celery worker with DEME_BOT=rasa, on the session's deployment. Then Rasa is
stopped and the next SMS still becomes a ticket through the fallback classifier."""

from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from models import Household, Place, User, UserRole
from support import wait_until
from support.bot import BotProcess
from support.environment import private_broker_env
from support.workers import WorkerProcess
from tests.e2e.helpers import post_sms, replies_to, ticket_for
from tests.gateway.fake_provider import FakeProvider
from tests.gateway.gateway_helpers import UvicornServer

# Rasa alone may take up to 420 s to load its model on a busy machine (BotProcess.wait_ready).
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

SHARED_SECRET = "e2e-bot-shared-secret"
# A broker of its own: the session's fallback worker (tests/conftest.py) listens on the
# session's broker and would otherwise take these messages and answer without Rasa.
RASA_BROKER_ENV = private_broker_env("rasa", os.environ.get("DEME_TEST_RASA_REDIS_DB", "4"))

MESSAGES = [
    (
        "+22376000201",
        "svp ya pa d'eau potable a sevare depuis 3 jours, nous sommes 6",
        "wash",
        "Sévaré",
        6,
    ),
    (
        "+22366000202",
        "an den ka bana kosebe, farigan b'a la. an be Mopti, an ye mogo 8 ye",
        "health",
        "Mopti",
        8,
    ),
    (
        "+22370000203",
        "our shelter was destroyed by the rain in gao, we are 5 people",
        "shelter_nfi",
        "Gao",
        5,
    ),
]


@pytest.fixture()
def bot_stack(db: Session, platform: Any) -> Iterator[tuple[UvicornServer, BotProcess, Any]]:
    from ops_console.auth import issue_api_token

    service = User(username="bot", display_name="bot", role=UserRole.SERVICE)
    db.add(service)
    db.flush()
    token = issue_api_token(db, service, "e2e")
    db.commit()
    if "DEME_REDIS_URL" in RASA_BROKER_ENV:
        import redis

        redis.Redis.from_url(RASA_BROKER_ENV["DEME_REDIS_URL"]).flushdb()
    server = UvicornServer(
        env={"DEME_BOT_SHARED_SECRET": SHARED_SECRET, **RASA_BROKER_ENV},
        workers=1,
    )
    bot = BotProcess(
        {
            "DEME_API_URL": server.url,
            "DEME_API_TOKEN": token,
            "DEME_BOT_SHARED_SECRET": SHARED_SECRET,
        }
    )
    worker = None
    try:
        bot.wait_ready()
        worker = WorkerProcess(
            env={
                "DEME_BOT": "rasa",
                "DEME_RASA_URL": bot.url,
                "DEME_BOT_SHARED_SECRET": SHARED_SECRET,
                "DEME_RASA_TIMEOUT_SECONDS": "30",
                **RASA_BROKER_ENV,
            }
        )
        yield server, bot, worker
    finally:
        if worker is not None:
            worker.stop()
        bot.stop()
        server.stop()


def test_rasa_turns_sms_into_tickets_then_fallback_when_it_stops(
    db: Session, bot_stack: tuple[UvicornServer, BotProcess, Any], provider: FakeProvider
) -> None:
    server, bot, _worker = bot_stack
    for sender, text, _category, _place, _size in MESSAGES:
        post_sms(None, sender, text, server.url)
    for sender, _text, category, place, size in MESSAGES:
        wait_until(lambda s=sender: ticket_for(db, s) is not None, timeout=120)
        ticket = ticket_for(db, sender)
        assert ticket is not None
        assert ticket.category == category, (sender, ticket.category)
        assert not ticket.needs_review, "the bot, not the fallback, should have handled it"
        place_row = db.get(Place, ticket.place_id) if ticket.place_id else None
        assert place_row is not None and place_row.name == place
        household = db.get(Household, ticket.household_id) if ticket.household_id else None
        assert household is not None and household.size == size
        wait_until(lambda s=sender: replies_to(provider, s) != [], timeout=60)

    bot.stop()  # Rasa gone: the next message must still become a ticket
    sender = "+22376000209"
    post_sms(None, sender, "pas d'eau a sevare depuis lundi, nous sommes 4", server.url)
    wait_until(lambda: ticket_for(db, sender) is not None, timeout=120)
    ticket = ticket_for(db, sender)
    assert ticket is not None and ticket.category == "wash" and ticket.needs_review
    wait_until(lambda: any(ticket.reference in r for r in replies_to(provider, sender)))
