"""Free text at rest (issue 11, door 5): a protection narrative that came in by SMS, the API
and a logged call is nowhere in the database in plaintext, is shown decrypted to those who may
see it, is found by the search box only by them, and survives a key rotation."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from core.crypto import generate_key, lookup_hash
from core.settings import get_settings
from models import Contact, Message, MessageDirection
from models.tickets import Ticket
from tests.console.conftest import World, login, new_ticket
from tests.gateway.conftest import (  # noqa: F401  (fixtures)
    _fresh_channel_cache,
    fake,
    fake_provider,
    twilio_channel,
)
from tests.gateway.gateway_helpers import signed, twilio_sms_form

SENDER = "+22376123456"
NARRATIVE = "Mon voisin Moussa frappe sa femme chaque nuit au camp de Sévaré"
# Distinctive words of the narrative, as stored (raw) or folded (search index input).
SECRET_WORDS = ("Moussa", "frappe", "femme", "Sévaré", "severe", "moussa")


def _text_columns(db: Session) -> dict[str, list[str]]:
    """Every textual column of the tables that hold free text, read from the live schema
    (of PostgreSQL or SQLite: the dialect's own catalog, through SQLAlchemy's inspector)."""
    from sqlalchemy import JSON, String, inspect

    schema = inspect(db.connection())
    return {
        table: [
            column["name"]
            for column in schema.get_columns(table)
            if isinstance(column["type"], String | JSON)
        ]
        for table in ("messages", "tickets", "ticket_events", "calls")
    }


def _raw_dump(db: Session) -> str:
    """What a database dump of those tables shows: every text value, as stored."""
    db.commit()
    parts: list[str] = []
    for table, columns in _text_columns(db).items():
        selected = ", ".join(f"CAST({column} AS TEXT)" for column in columns)
        for row in db.execute(text(f"SELECT {selected} FROM {table}")):
            parts.extend(str(value) for value in row if value is not None)
    return "\n".join(parts)


def _record_protection_case(client: Any, db: Session, world: World) -> str:
    """SMS inbound (Twilio webhook), the bot's API ticket with a note, and a logged call."""
    path = "/webhooks/twilio/sms"
    body, headers = signed(path, twilio_sms_form(SENDER, NARRATIVE))
    assert client.post(path, content=body, headers=headers).status_code == 200
    db.expire_all()
    message = db.scalar(select(Message).where(Message.direction == MessageDirection.INBOUND))
    assert message is not None and message.body == NARRATIVE
    contact = db.get(Contact, message.contact_id)
    assert contact is not None
    api = world["service"].headers
    created = client.post(
        "/api/v1/tickets",
        headers=api,
        json={"sender": contact.public_id, "category": "protection", "description": NARRATIVE},
    )
    assert created.status_code == 201, created.text
    reference = str(created.json()["reference"])
    patched = client.patch(
        f"/api/v1/tickets/{reference}", headers=api, json={"note": "Moussa menace aussi"}
    )
    assert patched.status_code == 200, patched.text
    return reference


@pytest.mark.usefixtures("twilio_channel")
def test_protection_narrative_is_never_stored_in_plaintext(
    client: Any, db: Session, world: World, browser_client: Any
) -> None:
    reference = _record_protection_case(client, db, world)
    officer = browser_client()
    csrf = login(officer, "protection-officer-user")
    logged = officer.post(
        "/calls",
        data={
            "csrf_token": csrf,
            "phone": "76 12 34 56",
            "category": "protection",
            "notes": NARRATIVE,
        },
        follow_redirects=False,
    )
    assert logged.status_code == 303, logged.text[:300]

    dump = _raw_dump(db)
    assert dump, "the dump read nothing: the test would prove nothing"
    for word in SECRET_WORDS:
        assert word not in dump, f"{word!r} is stored in plaintext"
    # Protection tickets carry no search index at all (not even hashed words).
    # (the API's ticket and the call's; a third when the session's worker, if running, handled
    # the SMS with the fallback classifier: it must carry none either)
    indexes = db.scalars(select(Ticket.search_index).where(Ticket.sensitive.is_(True))).all()
    assert len(indexes) >= 2 and set(indexes) == {None}, indexes

    # Shown decrypted to the protection officer, by page and by API.
    page = officer.get(f"/tickets/{reference}")
    assert page.status_code == 200 and NARRATIVE in page.text and "Moussa menace aussi" in page.text
    shown = client.get(f"/api/v1/tickets/{reference}", headers=world["protection_officer"].headers)
    assert shown.status_code == 200 and shown.json()["description"] == NARRATIVE
    # And still hidden from others.
    hidden = client.get(f"/api/v1/tickets/{reference}", headers=world["supervisor"].headers)
    assert hidden.status_code == 404 and "Moussa" not in hidden.text
    db.rollback()  # end the read transaction before the client's teardown truncates


