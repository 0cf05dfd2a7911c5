"""What the end-to-end tests do and look at: post a signed SMS, find the sender's ticket,
read the replies the fake provider received."""

from __future__ import annotations

from typing import Any

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Ticket
from tests.gateway.fake_provider import FakeProvider
from tests.gateway.gateway_helpers import signed, twilio_sms_form
from tickets.contacts import find_contact_by_phone

SMS_PATH = "/webhooks/twilio/sms"


def post_sms(client: Any, sender: str, text: str, base_url: str = "") -> None:
    """Post like Twilio would: through a TestClient, or over HTTP when ``base_url`` is set."""
    body, headers = signed(SMS_PATH, twilio_sms_form(sender, text))
    if base_url:
        response = httpx.post(base_url + SMS_PATH, content=body, headers=headers, timeout=10)
    else:
        response = client.post(SMS_PATH, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert "<Response" in response.text


def ticket_for(db: Session, phone: str) -> Ticket | None:
    db.expire_all()
    contact = find_contact_by_phone(db, phone)
    if contact is None:
        return None
    return db.scalar(select(Ticket).where(Ticket.contact_id == contact.id))


def replies_to(provider: FakeProvider, phone: str) -> list[str]:
    return [r.form.get("Body", "") for r in provider.sent("twilio") if r.form.get("To") == phone]
