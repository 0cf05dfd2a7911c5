"""The conversation step on the platform side: what goes to Rasa, and when the fallback
answers instead (Rasa broken, or a backlog made the message wait too long)."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
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
from models.users import SERVICE_ACTOR_LABEL
from tickets.contacts import get_or_create_contact


class FakeRasa:
    """Plays the Deme channel of a Rasa server: records requests, answers what it is told."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.answer: dict[str, Any] = {"messages": [{"text": "Merci, ou etes-vous ?"}]}
        # What the action server does inside the turn (e.g. its /api/v1 calls), run with
        # the posted body before answering.
        self.during_turn: Callable[[dict[str, Any]], None] | None = None
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                fake.requests.append(
                    {"path": self.path, "secret": self.headers.get("X-Deme-Secret"), "body": body}
                )
                if fake.during_turn is not None:
                    fake.during_turn(body)
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
        provider_id="inbound-1",  # never "sim-<id>": the simulator names its sends so
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


@pytest.mark.parametrize(
    "text,category",
    [
        ("on a faim, plus de vivres au site depuis une semaine", "food"),
        ("we are hungry no food since two days", "food"),
        ("besoin d argent pour payer le loyer", "other"),
    ],
)
def test_food_and_other_needs_get_a_ticket_from_the_fallback(
    db: Session, fake_rasa: FakeRasa, text: str, category: str
) -> None:
    """With Rasa broken, a food need becomes a food ticket (its own category, referred) and
    a named need outside the sectors an "other" ticket — not only the help text."""
    from conversation.dispatch import handle_message

    fake_rasa.answer = {"messages": []}
    message = _inbound(db, text)
    handle_message(message.id)
    ticket = db.scalar(select(Ticket))
    assert ticket is not None and ticket.category == category and ticket.needs_review
    assert any(ticket.reference in reply for reply in _replies(db))


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


# --- one ticket per message (issue 14) ----------------------------------------------------


def _created_by(db: Session, ticket: Ticket) -> str | None:
    from models import TicketEvent

    return db.scalar(
        select(TicketEvent.actor_label).where(
            TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "created"
        )
    )


def _service_token(db: Session) -> dict[str, str]:
    from models import UserRole
    from ops_console.auth import create_user, issue_api_token

    user = create_user(db, username="bot-service", role=UserRole.SERVICE, password=None)
    token = issue_api_token(db, user, "tests")
    db.commit()
    return {"Authorization": f"Bearer {token}"}


def _action_posts_ticket(client: Any, auth: dict[str, str], turn: dict[str, Any]) -> Any:
    """What bot/actions' action_create_ticket sends for the turn's message."""
    return client.post(
        "/api/v1/tickets",
        headers=auth,
        json={
            "sender": turn["sender"],
            "category": "wash",
            "description": turn["message"],
            "place": "sevare",
            "household_size": 6,
            "language": "fr",
            "sensitive": False,
            "message_id": turn["metadata"]["message_id"],
        },
    )


@pytest.fixture()
def short_rasa_timeout(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DEME_RASA_TIMEOUT_SECONDS", "2")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def test_rasa_timing_out_after_its_action_created_the_ticket_leaves_one_ticket(
    db: Session, fake_rasa: FakeRasa, client: Any, short_rasa_timeout: None
) -> None:
    """The action's API call commits the ticket, then Rasa is too slow: the platform gives up
    on the turn and its fallback answers — with the ticket the action created, not a second."""
    from conversation.dispatch import handle_message

    auth = _service_token(db)
    posted: list[Any] = []

    def action_then_stall(turn: dict[str, Any]) -> None:
        posted.append(_action_posts_ticket(client, auth, turn))
        time.sleep(2.5)  # the rest of the turn outlives the platform's 2 s timeout

    fake_rasa.during_turn = action_then_stall
    message = _inbound(db, "pas d'eau potable a sevare, nous sommes 6")
    handle_message(message.id)

    assert [r.status_code for r in posted] == [201]
    db.expire_all()
    tickets = db.scalars(select(Ticket)).all()
    assert [t.reference for t in tickets] == [posted[0].json()["reference"]]
    assert _created_by(db, tickets[0]) == SERVICE_ACTOR_LABEL  # the action's ticket
    replies = _replies(db)
    assert len(replies) == 1 and tickets[0].reference in replies[0]  # the fallback's answer
    handled = db.get(Message, message.id)
    assert handled is not None and handled.status == MessageStatus.HANDLED
    assert handled.ticket_id == tickets[0].id
    db.rollback()  # the client fixture's clean-up ends idle transactions


