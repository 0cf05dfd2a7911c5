"""Closing the loop with the sender: short status SMS, the satisfaction question, "status"
answers, and the "dealt with" SMS when a surge incident closes.

Texts come from the catalogs (``sender.*``, ``status.*``, ``state.*``) and carry the ticket
reference and its state only — never the report's content, so a protection case is not
exposed to whoever else reads the phone. Nothing is sent to opted-out or erased contacts
(checked when the SMS is queued, not only when it was scheduled).
"""

from __future__ import annotations

import logging
import re
from datetime import datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from core.textfold import fold
from models.base import utcnow
from models.contacts import Contact
from models.enums import TicketSource, TicketStatus
from models.outbox_relay import enqueue_after_commit, publish_committed
from models.tickets import Incident, Ticket, TicketEvent
from tickets.i18n import normalize_language, translate
from tickets.routing import OPEN_STATUSES
from tickets.timeline import record_event

log = logging.getLogger(__name__)

NOTIFY_TASK = "tickets.notify_sender"
# Status changes the sender hears about, and the catalog message for each.
STATUS_NOTIFICATIONS = {
    TicketStatus.ASSIGNED: "assigned",
    TicketStatus.IN_PROGRESS: "in_progress",
    TicketStatus.RESOLVED: "resolved",
}
# Channels where nobody has told the sender their reference yet: the bot's own SMS reply
# carries it for SMS and API (bot) tickets; USSD sessions end, calls are spoken.
ACKNOWLEDGED_SOURCES = (
    TicketSource.USSD,
    TicketSource.CALL,
    TicketSource.MISSED_CALL,
    TicketSource.CONSOLE,
)
# How far along each notification is: a notification is dropped when the ticket has already
# moved past it (the "in progress" SMS queued behind a "resolved" one is noise, not news).
_PROGRESS = {"received": 0, "assigned": 1, "in_progress": 2, "resolved": 3}
_STATUS_PROGRESS = {
    TicketStatus.NEW: 0,
    TicketStatus.TRIAGED: 0,
    TicketStatus.ASSIGNED: 1,
    TicketStatus.IN_PROGRESS: 2,
    TicketStatus.WAITING: 2,
    TicketStatus.AWAITING_APPROVAL: 2,
    TicketStatus.RESOLVED: 3,
    TicketStatus.CLOSED: 3,
}
SMS_LIMIT = 160
# The sweep re-runs notifications scheduled this long ago (and no longer ago than the
# window) that left no "sender_notified" event: their task failed or was lost.
SWEEP_AFTER = timedelta(seconds=30)
SWEEP_WINDOW = timedelta(hours=2)
SATISFACTION_WINDOW = timedelta(days=7)
_YES = {"oui", "yes", "owo", "awo", "ok", "o"}
_NO = {"non", "no", "ayi", "n"}
_DIGIT = re.compile(r"^\s*([1-5])(?:\s*/\s*5)?\s*[.!]?\s*$")


def sender_language(ticket: Ticket | None, contact: Contact | None) -> str:
    if ticket is not None and ticket.language is not None:
        return normalize_language(ticket.language.value)
    if contact is not None and contact.language is not None:
        return normalize_language(contact.language.value)
    return normalize_language(None)


def can_message(contact: Contact | None) -> bool:
    return contact is not None and contact.phone is not None and not contact.is_opted_out


def held_for_safety(ticket: Ticket) -> bool:
    """An automatic SMS about a protection case waits until the person has said contact is
    safe (``callback_ok``): whoever else reads that phone must not learn there is a case."""
    return bool(ticket.sensitive) and ticket.callback_ok is not True


def schedule_sender_notification(
    session: Session, ticket: Ticket, kind: str, *, event_id: int
) -> bool:
    """Queue ``tickets.notify_sender`` after commit; ``event_id`` (the status change) makes
    the notification idempotent. False when the sender cannot be messaged, or when it is
    held until contact is safe (a "sender_notification_held" event remembers it: see
    ``release_held``)."""
    if ticket.contact_id is None:
        return False
    contact = session.get(Contact, ticket.contact_id)
    if not can_message(contact):
        return False
    if held_for_safety(ticket):
        record_event(
            session,
            ticket,
            "sender_notification_held",
            actor_label="system",
            kind=kind,
            source_event_id=event_id,
        )
        return False
    enqueue_after_commit(session, NOTIFY_TASK, ticket.id, kind, event_id)
    return True


def release_held(session: Session, ticket: Ticket) -> bool:
    """The person said contact is safe: send the latest held notification (an older one is
    dropped by ``notify_sender`` anyway once the ticket has moved past it)."""
    if held_for_safety(ticket):
        return False
    held = session.scalar(
        select(TicketEvent)
        .where(
            TicketEvent.ticket_id == ticket.id,
            TicketEvent.kind == "sender_notification_held",
        )
        .order_by(TicketEvent.id.desc())
        .limit(1)
    )
    if held is None:
        return False
    kind, event_id = str(held.data.get("kind")), held.data.get("source_event_id")
    if not isinstance(event_id, int) or _already_sent(session, ticket.id, kind, event_id):
        return False
    enqueue_after_commit(session, NOTIFY_TASK, ticket.id, kind, event_id)
    return True


