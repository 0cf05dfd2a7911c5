"""The ticket queue's filters, keyset pagination and the places helpers, shared by the pages,
the exports and /api/v1 so that every surface filters (and hides) exactly the same way."""

from __future__ import annotations

import base64
import re
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Select,
    and_,
    false,
    func,
    literal_column,
    not_,
    or_,
    select,
)
from sqlalchemy.orm import Session, aliased

from core.crypto import lookup_hash, search_hash
from core.phones import InvalidPhoneNumber, normalize_phone
from core.sanitize import parse_id
from core.sqldialect import prefer_index
from core.textfold import folded_words
from models.base import utcnow
from models.contacts import Contact
from models.enums import (
    PlaceKind,
    TicketCategory,
    TicketKind,
    TicketPriority,
    TicketSource,
    TicketStatus,
)
from models.places import Place
from models.tickets import OPEN_STATUS_VALUES, Ticket
from ops_console.permissions import Viewer, protection_clause, psea_clause
from tickets.references import normalize_reference

OPEN_STATUSES = (
    TicketStatus.NEW,
    TicketStatus.TRIAGED,
    TicketStatus.ASSIGNED,
    TicketStatus.IN_PROGRESS,
    TicketStatus.WAITING,
    TicketStatus.AWAITING_APPROVAL,
)
SLA_STATES = ("breached", "due_soon", "on_time")
DUE_SOON = timedelta(hours=2)
PAGE_SIZE = 50
# Search: at most this many words of a query are used, and a protection officer's search
# decrypts at most this many protection tickets (the newest matching the other filters).
SEARCH_WORDS_LIMIT = 8
PROTECTION_SEARCH_LIMIT = 2000


