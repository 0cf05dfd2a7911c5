"""Closing the loop: status SMS in the sender's language, never to opted-out people, the
satisfaction question and its answer, "status" replies, and the catalogs themselves."""

from __future__ import annotations

import json
import string
from typing import Any

import pytest
from sqlalchemy import func, select
from ticket_helpers import World, commit, reachable_contact

from models.enums import Language, MessageDirection, TicketCategory, TicketStatus
from models.messages import Message
from models.outbox import OutboxTask
from models.tickets import Ticket, TicketEvent
from support import wait_until
from tickets import notifications
from tickets.contacts import opt_out
from tickets.i18n import CATALOG_DIR, translate
from tickets.intake import create_ticket
from tickets.notifications import (
    parse_satisfaction,
    record_satisfaction,
    status_reply,
)
from tickets.workflow import assign, change_status

C = TicketCategory
SENDER_KEYS = [
    "sender.received",
    "sender.assigned",
    "sender.in_progress",
    "sender.resolved",
    "sender.satisfaction",
    "sender.satisfaction_thanks",
    "sender.incident_closed",
    "status.none",
]


def _sent(db: Any, contact_id: int) -> list[str]:
    db.expire_all()
    return list(
        db.scalars(
            select(Message.body)
            .where(Message.contact_id == contact_id, Message.direction == MessageDirection.OUTBOUND)
            .order_by(Message.id)
        )
    )


def test_status_changes_that_matter_reach_the_sender_in_their_language(
    db: Any, world: World, celery_worker: Any
) -> None:
    contact = reachable_contact(db, language=Language.BAMBARA)
    ticket = create_ticket(db, category=C.WASH, source="sms", contact=contact)
    commit(db)
    ref = ticket.reference

    def step(status: TicketStatus | None, expected: list[str]) -> None:
        if status is None:
            assign(db, ticket, world.users["medic"].id, actor_label="op")
        else:
            change_status(db, ticket, status, actor_label="op")
        commit(db)
        wanted = [translate(f"sender.{kind}", "bm", reference=ref) for kind in expected]
        wait_until(lambda: len(_sent(db, contact.id)) >= len(wanted), timeout=30)
        assert _sent(db, contact.id) == wanted

    step(None, ["assigned"])
    step(TicketStatus.WAITING, ["assigned"])  # waiting on the sender: no SMS for this one
    step(TicketStatus.IN_PROGRESS, ["assigned", "in_progress"])
    step(TicketStatus.RESOLVED, ["assigned", "in_progress", "resolved", "satisfaction"])


def test_a_notification_overtaken_by_a_later_status_is_dropped(db: Any, world: World) -> None:
    contact = reachable_contact(db)
    ticket = create_ticket(db, category=C.WASH, source="sms", contact=contact)
    started = change_status(db, ticket, TicketStatus.IN_PROGRESS, actor_label="op")
    resolved = change_status(db, ticket, TicketStatus.RESOLVED, actor_label="op")
    db.commit()
    assert started is not None and resolved is not None
    assert notifications.notify_sender(ticket.id, "resolved", resolved.id) is True
    assert notifications.notify_sender(ticket.id, "in_progress", started.id) is False
    assert _sent(db, contact.id)[0] == translate(
        "sender.resolved", "fr", reference=ticket.reference
    )


def test_the_outcome_the_operator_wrote_reaches_the_sender_in_their_language(
    db: Any, world: World
) -> None:
    """Closing the loop: the "resolved" SMS says what was done, in the person's language."""
    for index, (language, frame) in enumerate(
        (
            (Language.BAMBARA, "Min kera:"),
            (Language.ENGLISH, "What was done:"),
            (Language.FRENCH, "Ce qui a été fait :"),
        )
    ):
        contact = reachable_contact(db, phone=f"+2237600010{index}", language=language)
        ticket = create_ticket(db, category=C.WASH, source="sms", contact=contact)
        resolved = change_status(
            db,
            ticket,
            TicketStatus.RESOLVED,
            actor_label="op",
            outcome="  Camion-citerne au site lundi 8h  ",
        )
        db.commit()
        assert (
            resolved is not None
            and resolved.data["outcome"] == "  Camion-citerne au site lundi 8h  "
        )
        assert notifications.notify_sender(ticket.id, "resolved", resolved.id) is True
        first = _sent(db, contact.id)[0]  # then the satisfaction question
        assert first == translate(
            "sender.resolved_outcome",
            language.value,
            reference=ticket.reference,
            outcome="Camion-citerne au site lundi 8h",
        )
        assert frame in first and ticket.reference in first


