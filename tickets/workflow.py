"""Changes people (and the SLA clock) make to a ticket after intake: status, priority,
category, team, assignee, notes, replies. Each records a timeline event; status changes that
matter to the sender schedule their SMS; priority and category changes recompute the SLA.

Plain functions with keyword-only options; they flush, the caller commits.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, select
from sqlalchemy.orm import Session

from models.base import utcnow
from models.enums import TicketCategory, TicketKind, TicketPriority, TicketStatus
from models.routing import RoutingDecision
from models.teams import Team, TeamMember
from models.tickets import Ticket, TicketEvent
from tickets import sla
from tickets.notifications import notify_for_status
from tickets.routing import pick_assignee, record_reroute, route_ticket
from tickets.timeline import record_event

# The timestamp set when a ticket enters each status ("one timestamp per state").
STATUS_STAMP = {
    TicketStatus.TRIAGED: "triaged_at",
    TicketStatus.ASSIGNED: "assigned_at",
    TicketStatus.IN_PROGRESS: "in_progress_at",
    TicketStatus.WAITING: "waiting_at",
    TicketStatus.RESOLVED: "resolved_at",
    TicketStatus.CLOSED: "closed_at",
}
# Entering these means the team has answered the sender (asking them something counts).
RESPONDED_STATUSES = (
    TicketStatus.IN_PROGRESS,
    TicketStatus.WAITING,
    TicketStatus.AWAITING_APPROVAL,
    TicketStatus.RESOLVED,
    TicketStatus.CLOSED,
)


def bump_version(ticket: Ticket) -> None:
    """A work field changed: bump the optimistic-lock version (``version + 1`` in SQL, so
    concurrent writers never write the same number; read back after the flush)."""
    ticket.version = Ticket.version + 1


def _outcome_data(outcome: str | None) -> dict[str, Any]:
    """The event data of a resolution's "what was done" (nothing when none was written)."""
    return {"outcome": outcome} if outcome else {}


def change_status(
    session: Session,
    ticket: Ticket,
    status: TicketStatus,
    *,
    actor_label: str,
    actor_user_id: int | None = None,
    notify: bool = True,
    now: datetime | None = None,
    outcome: str | None = None,
) -> TicketEvent | None:
    """Move ``ticket`` to ``status``. Pauses the SLA clock while WAITING, resumes it after;
    tells the sender about assigned / in progress / resolved. None if nothing changed.

    ``outcome``: what was done, in the operator's words, when resolving or closing; kept on
    the event (the timeline shows it) and carried by the "resolved" SMS to the sender."""
    status = TicketStatus(status)
    if ticket.status == status:
        return None
    moment = now or utcnow()
    previous = ticket.status
    if previous == TicketStatus.WAITING:
        sla.resume(ticket, now=moment)
    if status == TicketStatus.WAITING:
        sla.pause(ticket, now=moment)
    ticket.status = status
    bump_version(ticket)
    stamp = STATUS_STAMP.get(status)
    if stamp is not None:
        setattr(ticket, stamp, moment)
    if status in RESPONDED_STATUSES:
        sla.record_first_response(ticket, now=moment)
    event = record_event(
        session,
        ticket,
        "status_changed",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        now=moment,
        old=previous.value,
        new=status.value,
        **_outcome_data(outcome if status in CLOSING_STATUSES else None),
    )
    if notify:
        notify_for_status(session, ticket, status, event.id)
    return event