class FilterError(ValueError):
    """A filter value cannot be used; ``field`` names it, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        # Every unusable filter of one request, field → message (one answer lists them all).
        self.problems: dict[str, str] = {field: message}

    @classmethod
    def several(cls, problems: dict[str, str]) -> FilterError:
        field, message = next(iter(problems.items()))
        error = cls(field, message)
        error.problems = dict(problems)
        error.args = ("; ".join(f"{name}: {text}" for name, text in problems.items()),)
        return error


@dataclass
class TicketFilter:
    statuses: list[TicketStatus] = field(default_factory=list)
    categories: list[TicketCategory] = field(default_factory=list)
    kinds: list[TicketKind] = field(default_factory=list)
    priorities: list[TicketPriority] = field(default_factory=list)
    sources: list[TicketSource] = field(default_factory=list)
    place: str | None = None  # a place code: the place and everything under it
    team_id: int | None = None
    assignee: str | None = None  # a user id, "none" (unassigned) or "me"
    sla: str | None = None
    created_from: date | None = None
    created_to: date | None = None
    q: str | None = None  # a reference, or words of the description
    phone: str | None = None  # the sender's number, any format people type
    sender: str | None = None  # the sender's opaque id (Contact.public_id)
    open_only: bool = False  # status "open": any of OPEN_STATUSES (the default view)
    awaiting: str | None = None  # "me": cases awaiting the viewer's closure approval

    def is_empty(self) -> bool:
        return not any(
            (
                self.statuses,
                self.categories,
                self.kinds,
                self.priorities,
                self.sources,
                self.place,
                self.team_id,
                self.assignee,
                self.sla,
                self.created_from,
                self.created_to,
                self.q,
                self.phone,
                self.sender,
                self.open_only,
                self.awaiting,
            )
        )


def descendant_place_ids(session: Session, code: str) -> list[int]:
    """The place with ``code`` and every place under it (current or former parent: a report
    filed under Douentza is found under both Douentza region and, as people still say,
    Mopti)."""
    root = session.scalar(select(Place.id).where(Place.code == code))
    if root is None:
        raise FilterError("place", f"unknown place code {code!r}")
    tree = select(Place.id).where(Place.id == root).cte("tree", recursive=True)
    child = aliased(Place)
    tree = tree.union(
        select(child.id).where(
            or_(child.parent_id == tree.c.id, child.former_parent_id == tree.c.id)
        )
    )
    return list(session.scalars(select(tree.c.id)))


def sla_clause(state: str, now: datetime) -> ColumnElement[bool]:
    # A ticket waiting on the sender has its clock paused: it is neither late nor due soon.
    running = and_(Ticket.status.in_(OPEN_STATUSES), Ticket.status != TicketStatus.WAITING)
    late_first = and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at < now)
    late_resolution = Ticket.resolution_due_at < now
    breached = and_(running, or_(late_first, late_resolution))
    soon = now + DUE_SOON
    due_soon = and_(
        running,
        not_(or_(late_first, late_resolution)),
        or_(
            and_(Ticket.first_responded_at.is_(None), Ticket.first_response_due_at < soon),
            Ticket.resolution_due_at < soon,
        ),
    )
    if state == "breached":
        return breached
    if state == "due_soon":
        return due_soon
    if state == "on_time":
        return and_(running, not_(breached), not_(due_soon))
    raise FilterError("sla", f"must be one of {', '.join(SLA_STATES)}")


def sla_state(ticket: Ticket, now: datetime | None = None) -> str | None:
    """The same rule as ``sla_clause`` for one loaded ticket (None when closed or paused)."""
    now = now or utcnow()
    if ticket.status not in OPEN_STATUSES or ticket.status == TicketStatus.WAITING:
        return None
    dues = []
    if ticket.first_responded_at is None and ticket.first_response_due_at is not None:
        dues.append(ticket.first_response_due_at)
    if ticket.resolution_due_at is not None:
        dues.append(ticket.resolution_due_at)
    if not dues:
        return None
    earliest = min(dues)
    if earliest < now:
        return "breached"
    if earliest < now + DUE_SOON:
        return "due_soon"
    return "on_time"


def text_search_clause(
    session: Session, text: str, viewer: Viewer, conditions: list[ColumnElement[bool]]
) -> ColumnElement[bool]:
    """Tickets having every word of ``text`` (folded: case, accents and Bambara letters do not
    matter) in their summary or description, among those matching ``conditions``.

    Texts are encrypted at rest, so the database cannot read them: ordinary tickets are found
    through their blind index (``Ticket.search_index``, keyed hashes of their words), and
    protection tickets, which have no index, by decrypting the newest
    ``PROTECTION_SEARCH_LIMIT`` of them matching the other filters — only for viewers who
    may see them."""
    words = sorted(set(folded_words(text[:200])))[:SEARCH_WORDS_LIMIT]
    if not words:
        return false()
    indexed = and_(*(Ticket.search_index.like(f"% {search_hash(word)} %") for word in words))
    if not viewer.sees_sensitive:
        return indexed
    # The summary is the description's first line (tickets.intake): decrypting the
    # description alone is enough, and halves the cost.
    candidates = session.execute(
        select(Ticket.id, Ticket.description)
        .where(*conditions, protection_clause(), Ticket.description.is_not(None))
        .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        .limit(PROTECTION_SEARCH_LIMIT)
    )
    wanted = set(words)
    found = [
        ticket_id
        for ticket_id, description in candidates
        if wanted <= set(folded_words(description))
    ]
    return or_(indexed, Ticket.id.in_(found)) if found else indexed


def awaiting_my_approval_clause(session: Session, viewer: Viewer) -> ColumnElement[bool]:
    """Cases whose closure awaits this viewer's approval (``tickets.workflow``'s one rule,
    among the tickets the viewer may see)."""
    from tickets.workflow import awaiting_approval_of

    ids = awaiting_approval_of(session, viewer.user.id, viewer.ticket_clause())
    return Ticket.id.in_(ids) if ids else false()


def contact_id_for_phone(session: Session, phone: str) -> int | None:
    """The contact id of a number typed in any format people use (None: nobody has it);
    FilterError("phone") when it is not a phone number. Numbers are encrypted: the keyed
    hash is the only way to find the person."""
    try:
        e164 = normalize_phone(phone)
    except InvalidPhoneNumber as exc:
        raise FilterError("phone", str(exc)) from exc
    return session.scalar(select(Contact.id).where(Contact.phone_hash == lookup_hash(e164)))


SENDER_ID = re.compile(r"c_[A-Za-z0-9_-]{1,38}")


def contact_id_for_sender(session: Session, sender: str) -> int | None:
    """The contact id of an opaque ``Contact.public_id`` (None: no such sender);
    FilterError("sender") when it is not shaped like one (a phone number given as sender)."""
    if not SENDER_ID.fullmatch(sender.strip()):
        raise FilterError("sender", "not a sender id (c_…); to find a number use phone")
    return session.scalar(select(Contact.id).where(Contact.public_id == sender.strip()))


def filter_conditions(
    session: Session, filters: TicketFilter, viewer: Viewer
) -> list[ColumnElement[bool]]:
    """The WHERE conditions for ``filters`` as seen by ``viewer`` (visibility always first)."""
    conditions: list[ColumnElement[bool]] = [viewer.ticket_clause()]
    problems: dict[str, str] = {}
    if filters.open_only:
        conditions.append(open_clause())
    if filters.statuses:
        conditions.append(Ticket.status.in_(filters.statuses))
    if filters.categories:
        conditions.append(Ticket.category.in_(filters.categories))
    if filters.kinds:
        conditions.append(Ticket.kind.in_(filters.kinds))
    if filters.priorities:
        conditions.append(Ticket.priority.in_(filters.priorities))
    if filters.sources:
        conditions.append(Ticket.source.in_(filters.sources))
    if filters.place:
        try:
            conditions.append(Ticket.place_id.in_(descendant_place_ids(session, filters.place)))
        except FilterError as exc:
            problems.update(exc.problems)
    if filters.team_id is not None:
        conditions.append(Ticket.team_id == filters.team_id)
    if filters.assignee:
        if filters.assignee == "none":
            conditions.append(Ticket.assignee_id.is_(None))
        elif filters.assignee == "me":
            conditions.append(Ticket.assignee_id == viewer.user.id)
        elif filters.assignee == "mine_or_none":
            conditions.append(
                or_(Ticket.assignee_id == viewer.user.id, Ticket.assignee_id.is_(None))
            )
        elif (assignee_id := parse_id(filters.assignee)) is not None:
            conditions.append(Ticket.assignee_id == assignee_id)
        else:
            problems["assignee"] = "must be a user id, 'me', 'none' or 'mine_or_none'"
    if filters.awaiting:
        if filters.awaiting == "me":
            conditions.append(awaiting_my_approval_clause(session, viewer))
        else:
            problems["awaiting"] = "must be 'me'"
    if filters.sla:
        try:
            conditions.append(sla_clause(filters.sla, utcnow()))
        except FilterError as exc:
            problems.update(exc.problems)
    if filters.created_from:
        start = datetime.combine(filters.created_from, time.min, tzinfo=UTC)
        conditions.append(Ticket.created_at >= start)
    if filters.created_to:
        end = datetime.combine(filters.created_to + timedelta(days=1), time.min, tzinfo=UTC)
        conditions.append(Ticket.created_at < end)
    if filters.q and filters.q.strip():
        text = filters.q.strip()
        reference = normalize_reference(text)
        if reference is not None:
            conditions.append(Ticket.reference == reference)
        else:
            conditions.append(text_search_clause(session, text, viewer, conditions))
    if filters.phone and filters.phone.strip():
        try:
            # The id is looked up first so the planner sees a literal and uses the contact
            # index (with a subquery it walked the whole date index of a million tickets).
            contact_id = contact_id_for_phone(session, filters.phone)
        except FilterError as exc:
            problems.update(exc.problems)
        else:
            conditions.append(Ticket.contact_id == (contact_id if contact_id is not None else -1))
    if filters.sender and filters.sender.strip():
        try:
            sender_id = contact_id_for_sender(session, filters.sender)
        except FilterError as exc:
            problems.update(exc.problems)
        else:
            conditions.append(Ticket.contact_id == (sender_id if sender_id is not None else -1))
    if problems:
        raise FilterError.several(problems)
    return conditions


# The queue's orders: (column, newest-or-latest first?). Each walks an index: created_at on
# ``ix_tickets_created_at_id``, the first-response due time on ``ix_tickets_open_due`` (the
# default view, open tickets only) — no order makes the database sort the whole table.
SORTS: dict[str, tuple[str, bool]] = {
    "due": ("first_response_due_at", False),
    "-due": ("first_response_due_at", True),
    "created": ("created_at", False),
    "-created": ("created_at", True),
}
DEFAULT_SORT = "-created"


def open_clause() -> ColumnElement[bool]:
    """Open tickets, with the statuses written literally so the planner (PostgreSQL and
    SQLite) matches the partial index ``ix_tickets_open_due`` (a bound parameter would not)."""
    return Ticket.status.in_([literal_column(f"'{value}'") for value in OPEN_STATUS_VALUES])


def encode_cursor(ticket: Ticket, sort: str = DEFAULT_SORT) -> str:
    column, _descending = SORTS[sort]
    value: datetime | None = getattr(ticket, column)
    raw = f"{sort}|{value.isoformat() if value else ''}|{ticket.id}".encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str, sort: str = DEFAULT_SORT) -> tuple[datetime | None, int]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        made_for, moment_text, ident = base64.urlsafe_b64decode(padded).decode().split("|")
        if made_for != sort:
            raise ValueError("another order")
        moment = datetime.fromisoformat(moment_text) if moment_text else None
        if moment is not None and moment.tzinfo is None:
            raise ValueError("naive")
        value = parse_id(ident)
        if value is None:
            raise ValueError("not an id")
        return moment, value
    except (ValueError, UnicodeDecodeError) as exc:
        raise FilterError("cursor", "not a cursor this server gave out") from exc


def _after_cursor(sort: str, moment: datetime | None, ident: int) -> ColumnElement[bool]:
    """The rows after (moment, ident) in ``sort``'s order. Missing times (a ticket with no
    first-response target) come last when ascending, first when descending: exactly the
    order of a forward or backward walk of the index on both databases."""
    name, descending = SORTS[sort]
    column = getattr(Ticket, name)
    if not descending:
        if moment is None:
            return and_(column.is_(None), Ticket.id > ident)
        return or_(column > moment, and_(column == moment, Ticket.id > ident), column.is_(None))
    if moment is None:
        return or_(and_(column.is_(None), Ticket.id < ident), column.is_not(None))
    return or_(column < moment, and_(column == moment, Ticket.id < ident))


def _order_by(sort: str) -> tuple[Any, ...]:
    name, descending = SORTS[sort]
    column = getattr(Ticket, name)
    if descending:
        return (column.desc().nulls_first(), Ticket.id.desc())
    return (column.asc().nulls_last(), Ticket.id.asc())


@dataclass
class QueuePage:
    tickets: list[Ticket]
    next_cursor: str | None


def _test_contact_ids() -> Select[tuple[int]]:
    return select(Contact.id).where(Contact.is_test)


def real_tickets_clause() -> ColumnElement[bool]:
    """Tickets not made through the phone simulator (its contacts are ``is_test``): the one
    filter dashboards, reports and exports apply so demos never count as field data."""
    return or_(Ticket.contact_id.is_(None), Ticket.contact_id.not_in(_test_contact_ids()))


def real_households_clause() -> ColumnElement[bool]:
    """Households not registered through the phone simulator (see ``real_tickets_clause``)."""
    from models.contacts import Household

    return or_(Household.contact_id.is_(None), Household.contact_id.not_in(_test_contact_ids()))


def queue_statement(
    session: Session,
    filters: TicketFilter,
    viewer: Viewer,
    *,
    cursor: str | None = None,
    sort: str = DEFAULT_SORT,
) -> Select[tuple[Ticket]]:
    problems: dict[str, str] = {}
    if sort not in SORTS:
        problems["sort"] = f"must be one of {', '.join(SORTS)}"
        sort = DEFAULT_SORT
    try:
        conditions = filter_conditions(session, filters, viewer)
    except FilterError as exc:
        problems.update(exc.problems)
    if cursor:
        try:
            moment, ident = decode_cursor(cursor, sort)
        except FilterError as exc:
            problems.update(exc.problems)
    if problems:
        raise FilterError.several(problems)
    statement = select(Ticket).where(*conditions)
    if filters.open_only and SORTS[sort][0] == "first_response_due_at":
        # The default view: open tickets in due order, read off the partial index.
        statement = prefer_index(statement, Ticket, "ix_tickets_open_due")
    if cursor:
        # Keyset pagination: stable under inserts and as fast on page 1000 as on page 1.
        statement = statement.where(_after_cursor(sort, moment, ident))
    return statement.order_by(*_order_by(sort))


def queue_page(
    session: Session,
    filters: TicketFilter,
    viewer: Viewer,
    *,
    cursor: str | None = None,
    limit: int = PAGE_SIZE,
    sort: str = DEFAULT_SORT,
) -> QueuePage:
    statement = queue_statement(session, filters, viewer, cursor=cursor, sort=sort)
    rows = list(session.scalars(statement.limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[:limit]
    return QueuePage(rows, encode_cursor(rows[-1], sort) if more and rows else None)


def count_matching(session: Session, filters: TicketFilter, viewer: Viewer) -> int:
    """The total number of tickets matching ``filters`` for ``viewer`` (the queue's count)."""
    conditions = filter_conditions(session, filters, viewer)
    return int(session.scalar(select(func.count()).select_from(Ticket).where(*conditions)) or 0)


def next_due(ticket: Ticket) -> tuple[str, datetime] | None:
    """What the ticket's clock runs towards now: ("first_response", due) until someone
    answered, then ("resolution", due); None when closed, paused (waiting) or untimed."""
    if ticket.status not in OPEN_STATUSES or ticket.status == TicketStatus.WAITING:
        return None
    if ticket.first_responded_at is None and ticket.first_response_due_at is not None:
        return "first_response", ticket.first_response_due_at
    if ticket.resolution_due_at is not None:
        return "resolution", ticket.resolution_due_at
    return None


def count_newer(session: Session, filters: TicketFilter, viewer: Viewer, since_id: int) -> int:
    """How many tickets matching ``filters`` arrived after ``since_id`` (the live indicator)."""
    conditions = filter_conditions(session, filters, viewer)
    statement = select(func.count()).select_from(Ticket).where(*conditions, Ticket.id > since_id)
    return int(session.scalar(statement) or 0)


def hidden_protection_total(session: Session, viewer: Viewer) -> int | None:
    """The anonymous total of open protection tickets shown to those who cannot see them
    (None for protection officers, who see them in the lists). Never filtered, so filters
    cannot be used to learn anything about them."""
    if viewer.sees_protection:
        return None
    statement = (
        select(func.count())
        .select_from(Ticket)
        .where(
            protection_clause(),
            not_(psea_clause()),  # PSEA cases are counted for administrators only
            Ticket.status.in_(OPEN_STATUSES),
            real_tickets_clause(),
        )
    )
    return int(session.scalar(statement) or 0)


@dataclass(frozen=True)
class PseaTotals:
    open: int
    unrouted: int  # waiting for a PSEA focal-point team (none exists, or it was deleted)


def psea_admin_totals(session: Session, viewer: Viewer) -> PseaTotals | None:
    """What an administrator knows of PSEA cases: two numbers, never a place, a date or a
    reference — enough to see that cases exist and that a focal-point team must be set up
    when some wait for one. None for everyone else (focal points see the cases themselves)."""
    from models.enums import UserRole

    if viewer.role != UserRole.ADMIN:
        return None
    open_psea = and_(psea_clause(), Ticket.status.in_(OPEN_STATUSES), real_tickets_clause())
    total = session.scalar(select(func.count()).select_from(Ticket).where(open_psea)) or 0
    unrouted = (
        session.scalar(
            select(func.count()).select_from(Ticket).where(open_psea, Ticket.team_id.is_(None))
        )
        or 0
    )
    return PseaTotals(open=int(total), unrouted=int(unrouted))


# --- places ------------------------------------------------------------------------------


def region_of_places(session: Session) -> dict[int, Place]:
    """Every place id → its region (itself for a region). Places number in the hundreds,
    so one pass in Python is cheaper than a recursive join on every dashboard view."""
    places = {place.id: place for place in session.scalars(select(Place))}
    regions: dict[int, Place] = {}
    for place_id, place in places.items():
        current: Place | None = place
        hops = 0
        while current is not None and current.kind != PlaceKind.REGION and hops < 10:
            current = places.get(current.parent_id) if current.parent_id else None
            hops += 1
        if current is not None and current.kind == PlaceKind.REGION:
            regions[place_id] = current
    return regions


def place_by_code(session: Session, code: str) -> Place | None:
    return session.scalar(select(Place).where(Place.code == code))


def place_choices(session: Session, kinds: tuple[PlaceKind, ...]) -> list[Place]:
    return list(
        session.scalars(select(Place).where(Place.kind.in_(kinds)).order_by(Place.kind, Place.name))
    )
