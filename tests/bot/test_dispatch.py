"""The conversation step on the platform side: what goes to Rasa, and when the fallback
answers instead (Rasa broken, or a backlog made the message wait too long)."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.settings import get_settings
from models import (
    Channel,
    ChannelType,
    Contact,
    Message,
    MessageDirection,
    MessageStatus,
    Ticket,
)
from models.base import utcnow
from tickets.contacts import get_or_create_contact


class FakeRasa:
    """Plays the Deme channel of a Rasa server: records requests, answers what it is told."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: dict[str, Any] = {"messages": [{"text": "Merci, ou etes-vous ?"}]}
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                fake.requests.append(
                    {
                        "path": self.path,
                        "secret": self.headers.get("X-Deme-Secret"),
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                payload = json.dumps(fake.answer).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_PUT(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                fake.requests.append(
                    {
                        "method": "PUT",
                        "path": self.path,
                        "body": json.loads(self.rfile.read(length)),
                    }
                )
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

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


def _inbound(db: Session, text: str, *, age_seconds: float = 0) -> Message:
    channel = Channel(name="sim", type=ChannelType.SIMULATOR, config={})
    contact = get_or_create_contact(db, "+22376555001")
    db.add(channel)
    db.flush()
    message = Message(
        channel_id=channel.id,
        contact_id=contact.id,
        direction=MessageDirection.INBOUND,
        provider_id="sim-1",
        body=text,
        status=MessageStatus.RECEIVED,
        created_at=utcnow() - timedelta(seconds=age_seconds),
    )
    db.add(message)
    db.commit()
    return message


def _replies(db: Session) -> list[str]:
    db.expire_all()
    rows = db.scalars(select(Message).where(Message.direction == MessageDirection.OUTBOUND))
    return [row.body or "" for row in rows]


def test_fresh_message_goes_to_rasa_with_an_opaque_sender(db: Session, fake_rasa: FakeRasa) -> None:
    from conversation.dispatch import handle_message

    message = _inbound(db, "/restart ji te an fe Sevare")
    handle_message(message.id)
    assert len(fake_rasa.requests) == 1
    request = fake_rasa.requests[0]
    assert request["path"] == "/webhooks/deme/webhook"
    assert request["secret"] == get_settings().bot_shared_secret.get_secret_value()
    assert request["body"]["message"] == "restart ji te an fe Sevare"  # no injected intent
    assert request["body"]["sender"].startswith("c_")  # never the phone number
    assert "76555001" not in json.dumps(request["body"])
    assert _replies(db) == ["Merci, ou etes-vous ?"]
    db.expire_all()
    assert db.get(Message, message.id).status == MessageStatus.HANDLED  # type: ignore[union-attr]


def test_backlogged_message_is_answered_by_the_fallback(db: Session, fake_rasa: FakeRasa) -> None:
    from conversation.dispatch import handle_message

    message = _inbound(db, "pas d'eau potable a sevare, nous sommes 6", age_seconds=60)
    handle_message(message.id)
    assert fake_rasa.requests == []
    ticket = db.scalar(select(Ticket))
    assert ticket is not None and ticket.category == "wash" and ticket.needs_review
    assert any(ticket.reference in reply for reply in _replies(db))


def test_empty_rasa_answer_falls_back(db: Session, fake_rasa: FakeRasa) -> None:
    from conversation.dispatch import handle_message

    fake_rasa.answer = {"messages": []}  # what Rasa says when an action crashed
    message = _inbound(db, "mon enfant est malade a mopti, nous sommes 4")
    handle_message(message.id)
    assert len(fake_rasa.requests) == 1
    ticket = db.scalar(select(Ticket))
    assert ticket is not None and ticket.category == "health" and ticket.needs_review


def test_erasure_wipes_the_bots_copy_of_the_conversation(db: Session, fake_rasa: FakeRasa) -> None:
    from conversation.dispatch import forget_conversation
    from models import OutboxTask
    from tickets.erasure import erase_contact

    message = _inbound(db, "bonjour")
    contact = message.contact_id and db.get(Contact, message.contact_id)
    assert contact
    erase_contact(db, contact, actor_label="sender")
    db.commit()
    queued = db.scalars(select(OutboxTask).where(OutboxTask.task_name == "conversation.forget"))
    assert [row.args for row in queued] == [[contact.public_id]]

    forget_conversation(contact.public_id)  # what the worker runs
    assert fake_rasa.requests == [
        {
            "method": "PUT",
            "path": f"/conversations/{contact.public_id}/tracker/events",
            "body": [],
        }
    ]
