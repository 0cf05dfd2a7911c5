"""The whole message path with the fallback classifier (DEME_BOT=fallback, or Rasa down):
a signed Twilio SMS → gateway → real Celery worker → conversation → ticket with category,
place and household size → reply handed to the provider through the real Twilio SDK."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Contact, Household, Place
from support import wait_until
from tests.e2e.helpers import post_sms, replies_to, ticket_for
from tests.gateway.fake_provider import FakeProvider

# (sender, text as people write it, category, place name, household size, reply language)
MESSAGES = [
    (
        "+22376000101",
        "pa d'eau potable ici a sevare depuis lundi, ns sommes 7",
        "wash",
        "Sévaré",
        7,
        "fr",
    ),
    ("+22366000102", "ji te an fe Sevare. an ye mogo 5 ye", "wash", "Sévaré", 5, "bm"),
    (
        "+22370000103",
        "the baby is sick since yesterday, we are 4 people in timbuktu",
        "health",
        "Tombouctou",
        4,
        "en",
    ),
]


@pytest.mark.parametrize(("sender", "text", "category", "place", "size", "language"), MESSAGES)
def test_sms_becomes_a_ticket_and_the_sender_hears_back(
    celery_worker: Any,
    client: Any,
    db: Session,
    platform: Any,
    provider: FakeProvider,
    sender: str,
    text: str,
    category: str,
    place: str,
    size: int,
    language: str,
) -> None:
    post_sms(client, sender, text)
    wait_until(lambda: ticket_for(db, sender) is not None, timeout=30)
    ticket = ticket_for(db, sender)
    assert ticket is not None
    assert ticket.category == category
    assert ticket.needs_review  # classified without the bot: an operator checks it
    assert ticket.language == language
    place_row = db.get(Place, ticket.place_id)
    assert place_row is not None and place_row.name == place
    household = db.get(Household, ticket.household_id)
    assert household is not None and household.size == size
    assert ticket.team_id is not None  # routed

    wait_until(lambda: any(ticket.reference in r for r in replies_to(provider, sender)))
    contact = db.scalar(select(Contact).where(Contact.id == ticket.contact_id))
    assert contact is not None and contact.language == language


def test_protection_reply_is_discreet_and_ticket_sensitive(
    celery_worker: Any, client: Any, db: Session, platform: Any, provider: FakeProvider
) -> None:
    sender = "+22376000104"
    text = "des hommes armes ont enleve ma fille hier a gao"
    post_sms(client, sender, text)
    wait_until(lambda: ticket_for(db, sender) is not None, timeout=30)
    ticket = ticket_for(db, sender)
    assert ticket is not None
    assert ticket.category == "protection" and ticket.sensitive
    assert ticket.priority == "urgent"
    wait_until(lambda: replies_to(provider, sender) != [])
    for reply in replies_to(provider, sender):
        for word in ("enlev", "fille", "armes", "Gao", "gao"):
            assert word not in reply


def test_junk_is_answered_without_a_ticket(
    celery_worker: Any, client: Any, db: Session, platform: Any, provider: FakeProvider
) -> None:
    sender = "+22376000105"
    post_sms(client, sender, "asdfgh")
    wait_until(lambda: replies_to(provider, sender) != [])
    assert ticket_for(db, sender) is None