def test_an_action_posting_after_the_fallback_gets_the_fallbacks_ticket(
    db: Session, fake_rasa: FakeRasa, client: Any, short_rasa_timeout: None
) -> None:
    """Rasa stalls before its action runs; the fallback creates the ticket; the late action
    call then gets that same ticket back instead of making a second one."""
    from conversation.dispatch import handle_message

    auth = _service_token(db)
    posted: list[Any] = []
    late = threading.Event()

    def stall_then_action(turn: dict[str, Any]) -> None:
        time.sleep(2.5)
        posted.append(_action_posts_ticket(client, auth, turn))
        late.set()

    fake_rasa.during_turn = stall_then_action
    message = _inbound(db, "pas d'eau potable a sevare, nous sommes 6")
    handle_message(message.id)
    assert late.wait(10)

    db.expire_all()
    tickets = db.scalars(select(Ticket)).all()
    assert len(tickets) == 1 and _created_by(db, tickets[0]) == "fallback"
    assert posted[0].status_code == 201
    assert posted[0].json()["reference"] == tickets[0].reference
    db.rollback()


@pytest.fixture()
def places_seeded(db: Session) -> None:
    """The gazetteer in the ``places`` table, as ``deme seed`` loads it (a PATCHed place
    must be one of them)."""
    from deme.seed import seed_places

    seed_places(db, lambda _message: None)
    db.commit()


def test_details_given_after_the_fallback_made_the_ticket_reach_that_ticket(
    db: Session,
    fake_rasa: FakeRasa,
    client: Any,
    short_rasa_timeout: None,
    places_seeded: None,
) -> None:
    """Rasa is slow, the fallback creates the ticket; the late action gets that ticket back
    and then PATCHes the place and household size the person gave: accepted (not 404), the
    ticket shows them, and its timeline says the bot took it over. A fallback ticket of
    another message, whose reference the bot never received, is still refused."""
    from conversation.dispatch import handle_message
    from models import TicketEvent
    from ops_console.permissions import BOT_JOINED_EVENT

    auth = _service_token(db)
    patched: list[Any] = []
    late = threading.Event()

    def stall_then_action_then_details(turn: dict[str, Any]) -> None:
        time.sleep(2.5)
        created = client.post(
            "/api/v1/tickets",
            headers=auth,
            json={
                "sender": turn["sender"],
                "category": "wash",
                "description": turn["message"],
                "language": "fr",
                "message_id": turn["metadata"]["message_id"],
            },
        )
        patched.append(created)
        reference = created.json()["reference"]
        patched.append(
            client.patch(
                f"/api/v1/tickets/{reference}",
                headers=auth,
                json={"place": "sevare", "household_size": 6},
            )
        )
        late.set()

    fake_rasa.during_turn = stall_then_action_then_details
    message = _inbound(db, "pas d'eau potable chez nous depuis hier")
    handle_message(message.id)
    assert late.wait(10)

    created, details = patched
    assert created.status_code == 201, created.text
    assert details.status_code == 200, details.text
    db.expire_all()
    tickets = db.scalars(select(Ticket)).all()
    assert len(tickets) == 1 and _created_by(db, tickets[0]) == "fallback"
    ticket = tickets[0]
    assert ticket.reference == created.json()["reference"]
    assert details.json()["household_size"] == 6
    assert details.json()["place"] is not None
    from models import Household, Place

    place = db.get(Place, ticket.place_id) if ticket.place_id is not None else None
    assert place is not None and place.code == details.json()["place"]["code"]
    household = db.get(Household, ticket.household_id) if ticket.household_id else None
    assert household is not None and household.size == 6
    kinds = db.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)).all()
    assert BOT_JOINED_EVENT in kinds

    # Another message's fallback ticket: the bot never asked for it, so it may not touch it.
    fake_rasa.during_turn = None
    fake_rasa.answer = {"messages": []}  # an empty answer: the fallback takes the message
    other = Message(
        channel_id=message.channel_id,
        contact_id=message.contact_id,
        direction=MessageDirection.INBOUND,
        provider_id="inbound-2",
        body="le forage est en panne depuis une semaine",
        status=MessageStatus.RECEIVED,
    )
    db.add(other)
    db.commit()
    handle_message(other.id)
    db.expire_all()
    guessed = db.scalars(select(Ticket).where(Ticket.id != ticket.id)).one()
    refused = client.patch(
        f"/api/v1/tickets/{guessed.reference}", headers=auth, json={"household_size": 3}
    )
    assert refused.status_code == 404, refused.text
    db.rollback()


