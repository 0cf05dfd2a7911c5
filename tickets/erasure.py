"""Erasure (a person's right to be forgotten) and retention (nothing kept longer than needed).

Both remove personal data and keep anonymous counts: rows stay (a ticket still counts as a
health report from Gao in March), their personal columns become NULL. Both are audited with
counts only. Flushes; the caller commits.

What counts as personal data here, table by table:
- contacts: phone (encrypted) and phone_hash → NULL, erased_at set;
- messages: body, provider_id (a provider-side handle back to the number), error_message;
- tickets: description, summary, callback_time;
- ticket_events: body (notes, replies), and free-text keys of ``data``;
- calls: notes; ussd_sessions: state (menu answers);
- referrals of these tickets: what was shared with the partner and the partner's note (the
  partner's link then shows nothing);
- alerts about these tickets: rewritten to the restricted "log in to view" text.

Send, then erase (``confirm=True``, when the person asked by SMS and gets a confirmation):
everything above is removed at once and the lookup hash too (a new message starts afresh),
except the encrypted number and the confirmation SMS still to be sent. ``finish_erasure``
removes those as soon as the sends are final (sent, failed, unknown — the send task calls it),
and the sweep ``tickets.finish_erasures`` (every minute) guarantees it happens anyway within
``ERASURE_NUMBER_MAX_AGE``, even when the send never completes.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, false, not_, or_, select, update
from sqlalchemy.orm import Session

from core.settings import get_settings
from models.audit import record_audit
from models.base import utcnow
from models.contacts import Contact
from models.enums import MessageDirection, MessageStatus, TicketStatus
from models.messages import Call, Message
from models.outbox_relay import enqueue_after_commit
from models.tickets import Ticket, TicketEvent
from models.ussd import UssdSession
from tickets.alerts import redact_ticket_alerts

# Keys of TicketEvent.data that may hold words someone typed (other packages' events too).
FREE_TEXT_KEYS = frozenset(
    {"text", "body", "note", "description", "summary", "message", "phone", "callback_time"}
)


# The bot answers an erasure request after its action returned (one Rasa turn): its reply is
# queued within seconds. Until this settle time, a number with no confirmation queued since
# the erasure is kept for it.
ERASURE_REPLY_SETTLE = timedelta(seconds=60)
# Whatever happens to the send, the number is gone by then.
ERASURE_NUMBER_MAX_AGE = timedelta(minutes=15)
_UNFINISHED_SENDS = (MessageStatus.PENDING, MessageStatus.QUEUED, MessageStatus.SENDING)


def _unfinished_send(contact_id: object) -> Any:
    return and_(
        Message.contact_id == contact_id,
        Message.direction == MessageDirection.OUTBOUND,
        Message.status.in_(_UNFINISHED_SENDS),
    )


def _scrub_events(session: Session, ticket_ids: Sequence[int]) -> int:
    if not ticket_ids:
        return 0
    count = 0
    for event in session.scalars(select(TicketEvent).where(TicketEvent.ticket_id.in_(ticket_ids))):
        data: dict[str, Any] = dict(event.data or {})
        cleaned = {k: v for k, v in data.items() if k not in FREE_TEXT_KEYS}
        if event.body is not None or cleaned != data:
            event.body = None
            event.data = cleaned
            count += 1
    return count


def _scrub_tickets(session: Session, tickets: Sequence[Ticket]) -> int:
    for ticket in tickets:
        ticket.description = None
        ticket.summary = None
        ticket.callback_time = None
    return len(tickets)


def _rowcount(result: object) -> int:
    return int(getattr(result, "rowcount", 0) or 0)


def erase_contact(
    session: Session,
    contact: Contact,
    *,
    actor_label: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
    confirm: bool = False,
) -> dict[str, int]:
    """Remove ``contact``'s number, message bodies and free text everywhere; return counts.

    ``confirm``: the person is to get a confirmation SMS (queued before, in this transaction,
    or by the bot's reply right after): keep the encrypted number and unsent outbound messages
    until ``finish_erasure`` (see the module docstring)."""
    moment = now or utcnow()
    tickets = list(session.scalars(select(Ticket).where(Ticket.contact_id == contact.id)))
    ticket_ids = [t.id for t in tickets]
    session.flush()
    counts: dict[str, int] = {}
    counts["tickets"] = _scrub_tickets(session, tickets)
    counts["ticket_events"] = _scrub_events(session, ticket_ids)
    keep_unsent = _unfinished_send(contact.id) if confirm else false()
    counts["messages"] = _rowcount(
        session.execute(
            update(Message)
            .where(
                or_(
                    Message.contact_id == contact.id,
                    Message.ticket_id.in_(ticket_ids) if ticket_ids else false(),
                ),
                not_(keep_unsent),
            )
            .values(body=None, provider_id=None, error_message=None)
            .execution_options(synchronize_session="fetch")
        )
    )
    counts["calls"] = _rowcount(
        session.execute(
            update(Call)
            .where(
                or_(
                    Call.contact_id == contact.id,
                    Call.ticket_id.in_(ticket_ids) if ticket_ids else false(),
                )
            )
            .values(notes=None)
            .execution_options(synchronize_session="fetch")
        )
    )
    counts["ussd_sessions"] = _rowcount(
        session.execute(
            update(UssdSession)
            .where(UssdSession.contact_id == contact.id)
            .values(state={})
            .execution_options(synchronize_session="fetch")
        )
    )
    from models.referrals import Referral

    counts["referrals"] = (
        _rowcount(
            session.execute(
                update(Referral)
                .where(Referral.ticket_id.in_(ticket_ids))
                .values(shared=None, partner_note=None)
                .execution_options(synchronize_session="fetch")
            )
        )
        if ticket_ids
        else 0
    )
    counts["alerts"] = redact_ticket_alerts(session, ticket_ids)
    already = contact.erased_at is not None
    # The bot keeps its own copy of the conversation (Rasa's tracker store): wipe it too,
    # once this transaction has committed.
    enqueue_after_commit(session, "conversation.forget", contact.public_id)
    if not confirm:
        contact.phone = None
    contact.phone_hash = None
    if contact.erased_at is None:
        contact.erased_at = moment
    session.flush()
    record_audit(
        session,
        action="contact.erased",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        object_type="contact",
        object_id=contact.id,
        repeated=already,
        counts=counts,
    )
    return counts


def finish_erasure(session: Session, contact: Contact, *, now: datetime | None = None) -> bool:
    """Remove the number kept for an erasure confirmation once no send is left unfinished
    (and the bot had time to queue its reply), or unconditionally after
    ``ERASURE_NUMBER_MAX_AGE``. True when the number was removed now. Flushes."""
    if contact.erased_at is None or contact.phone is None:
        return False
    age = (now or utcnow()) - contact.erased_at
    if age < ERASURE_NUMBER_MAX_AGE:
        if session.scalar(select(exists().where(_unfinished_send(contact.id)))):
            return False
        sent_any = session.scalar(
            select(
                exists().where(
                    Message.contact_id == contact.id,
                    Message.direction == MessageDirection.OUTBOUND,
                    Message.created_at >= contact.erased_at,
                )
            )
        )
        if not sent_any and age < ERASURE_REPLY_SETTLE:
            return False  # the bot's confirmation may still be on its way
    session.execute(
        update(Message)
        .where(Message.contact_id == contact.id)
        .values(body=None, provider_id=None, error_message=None)
        .execution_options(synchronize_session="fetch")
    )
    contact.phone = None
    session.flush()
    return True


def finish_due_erasures(session: Session, *, now: datetime | None = None, limit: int = 500) -> int:
    """The sweep: every erased contact whose number is still kept, finished when due."""
    contacts = session.scalars(
        select(Contact)
        .where(Contact.erased_at.is_not(None), Contact.phone.is_not(None))
        .order_by(Contact.id)
        .limit(limit)
    ).all()
    return sum(1 for contact in contacts if finish_erasure(session, contact, now=now))


def purge_retention(
    session: Session, *, now: datetime | None = None, limit: int = 1000
) -> dict[str, int]:
    """Purge the personal data of tickets resolved or closed more than ``retention_days`` ago
    (a resolved ticket nobody closed must not keep data forever). Returns counts; audited."""
    moment = now or utcnow()
    cutoff = moment - timedelta(days=get_settings().retention_days)
    tickets = list(
        session.scalars(
            select(Ticket)
            .where(
                Ticket.personal_data_purged_at.is_(None),
                or_(
                    (Ticket.status == TicketStatus.CLOSED) & (Ticket.closed_at < cutoff),
                    (Ticket.status == TicketStatus.RESOLVED) & (Ticket.resolved_at < cutoff),
                ),
            )
            .order_by(Ticket.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
    )
    ticket_ids = [t.id for t in tickets]
    counts: dict[str, int] = {"tickets": _scrub_tickets(session, tickets)}
    if not ticket_ids:
        return counts | {"ticket_events": 0, "messages": 0, "calls": 0, "alerts": 0}
    counts["ticket_events"] = _scrub_events(session, ticket_ids)
    counts["messages"] = _rowcount(
        session.execute(
            update(Message)
            .where(Message.ticket_id.in_(ticket_ids))
            .values(body=None, error_message=None)
            .execution_options(synchronize_session="fetch")
        )
    )
    counts["calls"] = _rowcount(
        session.execute(
            update(Call)
            .where(Call.ticket_id.in_(ticket_ids))
            .values(notes=None)
            .execution_options(synchronize_session="fetch")
        )
    )
    counts["alerts"] = redact_ticket_alerts(session, ticket_ids)
    for ticket in tickets:
        ticket.personal_data_purged_at = moment
    session.flush()
    record_audit(
        session,
        action="retention.purged",
        actor_label="retention",
        retention_days=get_settings().retention_days,
        counts=counts,
    )
    return counts
