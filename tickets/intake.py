"""Intake: every report, whatever the channel, becomes a ticket that reaches the right team.

``create_ticket`` runs the whole path in the caller's transaction: triage (priority,
sensitivity) → reference → routing (+ auto-assignment) → SLA due times → surge grouping →
team alerts and the sender's notification, both scheduled through the outbox so nothing is
sent for a ticket that was rolled back. Services flush; the request or task commits.
"""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from models.base import utcnow
from models.contacts import Contact, Household
from models.enums import Language, TicketCategory, TicketPriority, TicketSource, TicketStatus
from models.messages import Message
from models.places import Place
from models.routing import RoutingDecision
from models.tickets import Ticket
from tickets import sla
from tickets.alerts import create_ticket_alerts
from tickets.erasure import erase_contact as _erase_contact
from tickets.notifications import ACKNOWLEDGED_SOURCES, schedule_sender_notification
from tickets.references import new_reference
from tickets.routing import OPEN_STATUSES, route_ticket
from tickets.surges import attach_to_surge
from tickets.timeline import record_event
from tickets.triage import max_priority, triage
from tickets.workflow import auto_assign

REFERENCE_ATTEMPTS = 8
SUMMARY_LENGTH = 120

__all__ = [
    "UnknownPlace",
    "create_ticket",
    "erase_contact",
    "open_tickets_for",
    "register_household",
    "update_ticket",
]


class UnknownPlace(ValueError):
    """A place code that is not in the ``places`` table."""


def _language(value: Language | str | None, contact: Contact | None) -> Language | None:
    if value:
        try:
            return Language(str(value).lower())
        except ValueError:
            return None
    return contact.language if contact is not None else None


def place_by_code(session: Session, code: str | None) -> Place | None:
    if not code:
        return None
    return session.scalar(select(Place).where(Place.code == code))


def _summary(description: str | None) -> str | None:
    if not description:
        return None
    first = " ".join(description.strip().splitlines()[0].split()) if description.strip() else ""
    if not first:
        return None
    return first if len(first) <= SUMMARY_LENGTH else first[: SUMMARY_LENGTH - 1] + "…"


def _insert_with_reference(session: Session, ticket: Ticket) -> None:
    """Flush ``ticket`` under a fresh reference, retrying on the (rare) unique clash."""
    for _ in range(REFERENCE_ATTEMPTS):
        ticket.reference = new_reference("T")
        try:
            with session.begin_nested():
                session.add(ticket)
                session.flush()
            return
        except IntegrityError:
            clash = session.scalar(select(Ticket.id).where(Ticket.reference == ticket.reference))
            if clash is None:
                raise  # another constraint failed: not ours to hide
    raise RuntimeError(f"no free ticket reference after {REFERENCE_ATTEMPTS} attempts")


def _household_for(
    session: Session,
    contact: Contact | None,
    *,
    size: int | None,
    place: Place | None,
) -> Household:
    household = None
    if contact is not None:
        household = session.scalar(
            select(Household)
            .where(Household.contact_id == contact.id)
            .order_by(Household.updated_at.desc(), Household.id.desc())
            .limit(1)
        )
    if household is None:
        household = Household(contact_id=contact.id if contact is not None else None)
        session.add(household)
    if size is not None:
        household.size = size
    if place is not None and household.current_place_id is None:
        household.current_place_id = place.id
    session.flush()
    return household


