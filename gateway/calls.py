"""Missed calls: the caller rings, the call is rejected (free for the caller, like a "bip"),
and an operator sees a ticket asking to call back.

The webhook records the Call idempotently on (channel, CallSid) — Twilio retries — and hands
the ticket creation to the task ``gateway.request_callback`` through the outbox, so a slow or
failing ticket service never makes Twilio wait or lose the call.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, select
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from core.sqldialect import insert_on_conflict
from models.enums import MessageDirection
from models.messages import Call
from models.outbox_relay import enqueue_after_commit, publish_committed

log = logging.getLogger(__name__)

REQUEST_CALLBACK = "gateway.request_callback"
STATUS_CALLBACK_REQUESTED = "callback_requested"
_calls = cast(Table, Call.__table__)


@dataclass(frozen=True, slots=True)
class InboundCall:
    channel_id: int
    provider_call_id: str
    caller: str | None  # E.164, None when withheld or not a phone number

    def to_json(self) -> dict[str, Any]:
        return {
            "channel_id": self.channel_id,
            "provider_call_id": self.provider_call_id,
            "caller": self.caller,
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> InboundCall:
        caller = data.get("caller")
        return cls(int(data["channel_id"]), str(data["provider_call_id"]), caller and str(caller))


def record_call(call: InboundCall) -> int | None:
    """Store the missed call once; returns the new Call id (None for a retried CallSid)."""
    with get_sessionmaker()() as session:
        return record_call_in(session, call)


def record_call_in(session: Session, call: InboundCall) -> int | None:
    """``record_call`` in ``session`` (a fresh one: this commits it); the webhook runs it
    through ``gateway.dbwork.in_session``."""
    from tickets.contacts import get_or_create_contact

    contact_id = None
    if call.caller:
        contact_id = get_or_create_contact(session, call.caller).id
    call_id = session.execute(
        insert_on_conflict(session.get_bind().dialect.name, _calls)
        .values(
            channel_id=call.channel_id,
            provider_call_id=call.provider_call_id,
            contact_id=contact_id,
            direction=MessageDirection.INBOUND,
            status=STATUS_CALLBACK_REQUESTED,
            created_at=_now(),
        )
        .on_conflict_do_nothing(index_elements=["channel_id", "provider_call_id"])
        .returning(_calls.c.id)
    ).scalar()
    if call_id is not None:
        enqueue_after_commit(session, REQUEST_CALLBACK, int(call_id))
    session.commit()
    publish_committed(session)
    return None if call_id is None else int(call_id)


def _now() -> Any:
    from models.base import utcnow

    return utcnow()


def request_callback(session: Session, call: Call) -> int | None:
    """Open the "please call back" ticket for ``call``; returns the ticket id.

    Uses ``tickets.intake.create_ticket`` (issue 6). Until that module exists the Call row
    (status ``callback_requested``) is the record operators work from, and this returns None.
    Idempotent: a call that already has a ticket is left alone.
    """
    if call.ticket_id is not None:
        return call.ticket_id
    try:
        from tickets.intake import create_ticket  # type: ignore[import-not-found,unused-ignore]
    except ImportError:
        log.info("tickets.intake not available yet; call %s kept as a callback request", call.id)
        return None
    from models.contacts import Contact
    from models.enums import TicketCategory, TicketSource

    contact = None if call.contact_id is None else session.get(Contact, call.contact_id)
    ticket = create_ticket(
        session,
        category=TicketCategory.OTHER,
        source=TicketSource.MISSED_CALL,
        contact=contact,
        callback_ok=True,
    )
    call.ticket_id = ticket.id
    session.flush()
    return int(ticket.id)


def process_callback_request(call_id: int) -> int | None:
    """Body of the task ``gateway.request_callback``: one transaction, row-locked."""
    with get_sessionmaker()() as session:
        call = session.scalar(select(Call).where(Call.id == call_id).with_for_update())
        if call is None:
            return None
        ticket_id = request_callback(session, call)
        session.commit()
        publish_committed(session)
    return ticket_id
