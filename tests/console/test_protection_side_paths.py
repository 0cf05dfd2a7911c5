"""Protection content never reaches other roles through a side path: the conversation of a
protection case (the sender's messages, the bot's confidential replies and follow-ups), the
audit lines about a protection ticket, and a service token probing references."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.settings import get_settings
from models.base import utcnow
from models.contacts import Contact
from models.enums import MessageDirection, MessageStatus
from models.messages import Message
from models.tickets import Ticket
from tests.console.conftest import World, csrf_of, login, new_ticket
from tickets.contacts import get_or_create_contact

PHONE = "+22376123456"
CONCERN = "mon mari me frappe chaque soir"
CONFIDENTIAL = "Message recu, il restera confidentiel. Pouvons-nous vous rappeler ?"
FOLLOW_UP = "Merci. Une personne de confiance vous appellera sur ce numero."


class FakeRasa:
    """Plays Rasa's Deme channel: for each turn, runs what the bot's action would do (a real
    call to /api/v1 with the service token), then answers the turn's replies."""

    def __init__(self) -> None:
        self.turns: list[tuple[Callable[[str], None], list[str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                action, replies = fake.turns.pop(0)
                action(body["sender"])
                payload = json.dumps({"messages": [{"text": t} for t in replies]}).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *_args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture()
def fake_rasa(monkeypatch: pytest.MonkeyPatch) -> Iterator[FakeRasa]:
    fake = FakeRasa()
    monkeypatch.setenv("DEME_BOT", "rasa")
    monkeypatch.setenv("DEME_RASA_URL", fake.url)
    get_settings.cache_clear()
    yield fake
    fake.server.shutdown()
    get_settings.cache_clear()


def _sms(db: Session, world: World, contact: Contact, body: str) -> Message:
    message = Message(
        channel_id=world.simulator_channel_id,
        contact_id=contact.id,
        direction=MessageDirection.INBOUND,
        provider_id=f"sim-{utcnow().timestamp()}",
        body=body,
        status=MessageStatus.RECEIVED,
    )
    db.add(message)
    db.commit()
    return message


def _bodies(client: Any, world: World, role: str, path: str) -> list[str]:
    response = client.get(path, headers=world[role].headers)
    assert response.status_code == 200, response.text
    return [m["body"] for m in response.json()["messages"]]


def test_a_protection_conversation_is_read_only_by_protection_officers(
    client: Any, world: World, db: Session, fake_rasa: FakeRasa
) -> None:
    from conversation.dispatch import handle_message

    service = world["service"].headers
    created: dict[str, str] = {}

    def create_protection_ticket(sender: str) -> None:
        response = client.post(
            "/api/v1/tickets",
            headers=service,
            json={"sender": sender, "category": "protection", "sensitive": True},
        )
        assert response.status_code == 201, response.text
        created["reference"] = response.json()["reference"]

    def answer_callback(_sender: str) -> None:
        response = client.patch(
            f"/api/v1/tickets/{created['reference']}", headers=service, json={"callback_ok": True}
        )
        assert response.status_code == 200, response.text

    # The same person also has an ordinary health request, with its own conversation.
    health = new_ticket(db, category="health", phone=PHONE)
    contact = get_or_create_contact(db, PHONE)
    db.add(
        Message(
            channel_id=world.simulator_channel_id,
            contact_id=contact.id,
            ticket_id=health.id,
            direction=MessageDirection.INBOUND,
            provider_id="sim-health",
            body="pas de medicaments au centre",
            status=MessageStatus.HANDLED,
        )
    )
    db.commit()

    fake_rasa.turns = [(create_protection_ticket, [CONFIDENTIAL]), (answer_callback, [FOLLOW_UP])]
    handle_message(_sms(db, world, contact, CONCERN).id)
    handle_message(_sms(db, world, contact, "OUI").id)
    # A message not linked to any ticket (e.g. a status reply naming the protection case).
    db.add(
        Message(
            channel_id=world.simulator_channel_id,
            contact_id=contact.id,
            direction=MessageDirection.OUTBOUND,
            body=f"Vos demandes: {created['reference']} en cours",
            status=MessageStatus.SENT,
        )
    )
    db.commit()

    protection = db.scalar(select(Ticket).where(Ticket.reference == created["reference"]))
    assert protection is not None and protection.sensitive
    linked = db.scalars(select(Message.body).where(Message.ticket_id == protection.id)).all()
    assert set(linked) == {CONCERN, CONFIDENTIAL, "OUI", FOLLOW_UP}  # the whole conversation

    by_contact = f"/api/v1/contacts/{contact.public_id}/messages"
    for role in ("operator", "supervisor", "admin"):
        seen = _bodies(client, world, role, by_contact)
        assert seen == ["pas de medicaments au centre"], role
        response = client.get(
            f"/api/v1/tickets/{created['reference']}/messages", headers=world[role].headers
        )
        assert response.status_code == 404
    officer = _bodies(client, world, "protection_officer", by_contact)
    assert {CONCERN, CONFIDENTIAL, "OUI", FOLLOW_UP} <= set(officer)
    assert any(created["reference"] in body for body in officer)
    assert _bodies(
        client, world, "protection_officer", f"/api/v1/tickets/{created['reference']}/messages"
    ) == [CONCERN, CONFIDENTIAL, "OUI", FOLLOW_UP]


def test_an_unlinked_message_of_an_ordinary_sender_stays_visible(
    client: Any, world: World, db: Session
) -> None:
    contact = get_or_create_contact(db, "+22370111222")
    new_ticket(db, category="wash", phone="+22370111222")
    db.add(
        Message(
            channel_id=world.simulator_channel_id,
            contact_id=contact.id,
            direction=MessageDirection.INBOUND,
            provider_id="sim-hello",
            body="bonjour",
            status=MessageStatus.HANDLED,
        )
    )
    db.commit()
    path = f"/api/v1/contacts/{contact.public_id}/messages"
    assert _bodies(client, world, "operator", path) == ["bonjour"]


def _reveal(browser_client: Callable[[], Any], username: str, reference: str) -> None:
    client = browser_client()
    login(client, username)
    page = client.get(f"/tickets/{reference}")
    assert page.status_code == 200
    response = client.post(f"/tickets/{reference}/reveal", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 200, response.text[:300]
    assert 'href="tel:+223' in response.text  # the clear number, for the one allowed


def test_audit_page_hides_lines_about_protection_tickets(
    browser_client: Callable[[], Any], world: World, db: Session
) -> None:
    protection = new_ticket(db, category="protection", phone=PHONE, sensitive=True)
    health = new_ticket(db, category="health", phone="+22370333444")
    _reveal(browser_client, "protection-officer-user", protection.reference)
    _reveal(browser_client, "operator-user", health.reference)

    for username in ("supervisor-user", "admin-user"):
        client = browser_client()
        login(client, username)
        page = client.get("/admin/audit")
        assert page.status_code == 200
        assert protection.reference not in page.text
        assert health.reference not in page.text  # no reference in any detail
        assert page.text.count("phone.revealed") == 1, username  # the health one only
    # Both lines are kept, each naming its ticket by id (the log stays complete).
    from models.audit import AuditLog

    # A line written before ticket_id existed, naming the ticket in its reason: hidden too.
    db.add(
        AuditLog(
            action="phone.legacy_reveal",
            actor_label="old-op",
            object_type="contact",
            details={"reason": protection.reference},
        )
    )
    db.add(AuditLog(action="phone.legacy_other", actor_label="old-op", details={"reason": "x"}))
    db.commit()
    client = browser_client()
    login(client, "supervisor-user")
    page = client.get("/admin/audit")
    assert "phone.legacy_other" in page.text
    assert "phone.legacy_reveal" not in page.text and protection.reference not in page.text

    lines = db.scalars(select(AuditLog).where(AuditLog.action == "phone.revealed")).all()
    assert sorted(line.ticket_id or 0 for line in lines) == sorted([protection.id, health.id])


def test_service_token_cannot_probe_references(client: Any, world: World, db: Session) -> None:
    service = world["service"].headers
    contact = get_or_create_contact(db, PHONE)
    db.commit()
    own = client.post(
        "/api/v1/tickets",
        headers=service,
        json={"sender": contact.public_id, "category": "protection", "sensitive": True},
    ).json()["reference"]
    someone_elses = new_ticket(db, category="health", phone="+22370555666").reference
    protection = new_ticket(db, category="protection", phone="+22370777888", sensitive=True)

    answers = []
    for reference in (someone_elses, protection.reference, "T-ZZZZZ"):
        for body in ({}, {"note": "x"}):
            response = client.patch(f"/api/v1/tickets/{reference}", headers=service, json=body)
            answers.append((response.status_code, response.json()["detail"].replace(reference, "")))
    assert set(answers) == {(404, "no ticket ''")}  # nothing tells them apart

    empty = client.patch(f"/api/v1/tickets/{own}", headers=service, json={})
    assert empty.status_code == 422
    assert empty.json()["detail"] == (
        "empty update: give at least one of callback_ok, household_size, kind, note, place"
    )
    done = client.patch(f"/api/v1/tickets/{own}", headers=service, json={"callback_ok": False})
    assert done.status_code == 200 and done.json()["reference"] == own


def test_people_get_a_clear_422_for_an_empty_update(client: Any, world: World, db: Session) -> None:
    ticket = new_ticket(db, category="health")
    response = client.patch(
        f"/api/v1/tickets/{ticket.reference}", headers=world["operator"].headers, json={}
    )
    assert response.status_code == 422
    assert response.json()["detail"].startswith("empty update: give at least one of ")
