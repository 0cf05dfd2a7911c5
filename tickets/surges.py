"""Surges: many reports of one category from one cercle or site within a window become one
``Incident``, so the team gets one alert with a running count instead of one per report.

The grouping place of a ticket is its nearest site-or-cercle ancestor (itself included): a
report from an IDP site groups with that site, one from a commune or the cercle itself groups
with the cercle. Reports placed only at region level are too vague to group.

Grouping is part of intake's process step (``tickets.intake.process_intake``): a report joins
or opens a surge when it is processed, and only processed reports (``triaged_at`` set) are
counted or linked. A report recorded but not yet processed is left alone — its own task will
group it — so two workers processing two reports of one surge never write each other's row
(the first holds its ticket's row lock, the second the surge's advisory lock: linking the
other's ticket would deadlock them).
"""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import CTE, func, select
from sqlalchemy.orm import Session, aliased

from core.settings import get_settings
from core.sqldialect import serialize_on
from models.base import utcnow
from models.enums import IncidentStatus, PlaceKind, TicketKind
from models.outbox_relay import enqueue_after_commit
from models.places import Place
from models.tickets import Incident, Ticket
from tickets.alerts import upsert_surge_alerts
from tickets.references import new_reference
from tickets.timeline import record_event

GROUPING_KINDS = (PlaceKind.SITE, PlaceKind.CERCLE)
NOTIFY_CLOSED_TASK = "tickets.notify_incident_closed"


def grouping_place_id(session: Session, place_id: int | None) -> int | None:
    """The nearest site-or-cercle at or above ``place_id``, or None."""
    seen: set[int] = set()
    current = place_id
    while current is not None and current not in seen:
        seen.add(current)
        place = session.get(Place, current)
        if place is None:
            return None
        if place.kind in GROUPING_KINDS:
            return place.id
        current = place.parent_id
    return None


def _grouped_under(anchor_id: int) -> CTE:
    """The places whose grouping place is ``anchor_id``: the anchor and its descendants,
    without descending into a site or cercle below it (those group on their own)."""
    child = aliased(Place)
    subtree = select(Place.id).where(Place.id == anchor_id).cte("surge_places", recursive=True)
    # UNION, not UNION ALL: a (mistaken) cycle in the hierarchy still terminates.
    return subtree.union(
        select(child.id)
        .join(subtree, child.parent_id == subtree.c.id)
        .where(child.kind.not_in(GROUPING_KINDS))
    )


def _lock(session: Session, category: str, anchor_id: int) -> None:
    """Serialise concurrent reports of one category at one place, so they cannot open two
    incidents for the same surge (the ticket is already flushed: see serialize_on)."""
    serialize_on(session, f"deme-surge:{category}:{anchor_id}")


def _new_incident_reference(session: Session) -> str:
    for _ in range(10):
        reference = new_reference("I")
        if session.scalar(select(Incident.id).where(Incident.reference == reference)) is None:
            return reference
    raise RuntimeError("could not find a free incident reference")


def attach_to_surge(
    session: Session, ticket: Ticket, *, now: datetime | None = None
) -> Incident | None:
    """Group ``ticket`` with recent reports like it; returns its incident, if any. Flushes.

    - An open incident for this category and place that had a report within the window:
      the ticket joins it, the count goes up, the incident's alerts show the new count.
    - Otherwise, when this report makes ``surge_threshold`` reports within the window, an
      incident is opened with all of them and the team is alerted once.
    """
    if ticket.incident_id is not None or ticket.kind == TicketKind.PSEA:
        # A PSEA report is never grouped: an incident is seen (and counted, by place) by the
        # protection team, and a PSEA case is the focal points' alone.
        return None
    anchor_id = grouping_place_id(session, ticket.place_id)
    if anchor_id is None:
        return None
    settings = get_settings()
    moment = now or utcnow()
    window_start = moment - timedelta(hours=settings.surge_window_hours)
    _lock(session, ticket.category.value, anchor_id)

    incident = session.scalar(
        select(Incident)
        .where(
            Incident.category == ticket.category,
            Incident.place_id == anchor_id,
            Incident.status == IncidentStatus.OPEN,
            Incident.last_report_at >= window_start,
        )
        .order_by(Incident.last_report_at.desc())
        .limit(1)
    )
    if incident is not None:
        _link(session, incident, [ticket], moment)
        incident.report_count += 1
        incident.last_report_at = max(incident.last_report_at, moment)
        session.flush()
        upsert_surge_alerts(session, incident, now=moment)
        return incident

    siblings = (
        Ticket.category == ticket.category,
        Ticket.incident_id.is_(None),
        Ticket.merged_into_id.is_(None),
        Ticket.kind != TicketKind.PSEA,
        Ticket.place_id.in_(select(_grouped_under(anchor_id).c.id)),
        Ticket.created_at >= window_start,
        Ticket.id != ticket.id,
        # Processed reports only (see the module docstring): one still waiting for the
        # worker joins when it is processed, and is never written to by a sibling's task.
        Ticket.triaged_at.is_not(None),
    )
    # Counted first: on a busy day most reports make no surge, and loading every recent
    # report of the category to find that out made intake slower with each report.
    count = session.scalar(select(func.count()).select_from(Ticket).where(*siblings)) or 0
    if count + 1 < settings.surge_threshold:
        return None
    group = list(
        session.scalars(select(Ticket).where(*siblings).order_by(Ticket.created_at, Ticket.id))
    )
    group.append(ticket)
    if len(group) < settings.surge_threshold:
        return None
    incident = Incident(
        reference=_new_incident_reference(session),
        category=ticket.category,
        place_id=anchor_id,
        team_id=ticket.team_id,
        status=IncidentStatus.OPEN,
        report_count=len(group),
        opened_at=min(t.created_at for t in group),
        last_report_at=moment,
    )
    session.add(incident)
    session.flush()
    _link(session, incident, group, moment)
    upsert_surge_alerts(session, incident, now=moment)
    return incident


def _link(session: Session, incident: Incident, tickets: list[Ticket], now: datetime) -> None:
    for member in tickets:
        member.incident_id = incident.id
        record_event(
            session,
            member,
            "incident_linked",
            actor_label="surge",
            now=now,
            incident_id=incident.id,
            incident=incident.reference,
        )


def close_incident(
    session: Session,
    incident: Incident,
    *,
    actor_label: str,
    actor_user_id: int | None = None,
    notify_senders: bool = False,
    now: datetime | None = None,
) -> bool:
    """Close ``incident``; with ``notify_senders`` every sender in it gets the catalog's
    "dealt with" SMS (scheduled after commit). False if it was already closed."""
    if incident.status == IncidentStatus.CLOSED:
        return False
    moment = now or utcnow()
    incident.status = IncidentStatus.CLOSED
    incident.closed_at = moment
    for member in session.scalars(select(Ticket).where(Ticket.incident_id == incident.id)):
        record_event(
            session,
            member,
            "incident_closed",
            actor_label=actor_label,
            actor_user_id=actor_user_id,
            now=moment,
            incident_id=incident.id,
            notify_senders=notify_senders,
        )
    if notify_senders:
        enqueue_after_commit(session, NOTIFY_CLOSED_TASK, incident.id)
    return True
