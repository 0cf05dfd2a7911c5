"""SLA: due times for the first response and the resolution, the pause while waiting on the
sender, and the periodic breach check that escalates.

Due times are ``created_at + target + time spent waiting``. While a ticket is WAITING the clock
is paused (``sla_paused_at``); on resume the paused span is added to ``sla_paused_seconds`` and
both due times move by the same span. Every function takes ``now`` so tests control time.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from pathlib import Path

from sqlalchemy import and_, or_, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.config_cache import cached
from models.enums import TicketCategory, TicketPriority, TicketStatus
from models.routing import SlaTarget
from models.tickets import Ticket
from tickets.alerts import create_escalation_alerts
from tickets.timeline import record_event
from tickets.triage import raise_priority

DEFAULTS_FILE = Path(__file__).resolve().parent / "data" / "sla_defaults.json"

# The clock runs in these states; WAITING pauses it, RESOLVED/CLOSED stop it.
RUNNING_STATUSES = (
    TicketStatus.NEW,
    TicketStatus.TRIAGED,
    TicketStatus.ASSIGNED,
    TicketStatus.IN_PROGRESS,
)
FIRST_RESPONSE = "first_response"
RESOLUTION = "resolution"


@dataclass(frozen=True)
class Targets:
    first_response: timedelta
    resolution: timedelta


@lru_cache(maxsize=1)
def default_targets() -> dict[tuple[TicketCategory, TicketPriority], Targets]:
    data = json.loads(DEFAULTS_FILE.read_text(encoding="utf-8"))
    table: dict[tuple[TicketCategory, TicketPriority], Targets] = {}
    for category in TicketCategory:
        for priority in TicketPriority:
            first, resolution = data[category.value][priority.value]
            table[(category, priority)] = Targets(
                timedelta(minutes=int(first)), timedelta(minutes=int(resolution))
            )
    return table


def targets_for(session: Session, category: TicketCategory, priority: TicketPriority) -> Targets:
    """The configured target, else the default; from the per-process configuration cache
    (models.config_cache: reloaded after any process writes a target)."""

    def load() -> Targets:
        row = session.scalar(
            select(SlaTarget).where(SlaTarget.category == category, SlaTarget.priority == priority)
        )
        if row is not None:
            return Targets(
                timedelta(minutes=row.first_response_minutes),
                timedelta(minutes=row.resolution_minutes),
            )
        return default_targets()[(category, priority)]

    return cached(session, ("sla-target", category, priority), load)


def apply_targets(session: Session, ticket: Ticket) -> None:
    """(Re)compute both due times from the ticket's category and priority."""
    targets = targets_for(session, ticket.category, ticket.priority)
    paused = timedelta(seconds=ticket.sla_paused_seconds)
    ticket.first_response_due_at = ticket.created_at + targets.first_response + paused
    ticket.resolution_due_at = ticket.created_at + targets.resolution + paused


def pause(ticket: Ticket, *, now: datetime | None = None) -> None:
    if ticket.sla_paused_at is None:
        ticket.sla_paused_at = now or utcnow()


def resume(ticket: Ticket, *, now: datetime | None = None) -> None:
    if ticket.sla_paused_at is None:
        return
    span = max((now or utcnow()) - ticket.sla_paused_at, timedelta(0))
    seconds = int(span.total_seconds())
    ticket.sla_paused_seconds += seconds
    shift = timedelta(seconds=seconds)
    if ticket.first_response_due_at is not None:
        ticket.first_response_due_at += shift
    if ticket.resolution_due_at is not None:
        ticket.resolution_due_at += shift
    ticket.sla_paused_at = None


def record_first_response(ticket: Ticket, *, now: datetime | None = None) -> bool:
    """The team answered the sender (a reply, or work started). True if it was the first."""
    if ticket.first_responded_at is not None:
        return False
    ticket.first_responded_at = now or utcnow()
    return True


@dataclass(frozen=True)
class Breach:
    ticket_id: int
    deadline: str  # first_response | resolution
    alerts: int


def _breached(ticket: Ticket, now: datetime) -> list[str]:
    found: list[str] = []
    if (
        ticket.first_responded_at is None
        and ticket.first_response_escalated_at is None
        and ticket.first_response_due_at is not None
        and ticket.first_response_due_at <= now
    ):
        found.append(FIRST_RESPONSE)
    if (
        ticket.resolution_escalated_at is None
        and ticket.resolution_due_at is not None
        and ticket.resolution_due_at <= now
    ):
        found.append(RESOLUTION)
    return found


def check_sla(session: Session, *, now: datetime | None = None, limit: int = 500) -> list[Breach]:
    """Escalate every breach not escalated yet: alert the team lead and supervisors, raise the
    priority one step, write the timeline. Flushes; the caller commits.

    Never twice for the same breach: ``*_escalated_at`` is set in the same transaction as the
    alerts, rows are locked (SKIP LOCKED, so two overlapping runs split the work instead of
    both escalating), and ``Alert.dedupe_key`` is unique as a last line of defence.
    """
    moment = now or utcnow()
    candidates = session.scalars(
        select(Ticket)
        .where(
            Ticket.status.in_(RUNNING_STATUSES),
            Ticket.sla_paused_at.is_(None),
            Ticket.merged_into_id.is_(None),
            or_(
                and_(
                    Ticket.first_responded_at.is_(None),
                    Ticket.first_response_escalated_at.is_(None),
                    Ticket.first_response_due_at <= moment,
                ),
                and_(
                    Ticket.resolution_escalated_at.is_(None),
                    Ticket.resolution_due_at <= moment,
                ),
            ),
        )
        .order_by(Ticket.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        # The locked row's values, even if this session loaded the ticket before.
        .execution_options(populate_existing=True)
    ).all()
    breaches: list[Breach] = []
    for ticket in candidates:
        for deadline in _breached(ticket, moment):
            breaches.append(escalate(session, ticket, deadline=deadline, now=moment))
    return breaches


def escalate(session: Session, ticket: Ticket, *, deadline: str, now: datetime) -> Breach:
    due = ticket.first_response_due_at if deadline == FIRST_RESPONSE else ticket.resolution_due_at
    if deadline == FIRST_RESPONSE:
        ticket.first_response_escalated_at = now
    else:
        ticket.resolution_escalated_at = now
    previous = ticket.priority
    # Due times are NOT recomputed for the raised priority: the breach is already being
    # escalated, and tighter targets would breach the other deadline at once, cascading.
    ticket.priority = raise_priority(previous)
    alerts = create_escalation_alerts(session, ticket, deadline=deadline, now=now)
    record_event(
        session,
        ticket,
        "sla_breached",
        actor_label="sla",
        now=now,
        deadline=deadline,
        due_at=due.isoformat() if due is not None else None,
        priority_from=previous.value,
        priority_to=ticket.priority.value,
        alert_ids=[alert.id for alert in alerts],
    )
    return Breach(ticket_id=ticket.id, deadline=deadline, alerts=len(alerts))