def test_a_held_outcome_waits_until_contact_is_safe_then_carries_the_outcome(
    db: Any, world: World
) -> None:
    contact = reachable_contact(db, language=Language.ENGLISH)
    ticket = create_ticket(db, category=C.PROTECTION, source="sms", contact=contact)
    assert ticket.sensitive and ticket.callback_ok is not True
    resolved = change_status(
        db, ticket, TicketStatus.RESOLVED, actor_label="op", outcome="A caseworker met you."
    )
    db.commit()
    assert resolved is not None
    assert notifications.notify_sender(ticket.id, "resolved", resolved.id) is False
    assert _sent(db, contact.id) == []
    ticket.callback_ok = True  # the person said contact is safe
    db.commit()
    assert notifications.notify_sender(ticket.id, "resolved", resolved.id) is True
    assert _sent(db, contact.id)[0] == translate(
        "sender.resolved_outcome", "en", reference=ticket.reference, outcome="A caseworker met you."
    )


def test_opted_out_senders_get_nothing(db: Any, world: World) -> None:
    contact = reachable_contact(db)
    ticket = create_ticket(db, category=C.WASH, source="ussd", contact=contact)
    opt_out(contact)
    change_status(db, ticket, TicketStatus.IN_PROGRESS, actor_label="op")
    db.commit()
    # the acknowledgement was scheduled before the opt-out: the task checks again
    pending = db.scalars(
        select(OutboxTask).where(OutboxTask.task_name == "tickets.notify_sender")
    ).all()
    assert len(pending) == 1
    assert notifications.notify_sender(*pending[0].args) is False
    assert _sent(db, contact.id) == []


def test_callers_with_their_own_status_event_can_notify(db: Any, world: World) -> None:
    contact = reachable_contact(db)
    ticket = create_ticket(db, category=C.WASH, source="sms", contact=contact)
    ticket.status = TicketStatus.IN_PROGRESS
    event = TicketEvent(ticket_id=ticket.id, kind="status_changed", data={"new": "in_progress"})
    db.add(event)  # what the console's actions do, without flushing
    assert notifications.notify_status_change(db, ticket, TicketStatus.IN_PROGRESS)
    assert not notifications.notify_status_change(db, ticket, TicketStatus.WAITING)
    (task,) = db.scalars(select(OutboxTask).where(OutboxTask.task_name == "tickets.notify_sender"))
    assert task.args == [ticket.id, "in_progress", event.id]


def test_a_notification_runs_once_even_if_the_task_runs_twice(db: Any, world: World) -> None:
    contact = reachable_contact(db)
    ticket = create_ticket(db, category=C.WASH, source="ussd", contact=contact)
    db.commit()
    (task,) = db.scalars(select(OutboxTask).where(OutboxTask.task_name == "tickets.notify_sender"))
    assert notifications.notify_sender(*task.args) is True
    assert notifications.notify_sender(*task.args) is False
    assert _sent(db, contact.id) == [translate("sender.received", "fr", reference=ticket.reference)]


