"""The exchange with the person behind a ticket, in order: every SMS in and out (the bot's
turns, operators' replies, automatic status SMS), calls, the team alerts the ticket raised
and how the report came in (a USSD walk, a call). Read by the console's ticket page.

Also the one rule that links a follow-up to its ticket: an SMS answering the question the
bot asked about a ticket (its place, the household's size, "can we contact you safely?")
belongs to that ticket even when the bot's turn changed nothing on it, so it is shown — and
protected — exactly like the ticket.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, select, true
from sqlalchemy.orm import Session

from models.alerts import Alert, AlertChannel
from models.contacts import Contact
from models.enums import MessageDirection, TicketSource
from models.messages import Call, Message
from models.tickets import Ticket, TicketEvent

# An answer comes within this of the question it answers (a form's questions follow each
# other in minutes); a later SMS starts a new exchange and is left for the bot to link.
FOLLOWUP_WINDOW = timedelta(hours=2)

# What an outbound SMS was, from the timeline event that names it (``message_id``).
_OUTBOUND_KINDS = {
    "replied": "reply",
    "sender_notified": "status",
    "satisfaction_asked": "satisfaction",
}


@dataclass
class Entry:
    """One line of the conversation. ``kind``: sms_in, sms_out, call, alert, intake,
    erased (``item``: the erasure confirmation SMS, or None)."""

    at: datetime
    kind: str
    item: Any = None
    # sms_out: bot | reply | status | satisfaction; alert: the channel kind
    origin: str | None = None
    actor_user_id: int | None = None
    details: dict[str, Any] = field(default_factory=dict)


def ticket_conversation(
    session: Session,
    ticket: Ticket,
    *,
    message_clause: ColumnElement[bool] | None = None,
    events: list[TicketEvent] | None = None,
) -> list[Entry]:
    """The ticket's exchange, oldest first. ``message_clause`` is the reader's visibility
    rule for messages (ops_console.permissions.Viewer.message_clause): applied on top of the
    link, so a message is never shown to someone who may not read it."""
    if events is None:
        events = list(
            session.scalars(
                select(TicketEvent)
                .where(TicketEvent.ticket_id == ticket.id)
                .order_by(TicketEvent.created_at, TicketEvent.id)
            )
        )
    origins: dict[int, tuple[str, int | None]] = {}
    for event in events:
        kind = _OUTBOUND_KINDS.get(event.kind)
        message_id = event.data.get("message_id") if isinstance(event.data, dict) else None
        if kind and isinstance(message_id, int):
            origins[message_id] = (kind, event.actor_user_id)
    entries: list[Entry] = []
    created = next((e for e in events if e.kind == "created"), None)
    if ticket.source in (TicketSource.USSD, TicketSource.CALL, TicketSource.MISSED_CALL):
        entries.append(
            Entry(
                at=ticket.created_at,
                kind="intake",
                origin=ticket.source.value,
                actor_user_id=created.actor_user_id if created else None,
                details={
                    "place": ticket.place_id is not None,
                    "household": ticket.household_id is not None,
                    "callback_ok": ticket.callback_ok,
                },
            )
        )
    messages = session.scalars(
        select(Message)
        .where(
            Message.ticket_id == ticket.id, message_clause if message_clause is not None else true()
        )
        .order_by(Message.created_at, Message.id)
    )
    for message in messages:
        if message.direction == MessageDirection.INBOUND:
            entries.append(Entry(at=message.created_at, kind="sms_in", item=message))
        else:
            origin, actor = origins.get(message.id, ("bot", None))
            entries.append(
                Entry(
                    at=message.created_at,
                    kind="sms_out",
                    item=message,
                    origin=origin,
                    actor_user_id=actor,
                )
            )
    for call in session.scalars(select(Call).where(Call.ticket_id == ticket.id)):
        entries.append(
            Entry(at=call.created_at, kind="call", item=call, actor_user_id=call.operator_id)
        )
    alerts = session.execute(
        select(Alert, AlertChannel.kind)
        .outerjoin(AlertChannel, AlertChannel.id == Alert.alert_channel_id)
        .where(Alert.ticket_id == ticket.id)
    )
    for alert, channel_kind in alerts:
        entries.append(
            Entry(
                at=alert.created_at,
                kind="alert",
                item=alert,
                origin=channel_kind.value if channel_kind is not None else "email",
            )
        )
    entries.extend(_erasure(session, ticket, message_clause))
    # Same instant: the intake first, then the person's words before the answers to them.
    order = {"intake": 0, "sms_in": 1, "call": 2, "sms_out": 3, "alert": 4, "erased": 5}
    entries.sort(key=lambda entry: (entry.at, order[entry.kind], getattr(entry.item, "id", 0)))
    return entries


def _erasure(
    session: Session, ticket: Ticket, message_clause: ColumnElement[bool] | None
) -> list[Entry]:
    """The person had their data erased: say when, and how the confirmation SMS fared (it
    is sent to the person, not about one ticket, so it is linked to none: found as the first
    SMS sent to them from the erasure on, under the reader's message rule)."""
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    if contact is None or contact.erased_at is None:
        return []
    confirmation = session.scalar(
        select(Message)
        .where(
            Message.contact_id == contact.id,
            Message.direction == MessageDirection.OUTBOUND,
            Message.ticket_id.is_(None),
            Message.created_at >= contact.erased_at - timedelta(minutes=1),
            message_clause if message_clause is not None else true(),
        )
        .order_by(Message.id)
        .limit(1)
    )
    return [Entry(at=contact.erased_at, kind="erased", item=confirmation)]


def followup_ticket_id(
    session: Session, contact_id: int, message: Message, *, window: timedelta = FOLLOWUP_WINDOW
) -> int | None:
    """The ticket an inbound ``message`` answers: the ticket of the last SMS the person was
    sent before it (the bot's question), when that came within ``window`` and the ticket is
    still open and not merged. None when there is no such question — and when the person
    also has a protection case but the question was about an ordinary ticket: an answer
    that may be about the protection case must not become readable by every operator
    (unlinked, it stays with protection officers)."""
    from tickets.routing import OPEN_STATUSES

    previous = session.execute(
        select(Message.ticket_id, Message.created_at)
        .where(
            Message.contact_id == contact_id,
            Message.direction == MessageDirection.OUTBOUND,
            Message.id < message.id,
            Message.created_at >= message.created_at - window,
        )
        .order_by(Message.id.desc())
        .limit(1)
    ).first()
    if previous is None or previous.ticket_id is None:
        return None
    ticket = session.get(Ticket, previous.ticket_id)
    if ticket is None or ticket.status not in OPEN_STATUSES or ticket.merged_into_id is not None:
        return None
    if not ticket.sensitive:
        other_protection_case = session.scalar(
            select(Ticket.id)
            .where(Ticket.contact_id == contact_id, Ticket.sensitive.is_(True))
            .limit(1)
        )
        if other_protection_case is not None:
            return None
    return ticket.id