def change_priority(
    session: Session,
    ticket: Ticket,
    priority: TicketPriority,
    *,
    actor_label: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> TicketEvent | None:
    """An operator's override; the due times follow the new priority's targets."""
    priority = TicketPriority(priority)
    if ticket.priority == priority or (
        ticket.kind == TicketKind.PSEA and priority != TicketPriority.URGENT
    ):
        return None  # a PSEA case stays urgent (tickets.psea)
    previous = ticket.priority
    ticket.priority = priority
    bump_version(ticket)
    sla.apply_targets(session, ticket)
    return record_event(
        session,
        ticket,
        "priority_changed",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        now=now,
        old=previous.value,
        new=priority.value,
    )


def change_category(
    session: Session,
    ticket: Ticket,
    category: TicketCategory,
    *,
    actor_label: str,
    actor_user_id: int | None = None,
    reroute: bool = True,
    now: datetime | None = None,
) -> TicketEvent | None:
    """Re-categorise. Protection makes it sensitive (never undone automatically: what was
    said stays said). With ``reroute`` the routing rules run again for the new category."""
    category = TicketCategory(category)
    if ticket.category == category or (
        ticket.kind == TicketKind.PSEA and category != TicketCategory.PROTECTION
    ):
        return None  # a PSEA case stays protection (tickets.psea)
    moment = now or utcnow()
    previous = ticket.category
    ticket.category = category
    bump_version(ticket)
    if category == TicketCategory.PROTECTION:
        ticket.sensitive = True
        if ticket.priority.rank < TicketPriority.HIGH.rank:
            ticket.priority = TicketPriority.HIGH
    sla.apply_targets(session, ticket)
    event = record_event(
        session,
        ticket,
        "category_changed",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        now=moment,
        old=previous.value,
        new=category.value,
    )
    if reroute:
        previous_team = ticket.team_id
        route_ticket(session, ticket, actor_label=actor_label, now=moment)
        if ticket.team_id != previous_team:
            _after_team_change(session, ticket, actor_label, actor_user_id, moment)
    return event


def reroute(
    session: Session,
    ticket: Ticket,
    team: Team,
    *,
    actor_label: str,
    actor_user_id: int | None = None,
    note: str | None = None,
    now: datetime | None = None,
) -> RoutingDecision | None:
    """An operator sends the ticket to ``team``; recorded as a routing decision."""
    if ticket.team_id == team.id:
        return None
    moment = now or utcnow()
    bump_version(ticket)
    decision = record_reroute(
        session,
        ticket,
        team,
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        note=note,
        now=moment,
    )
    _after_team_change(session, ticket, actor_label, actor_user_id, moment)
    return decision


def _after_team_change(
    session: Session,
    ticket: Ticket,
    actor_label: str,
    actor_user_id: int | None,
    now: datetime,
) -> None:
    """A new team: drop an assignee who is not in it, auto-assign, alert the new team."""
    from tickets.alerts import create_ticket_alerts

    if ticket.assignee_id is not None and ticket.team_id is not None:
        member = session.scalar(
            select(TeamMember.id).where(
                TeamMember.team_id == ticket.team_id, TeamMember.user_id == ticket.assignee_id
            )
        )
        if member is None:
            assign(
                session, ticket, None, actor_label=actor_label, actor_user_id=actor_user_id, now=now
            )
    auto_assign(session, ticket, now=now)
    create_ticket_alerts(session, ticket, now=now)


def assign(
    session: Session,
    ticket: Ticket,
    user_id: int | None,
    *,
    actor_label: str,
    actor_user_id: int | None = None,
    notify: bool = True,
    now: datetime | None = None,
) -> TicketEvent | None:
    """Assign (or unassign); a new ticket moves to ASSIGNED, which tells the sender unless
    ``notify`` is False (the operator chose not to text them)."""
    if ticket.assignee_id == user_id:
        return None
    moment = now or utcnow()
    previous = ticket.assignee_id
    ticket.assignee_id = user_id
    bump_version(ticket)
    event = record_event(
        session,
        ticket,
        "assigned",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        now=moment,
        old=previous,
        new=user_id,
    )
    if user_id is not None and ticket.status in (TicketStatus.NEW, TicketStatus.TRIAGED):
        change_status(
            session,
            ticket,
            TicketStatus.ASSIGNED,
            actor_label=actor_label,
            actor_user_id=actor_user_id,
            notify=notify,
            now=moment,
        )
    elif user_id is None and ticket.status == TicketStatus.ASSIGNED:
        change_status(
            session,
            ticket,
            TicketStatus.TRIAGED,
            actor_label=actor_label,
            actor_user_id=actor_user_id,
            now=moment,
        )
    return event


def auto_assign(session: Session, ticket: Ticket, *, now: datetime | None = None) -> int | None:
    """Assign to the team member with the fewest open tickets when the team asks for it."""
    if ticket.assignee_id is not None or ticket.team_id is None:
        return None
    team = session.get(Team, ticket.team_id)
    if team is None or not team.auto_assign:
        return None
    user_id = pick_assignee(session, team)
    if user_id is not None:
        assign(session, ticket, user_id, actor_label="auto-assign", now=now)
    return user_id


def add_note(
    session: Session,
    ticket: Ticket,
    body: str,
    *,
    actor_label: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> TicketEvent:
    return record_event(
        session,
        ticket,
        "note",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        body=body,
        now=now,
    )


def record_reply(
    session: Session,
    ticket: Ticket,
    *,
    message_id: int | None,
    actor_label: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> TicketEvent:
    """An operator answered the sender by SMS: that is the first response, if none yet."""
    moment = now or utcnow()
    sla.record_first_response(ticket, now=moment)
    return record_event(
        session,
        ticket,
        "replied",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        now=moment,
        message_id=message_id,
    )


# --- closing a sensitive or PSEA case: a second person approves (issue 15) ------------------

CLOSING_STATUSES = (TicketStatus.RESOLVED, TicketStatus.CLOSED)


def needs_closure_approval(ticket: Ticket) -> bool:
    """Protection (sensitive) and PSEA cases are closed only with a lead's approval."""
    return bool(ticket.sensitive) or ticket.category == TicketCategory.PROTECTION


def closure_approvers(session: Session, ticket: Ticket) -> frozenset[int]:
    """Who may approve closing ``ticket``: the leads of the team it is routed to (for a PSEA
    case, the PSEA focal-point team: its lead is the PSEA focal lead). Supervisors do not see
    these cases, so the team's lead stands for them. A team without a lead (the demo's
    protection teams, a team just created) must not leave its cases awaiting approval for ever:
    then any other member of the team approves. An unrouted case: the teams that would see it."""
    if ticket.team_id is not None:
        team_ids = [ticket.team_id]
    else:
        concerned = (
            Team.handles_psea.is_(True)
            if ticket.kind == TicketKind.PSEA
            else Team.handles_protection.is_(True)
        )
        team_ids = list(session.scalars(select(Team.id).where(concerned)))
    if not team_ids:
        return frozenset()
    leads = set(
        session.scalars(
            select(TeamMember.user_id).where(
                TeamMember.team_id.in_(team_ids), TeamMember.is_lead.is_(True)
            )
        )
    )
    leads.update(
        user_id
        for user_id in session.scalars(select(Team.lead_user_id).where(Team.id.in_(team_ids)))
        if user_id is not None
    )
    if leads:
        return frozenset(leads)
    return frozenset(
        session.scalars(select(TeamMember.user_id).where(TeamMember.team_id.in_(team_ids)))
    )


def pending_closure(session: Session, ticket: Ticket) -> TicketEvent | None:
    """The "closure_requested" event of a ticket awaiting approval (None otherwise)."""
    if ticket.status != TicketStatus.AWAITING_APPROVAL:
        return None
    return session.scalar(
        select(TicketEvent)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "closure_requested")
        .order_by(TicketEvent.id.desc())
        .limit(1)
    )


AWAITING_APPROVAL_SCAN = 500  # cases awaiting approval are few; a bound keeps it so


def awaiting_approval_of(
    session: Session, user_id: int, visible: ColumnElement[bool] | None = None
) -> list[int]:
    """The ids of the tickets awaiting closure approval that ``user_id`` may approve (the
    rule of ``closure_approvers``; never the person who asked), oldest request first.
    ``visible``: the viewer's own visibility clause, so nothing unseen is ever listed."""
    query = select(Ticket).where(Ticket.status == TicketStatus.AWAITING_APPROVAL)
    if visible is not None:
        query = query.where(visible)
    waiting = list(session.scalars(query.order_by(Ticket.id).limit(AWAITING_APPROVAL_SCAN)))
    found: list[int] = []
    for ticket in waiting:
        pending = pending_closure(session, ticket)
        if pending is None or pending.actor_user_id == user_id:
            continue
        if user_id in closure_approvers(session, ticket):
            found.append(ticket.id)
    return found


class ClosureRefused(ValueError):
    """Closing cannot happen as asked (``reason``: a short code the caller words)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def close_with_approval(
    session: Session,
    ticket: Ticket,
    status: TicketStatus,
    *,
    actor_label: str,
    actor_user_id: int | None,
    notify: bool = True,
    now: datetime | None = None,
    outcome: str | None = None,
) -> str:
    """A person asks to resolve or close a case that needs approval. Returns "requested"
    (the ticket now awaits approval) or "approved" (this person approves a pending request:
    the ticket moves to the status first asked for). Raises ``ClosureRefused`` when the
    requester asks again (a second person must approve)."""
    moment = now or utcnow()
    pending = pending_closure(session, ticket)
    if pending is not None:
        requester = pending.actor_user_id
        if actor_user_id is not None and actor_user_id == requester:
            raise ClosureRefused("second_person")
        if actor_user_id is None or actor_user_id not in closure_approvers(session, ticket):
            raise ClosureRefused("not_approver")
        requested = TicketStatus(str(pending.data.get("requested") or status.value))
        record_event(
            session,
            ticket,
            "closure_approved",
            actor_label=actor_label,
            actor_user_id=actor_user_id,
            now=moment,
            requested=requested.value,
            request_event_id=pending.id,
        )
        change_status(
            session,
            ticket,
            requested,
            actor_label=actor_label,
            actor_user_id=actor_user_id,
            notify=notify,
            now=moment,
            # The approver's words, else those of the person who asked to close.
            outcome=outcome or pending.data.get("outcome") or None,
        )
        return "approved"
    change_status(
        session,
        ticket,
        TicketStatus.AWAITING_APPROVAL,
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        notify=False,
        now=moment,
    )
    record_event(
        session,
        ticket,
        "closure_requested",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        now=moment,
        requested=status.value,
        **_outcome_data(outcome),
    )
    return "requested"


def change_kind(
    session: Session,
    ticket: Ticket,
    kind: TicketKind,
    *,
    actor_label: str,
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> TicketEvent | None:
    """Re-classify the kind of feedback. To PSEA: protection, sensitive, urgent, and routed
    again — to the PSEA focal points only (the team it was with loses sight of it)."""
    kind = TicketKind(kind)
    if ticket.kind == kind:
        return None
    moment = now or utcnow()
    previous = ticket.kind
    if kind == TicketKind.PSEA:
        from tickets.psea import make_psea

        make_psea(ticket)
    else:
        ticket.kind = kind
    bump_version(ticket)
    event = record_event(
        session,
        ticket,
        "kind_changed",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        now=moment,
        old=previous.value,
        new=kind.value,
    )
    if TicketKind.PSEA in (kind, previous):
        if ticket.assignee_id is not None:
            assign(session, ticket, None, actor_label=actor_label, now=moment, notify=False)
        previous_team = ticket.team_id
        sla.apply_targets(session, ticket)
        route_ticket(session, ticket, actor_label=actor_label, now=moment)
        if ticket.team_id != previous_team:
            _after_team_change(session, ticket, actor_label, actor_user_id, moment)
    return event