def test_satisfaction_answer_is_recorded_once(db: Any, world: World) -> None:
    contact = reachable_contact(db, language=Language.ENGLISH)
    ticket = create_ticket(db, category=C.HEALTH, source="sms", contact=contact)
    assert record_satisfaction(db, contact, "5") is None  # nothing asked yet
    event = change_status(db, ticket, TicketStatus.RESOLVED, actor_label="op")
    db.commit()
    assert event is not None
    notifications.notify_sender(ticket.id, "resolved", event.id)
    db.expire_all()
    assert _sent(db, contact.id)[-1].startswith("Deme: did our answer")
    assert record_satisfaction(db, contact, "thanks a lot") is None  # not an answer
    answered = record_satisfaction(db, contact, " 4 ")
    assert answered is not None and answered.id == ticket.id and answered.satisfaction == 4
    assert record_satisfaction(db, contact, "5") is None  # asked once, answered once
    assert (
        db.scalar(
            select(func.count(TicketEvent.id)).where(TicketEvent.kind == "satisfaction_recorded")
        )
        == 1
    )


@pytest.mark.parametrize(
    ("text", "score"),
    [
        ("1", 1),
        ("5", 5),
        ("4/5", 4),
        ("3.", 3),
        ("oui", 5),
        ("Owo", 5),
        ("ɔwɔ", 5),
        ("yes!", 5),
        ("non", 1),
        ("ayi", 1),
        ("6", None),
        ("0", None),
        ("45", None),
        ("merci", None),
        ("", None),
    ],
)
def test_parse_satisfaction(text: str, score: int | None) -> None:
    assert parse_satisfaction(text) == score


def test_status_reply_lists_open_tickets_with_reference_and_state(db: Any, world: World) -> None:
    contact = reachable_contact(db)
    assert status_reply(db, contact, "fr") == translate("status.none", "fr")
    first = create_ticket(db, category=C.PROTECTION, source="sms", contact=contact, description="x")
    second = create_ticket(db, category=C.WASH, source="sms", contact=contact)
    change_status(db, second, TicketStatus.IN_PROGRESS, actor_label="op", notify=False)
    reply = status_reply(db, contact, "en")
    assert reply.splitlines()[0] == translate("status.header", "en")
    assert f"{first.reference}: received" in reply
    assert f"{second.reference}: in progress" in reply
    assert "protection" not in reply.lower() and " x" not in reply


def test_status_reply_fits_one_sms_however_many_tickets(db: Any, world: World) -> None:
    contact = reachable_contact(db)
    for _ in range(15):
        create_ticket(db, category=C.WASH, source="sms", contact=contact)
    for language in ("fr", "bm", "en"):
        reply = status_reply(db, contact, language)
        assert len(reply) <= 160, (language, reply)
        last = reply.splitlines()[-1]
        shown = len(reply.splitlines()) - 2
        assert last == translate("status.more", language, count=15 - shown)
    assert db.scalar(select(func.count(Ticket.id))) == 15


# --- catalogs ------------------------------------------------------------------------------


def _catalog(language: str) -> dict[str, str]:
    data: dict[str, str] = json.loads((CATALOG_DIR / f"{language}.json").read_text("utf-8"))
    return data


def _placeholders(template: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(template) if name}


def test_every_catalog_key_exists_in_french_with_the_same_placeholders() -> None:
    french = _catalog("fr")
    for language in ("en", "bm"):
        for key, template in _catalog(language).items():
            assert key in french, (language, key)
            assert _placeholders(template) == _placeholders(french[key]), (language, key)
    assert set(_catalog("en")) == set(french)


@pytest.mark.parametrize("language", ["fr", "bm", "en"])
def test_sender_messages_are_one_gsm7_sms(language: str) -> None:
    from gateway import gsm7

    for key in SENDER_KEYS:
        text = translate(key, language, reference="T-7K2Q9")
        info = gsm7.measure(text)
        assert str(info.encoding) in ("gsm7", "MessageEncoding.GSM7"), (language, key, text)
        assert info.segments == 1 and len(text) <= 160, (language, key, len(text))
    for state in TicketStatus:
        line = translate(
            "status.line",
            language,
            reference="T-7K2Q9",
            state=translate(f"state.{state.value}", language),
        )
        assert gsm7.is_gsm7(line), (language, state)
