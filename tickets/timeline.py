"""Timeline events: every change to a ticket, who made it and why.

``data`` carries ids, enum values and signal names only; free text (an operator's note) goes
to ``body``, which erasure and retention clear.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.orm import Session

from models.base import utcnow
from models.tickets import Ticket, TicketEvent


def record_event(
    session: Session,
    ticket: Ticket,
    kind: str,
    /,
    *,
    actor_label: str | None = "system",
    actor_user_id: int | None = None,
    body: str | None = None,
    now: datetime | None = None,
    flush: bool = True,
    **data: Any,
) -> TicketEvent:
    """Add an event; flushed at once (its id is often needed) unless ``flush`` is False — then
    it goes with the caller's next flush (saves a unit-of-work pass on a hot path)."""
    event = TicketEvent(
        ticket_id=ticket.id,
        kind=kind,
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        data=data,
        body=body,
        created_at=now or utcnow(),
    )
    session.add(event)
    if flush:
        session.flush()
    return event
