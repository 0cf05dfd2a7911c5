"""SEA reported through every intake path becomes a PSEA case that a regular operator cannot
see (issues 14 and 15): the API (what the bot's actions post, whatever kind the model chose),
the keyword fallback, a Rasa turn that opened no ticket, a Rasa turn that filed it as a need,
a note added later, and the console's call form. The same tables as the screen's own tests:
through the API every report is PSEA and no hard negative is."""

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
from models.contacts import Contact
from models.enums import MessageDirection, MessageStatus, TicketKind
from models.messages import Message
from models.tickets import Ticket
from tests.console.conftest import World, csrf_of, login
from tests.console.test_psea import Psea, _actor
from tests.tickets.psea_tables import NOT_SEA, SEA_ALL
from tickets.contacts import get_or_create_contact

PHONE = "+22376123499"
SEA_FR = "le gars qui fait les listes m a dit de venir chez lui ce soir si je veux la bache"
SEA_BM = "tilabaga ko n ka na a ka so su fe ni n b a fe ka dumuni soro"
SEA_EN = "the NGO guy told my daughter she gets the blanket only if she visits his room tonite"


class FakeRasa:
    """Rasa's Deme channel: each turn runs what the bot's action would do, then answers."""

    def __init__(self) -> None:
        self.turns: list[tuple[Callable[[dict[str, Any]], None], list[str]]] = []
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                body = json.loads(self.rfile.read(length))
                action, replies = fake.turns.pop(0)
                action(body)
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


@pytest.fixture()
def psea(world: World, db: Session) -> Psea:
    """The seeded PSEA focal-point team with a lead and a member (as tests/console/test_psea)."""
    from models.teams import Team

    team = db.scalar(select(Team).where(Team.handles_psea.is_(True)))
    assert team is not None
    psea_team = Psea(
        team.id,
        _actor(db, "psea-lead", team.id, lead=True),
        _actor(db, "psea-member", team.id, lead=False),
    )
    db.commit()
    return psea_team