def _search(client: Any, world: World, role: str, q: str) -> list[str]:
    response = client.get("/api/v1/tickets", params={"q": q}, headers=world[role].headers)
    assert response.status_code == 200, response.text
    return [t["reference"] for t in response.json()["tickets"]]


def test_search_by_a_description_word_respects_protection(
    client: Any, db: Session, world: World
) -> None:
    water = new_ticket(db, category="wash", description="Forage cassé, pas d'eau à Ménaka")
    health = new_ticket(db, category="health", phone="+22376000002", description="Fièvre forte")
    secret = new_ticket(
        db, category="protection", phone="+22376000003", description="Violence au forage du camp"
    )
    # Folded words: case, accents do not matter; every word must be present.
    assert _search(client, world, "supervisor", "FORAGE") == [water.reference]
    assert _search(client, world, "operator", "menaka casse") == [water.reference]
    assert _search(client, world, "supervisor", "fievre") == [health.reference]
    assert _search(client, world, "supervisor", "forage violence") == []
    assert _search(client, world, "supervisor", "zzzz") == []
    # The protection officer finds the protection ticket by its words (decrypted candidates).
    assert set(_search(client, world, "protection_officer", "forage")) == {
        water.reference,
        secret.reference,
    }
    assert _search(client, world, "protection_officer", "violence") == [secret.reference]
    # The queue page's search box, for a supervisor: the word finds the ticket, not the secret.
    supervisor = client
    login(supervisor, "supervisor-user")
    page = supervisor.get("/queue", params={"q": "forage"})
    assert page.status_code == 200
    assert water.reference in page.text and secret.reference not in page.text


@pytest.mark.usefixtures("twilio_channel")
def test_key_rotation_keeps_everything_readable_and_searchable(
    client: Any, db: Session, world: World
) -> None:
    reference = _record_protection_case(client, db, world)
    water = new_ticket(db, category="wash", phone="+22376000009", description="Forage cassé")
    old_key = get_settings().pii_key.get_secret_value()
    new_key = generate_key()
    monkeypatch = pytest.MonkeyPatch()
    try:
        monkeypatch.setenv("DEME_PII_KEY", f"{new_key},{old_key}")
        get_settings.cache_clear()
        # Before rotation the lookup hashes are keyed by the old key: nothing is found.
        assert _search(client, world, "supervisor", "forage") == []
        from core.db import session_scope
        from models.keyrotation import rotate_keys

        with session_scope() as session:
            counts = rotate_keys(session)
        assert counts["messages.body"] >= 1 and counts["tickets.description"] >= 2
        assert counts["contacts.phone_hash"] == 2

        # Only the new key is needed from now on.
        monkeypatch.setenv("DEME_PII_KEY", new_key)
        get_settings.cache_clear()
        db.expire_all()
        assert _search(client, world, "supervisor", "forage") == [water.reference]
        # (with the session's worker running, the fallback made a second protection ticket
        # from the same SMS: found by the officer too, by no one else)
        assert reference in _search(client, world, "protection_officer", "moussa")
        assert _search(client, world, "supervisor", "moussa") == []
        shown = client.get(
            f"/api/v1/tickets/{reference}", headers=world["protection_officer"].headers
        )
        assert shown.json()["description"] == NARRATIVE
        contact = db.scalar(select(Contact).where(Contact.phone_hash == lookup_hash(SENDER)))
        assert contact is not None and contact.phone == SENDER
        dump = _raw_dump(db)
        for word in SECRET_WORDS:
            assert word not in dump
        db.rollback()
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
