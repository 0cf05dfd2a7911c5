"""Intake: every report, whatever the channel, becomes a ticket that reaches the right team.

Intake is two steps, each implemented once:

1. **record** (``record_ticket``; synchronous, a handful of statements): the ticket row with
   its reference, category, source, contact, place, household, language, callback wishes and
   sensitivity, its priority from triage (a pure function of the category and the words: no
   SQL, so the queue shows the right priority at once and the "created" event carries the
   signals), and the "created" timeline event. Status ``NEW``, ``triaged_at`` unset.
2. **process** (``process_intake``; in the worker, ~20 statements): status ``TRIAGED``, routing
   with its ``RoutingDecision``, auto-assignment, SLA due times, surge grouping, team alerts
   and the sender's "received" SMS — the last two scheduled through the outbox, so nothing is
   sent for work that was rolled back.

After ``record_ticket`` the caller commits, then calls ``publish_processing`` (one broker
push of ``tickets.process_intake(ticket_id)``, after the caller has answered if it likes). No
outbox row: ``process_pending`` (below) already finds every recorded ticket that was never
processed, so a push lost to a crash or a broker outage only delays processing until then —
and the waiting caller saves an outbox row and a second transaction to mark it published.
Channels where a caller is waiting on a screen (USSD) use it: the final hop no longer pays for
routing, surges and alerts. ``create_ticket`` runs both steps in the caller's transaction, for
callers that need everything at once (the bot's API, the console, calls, tests): same code,
same result.

Processing is idempotent, step by step (see ``process_intake``), and the worker takes the
ticket's row lock before looking, so a redelivered or relayed task finds the work done and does
nothing, and an operator who got to the ticket first is not overridden. A ticket whose task
was lost (a failure inside the task) is picked up by ``process_pending``, run before every SLA
check (an unprocessed ticket has no due times, so nothing else would ever notice it).

Services flush; the request or task commits.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from models.base import utcnow
from models.config_cache import cached
from models.contacts import Contact, Household
from models.enums import (
    Language,
    TicketCategory,
    TicketKind,
    TicketPriority,
    TicketSource,
    TicketStatus,
)
from models.messages import Message
from models.outbox_relay import publish_committed
from models.places import Place
from models.routing import RoutingDecision
from models.tickets import Ticket, TicketEvent
from tickets import sla
from tickets.alerts import create_ticket_alerts
from tickets.erasure import erase_contact as _erase_contact
from tickets.notifications import ACKNOWLEDGED_SOURCES, schedule_sender_notification
from tickets.psea import PSEA_CATEGORY, PSEA_PRIORITY
from tickets.psea import screen as screen_for_psea
from tickets.references import new_reference
from tickets.routing import OPEN_STATUSES, Route, record_route, route_for, route_ticket
from tickets.surges import attach_to_surge
from tickets.timeline import record_event
from tickets.triage import max_priority, triage
from tickets.workflow import auto_assign, change_kind

log = logging.getLogger(__name__)

REFERENCE_ATTEMPTS = 8
SUMMARY_LENGTH = 120
PROCESS_TASK = "tickets.process_intake"
# A recorded ticket not processed after this long lost its task (see ``process_pending``).
PROCESS_GRACE = timedelta(minutes=2)

__all__ = [
    "PROCESS_TASK",
    "UnknownPlace",
    "create_ticket",
    "erase_contact",
    "open_tickets_for",
    "process_intake",
    "process_pending",
    "process_ticket",
    "publish_processing",
    "record_ticket",
    "register_household",
    "update_ticket",
]


class UnknownPlace(ValueError):
    """A place code that is not in the ``places`` table."""


class _MessageHasTicket(Exception):
    """The insert clashed on ``source_message_id``: another caller created this message's
    ticket first (committed while this INSERT waited on the unique index)."""

    def __init__(self, ticket_id: int) -> None:
        super().__init__(ticket_id)
        self.ticket_id = ticket_id


def ticket_for_message(session: Session, message_id: int) -> Ticket | None:
    """The ticket already created from this inbound message, if any (issue 14)."""
    ticket_id = session.scalar(select(Ticket.id).where(Ticket.source_message_id == message_id))
    return None if ticket_id is None else session.get(Ticket, ticket_id)


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


def place_id_by_code(session: Session, code: str | None) -> int | None:
    """The id only: intake needs nothing else of the place, and a one-column row is cheaper
    to load than an entity (no identity map, no attribute instrumentation); from the
    per-process configuration cache (models.config_cache), reloaded after any place edit."""
    if not code:
        return None
    return cached(
        session,
        ("place-id", code),
        lambda: session.scalar(select(Place.id).where(Place.code == code)),
    )


def _summary(description: str | None) -> str | None:
    if not description:
        return None
    first = " ".join(description.strip().splitlines()[0].split()) if description.strip() else ""
    if not first:
        return None
    return first if len(first) <= SUMMARY_LENGTH else first[: SUMMARY_LENGTH - 1] + "…"


def _insert_with_reference(session: Session, values: dict[str, Any]) -> Ticket:
    """Flush a ticket under a fresh reference, retrying on the (rare) unique clash.

    The savepoint keeps the caller's transaction alive through a clash; it costs two cheap
    round trips. (``INSERT … ON CONFLICT (reference) DO NOTHING`` would do it in one, but
    SQLAlchemy never caches dialect ``ON CONFLICT`` statements: compiling it on every ticket
    cost more CPU than the two round trips — measured on the USSD final hop, 5.1 vs 3.5 ms.)"""
    ticket = Ticket(**values)
    for _ in range(REFERENCE_ATTEMPTS):
        ticket.reference = new_reference("T")
        try:
            with session.begin_nested():
                session.add(ticket)
                session.flush()
            return ticket
        except IntegrityError:
            message_id = values.get("source_message_id")
            if message_id is not None:
                first = session.scalar(
                    select(Ticket.id).where(Ticket.source_message_id == message_id)
                )
                if first is not None:
                    raise _MessageHasTicket(first) from None
            clash = session.scalar(select(Ticket.id).where(Ticket.reference == ticket.reference))
            if clash is None:
                raise  # another constraint failed: not ours to hide
    raise RuntimeError(f"no free ticket reference after {REFERENCE_ATTEMPTS} attempts")


def _latest_household(session: Session, contact_id: int) -> Household | None:
    # Registered by this contact or reaching it as a further phone; a merged duplicate leads
    # to the household kept (tickets.households).
    from tickets.households import household_of_contact

    return household_of_contact(session, contact_id)


def _household_for(
    session: Session,
    contact: Contact | None,
    *,
    size: int | None,
    place_id: int | None,
) -> Household:
    household = _latest_household(session, contact.id) if contact is not None else None
    if household is None:
        household = Household(contact_id=contact.id if contact is not None else None)
        session.add(household)
    if size is not None:
        household.size = size
    if place_id is not None and household.current_place_id is None:
        household.current_place_id = place_id
    session.flush()
    return household


def _record(
    session: Session,
    *,
    category: TicketCategory | str,
    source: TicketSource | str,
    contact: Contact | None,
    description: str | None,
    kind: TicketKind | str | None = None,
    place_code: str | None,
    household_size: int | None,
    language: Language | str | None,
    sensitive: bool | None,
    callback_ok: bool | None,
    callback_time: str | None,
    needs_review: bool,
    message_id: int | None,
    actor_label: str,
    actor_user_id: int | None,
    now: datetime | None,
    link_message: bool = True,
    process_now: bool = False,
) -> tuple[Ticket, TicketEvent, Route | None]:
    """The record step (see the module docstring): the ticket and its "created" event.

    ``process_now`` (``create_ticket``: the process step follows in this transaction): the
    ticket is inserted already triaged, with its route's team and its SLA due times — what
    the process step would otherwise write in three UPDATEs right after the INSERT — and the
    route is returned for the process step to record."""
    moment = now or utcnow()
    ticket_kind = TicketKind(kind) if kind else TicketKind.NEED
    # The one SEA screen on the person's words, whatever the channel and the kind sent (bot,
    # fallback, USSD, a call, the API): exploitation or abuse by an aid worker is PSEA.
    screened = screen_for_psea(description) if ticket_kind != TicketKind.PSEA else None
    if screened:
        ticket_kind = TicketKind.PSEA
    # A PSEA report is protection, sensitive and urgent whatever the creator sent (issue 15).
    category = TicketCategory(category) if ticket_kind != TicketKind.PSEA else PSEA_CATEGORY
    source = TicketSource(source)
    lang = _language(language, contact)
    if contact is not None and contact.language is None and lang is not None:
        contact.language = lang
    place_id = place_id_by_code(session, place_code)
    place_unknown = bool(place_code) and place_id is None
    # Pure: priority from the words, protection always sensitive (issue 6), no SQL.
    result = triage(category, [description], sensitive=sensitive)
    priority = result.priority
    if ticket_kind == TicketKind.PSEA:
        priority = PSEA_PRIORITY
    household = None
    if household_size is not None:
        household = _household_for(session, contact, size=household_size, place_id=place_id)

    processed: dict[str, Any] = {}
    route: Route | None = None
    if process_now:
        route = route_for(
            session, kind=ticket_kind, category=category, priority=priority, place_id=place_id
        )
        targets = sla.targets_for(session, category, priority)
        processed = {
            "status": TicketStatus.TRIAGED,
            "triaged_at": moment,
            "team_id": route[1].id if route[1] is not None else None,
            "first_response_due_at": moment + targets.first_response,
            "resolution_due_at": moment + targets.resolution,
        }
    ticket = _insert_with_reference(
        session,
        {
            "category": category,
            "kind": ticket_kind,
            "priority": priority,
            "status": TicketStatus.NEW,
            "sensitive": result.sensitive or ticket_kind == TicketKind.PSEA,
            "source": source,
            "language": lang,
            "summary": _summary(description),
            "description": description,
            "needs_review": needs_review or place_unknown,
            "callback_ok": callback_ok,
            "callback_time": callback_time,
            "place_id": place_id,
            "household_id": household.id if household is not None else None,
            "contact_id": contact.id if contact is not None else None,
            "source_message_id": message_id,
            "created_at": moment,
            "updated_at": moment,
        }
        | processed,
    )
    if message_id is not None and link_message:
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
        flush=False,  # flushed by record_ticket or by processing
        source=source.value,
        category=category.value,
        ticket_kind=ticket_kind.value,
        priority=ticket.priority.value,
        sensitive=ticket.sensitive,
        signals=result.signals,
        message_id=message_id,
        place_unknown=place_unknown,
        # Why the screen made it PSEA (signal groups, never the words): for the focal points.
        **({"psea_screen": screened.reason} if screened else {}),
    )
    return ticket, created, route


def _record_once(
    session: Session, **fields: Any
) -> tuple[Ticket, TicketEvent | None, Route | None]:
    """``_record``, idempotent per inbound message: given a ``message_id`` that already has
    its ticket, that ticket and no event (nothing written). The look-up first, so a replay
    touches nothing (no household update either); the unique index for the race, when the
    other creator's transaction commits while this INSERT waits on it."""
    message_id = fields.get("message_id")
    if message_id is not None:
        first = ticket_for_message(session, message_id)
        if first is not None:
            return first, None, None
    try:
        return _record(session, **fields)
    except _MessageHasTicket as clash:
        ticket = session.get(Ticket, clash.ticket_id)
        if ticket is None:  # erased between the clash and this read: nothing to return
            raise
        return ticket, None, None