def notify_for_status(
    session: Session, ticket: Ticket, status: TicketStatus, event_id: int
) -> bool:
    kind = STATUS_NOTIFICATIONS.get(status)
    if kind is None:
        return False
    return schedule_sender_notification(session, ticket, kind, event_id=event_id)


def notify_status_change(session: Session, ticket: Ticket, status: TicketStatus) -> bool:
    """For callers that wrote their own ``status_changed`` event (the console's actions):
    flushes, then keys the notification on the latest such event of the ticket."""
    if status not in STATUS_NOTIFICATIONS:
        return False
    session.flush()
    event_id = session.scalar(
        select(TicketEvent.id)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "status_changed")
        .order_by(TicketEvent.id.desc())
        .limit(1)
    )
    if event_id is None:
        return False
    return notify_for_status(session, ticket, status, int(event_id))


def _already_sent(session: Session, ticket_id: int, kind: str, event_id: int) -> bool:
    events = session.scalars(
        select(TicketEvent).where(
            TicketEvent.ticket_id == ticket_id, TicketEvent.kind == "sender_notified"
        )
    )
    return any(
        e.data.get("kind") == kind and e.data.get("source_event_id") == event_id for e in events
    )


def _queue(
    session: Session, contact: Contact, body: str, ticket_id: int | None, kind: str
) -> int | None:
    from gateway.outbound import queue_sms  # written in parallel (issue 3): import lazily

    message = queue_sms(session, contact=contact, body=body, ticket_id=ticket_id, kind=kind)
    return None if message is None else message.id


def _outcome(session: Session, ticket_id: int, kind: str, event_id: int) -> str | None:
    """What was done, as the operator wrote it when resolving (the status event's
    ``outcome``): read when the SMS is sent, so one held for safety carries it too."""
    if kind != "resolved":
        return None
    event = session.get(TicketEvent, event_id)
    if event is None or event.ticket_id != ticket_id:
        return None
    outcome = event.data.get("outcome") if isinstance(event.data, dict) else None
    text = str(outcome or "").strip()
    return text or None


def notify_sender(ticket_id: int, kind: str, event_id: int) -> bool:
    """The task body: send the ``sender.<kind>`` SMS for ticket ``ticket_id`` once."""
    with get_sessionmaker()() as session:
        ticket = session.get(Ticket, ticket_id, with_for_update=True)
        if ticket is None or ticket.contact_id is None:
            return False
        contact = session.get(Contact, ticket.contact_id)
        if contact is None or not can_message(contact):
            return False
        if _already_sent(session, ticket_id, kind, event_id):
            return False
        if held_for_safety(ticket):
            return False  # queued before "not safe" was known: release_held sends it later
        if _STATUS_PROGRESS[ticket.status] > _PROGRESS.get(kind, 3):
            return False
        language = sender_language(ticket, contact)
        outcome = _outcome(session, ticket_id, kind, event_id)
        body = (
            translate(
                "sender.resolved_outcome", language, reference=ticket.reference, outcome=outcome
            )
            if outcome
            else translate(f"sender.{kind}", language, reference=ticket.reference)
        )
        message_id = _queue(session, contact, body, ticket.id, "status")
        record_event(
            session,
            ticket,
            "sender_notified",
            actor_label="system",
            kind=kind,
            source_event_id=event_id,
            message_id=message_id,
        )
        if kind == "resolved" and message_id is not None and ticket.satisfaction is None:
            question = translate("sender.satisfaction", language, reference=ticket.reference)
            question_id = _queue(session, contact, question, ticket.id, "satisfaction")
            record_event(
                session,
                ticket,
                "satisfaction_asked",
                actor_label="system",
                message_id=question_id,
                source_event_id=event_id,
            )
        session.commit()
        publish_committed(session)
        return message_id is not None


def sweep_unsent(
    *, older_than: timedelta = SWEEP_AFTER, window: timedelta = SWEEP_WINDOW, limit: int = 500
) -> int:
    """Periodic sweep (beat, every minute): run again each ``tickets.notify_sender`` scheduled
    (its outbox row) between ``window`` and ``older_than`` ago whose notification was never
    recorded. ``notify_sender`` itself is the guard against a double: it locks the ticket and
    skips a (kind, event) already notified, so two sweeps at once send it once. Returns how
    many were sent now."""
    from models.outbox import OutboxTask

    now = utcnow()
    with get_sessionmaker()() as session:
        rows = session.scalars(
            select(OutboxTask.args)
            .where(
                OutboxTask.task_name == NOTIFY_TASK,
                OutboxTask.created_at >= now - window,
                OutboxTask.created_at <= now - older_than,
            )
            .order_by(OutboxTask.id)
            .limit(limit)
        ).all()
        scheduled = {
            (int(args[0]), str(args[1]), int(args[2])) for args in rows if len(args or []) == 3
        }
        if not scheduled:
            return 0
        done = {
            (event.ticket_id, str(event.data.get("kind")), event.data.get("source_event_id"))
            for event in session.scalars(
                select(TicketEvent).where(
                    TicketEvent.ticket_id.in_({ticket_id for ticket_id, _, _ in scheduled}),
                    TicketEvent.kind == "sender_notified",
                )
            )
        }
    sent = 0
    for ticket_id, kind, event_id in sorted(scheduled - done):
        sent += notify_sender(ticket_id, kind, event_id)
    if sent:
        log.info("notification sweep: %d sender notifications sent late", sent)
    return sent


