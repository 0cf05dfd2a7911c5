"""Intake: the contract of tickets.intake (create, update, households, open tickets)."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from ticket_helpers import World, add_channel, reachable_contact

from models.alerts import Alert
from models.channels import Channel
from models.contacts import Household
from models.enums import (
    AlertKind,
    ChannelType,
    MessageDirection,
    MessageStatus,
    TicketCategory,
    TicketPriority,
    TicketSource,
    TicketStatus,
)
from models.messages import Message
from models.outbox import OutboxTask
from models.routing import RoutingDecision
from models.tickets import Ticket, TicketEvent
from tickets import intake
from tickets.intake import (
    UnknownPlace,
    create_ticket,
    open_tickets_for,
    register_household,
    update_ticket,
)
from tickets.workflow import change_status, reroute

C = TicketCategory
P = TicketPriority
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)


def _events(db: Any, ticket: Ticket) -> list[str]:
    return list(
        db.scalars(
            select(TicketEvent.kind)
            .where(TicketEvent.ticket_id == ticket.id)
            .order_by(TicketEvent.id)
        )
    )


def _tasks(db: Any, name: str) -> list[list[Any]]:
    return [
        list(row.args) for row in db.scalars(select(OutboxTask).where(OutboxTask.task_name == name))
    ]


def test_create_ticket_triages_routes_sets_sla_and_schedules_alerts(db: Any, world: World) -> None:
    channel = add_channel(db, world.teams["protection"], AlertKind.WEBHOOK, url="http://x/h")
    contact = reachable_contact(db)
    ticket = create_ticket(
        db,
        category="protection",
        source="sms",
        contact=contact,
        description="Des hommes armés ont menacé ma famille",
        place_code="ML0702",
        language="bm",
        callback_ok=True,
        callback_time="le soir",
        now=T0,
    )
    assert re.fullmatch(r"T-[234679ACDEFGHJKMNPQRTWXYZ]{5}", ticket.reference)
    assert ticket.status == TicketStatus.TRIAGED and ticket.triaged_at == T0
    assert ticket.priority == P.URGENT and ticket.sensitive
    assert ticket.team_id == world.teams["protection"].id
    # urgent protection: 1 h to a first response, 24 h to resolution (defaults)
    assert ticket.first_response_due_at == T0 + timedelta(hours=1)
    assert ticket.resolution_due_at == T0 + timedelta(hours=24)
    assert contact.language is not None and contact.language.value == "bm"
    assert _events(db, ticket) == ["created", "routed"]
    created = db.scalar(select(TicketEvent).where(TicketEvent.kind == "created"))
    assert created.data["signals"] == ["danger:weapons"]
    assert "armés" not in str(created.data)
    alert = db.scalar(select(Alert).where(Alert.ticket_id == ticket.id))
    assert alert.alert_channel_id == channel.id and alert.reason == "new_ticket"
    assert _tasks(db, "tickets.deliver_alert") == [[alert.id]]
    # SMS tickets: the bot's reply carries the reference, no separate acknowledgement
    assert _tasks(db, "tickets.notify_sender") == []


def test_channels_where_nobody_told_the_sender_get_an_acknowledgement(
    db: Any, world: World
) -> None:
    contact = reachable_contact(db)
    ticket = create_ticket(db, category=C.WASH, source=TicketSource.USSD, contact=contact)
    event = db.scalar(select(TicketEvent).where(TicketEvent.kind == "created"))
    assert _tasks(db, "tickets.notify_sender") == [[ticket.id, "received", event.id]]


def test_no_unsolicited_acknowledgement_for_sensitive_cases(db: Any, world: World) -> None:
    contact = reachable_contact(db)
    create_ticket(db, category=C.PROTECTION, source=TicketSource.USSD, contact=contact)
    create_ticket(db, category=C.HEALTH, source="call", contact=contact, sensitive=True)
    assert _tasks(db, "tickets.notify_sender") == []


def test_unknown_place_code_is_flagged_for_review(db: Any, world: World) -> None:
    ticket = create_ticket(db, category=C.HEALTH, source="api", place_code="NOWHERE")
    assert ticket.place_id is None and ticket.needs_review
    assert ticket.team_id == world.teams["general"].id


def test_reference_clash_is_retried(db: Any, world: World, monkeypatch: Any) -> None:
    first = create_ticket(db, category=C.OTHER, source="api")
    db.commit()
    references = iter([first.reference, first.reference, "T-22222"])
    monkeypatch.setattr(intake, "new_reference", lambda prefix="T": next(references))
    second = create_ticket(db, category=C.OTHER, source="api", description="x")
    db.commit()
    assert second.reference == "T-22222"
    assert db.scalar(select(func.count(Ticket.id))) == 2


def test_the_inbound_message_is_linked(db: Any, world: World) -> None:
    contact = reachable_contact(db)
    message = db.scalar(select(Message).where(Message.contact_id == contact.id))
    ticket = create_ticket(
        db, category=C.WASH, source="sms", contact=contact, message_id=message.id
    )
    assert message.ticket_id == ticket.id


def test_household_size_creates_then_updates_the_household(db: Any, world: World) -> None:
    contact = reachable_contact(db)
    ticket = create_ticket(
        db,
        category=C.SHELTER_NFI,
        source="sms",
        contact=contact,
        place_code="SITE-ANS-1",
        household_size=7,
    )
    household = db.get(Household, ticket.household_id)
    assert household.size == 7 and household.contact_id == contact.id
    assert household.current_place_id == world.place("SITE-ANS-1").id
    update_ticket(db, ticket, household_size=9)
    assert db.get(Household, ticket.household_id).size == 9
    assert db.scalar(select(func.count(Household.id))) == 1


def test_a_place_learned_later_reroutes_an_untouched_ticket(db: Any, world: World) -> None:
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url="http://x/h")
    ticket = create_ticket(db, category=C.HEALTH, source="sms", description="fièvre")
    assert ticket.team_id == world.teams["general"].id
    update_ticket(db, ticket, place_code="ML070201", actor_label="bot")
    assert ticket.team_id == world.teams["health"].id
    assert db.scalar(select(func.count(RoutingDecision.id))) == 2
    # the new team is alerted
    assert db.scalar(select(Alert).where(Alert.team_id == world.teams["health"].id)) is not None
    assert "updated" in _events(db, ticket)


def test_a_place_learned_later_keeps_an_operator_choice(db: Any, world: World) -> None:
    ticket = create_ticket(db, category=C.HEALTH, source="sms")
    reroute(
        db,
        ticket,
        world.teams["protection"],
        actor_label="sup",
        actor_user_id=world.users["supervisor"].id,
    )
    update_ticket(db, ticket, place_code="ML07")  # the "Health Gao" rule would match
    assert ticket.team_id == world.teams["protection"].id


def test_a_note_is_triaged_again_priority_only_goes_up(db: Any, world: World) -> None:
    ticket = create_ticket(db, category=C.HEALTH, source="sms", description="fièvre", now=T0)
    assert ticket.priority == P.NORMAL
    update_ticket(db, ticket, note="il est inconscient maintenant", now=T0 + timedelta(minutes=5))
    assert ticket.priority == P.URGENT
    assert ticket.first_response_due_at == T0 + timedelta(hours=1)
    update_ticket(db, ticket, note="merci")
    assert ticket.priority == P.URGENT
    note = db.scalar(select(TicketEvent).where(TicketEvent.kind == "note"))
    assert note.body == "il est inconscient maintenant"


def test_register_household_creates_or_updates(db: Any, world: World) -> None:
    contact = reachable_contact(db)
    first = register_household(
        db, contact=contact, size=5, place_code="SITE-ANS-1", origin_code="ML0501"
    )
    again = register_household(db, contact=contact, size=6, place_code="ML0702")
    assert first.id == again.id and again.size == 6
    assert again.current_place_id == world.place("ML0702").id
    assert again.origin_place_id == world.place("ML0501").id
    with pytest.raises(UnknownPlace):
        register_household(db, contact=contact, size=2, place_code="ZZ")


def test_open_tickets_for_lists_only_open_unmerged_tickets(db: Any, world: World) -> None:
    contact = reachable_contact(db)
    older = create_ticket(db, category=C.WASH, source="sms", contact=contact, now=T0)
    newer = create_ticket(
        db, category=C.HEALTH, source="sms", contact=contact, now=T0 + timedelta(hours=1)
    )
    done = create_ticket(db, category=C.OTHER, source="sms", contact=contact)
    change_status(db, done, TicketStatus.RESOLVED, actor_label="op", notify=False)
    merged = create_ticket(db, category=C.OTHER, source="sms", contact=contact)
    merged.merged_into_id = newer.id
    db.flush()
    assert [t.id for t in open_tickets_for(db, contact)] == [newer.id, older.id]
    assert [t.id for t in open_tickets_for(db, contact, limit=1)] == [newer.id]


def test_create_ticket_commits_nothing_by_itself(db: Any, world: World) -> None:
    db.add(Channel(name="c", type=ChannelType.SIMULATOR, config={}))
    create_ticket(db, category=C.WASH, source="console")
    db.rollback()
    assert db.scalar(select(func.count(Ticket.id))) == 0
    assert db.scalar(select(func.count(OutboxTask.id))) == 0
    assert (
        db.scalar(
            select(func.count(Message.id)).where(
                Message.direction == MessageDirection.OUTBOUND,
                Message.status == MessageStatus.PENDING,
            )
        )
        == 0
    )