@pytest.fixture()
def keyword_fallback(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DEME_BOT", "fallback")
    get_settings.cache_clear()
    yield
    get_settings.cache_clear()


def _contact(db: Session, phone: str = PHONE) -> Contact:
    contact = get_or_create_contact(db, phone)
    db.commit()
    return contact


def _sms(db: Session, world: World, contact: Contact, body: str) -> Message:
    message = Message(
        channel_id=world.simulator_channel_id,
        contact_id=contact.id,
        direction=MessageDirection.INBOUND,
        provider_id=f"sim-{contact.id}-{len(body)}-{hash(body) % 10_000}",
        body=body,
        status=MessageStatus.RECEIVED,
    )
    db.add(message)
    db.commit()
    return message


def _ticket_of(db: Session, contact: Contact) -> Ticket:
    db.expire_all()
    tickets = db.scalars(select(Ticket).where(Ticket.contact_id == contact.id)).all()
    assert len(tickets) == 1, [t.kind for t in tickets]
    return tickets[0]


def _replies(db: Session, contact: Contact) -> list[str]:
    rows = db.scalars(
        select(Message.body).where(
            Message.contact_id == contact.id, Message.direction == MessageDirection.OUTBOUND
        )
    )
    return [body or "" for body in rows]


def _assert_psea_and_hidden(
    client: Any, browser_client: Callable[[], Any], world: World, ticket: Ticket, psea: Psea
) -> None:
    """A PSEA case of the focal points: an operator gets 404 on the API and the page and finds
    it in no list or search; a focal point reads it."""
    assert ticket.kind == TicketKind.PSEA, ticket.kind
    assert ticket.category.value == "protection" and ticket.sensitive
    assert ticket.priority.value == "urgent" and ticket.team_id == psea.team_id
    operator = world["operator"].headers
    assert client.get(f"/api/v1/tickets/{ticket.reference}", headers=operator).status_code == 404
    listed = client.get("/api/v1/tickets", headers=operator).json()["tickets"]
    assert ticket.reference not in {t["reference"] for t in listed}
    found = client.post(
        "/api/v1/tickets/search", headers=operator, json={"q": ticket.reference}
    ).json()["tickets"]
    assert found == []
    page = browser_client()
    login(page, world["operator"].username)
    assert page.get(f"/tickets/{ticket.reference}").status_code == 404
    assert f'href="/tickets/{ticket.reference}"' not in page.get("/queue").text
    out = client.get(f"/api/v1/tickets/{ticket.reference}", headers=psea.member.headers)
    assert out.status_code == 200 and out.json()["kind"] == "psea"


def test_through_the_api_every_report_is_psea_and_no_hard_negative_is(
    client: Any, world: World, db: Session, psea: Psea
) -> None:
    """What the bot's action posts when the model filed the message as a need (or anything
    else): the platform's screen decides. Counted over both tables."""
    service = world["service"].headers
    contact = _contact(db)
    kinds: dict[str, str] = {}
    for i, text in enumerate(SEA_ALL + NOT_SEA):
        category = ("shelter_nfi", "food", "other", "health")[i % 4]
        body = {"sender": contact.public_id, "category": category, "description": text}
        if i % 3 == 0:
            body["kind"] = "need" if i % 2 else "complaint"
        response = client.post("/api/v1/tickets", headers=service, json=body)
        assert response.status_code == 201, response.text
        kinds[text] = response.json()["kind"]
    missed = [t for t in SEA_ALL if kinds[t] != "psea"]
    flagged = [t for t in NOT_SEA if kinds[t] == "psea"]
    assert (len(missed), len(flagged)) == (0, 0), (missed, flagged)
    db.expire_all()
    psea_count = len(db.scalars(select(Ticket.id).where(Ticket.kind == TicketKind.PSEA)).all())
    assert psea_count == len(SEA_ALL)


def test_the_api_path_hides_a_report_the_bot_filed_as_a_shelter_need(
    client: Any, browser_client: Callable[[], Any], world: World, db: Session, psea: Psea
) -> None:
    contact = _contact(db)
    body = {
        "sender": contact.public_id,
        "category": "shelter_nfi",
        "kind": "need",
        "description": SEA_EN,
        "sensitive": False,
    }
    response = client.post("/api/v1/tickets", headers=world["service"].headers, json=body)
    assert response.status_code == 201 and response.json()["kind"] == "psea"
    _assert_psea_and_hidden(client, browser_client, world, _ticket_of(db, contact), psea)


def test_the_keyword_fallback_path_makes_a_hidden_psea_case(
    client: Any,
    browser_client: Callable[[], Any],
    world: World,
    db: Session,
    psea: Psea,
    keyword_fallback: None,
) -> None:
    from conversation.dispatch import handle_message

    contact = _contact(db)
    message = _sms(db, world, contact, SEA_FR)
    handle_message(message.id)
    ticket = _ticket_of(db, contact)
    _assert_psea_and_hidden(client, browser_client, world, ticket, psea)
    # The sender is told who handles it; nothing they wrote is echoed.
    (reply,) = _replies(db, contact)
    assert ticket.reference in reply and "bache" not in reply


def test_a_rasa_turn_that_opened_no_ticket_still_makes_a_psea_case(
    client: Any,
    browser_client: Callable[[], Any],
    world: World,
    db: Session,
    psea: Psea,
    fake_rasa: FakeRasa,
) -> None:
    """Rasa took the Bambara report for something it only answers ("not understood")."""
    from conversation.dispatch import handle_message

    contact = _contact(db)
    fake_rasa.turns.append((lambda _turn: None, ["N ma a faamu. I ka i mago fo"]))
    message = _sms(db, world, contact, SEA_BM)
    handle_message(message.id)
    ticket = _ticket_of(db, contact)
    _assert_psea_and_hidden(client, browser_client, world, ticket, psea)
    db.expire_all()
    assert db.get(Message, message.id).ticket_id == ticket.id  # type: ignore[union-attr]
    (reply,) = _replies(db, contact)
    assert ticket.reference in reply and "faamu" not in reply


def test_a_rasa_turn_that_filed_it_as_a_need_answers_as_psea(
    client: Any,
    browser_client: Callable[[], Any],
    world: World,
    db: Session,
    psea: Psea,
    fake_rasa: FakeRasa,
) -> None:
    from conversation.dispatch import handle_message

    contact = _contact(db)
    service = world["service"].headers

    def action_posts_a_shelter_need(turn: dict[str, Any]) -> None:
        response = client.post(
            "/api/v1/tickets",
            headers=service,
            json={
                "sender": turn["sender"],
                "category": "shelter_nfi",
                "description": turn["message"],
                "message_id": turn["metadata"]["message_id"],
            },
        )
        assert response.status_code == 201, response.text

    fake_rasa.turns.append((action_posts_a_shelter_need, ["How many people are you?"]))
    handle_message(_sms(db, world, contact, SEA_EN).id)
    ticket = _ticket_of(db, contact)
    _assert_psea_and_hidden(client, browser_client, world, ticket, psea)
    (reply,) = _replies(db, contact)
    assert ticket.reference in reply and "How many" not in reply


def test_a_note_added_later_makes_the_need_a_hidden_psea_case(
    client: Any, browser_client: Callable[[], Any], world: World, db: Session, psea: Psea
) -> None:
    contact = _contact(db)
    service = world["service"].headers
    body = {"sender": contact.public_id, "category": "food", "description": "pas de vivres"}
    created = client.post("/api/v1/tickets", headers=service, json=body)
    assert created.status_code == 201 and created.json()["kind"] == "need"
    reference = created.json()["reference"]
    operator = world["operator"].headers
    assert client.get(f"/api/v1/tickets/{reference}", headers=operator).status_code == 200
    response = client.patch(
        f"/api/v1/tickets/{reference}",
        headers=service,
        json={"note": "l agent du ciblage dit que ma voisine doit passer la nuit avec lui"},
    )
    assert response.status_code == 200, response.text
    _assert_psea_and_hidden(client, browser_client, world, _ticket_of(db, contact), psea)


def test_the_call_form_screens_the_notes_whatever_kind_the_operator_chose(
    client: Any, browser_client: Callable[[], Any], world: World, db: Session, psea: Psea
) -> None:
    operator = browser_client()
    login(operator, world["operator"].username)
    page = operator.get("/calls")
    response = operator.post(
        "/calls",
        data={
            "csrf_token": csrf_of(page.text),
            "phone": "76 11 22 34",
            "language": "fr",
            "category": "shelter_nfi",
            "kind": "need",
            "notes": "Elle dit que le volontaire lui promet une tente si elle dort chez lui",
        },
        follow_redirects=False,
    )
    assert response.status_code in (303, 200), response.text[:300]
    db.expire_all()
    ticket = db.scalars(select(Ticket).where(Ticket.source == "call")).one()
    assert ticket.source.value == "call"
    _assert_psea_and_hidden(client, browser_client, world, ticket, psea)


def test_an_ordinary_gbv_call_stays_with_the_protection_team(
    world: World, db: Session, browser_client: Callable[[], Any], psea: Psea
) -> None:
    operator = browser_client()
    login(operator, world["operator"].username)
    page = operator.get("/calls")
    response = operator.post(
        "/calls",
        data={
            "csrf_token": csrf_of(page.text),
            "phone": "76 11 22 35",
            "language": "fr",
            "category": "protection",
            "notes": NOT_SEA[0],
        },
        follow_redirects=False,
    )
    assert response.status_code in (303, 200), response.text[:300]
    db.expire_all()
    ticket = db.scalars(select(Ticket)).one()
    assert ticket.kind != TicketKind.PSEA and ticket.sensitive
    assert ticket.team_id != psea.team_id