def parse_satisfaction(text: str) -> int | None:
    """1–5 from "4", "4/5"; yes → 5 and no → 1 (fr/bm/en); anything else None."""
    match = _DIGIT.match(text or "")
    if match:
        return int(match.group(1))
    word = fold(text or "").strip(" .!?")
    if word in _YES:
        return 5
    if word in _NO:
        return 1
    return None


def pending_satisfaction_ticket(
    session: Session, contact: Contact, *, now: datetime | None = None
) -> Ticket | None:
    """The ticket whose satisfaction question this contact has not answered yet (recent)."""
    since = (now or utcnow()) - SATISFACTION_WINDOW
    return session.scalar(
        select(Ticket)
        .join(TicketEvent, TicketEvent.ticket_id == Ticket.id)
        .where(
            Ticket.contact_id == contact.id,
            Ticket.satisfaction.is_(None),
            TicketEvent.kind == "satisfaction_asked",
            TicketEvent.created_at >= since,
        )
        .order_by(TicketEvent.created_at.desc(), TicketEvent.id.desc())
        .limit(1)
    )


def record_satisfaction(session: Session, contact: Contact, text: str) -> Ticket | None:
    """Record ``text`` as the answer to the satisfaction question, if it is one. Returns the
    ticket, or None (no question pending, or not an answer: let the bot handle the text)."""
    # The words first: most messages are no score, and then no query is needed.
    score = parse_satisfaction(text)
    if score is None:
        return None
    ticket = pending_satisfaction_ticket(session, contact)
    if ticket is None:
        return None
    ticket.satisfaction = score
    record_event(session, ticket, "satisfaction_recorded", actor_label="sender", score=score)
    return ticket


def satisfaction_thanks(language: str | None) -> str:
    return translate("sender.satisfaction_thanks", language)


def status_reply(session: Session, contact: Contact, language: str | None) -> str:
    """The sender's open tickets, reference and state, in one SMS (≤160 characters; what
    does not fit is counted, newest first)."""
    lang = normalize_language(language)
    tickets = session.scalars(
        select(Ticket)
        .where(
            Ticket.contact_id == contact.id,
            Ticket.status.in_(OPEN_STATUSES),
            Ticket.merged_into_id.is_(None),
        )
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
    ).all()
    if not tickets:
        return translate("status.none", lang)
    lines = [translate("status.header", lang)]
    for index, ticket in enumerate(tickets):
        line = translate(
            "status.line",
            lang,
            reference=ticket.reference,
            state=translate(f"state.{ticket.status.value}", lang),
        )
        remaining = len(tickets) - index - 1
        more = translate("status.more", lang, count=remaining) if remaining else ""
        candidate = "\n".join([*lines, line, *([more] if more else [])])
        if len(candidate) > SMS_LIMIT and len(lines) > 1:
            lines.append(translate("status.more", lang, count=len(tickets) - index))
            break
        lines.append(line)
    return "\n".join(lines)


def notify_incident_closed(incident_id: int) -> int:
    """The task body: tell every sender of a closed incident, once each. Returns count."""
    sent = 0
    with get_sessionmaker()() as session:
        incident = session.get(Incident, incident_id)
        if incident is None:
            return 0
        members = session.scalars(
            select(Ticket).where(Ticket.incident_id == incident_id).order_by(Ticket.id)
        ).all()
        done_contacts: set[int] = set()
        for ticket in members:
            if ticket.contact_id is None or ticket.contact_id in done_contacts:
                continue
            done_contacts.add(ticket.contact_id)
            if _already_sent(session, ticket.id, "incident_closed", incident_id):
                continue
            contact = session.get(Contact, ticket.contact_id)
            if contact is None or not can_message(contact) or held_for_safety(ticket):
                continue
            body = translate(
                "sender.incident_closed",
                sender_language(ticket, contact),
                reference=ticket.reference,
            )
            message_id = _queue(session, contact, body, ticket.id, "status")
            record_event(
                session,
                ticket,
                "sender_notified",
                actor_label="system",
                kind="incident_closed",
                source_event_id=incident_id,
                message_id=message_id,
            )
            sent += message_id is not None
        session.commit()
        publish_committed(session)
    return sent
