"""Erasure and retention, checked on raw rows: after erasing a contact no table holds their
number (clear, hashed or encrypted) or anything they wrote; counts survive; both audited."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select, text
from ticket_helpers import World, add_channel, dump_all_tables, reachable_contact

from core.crypto import lookup_hash
from models.alerts import Alert
from models.audit import AuditLog
from models.channels import Channel
from models.contacts import Contact
from models.enums import (
    AlertKind,
    Language,
    MessageDirection,
    MessageStatus,
    TicketCategory,
    TicketStatus,
)
from models.messages import Call, Message
from models.tickets import Ticket, TicketEvent
from models.ussd import UssdSession
from tickets import notifications
from tickets.contacts import get_or_create_contact
from tickets.erasure import purge_retention
from tickets.intake import create_ticket, erase_contact, update_ticket
from tickets.workflow import add_note, change_status

C = TicketCategory
PHONE = "+22376123456"
OTHER_PHONE = "+22390909090"
MARKER = "Zoumanakoro"  # a word the person wrote, easy to search for
OTHER_MARKER = "Kadiatouville"


def _trail(db: Any, world: World, phone: str, marker: str) -> Contact:
    """Everything a person leaves behind: messages both ways, tickets, notes, a call, a USSD
    walk, alerts quoting their report."""
    contact = reachable_contact(db, phone, language=Language.FRENCH)
    channel = db.scalar(select(Channel).where(Channel.name == "sim"))
    inbound = Message(
        channel_id=channel.id,
        contact_id=contact.id,
        direction=MessageDirection.INBOUND,
        provider_id=f"SM-{marker}",
        body=f"Bonjour, ici {marker}, mon numéro est {phone}, pas d'eau au forage",
        status=MessageStatus.HANDLED,
    )
    db.add(inbound)
    db.flush()
    ticket = create_ticket(
        db,
        category=C.WASH,
        source="sms",
        contact=contact,
        description=f"{marker}: pas d'eau au forage, appelez-moi au {phone}",
        place_code="SITE-ANS-1",
        callback_time=f"après 18h chez {marker}",
        message_id=inbound.id,
    )
    sensitive = create_ticket(
        db,
        category=C.PROTECTION,
        source="ussd",
        contact=contact,
        description=f"{marker} menacé",
        callback_ok=True,  # said safe on the menu: its acknowledgement SMS is sent
    )
    update_ticket(db, ticket, note=f"il a dit: {marker} a deux enfants")
    add_note(db, sensitive, f"note d'opérateur sur {marker}", actor_label="op")
    db.add(
        Call(
            channel_id=channel.id,
            contact_id=contact.id,
            ticket_id=ticket.id,
            direction=MessageDirection.INBOUND,
            status="completed",
            notes=f"appel de {marker} au {phone}",
        )
    )
    db.add(
        UssdSession(
            channel_id=channel.id,
            session_id=f"ATUid_{phone[-4:]}",
            contact_id=contact.id,
            state={"answers": [marker, "3"], "phone": phone},
        )
    )
    db.commit()
    # outbound SMS: the acknowledgement of the USSD ticket and a status SMS
    for task_ticket in (sensitive,):
        created = db.scalar(
            select(TicketEvent).where(
                TicketEvent.ticket_id == task_ticket.id, TicketEvent.kind == "created"
            )
        )
        notifications.notify_sender(task_ticket.id, "received", created.id)
    db.expire_all()
    return contact


def test_erasure_leaves_no_trace_of_number_or_words_in_any_table(db: Any, world: World) -> None:
    add_channel(db, world.teams["general"], AlertKind.WEBHOOK, url="http://x/h")
    contact = _trail(db, world, PHONE, MARKER)
    _trail(db, world, OTHER_PHONE, OTHER_MARKER)
    encrypted = db.execute(
        text("SELECT phone FROM contacts WHERE id = :id"), {"id": contact.id}
    ).scalar_one()
    digest = lookup_hash(PHONE)
    before = dump_all_tables(db)
    for needle in (MARKER, encrypted, digest, "76123456"):
        assert needle in before, needle  # the scan sees them before erasure
    tickets_before = db.scalar(select(func.count(Ticket.id)))

    counts = erase_contact(db, contact, actor_label="admin")
    db.commit()

    after = dump_all_tables(db)
    for needle in (MARKER, MARKER.lower(), encrypted, digest, "76123456", PHONE):
        assert needle not in after, needle
    # the other person's data is untouched
    assert OTHER_MARKER in after and lookup_hash(OTHER_PHONE) in after
    # anonymous counts survive
    assert db.scalar(select(func.count(Ticket.id))) == tickets_before
    assert db.scalar(select(func.count(Ticket.id)).where(Ticket.contact_id == contact.id)) == 2
    assert counts["tickets"] == 2 and counts["messages"] >= 3 and counts["calls"] == 1
    assert counts["ussd_sessions"] == 1 and counts["alerts"] >= 1
    db.expire_all()
    erased = db.get(Contact, contact.id)
    assert erased.phone is None and erased.phone_hash is None and erased.erased_at is not None
    audit = db.scalar(select(AuditLog).where(AuditLog.action == "contact.erased"))
    assert audit.object_id == str(contact.id) and audit.actor_label == "admin"
    assert audit.details["counts"] == counts


def test_an_erased_contact_is_never_messaged_again(db: Any, world: World) -> None:
    from gateway.outbound import queue_sms

    contact = reachable_contact(db, PHONE)
    ticket = create_ticket(db, category=C.WASH, source="ussd", contact=contact)
    erase_contact(db, contact, actor_label="sms-keyword")
    event = change_status(db, ticket, TicketStatus.RESOLVED, actor_label="op")
    db.commit()
    assert event is not None
    assert notifications.notify_sender(ticket.id, "resolved", event.id) is False
    assert queue_sms(db, contact=contact, body="x") is None
    # writing again later starts afresh: a new contact, no link to the erased one
    again = get_or_create_contact(db, PHONE)
    assert again.id != contact.id


def test_retention_purges_old_closed_tickets_only(db: Any, world: World) -> None:
    now = datetime(2027, 6, 1, tzinfo=UTC)
    contact = reachable_contact(db, PHONE)
    channel = db.scalar(select(Channel).where(Channel.name == "sim"))

    def ticket(status: TicketStatus, age_days: int | None) -> Ticket:
        made = create_ticket(
            db,
            category=C.HEALTH,
            source="sms",
            contact=contact,
            description=f"{MARKER} {status.value}",
            now=now - timedelta(days=500),
        )
        add_note(db, made, f"note {MARKER}", actor_label="op")
        db.add(
            Message(
                channel_id=channel.id,
                contact_id=contact.id,
                ticket_id=made.id,
                direction=MessageDirection.INBOUND,
                body=f"{MARKER} message",
                status=MessageStatus.HANDLED,
            )
        )
        made.status = status
        when = now - timedelta(days=age_days) if age_days is not None else None
        made.closed_at = when if status == TicketStatus.CLOSED else None
        made.resolved_at = when
        return made

    old_closed = ticket(TicketStatus.CLOSED, 400)
    old_resolved = ticket(TicketStatus.RESOLVED, 366)
    recent = ticket(TicketStatus.CLOSED, 10)
    still_open = ticket(TicketStatus.IN_PROGRESS, None)
    db.commit()

    counts = purge_retention(db, now=now)
    db.commit()
    assert counts["tickets"] == 2 and counts["messages"] == 2 and counts["ticket_events"] >= 2
    db.expire_all()
    for purged in (old_closed, old_resolved):
        row = db.get(Ticket, purged.id)
        assert row.description is None and row.personal_data_purged_at == now
        assert row.category == C.HEALTH  # the count survives
        bodies = db.scalars(select(TicketEvent.body).where(TicketEvent.ticket_id == row.id))
        assert all(b is None for b in bodies)
        messages = db.scalars(select(Message.body).where(Message.ticket_id == row.id))
        assert all(b is None for b in messages)
    for kept in (recent, still_open):
        assert MARKER in (db.get(Ticket, kept.id).description or "")
    # the phone number is the contact's, not the ticket's: still there for open work
    assert db.get(Contact, contact.id).phone == PHONE
    audit = db.scalar(select(AuditLog).where(AuditLog.action == "retention.purged"))
    assert audit.details["counts"] == counts and audit.details["retention_days"] == 365
    # a second run finds nothing more
    assert purge_retention(db, now=now)["tickets"] == 0


def test_alerts_quoting_an_erased_report_are_redacted(db: Any, world: World) -> None:
    add_channel(db, world.teams["general"], AlertKind.WEBHOOK, url="http://x/h")
    contact = reachable_contact(db, PHONE)
    ticket = create_ticket(
        db, category=C.WASH, source="sms", contact=contact, description=f"{MARKER} sans eau"
    )
    alert = db.scalar(select(Alert).where(Alert.ticket_id == ticket.id))
    assert MARKER in alert.body
    erase_contact(db, contact, actor_label="admin")
    db.commit()
    db.refresh(alert)
    assert MARKER not in alert.body and ticket.reference in alert.body