def test_ticket_creation_with_a_message_id_is_idempotent_and_checked(
    db: Session, client: Any
) -> None:
    auth = _service_token(db)
    message = _inbound(db, "le forage est en panne a sevare")
    contact = db.get(Contact, message.contact_id)
    assert contact is not None
    turn = {
        "sender": contact.public_id,
        "message": "le forage est en panne a sevare",
        "metadata": {"message_id": message.id},
    }
    first, second = (_action_posts_ticket(client, auth, turn) for _ in range(2))
    assert first.status_code == second.status_code == 201
    assert first.json()["reference"] == second.json()["reference"]
    db.expire_all()
    assert len(db.scalars(select(Ticket)).all()) == 1

    # Somebody else's message, an outbound one, or none at all: a clear 422, no ticket.
    other = get_or_create_contact(db, "+22376555002")
    db.commit()
    for sender, message_id in ((other.public_id, message.id), (contact.public_id, 999_999)):
        refused = _action_posts_ticket(
            client, auth, {**turn, "sender": sender, "metadata": {"message_id": message_id}}
        )
        assert refused.status_code == 422, refused.text
        assert "message_id" in refused.json()["detail"]
    db.expire_all()
    assert len(db.scalars(select(Ticket)).all()) == 1
    db.rollback()


def test_a_follow_up_reporting_exploitation_makes_the_ticket_a_psea_case(
    db: Session, fake_rasa: FakeRasa, client: Any, places_seeded: None
) -> None:
    """The first SMS asks for water (the action files a wash ticket); the answer to the bot's
    next question says the distributor wants sex for a place on the list. The model kept the
    conversation on the water ticket; the platform's screen makes that ticket a PSEA case, so
    the operators who could see the water ticket no longer can."""
    from conversation.dispatch import handle_message
    from models import TicketEvent
    from models.enums import TicketKind, TicketPriority

    auth = _service_token(db)
    created: list[Any] = []
    fake_rasa.during_turn = lambda turn: created.append(_action_posts_ticket(client, auth, turn))
    first = _inbound(db, "pas d'eau potable a sevare, nous sommes 6")
    handle_message(first.id)
    assert created[0].status_code == 201, created[0].text
    reference = created[0].json()["reference"]

    patched: list[Any] = []
    fake_rasa.during_turn = lambda turn: patched.append(
        client.patch(f"/api/v1/tickets/{reference}", headers=auth, json={"household_size": 5})
    )
    follow_up = Message(
        channel_id=first.channel_id,
        contact_id=first.contact_id,
        direction=MessageDirection.INBOUND,
        provider_id="inbound-2",
        body="le distributeur dit qu il nous met sur la liste si ma fille couche avec lui",
        status=MessageStatus.RECEIVED,
    )
    db.add(follow_up)
    db.commit()
    handle_message(follow_up.id)
    assert patched[0].status_code == 200, patched[0].text

    db.expire_all()
    ticket = db.scalars(select(Ticket).where(Ticket.reference == reference)).one()
    assert ticket.kind == TicketKind.PSEA
    assert ticket.sensitive and ticket.priority == TicketPriority.URGENT
    assert ticket.category.value == "protection"
    kinds = db.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)).all()
    assert "kind_changed" in kinds
    assert db.get(Message, follow_up.id).ticket_id == ticket.id  # type: ignore[union-attr]
    db.rollback()


def test_an_ordinary_follow_up_leaves_the_ticket_as_it_is(
    db: Session, fake_rasa: FakeRasa, client: Any, places_seeded: None
) -> None:
    from conversation.dispatch import handle_message
    from models.enums import TicketKind

    auth = _service_token(db)
    created: list[Any] = []
    fake_rasa.during_turn = lambda turn: created.append(_action_posts_ticket(client, auth, turn))
    first = _inbound(db, "pas d'eau potable a sevare, nous sommes 6")
    handle_message(first.id)
    reference = created[0].json()["reference"]
    fake_rasa.during_turn = lambda turn: client.patch(
        f"/api/v1/tickets/{reference}", headers=auth, json={"household_size": 5}
    )
    follow_up = Message(
        channel_id=first.channel_id,
        contact_id=first.contact_id,
        direction=MessageDirection.INBOUND,
        provider_id="inbound-2",
        body="le chef du site dit que la distribution d eau est pour lundi",
        status=MessageStatus.RECEIVED,
    )
    db.add(follow_up)
    db.commit()
    handle_message(follow_up.id)
    db.expire_all()
    ticket = db.scalars(select(Ticket).where(Ticket.reference == reference)).one()
    assert ticket.kind != TicketKind.PSEA and ticket.category.value == "wash"
    assert not ticket.sensitive
    db.rollback()