def create_ticket(
    session: Session,
    *,
    category: TicketCategory | str,
    source: TicketSource | str,
    contact: Contact | None = None,
    description: str | None = None,
    place_code: str | None = None,
    household_size: int | None = None,
    language: Language | str | None = None,
    sensitive: bool | None = None,
    callback_ok: bool | None = None,
    callback_time: str | None = None,
    needs_review: bool = False,
    message_id: int | None = None,
    actor_label: str = "system",
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> Ticket:
    moment = now or utcnow()
    category = TicketCategory(category)
    source = TicketSource(source)
    lang = _language(language, contact)
    if contact is not None and contact.language is None and lang is not None:
        contact.language = lang
    place = place_by_code(session, place_code)
    place_unknown = bool(place_code) and place is None
    result = triage(category, [description], sensitive=sensitive)
    household = None
    if household_size is not None:
        household = _household_for(session, contact, size=household_size, place=place)

    ticket = Ticket(
        category=category,
        priority=result.priority,
        status=TicketStatus.TRIAGED,
        sensitive=result.sensitive,
        source=source,
        language=lang,
        summary=_summary(description),
        description=description,
        needs_review=needs_review or place_unknown,
        callback_ok=callback_ok,
        callback_time=callback_time,
        place_id=place.id if place is not None else None,
        household_id=household.id if household is not None else None,
        contact_id=contact.id if contact is not None else None,
        created_at=moment,
        updated_at=moment,
        triaged_at=moment,
    )
    _insert_with_reference(session, ticket)
    if message_id is not None:
        message = session.get(Message, message_id)
        if message is not None and message.ticket_id is None:
            message.ticket_id = ticket.id
    created = record_event(
        session,
        ticket,
        "created",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        now=moment,
        source=source.value,
        category=category.value,
        priority=ticket.priority.value,
        sensitive=ticket.sensitive,
        signals=result.signals,
        message_id=message_id,
        place_unknown=place_unknown,
    )
    route_ticket(session, ticket, actor_label="routing", now=moment)
    auto_assign(session, ticket, now=moment)
    sla.apply_targets(session, ticket)
    incident = attach_to_surge(session, ticket, now=moment)
    # Inside a surge the team gets the incident's single alert with its running count —
    # except for urgent reports: immediate danger is never folded into a count.
    if incident is None or ticket.priority == TicketPriority.URGENT:
        create_ticket_alerts(session, ticket, now=moment)
    # An unsolicited SMS about a sensitive case is a risk of its own (a shared or watched
    # phone): those senders keep the reference the USSD screen or the operator gave them.
    if (
        ticket.status != TicketStatus.ASSIGNED
        and source in ACKNOWLEDGED_SOURCES
        and not ticket.sensitive
    ):
        schedule_sender_notification(session, ticket, "received", event_id=created.id)
    session.flush()
    return ticket


def _manually_routed(session: Session, ticket: Ticket) -> bool:
    return (
        session.scalar(
            select(RoutingDecision.id)
            .where(
                RoutingDecision.ticket_id == ticket.id,
                RoutingDecision.decided_by_user_id.is_not(None),
            )
            .limit(1)
        )
        is not None
    )


def update_ticket(
    session: Session,
    ticket: Ticket,
    *,
    place_code: str | None = None,
    household_size: int | None = None,
    callback_ok: bool | None = None,
    note: str | None = None,
    actor_label: str = "system",
    actor_user_id: int | None = None,
    now: datetime | None = None,
) -> Ticket:
    """What the sender told us after the ticket was created (``None`` = not given).

    A place learned later re-runs routing while nobody has picked the ticket up (no assignee,
    no operator re-route), then surge grouping. A note's words are triaged again: the
    priority may only go up."""
    moment = now or utcnow()
    changed: list[str] = []
    place_changed = False
    if place_code is not None:
        place = place_by_code(session, place_code)
        if place is None:
            raise UnknownPlace(place_code)
        if ticket.place_id != place.id:
            ticket.place_id = place.id
            changed.append("place")
            place_changed = True
    if household_size is not None:
        contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
        if ticket.household_id is not None:
            household = session.get(Household, ticket.household_id)
            if household is not None:
                household.size = household_size
        else:
            place_row = session.get(Place, ticket.place_id) if ticket.place_id else None
            household = _household_for(session, contact, size=household_size, place=place_row)
            ticket.household_id = household.id
        changed.append("household_size")
    if callback_ok is not None and ticket.callback_ok != callback_ok:
        ticket.callback_ok = callback_ok
        changed.append("callback_ok")
    if changed:
        record_event(
            session,
            ticket,
            "updated",
            actor_label=actor_label,
            actor_user_id=actor_user_id,
            now=moment,
            fields=changed,
        )
    if note:
        record_event(
            session,
            ticket,
            "note",
            actor_label=actor_label,
            actor_user_id=actor_user_id,
            body=note,
            now=moment,
        )
        result = triage(ticket.category, [note])
        raised = max_priority(ticket.priority, result.priority)
        if raised != ticket.priority:
            previous = ticket.priority
            ticket.priority = raised
            sla.apply_targets(session, ticket)
            record_event(
                session,
                ticket,
                "priority_changed",
                actor_label="triage",
                now=moment,
                old=previous.value,
                new=raised.value,
                signals=result.signals,
            )
    if place_changed:
        _reroute_if_untouched(session, ticket, moment)
        if ticket.incident_id is None:
            attach_to_surge(session, ticket, now=moment)
    ticket.updated_at = moment
    session.flush()
    return ticket


def _reroute_if_untouched(session: Session, ticket: Ticket, now: datetime) -> None:
    if ticket.assignee_id is not None or ticket.status not in (
        TicketStatus.NEW,
        TicketStatus.TRIAGED,
    ):
        return
    if _manually_routed(session, ticket):
        return
    previous_team = ticket.team_id
    route_ticket(session, ticket, actor_label="routing", now=now)
    if ticket.team_id != previous_team:
        auto_assign(session, ticket, now=now)
        create_ticket_alerts(session, ticket, now=now)


def register_household(
    session: Session,
    *,
    contact: Contact,
    size: int,
    place_code: str,
    origin_code: str | None = None,
    displaced_since: date | None = None,
) -> Household:
    """Record (or update) the contact's household: size, where it is, where it came from."""
    place = place_by_code(session, place_code)
    if place is None:
        raise UnknownPlace(place_code)
    origin = place_by_code(session, origin_code) if origin_code else None
    if origin_code and origin is None:
        raise UnknownPlace(origin_code)
    household = session.scalar(
        select(Household)
        .where(Household.contact_id == contact.id)
        .order_by(Household.updated_at.desc(), Household.id.desc())
        .limit(1)
    )
    if household is None:
        household = Household(contact_id=contact.id)
        session.add(household)
    household.size = size
    household.current_place_id = place.id
    if origin is not None:
        household.origin_place_id = origin.id
    if displaced_since is not None:
        household.displaced_since = displaced_since
    session.flush()
    return household


def open_tickets_for(session: Session, contact: Contact) -> list[Ticket]:
    """The contact's tickets not resolved or closed (merged duplicates left out), newest first."""
    return list(
        session.scalars(
            select(Ticket)
            .where(
                Ticket.contact_id == contact.id,
                Ticket.status.in_(OPEN_STATUSES),
                Ticket.merged_into_id.is_(None),
            )
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        )
    )


def erase_contact(
    session: Session, contact: Contact, *, actor_label: str, actor_user_id: int | None = None
) -> dict[str, int]:
    """See ``tickets.erasure.erase_contact``: the contract lives here for callers."""
    return _erase_contact(session, contact, actor_label=actor_label, actor_user_id=actor_user_id)