def record_ticket(
    session: Session,
    *,
    category: TicketCategory | str,
    source: TicketSource | str,
    contact: Contact | None = None,
    description: str | None = None,
    kind: TicketKind | str | None = None,
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
    """Record a report now, process it in the worker (``tickets.process_intake``): after
    committing, the caller calls ``publish_processing(ticket.id)``.

    Same arguments as ``create_ticket``. For callers that must answer fast (a USSD screen): a
    handful of statements — the place id, the household (look-up, insert or update) when a size
    is given, the ticket (its INSERT in a savepoint), its "created" event — against ~20 more
    for routing, surges, alerts and SLA. The reference is final and can be
    shown at once; the ticket is ``NEW`` until the worker has processed it. Nothing leaves the
    system from here: team alerts and the sender's SMS are the worker's, under the same rules
    as ``create_ticket`` (a protection alert carries only the reference). Flushes."""
    ticket, _created, _route = _record_once(
        session,
        category=category,
        source=source,
        contact=contact,
        description=description,
        kind=kind,
        place_code=place_code,
        household_size=household_size,
        language=language,
        sensitive=sensitive,
        callback_ok=callback_ok,
        callback_time=callback_time,
        needs_review=needs_review,
        message_id=message_id,
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        now=now,
    )
    session.flush()
    return ticket


def publish_processing(ticket_id: int) -> None:
    """Push the process step of a committed ``record_ticket`` to the worker.

    Never raises: when the broker is unreachable the ticket waits for ``process_pending``
    (the SLA check, every minute, takes tickets left unprocessed longer than PROCESS_GRACE)."""
    from models.outbox_relay import publish

    try:
        publish(PROCESS_TASK, [ticket_id])
    except Exception as exc:
        log.warning("process step of ticket %s left for process_pending: %s", ticket_id, exc)


def _created_event_id(session: Session, ticket: Ticket) -> int | None:
    return session.scalar(
        select(TicketEvent.id)
        .where(TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "created")
        .order_by(TicketEvent.id)
        .limit(1)
    )


def _routed(session: Session, ticket: Ticket) -> bool:
    """Whether any routing decision exists: the process step's, or an operator's who got there
    first (a re-route records one too)."""
    return (
        session.scalar(
            select(RoutingDecision.id).where(RoutingDecision.ticket_id == ticket.id).limit(1)
        )
        is not None
    )


def process_intake(
    session: Session,
    ticket: Ticket,
    *,
    created_event_id: int | None = None,
    now: datetime | None = None,
) -> bool:
    """The process step (see the module docstring). False, doing nothing, when it already ran.

    Idempotent step by step, so a redelivered task and an operator who acted on the ticket
    before the worker (assigned it, re-routed it, moved it to TRIAGED, changed its priority)
    are both handled: routing only when no decision exists (an operator's re-route stands),
    SLA due times only when unset, status NEW → TRIAGED only from NEW, surge grouping and
    auto-assignment only when not done, alerts deduplicated per ticket and channel, and the
    sender's "received" SMS scheduled only by the run that routed. The caller holds the
    ticket's row lock (``process_ticket`` takes it), so two runs never interleave.

    Times: routing, alerts and events are stamped with the processing time; SLA due times and
    surge grouping use the report's ``created_at`` — a report waiting on a busy worker neither
    gets a later deadline nor falls out of its surge's window."""
    return _process(session, ticket, created_event_id=created_event_id, now=now, fresh=False)


def _process(
    session: Session,
    ticket: Ticket,
    *,
    created_event_id: int | None,
    now: datetime | None,
    fresh: bool,
    route: Route | None = None,
) -> bool:
    """``fresh``: recorded in this very transaction (``create_ticket``), nothing to check;
    ``route``: the one its INSERT already carries (the decision and event are recorded here)."""
    routed = False if fresh else _routed(session, ticket)
    if routed and ticket.triaged_at is not None and ticket.first_response_due_at is not None:
        return False
    moment = now or utcnow()
    if ticket.status == TicketStatus.NEW:
        ticket.status = TicketStatus.TRIAGED
    if ticket.triaged_at is None:
        ticket.triaged_at = moment
    if ticket.merged_into_id is not None:
        # Merged into another ticket before the worker got here: that one is the team's.
        session.flush()
        return True
    if not routed:
        if route is not None:
            record_route(
                session, ticket, route, previous_team_id=None, actor_label="routing", now=moment
            )
        else:
            route_ticket(session, ticket, actor_label="routing", now=moment)
        auto_assign(session, ticket, now=moment)
    if ticket.first_response_due_at is None:
        sla.apply_targets(session, ticket)
    attach_to_surge(session, ticket, now=ticket.created_at)
    # Inside a surge the team gets the incident's single alert with its running count —
    # except for urgent reports: immediate danger is never folded into a count.
    if ticket.incident_id is None or ticket.priority == TicketPriority.URGENT:
        create_ticket_alerts(session, ticket, now=moment)
    # An unsolicited SMS about a sensitive case is a risk of its own (a shared or watched
    # phone): those senders keep the reference the USSD screen or the operator gave them.
    if (
        not routed
        and ticket.status != TicketStatus.ASSIGNED
        and ticket.source in ACKNOWLEDGED_SOURCES
        and not ticket.sensitive
    ):
        event_id = created_event_id or _created_event_id(session, ticket)
        if event_id is not None:
            schedule_sender_notification(session, ticket, "received", event_id=event_id)
    session.flush()
    return True


def process_ticket(ticket_id: int, *, now: datetime | None = None) -> bool:
    """The ``tickets.process_intake`` task body: lock the row, process, commit, publish.

    The row lock (``SELECT … FOR UPDATE``) makes a concurrent second delivery wait for the
    first one's commit and then find ``triaged_at`` set. Surge grouping never touches a ticket
    another worker may be processing (it groups processed tickets only), so the lock cannot
    deadlock with a sibling report's surge lock."""
    with get_sessionmaker()() as session:
        ticket = session.get(Ticket, ticket_id, with_for_update=True)
        if ticket is None:  # erased by retention, or the transaction never committed
            return False
        done = process_intake(session, ticket, now=now)
        session.commit()
        publish_committed(session)
        return done


def pending_ticket_ids(session: Session, *, older_than: timedelta, limit: int) -> Sequence[int]:
    cutoff = utcnow() - older_than
    return session.scalars(
        select(Ticket.id)
        .where(
            or_(Ticket.triaged_at.is_(None), Ticket.first_response_due_at.is_(None)),
            Ticket.status.not_in((TicketStatus.RESOLVED, TicketStatus.CLOSED)),
            Ticket.merged_into_id.is_(None),
            Ticket.created_at <= cutoff,
        )
        .order_by(Ticket.id)
        .limit(limit)
    ).all()


def process_pending(*, older_than: timedelta = PROCESS_GRACE, limit: int = 200) -> int:
    """Process recorded tickets whose task never ran to the end (a failure inside it: the
    outbox only guarantees it was published). Run before every SLA check. Returns count."""
    with get_sessionmaker()() as session:
        ids = pending_ticket_ids(session, older_than=older_than, limit=limit)
    done = 0
    for ticket_id in ids:
        try:
            done += process_ticket(ticket_id)
        except Exception:  # one bad ticket must not hold up the others, nor the SLA check
            log.exception("intake processing failed ticket_id=%s", ticket_id)
    return done


def create_ticket(
    session: Session,
    *,
    category: TicketCategory | str,
    source: TicketSource | str,
    contact: Contact | None = None,
    description: str | None = None,
    kind: TicketKind | str | None = None,
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
    link_message: bool = True,
) -> Ticket:
    """Record and process in the caller's transaction: on return the ticket is triaged,
    routed (and maybe assigned), has its SLA due times and surge, and its alerts and the
    sender's notification are in the outbox. Flushes.

    ``message_id`` is the idempotency key (one ticket per inbound message: the first one is
    returned, untouched, to a second call) and, with ``link_message``, the message is linked
    to the ticket. The bot's API call passes ``link_message=False``: during the turn the
    conversation task holds the message's row lock until Rasa answers, so an UPDATE of it
    from the API would wait for the turn that waits for the API; that task links the
    turn's messages itself."""
    ticket, created, route = _record_once(
        session,
        category=category,
        source=source,
        contact=contact,
        description=description,
        kind=kind,
        place_code=place_code,
        household_size=household_size,
        language=language,
        sensitive=sensitive,
        callback_ok=callback_ok,
        callback_time=callback_time,
        needs_review=needs_review,
        message_id=message_id,
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        now=now,
        link_message=link_message,
        process_now=True,
    )
    if created is None:
        return ticket  # the message's ticket already existed: its creator processed it
    session.flush()
    _process(
        session,
        ticket,
        created_event_id=created.id,
        now=created.created_at,
        fresh=True,
        route=route,
    )
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
            household = _household_for(
                session, contact, size=household_size, place_id=ticket.place_id
            )
            ticket.household_id = household.id
        changed.append("household_size")
    if callback_ok is not None and ticket.callback_ok != callback_ok:
        ticket.callback_ok = callback_ok
        changed.append("callback_ok")
        if callback_ok:
            from tickets.notifications import release_held

            release_held(session, ticket)
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
        if ticket.kind != TicketKind.PSEA and screen_for_psea(note).hit:
            # What the person added reports exploitation or abuse by an aid worker: the
            # ticket becomes a PSEA case, as an operator would re-classify it.
            change_kind(session, ticket, TicketKind.PSEA, actor_label="psea screen", now=moment)
            log.warning("ticket %s re-classified as PSEA from an added note", ticket.id)
        result = triage(ticket.category, [note])
        raised = max_priority(ticket.priority, result.priority)
        if raised != ticket.priority:
            previous = ticket.priority
            ticket.priority = raised
            ticket.version = Ticket.version + 1  # a work field: see tickets.workflow
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
    """Record (or update) the contact's household: size, where it is, where it came from.

    Three statements (USSD registration's whole write): the place id, the contact's latest
    household, its insert or update (plus the origin's id when one is given)."""
    place_id = place_id_by_code(session, place_code)
    if place_id is None:
        raise UnknownPlace(place_code)
    origin_id = place_id_by_code(session, origin_code) if origin_code else None
    if origin_code and origin_id is None:
        raise UnknownPlace(origin_code)
    household = _latest_household(session, contact.id)
    if household is None:
        household = Household(contact_id=contact.id)
        session.add(household)
    household.size = size
    household.current_place_id = place_id
    if origin_id is not None:
        household.origin_place_id = origin_id
    if displaced_since is not None:
        household.displaced_since = displaced_since
    session.flush()
    return household


def open_tickets_for(
    session: Session, contact: Contact, *, limit: int | None = None
) -> list[Ticket]:
    """The contact's tickets not resolved or closed (merged duplicates left out), newest first;
    at most ``limit`` (a screen or an SMS shows a few; a busy sender may have many)."""
    return list(
        session.scalars(
            select(Ticket)
            .where(
                Ticket.contact_id == contact.id,
                Ticket.status.in_(OPEN_STATUSES),
                Ticket.merged_into_id.is_(None),
            )
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
            .limit(limit)
        )
    )


def erase_contact(
    session: Session,
    contact: Contact,
    *,
    actor_label: str,
    actor_user_id: int | None = None,
    confirm: bool = False,
) -> dict[str, int]:
    """See ``tickets.erasure.erase_contact``: the contract lives here for callers
    (``confirm``: an erasure confirmation SMS follows; the number goes once it is sent)."""
    return _erase_contact(
        session, contact, actor_label=actor_label, actor_user_id=actor_user_id, confirm=confirm
    )
