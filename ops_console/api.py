"""/api/v1: the JSON API used by the bot's action server and by integrators.

Bearer tokens (``deme create-token``); the same role rules as the pages (ops_console.permissions);
errors are ``{"detail": "..."}`` naming the field or record at fault. A record the caller may
not know exists answers 404, exactly like one that does not exist.
"""

from __future__ import annotations

from datetime import date, timedelta
from datetime import date as calendar_date  # for a field named ``date``
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.sanitize import INT32_MAX
from models.audit import record_audit
from models.contacts import Contact, Household, HouseholdContact
from models.enums import (
    HouseholdStatus,
    Language,
    MessageDirection,
    MovementChannel,
    MovementReason,
    MovementSource,
    MovementStatus,
    PlaceKind,
    TicketCategory,
    TicketKind,
    TicketPriority,
    TicketSource,
    TicketStatus,
    UserRole,
)
from models.messages import Message
from models.movements import Movement
from models.places import Place
from models.teams import Team
from models.tickets import Ticket
from models.users import SERVICE_ACTOR_LABEL, User
from ops_console import actions
from ops_console.deps import ApiViewer, DbSession, PathId, require
from ops_console.permissions import BOT_JOINED_EVENT, Capability, Viewer, created_by
from ops_console.queries import (
    FilterError,
    TicketFilter,
    place_by_code,
    queue_page,
)
from ops_console.serializers import (
    ContactTicketOut,
    ContactTicketsOut,
    ErrorOut,
    HouseholdListOut,
    HouseholdOut,
    MessageListOut,
    MovementListOut,
    MovementOut,
    OkOut,
    PlaceMatchOut,
    PlaceOut,
    PlaceRef,
    PlaceResolveOut,
    TicketCreatedOut,
    TicketListOut,
    TicketLoader,
    TicketOut,
    message_out,
)
from tickets.references import normalize_reference

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"model": ErrorOut, "description": "missing or invalid bearer token"},
    403: {"model": ErrorOut, "description": "the token's role may not do this"},
    404: {"model": ErrorOut, "description": "no such record (or not visible to this role)"},
    422: {"model": ErrorOut, "description": "a field is missing or invalid (named in detail)"},
}

router = APIRouter(prefix="/api/v1", tags=["api"], responses=_ERRORS)


# --- request bodies ----------------------------------------------------------------------


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class TicketCreateIn(_Strict):
    sender: str | None = Field(
        None, max_length=40, description="Contact.public_id of the person reporting"
    )
    phone: str | None = Field(
        None,
        max_length=40,
        description="integrators without a sender id may give the phone number instead",
    )
    category: TicketCategory
    kind: TicketKind | None = Field(
        None,
        description=(
            "need (default), complaint, positive_feedback, rumour, information_request or "
            "psea — a PSEA report is always protection, sensitive and urgent, whatever the "
            "other fields say, and is seen only by the PSEA focal points"
        ),
    )
    description: str | None = Field(None, max_length=5000)
    place: str | None = Field(
        None, max_length=120, description="a place code, or what the person typed"
    )
    household_size: int | None = Field(None, ge=1, le=200)
    language: Language | None = None
    sensitive: bool | None = None
    callback_ok: bool | None = None
    callback_time: str | None = Field(None, max_length=80)
    source: TicketSource | None = None
    message_id: int | None = Field(
        None,
        ge=1,
        le=INT32_MAX,
        description=(
            "the sender's inbound message that started it: the idempotency key — a second "
            "creation for the same message returns the first ticket"
        ),
    )


class TicketUpdateIn(_Strict):
    place: str | None = Field(None, max_length=120)
    household_size: int | None = Field(None, ge=1, le=200)
    callback_ok: bool | None = None
    note: str | None = Field(None, max_length=5000)
    # People (not the bot) may also work the ticket:
    status: TicketStatus | None = None
    outcome: str | None = Field(
        None,
        max_length=300,
        description="with status resolved or closed: what was done, sent to the person by SMS",
    )
    priority: TicketPriority | None = None
    category: TicketCategory | None = None
    kind: TicketKind | None = Field(
        None, description="re-classify; to psea moves the case to the PSEA focal points"
    )
    team: str | None = Field(None, description="team slug; empty string to clear")
    assignee: str | None = Field(None, description="username; empty string to unassign")


class HouseholdIn(_Strict):
    sender: str = Field(max_length=40)
    size: int = Field(ge=1, le=200)
    place: str = Field(max_length=120)
    origin: str | None = Field(None, max_length=120)
    language: Language | None = None
    displaced_since: date | None = None
    status: HouseholdStatus | None = Field(
        None, description="displaced, returnee, repatriate or other (the DTM's categories)"
    )
    phones: list[str] = Field(
        default_factory=list, max_length=10, description="further phones of the household"
    )


# --- helpers -----------------------------------------------------------------------------


def _not_found(what: str) -> HTTPException:
    return HTTPException(404, what)


def resolve_place_code(
    session: Session, text: str | None, *, message: str | None = None
) -> str | None:
    """A place code for what the bot or a person gave: an exact code, else the gazetteer's
    best match, else — given the whole ``message`` it came from — the place the message
    mentions, else None. The bot's entity is sometimes one word of a longer name ("koura" of
    "Bamako Koura", "commune" of "Commune 2"): the sender's full words still name it."""
    if not text:
        return None
    cleaned = text.strip()
    if place_by_code(session, cleaned) is not None:
        return cleaned
    from tickets.gazetteer import Gazetteer

    gazetteer = Gazetteer.default()
    match = gazetteer.resolve(cleaned)
    if match is None and message:
        match = gazetteer.find_in_text(message)
    return None if match is None else match.place.code


def _contact(session: Session, sender: str) -> Contact:
    from tickets.contacts import find_contact_by_public_id

    contact = find_contact_by_public_id(session, sender)
    if contact is None:
        raise _not_found(f"unknown sender {sender!r}")
    return contact


def _ticket_by_reference(session: Session, viewer: Viewer, reference: str) -> Ticket:
    normalized = normalize_reference(reference)
    ticket = (
        None
        if normalized is None
        else session.scalar(select(Ticket).where(Ticket.reference == normalized))
    )
    if ticket is None or not viewer.may_see(ticket):
        raise _not_found(f"no ticket {reference!r}")
    return ticket


def _actor(viewer: Viewer) -> str:
    return SERVICE_ACTOR_LABEL if viewer.role == UserRole.SERVICE else viewer.user.username


def _action_error(exc: actions.ActionError) -> HTTPException:
    return HTTPException(422, f"{exc.field}: {exc.detail}")


# --- tickets -----------------------------------------------------------------------------


@router.post("/tickets", status_code=201, response_model=TicketCreatedOut)
def create_ticket(body: TicketCreateIn, viewer: ApiViewer, session: DbSession) -> Any:
    """Create a ticket (the bot, once it knows the category). ``place`` may be free text:
    it is resolved with the gazetteer; when nothing matches the ticket is created without a
    place and flagged for review rather than lost."""
    require(viewer, Capability.TICKETS_CREATE)
    from tickets.intake import create_ticket as intake_create

    if body.sender and body.phone:
        raise HTTPException(422, "give either sender or phone, not both")
    contact: Contact | None = None
    if body.sender:
        contact = _contact(session, body.sender)
    elif body.phone:
        from core.phones import InvalidPhoneNumber
        from tickets.contacts import get_or_create_contact

        try:
            contact = get_or_create_contact(session, body.phone, language=body.language)
        except InvalidPhoneNumber as exc:
            raise HTTPException(422, f"phone: {exc}") from exc
    if body.message_id is not None:
        _check_source_message(session, body.message_id, contact)
    place_code = resolve_place_code(session, body.place, message=body.description)
    unresolved_place = bool(body.place) and place_code is None
    source = body.source or (
        TicketSource.SMS if viewer.role == UserRole.SERVICE else TicketSource.API
    )
    # A report of sexual exploitation or abuse by an aid worker that the bot's model (or the
    # caller) filed as something else still becomes PSEA: tickets.intake screens every
    # description (tickets.psea_screen), whatever the kind sent.
    kind = body.kind
    ticket = intake_create(
        session,
        category=body.category,
        kind=kind,
        source=source,
        contact=contact,
        description=body.description,
        place_code=place_code,
        household_size=body.household_size,
        language=body.language,
        sensitive=body.sensitive,
        callback_ok=body.callback_ok,
        callback_time=body.callback_time,
        needs_review=unresolved_place,
        message_id=body.message_id,
        link_message=False,  # the conversation task links it (it holds the row's lock)
        actor_label=_actor(viewer),
        # The service account too: it may later complete only the tickets it created.
        actor_user_id=viewer.user.id,
    )
    if viewer.role == UserRole.SERVICE and body.message_id is not None:
        _join_fallback_ticket(session, ticket, viewer)
    session.flush()
    out = TicketLoader(session).load([ticket]).created_out(ticket)
    if out.household_size is None:
        out.household_size = body.household_size
    session.commit()
    _publish(session)
    return out


def _join_fallback_ticket(session: Session, ticket: Ticket, viewer: Viewer) -> None:
    """The message's ticket already existed, made by the keyword fallback while Rasa was
    slow: the bot's action, which just proved it holds this sender's inbound message, takes
    the ticket over (a "bot_joined" event), so its follow-up PATCHes (place, household
    size, callback) are accepted like those on a ticket it created. Without this the
    details the person then gives were answered with 404 and lost. A reference merely
    guessed is still refused (ops_console.permissions.created_by)."""
    from tickets.timeline import record_event

    if not created_by(session, ticket, viewer.user):
        record_event(
            session,
            ticket,
            BOT_JOINED_EVENT,
            actor_label=_actor(viewer),
            actor_user_id=viewer.user.id,
        )


def _check_source_message(session: Session, message_id: int, contact: Contact | None) -> None:
    """The idempotency key must be this sender's inbound message: a token must not attach a
    ticket to (or read back the ticket of) somebody else's message. A plain SELECT of two
    columns, which does not wait for the conversation task's lock on that row."""
    row = session.execute(
        select(Message.contact_id, Message.direction).where(Message.id == message_id)
    ).first()
    if (
        row is None
        or row.direction != MessageDirection.INBOUND
        or contact is None
        or row.contact_id != contact.id
    ):
        raise HTTPException(422, "message_id: not an inbound message of this sender")


def _publish(session: Session) -> None:
    from models.outbox_relay import publish_committed

    publish_committed(session)


class TicketSearchIn(_Strict):
    """The queue's filters in a body: the only way to search by phone number, because a
    number in a URL ends up in access logs, proxies and browser history."""

    status: list[TicketStatus] = Field(default_factory=list)
    category: list[TicketCategory] = Field(default_factory=list)
    kind: list[TicketKind] = Field(default_factory=list)
    priority: list[TicketPriority] = Field(default_factory=list)
    source: list[TicketSource] = Field(default_factory=list)
    place: str | None = Field(default=None, max_length=32, description="place code (and below)")
    team: str | None = Field(default=None, max_length=100, description="team slug")
    assignee: str | None = Field(default=None, max_length=100, description="username/me/none")
    sla: str | None = Field(default=None, max_length=20)
    created_from: date | None = None
    created_to: date | None = None
    q: str | None = Field(default=None, max_length=100, description="a reference, or text")
    phone: str | None = Field(default=None, max_length=40, description="the sender's number")
    sender: str | None = Field(
        default=None, max_length=40, description="the sender's opaque id (Contact.public_id)"
    )
    cursor: str | None = Field(default=None, max_length=200)
    limit: int = Field(default=50, ge=1, le=200)


def _ticket_list(session: Session, viewer: Viewer, search: TicketSearchIn) -> TicketListOut:
    require(viewer, Capability.TICKETS_READ)
    filters = TicketFilter(
        statuses=search.status,
        categories=search.category,
        kinds=search.kind,
        priorities=search.priority,
        sources=search.source,
        place=search.place,
        sla=search.sla,
        created_from=search.created_from,
        created_to=search.created_to,
        q=search.q,
        phone=search.phone,
        sender=search.sender,
    )
    if search.team:
        team_id = session.scalar(select(Team.id).where(Team.slug == search.team))
        if team_id is None:
            raise HTTPException(422, f"team: unknown team {search.team!r}")
        filters.team_id = team_id
    if search.assignee:
        if search.assignee in ("me", "none"):
            filters.assignee = search.assignee
        else:
            user_id = session.scalar(select(User.id).where(User.username == search.assignee))
            if user_id is None:
                raise HTTPException(422, f"assignee: unknown user {search.assignee!r}")
            filters.assignee = str(user_id)
    try:
        page = queue_page(session, filters, viewer, cursor=search.cursor, limit=search.limit)
    except FilterError as exc:
        raise HTTPException(422, str(exc)) from exc
    loader = TicketLoader(session).load(page.tickets)
    return TicketListOut(
        tickets=[loader.ticket_out(t) for t in page.tickets], next_cursor=page.next_cursor
    )


PHONE_NOT_IN_URL = (
    "phone: phone numbers are not accepted in URLs (they end up in logs); "
    "POST the filters, phone included, to /api/v1/tickets/search"
)


@router.get("/tickets", response_model=TicketListOut)
def list_tickets(
    viewer: ApiViewer,
    session: DbSession,
    status: Annotated[list[TicketStatus] | None, Query()] = None,
    category: Annotated[list[TicketCategory] | None, Query()] = None,
    kind: Annotated[list[TicketKind] | None, Query()] = None,
    priority: Annotated[list[TicketPriority] | None, Query()] = None,
    source: Annotated[list[TicketSource] | None, Query()] = None,
    place: Annotated[str | None, Query(description="place code; includes places under it")] = None,
    team: Annotated[str | None, Query(description="team slug")] = None,
    assignee: Annotated[str | None, Query(description="username, 'me' or 'none'")] = None,
    sla: Annotated[str | None, Query(description="breached, due_soon or on_time")] = None,
    created_from: date | None = None,
    created_to: date | None = None,
    q: Annotated[str | None, Query(description="a reference, or text of the report")] = None,
    phone: Annotated[str | None, Query(include_in_schema=False)] = None,
    sender: Annotated[
        str | None, Query(max_length=40, description="the sender's opaque id (c_…)")
    ] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=200)] = 50,
) -> Any:
    """The queue, with the console's filters; newest first; keyset pagination. To search by
    the sender's phone number, use ``POST /api/v1/tickets/search``."""
    if phone is not None:
        raise HTTPException(400, PHONE_NOT_IN_URL)
    # Already validated by FastAPI; the body model's length bounds are for the POST.
    search = TicketSearchIn.model_construct(
        status=status or [],
        category=category or [],
        kind=kind or [],
        priority=priority or [],
        source=source or [],
        place=place,
        team=team,
        assignee=assignee,
        sla=sla,
        created_from=created_from,
        created_to=created_to,
        q=q,
        sender=sender,
        cursor=cursor,
        limit=limit,
    )
    return _ticket_list(session, viewer, search)


@router.post("/tickets/search", response_model=TicketListOut)
def search_tickets(body: TicketSearchIn, viewer: ApiViewer, session: DbSession) -> Any:
    """The same list as ``GET /api/v1/tickets``, filters in a JSON body (phone included)."""
    return _ticket_list(session, viewer, body)


@router.get("/tickets/{reference}", response_model=TicketOut)
def get_ticket(reference: str, viewer: ApiViewer, session: DbSession) -> Any:
    require(viewer, Capability.TICKETS_READ)
    ticket = _ticket_by_reference(session, viewer, reference)
    return TicketLoader(session).load([ticket]).ticket_out(ticket)


# The bot may also recognise, later in the conversation, that its report is PSEA ("kind":
# "psea" only: it never re-classifies a case the other way; ops_console.actions).
_BOT_FIELDS = {"place", "household_size", "callback_ok", "note", "kind"}


@router.patch("/tickets/{reference}", response_model=TicketCreatedOut)
def update_ticket(
    reference: str, body: TicketUpdateIn, viewer: ApiViewer, session: DbSession
) -> Any:
    """Complete a ticket (the bot: place, household size, callback, note) or work it (people:
    also status, priority, category, team, assignee)."""
    require(viewer, Capability.TICKETS_UPDATE)
    given = body.model_fields_set
    if viewer.role == UserRole.SERVICE and given - _BOT_FIELDS:
        extra = ", ".join(sorted(given - _BOT_FIELDS))
        raise HTTPException(403, f"service tokens may not change: {extra}")
    normalized = normalize_reference(reference)
    ticket = (
        None
        if normalized is None
        else session.scalar(select(Ticket).where(Ticket.reference == normalized))
    )
    if ticket is None or not viewer.may_act_by_reference(session, ticket):
        raise _not_found(f"no ticket {reference!r}")
    if not given:
        allowed = _BOT_FIELDS if viewer.role == UserRole.SERVICE else TicketUpdateIn.model_fields
        raise HTTPException(422, "empty update: give at least one of " + ", ".join(sorted(allowed)))
    kwargs: dict[str, Any] = {}
    if "place" in given and body.place:
        place_code = resolve_place_code(session, body.place)
        if place_code is None:
            raise HTTPException(422, f"place: no place matches {body.place!r}")
        kwargs["place_code"] = place_code
    if "household_size" in given and body.household_size is not None:
        kwargs["household_size"] = body.household_size
    if "callback_ok" in given and body.callback_ok is not None:
        kwargs["callback_ok"] = body.callback_ok
    if "note" in given and body.note:
        kwargs["note"] = body.note
    if kwargs:
        from tickets.intake import update_ticket as intake_update

        intake_update(session, ticket, actor_label=_actor(viewer), **kwargs)
    try:
        if body.outcome is not None and body.status not in (
            TicketStatus.RESOLVED,
            TicketStatus.CLOSED,
        ):
            raise HTTPException(422, "outcome: give it with status resolved or closed")
        if body.status is not None:
            actions.change_status(session, ticket, viewer, body.status, outcome=body.outcome)
        if body.priority is not None:
            actions.change_priority(session, ticket, viewer, body.priority)
        if body.category is not None:
            actions.change_category(session, ticket, viewer, body.category)
        if body.kind is not None:
            actions.change_kind(session, ticket, viewer, body.kind)
        if "team" in given and body.team is not None:
            team = None
            if body.team:
                team = session.scalar(select(Team).where(Team.slug == body.team))
                if team is None:
                    raise HTTPException(422, f"team: unknown team {body.team!r}")
            actions.change_team(session, ticket, viewer, team)
        if "assignee" in given and body.assignee is not None:
            user = None
            if body.assignee:
                user = session.scalar(select(User).where(User.username == body.assignee))
                if user is None:
                    raise HTTPException(422, f"assignee: unknown user {body.assignee!r}")
            actions.assign(session, ticket, viewer, user)
    except actions.ActionError as exc:
        raise _action_error(exc) from exc
    session.flush()
    out = TicketLoader(session).load([ticket]).created_out(ticket)
    session.commit()
    _publish(session)
    return out


@router.get("/tickets/{reference}/messages", response_model=MessageListOut)
def ticket_messages(reference: str, viewer: ApiViewer, session: DbSession) -> Any:
    require(viewer, Capability.MESSAGES_READ)
    ticket = _ticket_by_reference(session, viewer, reference)
    rows = session.scalars(
        select(Message)
        .where(Message.ticket_id == ticket.id, viewer.message_clause())
        .order_by(Message.created_at)
    )
    return MessageListOut(messages=[message_out(m, {ticket.id: ticket.reference}) for m in rows])


# --- contacts (the bot's per-sender calls) -------------------------------------------------


@router.get("/contacts/{sender}/tickets", response_model=ContactTicketsOut)
def contact_tickets(sender: str, viewer: ApiViewer, session: DbSession) -> Any:
    """The sender's open tickets (the bot answers "what happened to my report?"). The bot
    sees all of them — they are the sender's own; people see those their role allows."""
    if not (viewer.can(Capability.CONTACTS_BOT) or viewer.can(Capability.TICKETS_READ)):
        raise HTTPException(403, f"your role ({viewer.role.value}) may not do this")
    contact = _contact(session, sender)
    from tickets.intake import open_tickets_for

    found = open_tickets_for(session, contact)
    if not viewer.can(Capability.CONTACTS_BOT):
        found = [t for t in found if viewer.may_see(t)]
    # The answer ends up in an SMS on the sender's phone: a sensitive case (a protection or
    # PSEA report, or any case flagged sensitive) is reported as "protection" whatever its
    # category, and the bot names that one neutrally (bot/actions/labels.yml).
    return ContactTicketsOut(
        tickets=[
            ContactTicketOut(
                reference=t.reference,
                category=TicketCategory.PROTECTION if t.sensitive else t.category,
                status=t.status,
                updated_at=t.updated_at,
            )
            for t in found
        ]
    )


@router.get("/contacts/{sender}/messages", response_model=MessageListOut)
def contact_messages(
    sender: str,
    viewer: ApiViewer,
    session: DbSession,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """The sender's messages, newest last; those of tickets the role cannot see are left out,
    and so is everything of a protection case (ops_console.permissions: message_clause)."""
    require(viewer, Capability.MESSAGES_READ)
    contact = _contact(session, sender)
    rows = list(
        session.scalars(
            select(Message)
            .where(Message.contact_id == contact.id, viewer.message_clause())
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(limit)
        )
    )
    ticket_ids = {m.ticket_id for m in rows if m.ticket_id}
    references: dict[int, str] = dict(
        session.execute(select(Ticket.id, Ticket.reference).where(Ticket.id.in_(ticket_ids)))
        .tuples()
        .all()
    )
    return MessageListOut(messages=[message_out(m, references) for m in reversed(rows)])


@router.post("/contacts/{sender}/opt-out", response_model=OkOut)
def contact_opt_out(sender: str, viewer: ApiViewer, session: DbSession) -> Any:
    if not (viewer.can(Capability.CONTACTS_BOT) or viewer.can(Capability.ADMIN)):
        raise HTTPException(403, f"your role ({viewer.role.value}) may not do this")
    contact = _contact(session, sender)
    from tickets.contacts import opt_out

    if opt_out(contact):
        record_audit(
            session,
            action="contact.opted_out",
            actor_label=_actor(viewer),
            actor_user_id=viewer.user.id,
            object_type="contact",
            object_id=contact.id,
        )
    session.commit()
    return OkOut()


@router.post("/contacts/{sender}/erase", status_code=202, response_model=OkOut)
def contact_erase(sender: str, viewer: ApiViewer, session: DbSession) -> Any:
    """Erase the sender's personal data (number, message bodies, free text) on their request."""
    require(viewer, Capability.CONTACTS_ERASE)
    contact = _contact(session, sender)
    from tickets.intake import erase_contact

    # The bot answers the person with a confirmation SMS right after: keep the (encrypted)
    # number until that is sent (tickets.erasure.finish_erasure); everything else goes now.
    erase_contact(
        session,
        contact,
        actor_label=_actor(viewer),
        actor_user_id=viewer.user.id,
        confirm=viewer.role == UserRole.SERVICE,
    )
    session.commit()
    _publish(session)
    return OkOut()


# --- households ----------------------------------------------------------------------------


def _household_out(
    household: Household,
    places: dict[int, Place],
    senders: dict[int, str],
    phones: dict[int, list[int]],
) -> HouseholdOut:
    def ref(place_id: int | None) -> PlaceRef | None:
        place = places.get(place_id or 0)
        return None if place is None else PlaceRef(code=place.code, name=place.name)

    reaching = [household.contact_id] if household.contact_id else []
    reaching += [c for c in phones.get(household.id, []) if c not in reaching]
    return HouseholdOut(
        id=household.id,
        sender=senders.get(household.contact_id or 0),
        phones=[senders[c] for c in reaching if c in senders],
        size=household.size,
        place=ref(household.current_place_id),
        origin=ref(household.origin_place_id),
        displaced_since=household.displaced_since,
        status=household.status,
        merged_into=household.merged_into_id,
        created_at=household.created_at,
    )


def _households_out(session: Session, rows: list[Household]) -> list[HouseholdOut]:
    place_ids = {p for h in rows for p in (h.current_place_id, h.origin_place_id) if p}
    places = {p.id: p for p in session.scalars(select(Place).where(Place.id.in_(place_ids)))}
    phones: dict[int, list[int]] = {}
    for household_id, contact_id in session.execute(
        select(HouseholdContact.household_id, HouseholdContact.contact_id)
        .where(HouseholdContact.household_id.in_([h.id for h in rows]))
        .order_by(HouseholdContact.created_at, HouseholdContact.contact_id)
    ).tuples():
        phones.setdefault(household_id, []).append(contact_id)
    contact_ids = {h.contact_id for h in rows if h.contact_id}
    contact_ids |= {c for linked in phones.values() for c in linked}
    senders: dict[int, str] = dict(
        session.execute(select(Contact.id, Contact.public_id).where(Contact.id.in_(contact_ids)))
        .tuples()
        .all()
    )
    return [_household_out(h, places, senders, phones) for h in rows]


def _phone_contacts(session: Session, phones: list[str], field: str = "phones") -> list[Contact]:
    from core.phones import InvalidPhoneNumber
    from tickets.contacts import get_or_create_contact

    contacts = []
    for index, phone in enumerate(phones):
        try:
            contacts.append(get_or_create_contact(session, phone))
        except InvalidPhoneNumber as exc:
            raise HTTPException(422, f"{field}[{index}]: {exc}") from exc
    return contacts


def _place_or_422(session: Session, field: str, text: str) -> str:
    code = resolve_place_code(session, text)
    if code is None:
        raise HTTPException(422, f"{field}: no place matches {text!r}")
    return code


def _place_id(session: Session, code: str) -> int:
    place = place_by_code(session, code)
    assert place is not None  # resolved just before
    return place.id


@router.post("/households", status_code=201, response_model=HouseholdOut)
def create_household(body: HouseholdIn, viewer: ApiViewer, session: DbSession) -> Any:
    """Register a displaced household (the bot's registration flow): where it is, where it
    came from, since when, its status and any further phones of its members."""
    require(viewer, Capability.HOUSEHOLDS_WRITE)
    contact = _contact(session, body.sender)
    place_code = _place_or_422(session, "place", body.place)
    origin_code = _place_or_422(session, "origin", body.origin) if body.origin else None
    if body.language is not None and contact.language is None:
        contact.language = body.language
    from tickets.intake import register_household

    further = _phone_contacts(session, body.phones)
    household = register_household(
        session,
        contact=contact,
        size=body.size,
        place_code=place_code,
        origin_code=origin_code,
        displaced_since=body.displaced_since,
    )
    if body.status is not None:
        household.status = body.status
    from tickets.households import add_phone

    for other in further:
        add_phone(session, household, other)
    session.flush()
    out = _households_out(session, [household])[0]
    session.commit()
    _publish(session)
    return out


class HouseholdSearchIn(_Strict):
    """The list's filters in a body: the only way to search by phone number (a number in a
    URL ends up in access logs, proxies and browser history), as for tickets."""

    sender: str | None = Field(None, max_length=40, description="a contact's opaque id (c_…)")
    phone: str | None = Field(None, max_length=40, description="any phone of the household")
    place: str | None = Field(None, max_length=32, description="place code (and below)")
    status: HouseholdStatus | None = None
    limit: int = Field(default=100, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=INT32_MAX)


HOUSEHOLD_PHONE_NOT_IN_URL = (
    "phone: phone numbers are not accepted in URLs (they end up in logs); "
    "POST the filters, phone included, to /api/v1/households/search"
)


def _household_list(session: Session, viewer: Viewer, search: HouseholdSearchIn) -> Any:
    """Households matching every filter given (merged duplicates left out). Uses the ticket
    list's own helpers: one phone normaliser, one sender check, the same 422 wording."""
    require(viewer, Capability.HOUSEHOLDS_READ)
    from ops_console.queries import (
        contact_id_for_phone,
        contact_id_for_sender,
        descendant_place_ids,
    )
    from tickets.households import active_households_clause, households_of_contacts_clause

    conditions = [active_households_clause()]
    problems: dict[str, str] = {}
    for value, lookup in (
        (search.sender, contact_id_for_sender),
        (search.phone, contact_id_for_phone),
    ):
        if value is None or not value.strip():
            continue
        try:
            contact_id = lookup(session, value)
        except FilterError as exc:
            problems.update(exc.problems)
            continue
        conditions.append(households_of_contacts_clause([contact_id if contact_id else -1]))
    if search.place:
        try:
            ids = descendant_place_ids(session, search.place)
        except FilterError as exc:
            problems.update(exc.problems)
        else:
            conditions.append(Household.current_place_id.in_(ids))
    if search.status is not None:
        conditions.append(Household.status == search.status)
    if problems:
        raise HTTPException(422, str(FilterError.several(problems)))
    rows = list(
        session.scalars(
            select(Household)
            .where(*conditions)
            .order_by(Household.id.desc())
            .offset(search.offset)
            .limit(search.limit)
        )
    )
    totals = select(func.coalesce(func.sum(Household.size), 0)).where(*conditions)
    return HouseholdListOut(
        households=_households_out(session, rows), total_people=int(session.scalar(totals) or 0)
    )


@router.get("/households", response_model=HouseholdListOut)
def list_households(
    viewer: ApiViewer,
    session: DbSession,
    place: Annotated[str | None, Query(description="place code; includes places under it")] = None,
    sender: Annotated[
        str | None, Query(max_length=40, description="a contact's opaque id (c_…)")
    ] = None,
    status: HouseholdStatus | None = None,
    phone: Annotated[str | None, Query(include_in_schema=False)] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> Any:
    """Registered households, newest first (merged duplicates left out). To search by a
    phone number, use ``POST /api/v1/households/search``."""
    if phone is not None:
        raise HTTPException(400, HOUSEHOLD_PHONE_NOT_IN_URL)
    search = HouseholdSearchIn.model_construct(
        sender=sender, phone=None, place=place, status=status, limit=limit, offset=offset
    )
    return _household_list(session, viewer, search)


@router.post("/households/search", response_model=HouseholdListOut)
def search_households(body: HouseholdSearchIn, viewer: ApiViewer, session: DbSession) -> Any:
    """The same list as ``GET /api/v1/households``, filters in a JSON body (phone included)."""
    return _household_list(session, viewer, body)


class HouseholdUpdateIn(_Strict):
    size: int | None = Field(None, ge=1, le=200)
    place: str | None = Field(None, max_length=120, description="where the household is now")
    origin: str | None = Field(None, max_length=120)
    displaced_since: date | None = None
    status: HouseholdStatus | None = None
    add_phones: list[str] = Field(default_factory=list, max_length=10)


def _active_household(session: Session, household_id: int) -> Household:
    household = session.get(Household, household_id)
    if household is None:
        raise _not_found(f"no household {household_id}")
    return household


@router.patch("/households/{household_id}", response_model=HouseholdOut)
def update_household(
    household_id: PathId, body: HouseholdUpdateIn, viewer: ApiViewer, session: DbSession
) -> Any:
    """Correct a household's record (staff): size, place, origin, date of displacement,
    status, further phones. The bot changes only its sender's household, through
    ``PATCH /api/v1/contacts/{sender}/household``."""
    require(viewer, Capability.HOUSEHOLDS_WRITE)
    if viewer.role == UserRole.SERVICE:
        raise HTTPException(
            403, "service tokens change a household through /contacts/{sender}/household"
        )
    household = _active_household(session, household_id)
    if household.merged_into_id is not None:
        raise HTTPException(
            409, f"household {household.id} was merged into {household.merged_into_id}"
        )
    given = body.model_fields_set
    if not given:
        raise HTTPException(
            422, "empty update: give at least one of " + ", ".join(HouseholdUpdateIn.model_fields)
        )
    if body.place:
        household.current_place_id = _place_id(session, _place_or_422(session, "place", body.place))
    if body.origin:
        household.origin_place_id = _place_id(
            session, _place_or_422(session, "origin", body.origin)
        )
    if body.size is not None:
        household.size = body.size
    if body.displaced_since is not None:
        household.displaced_since = body.displaced_since
    if body.status is not None:
        household.status = body.status
    from tickets.households import add_phone

    for contact in _phone_contacts(session, body.add_phones, "add_phones"):
        add_phone(session, household, contact)
    record_audit(
        session,
        action="household.corrected",
        actor_label=_actor(viewer),
        actor_user_id=viewer.user.id,
        object_type="household",
        object_id=household.id,
        fields=sorted(given),
        phones_added=len(body.add_phones),
    )
    session.flush()
    out = _households_out(session, [household])[0]
    session.commit()
    return out


class HouseholdMoveIn(_Strict):
    place: str = Field(min_length=1, max_length=120, description="where the household is now")
    moved_on: date | None = Field(None, description="the day of the move (default: today)")
    status: HouseholdStatus | None = Field(None, description="e.g. returnee when going home")
    size: int | None = Field(None, ge=1, le=200)


@router.patch("/contacts/{sender}/household", response_model=HouseholdOut)
def move_household(
    sender: str, body: HouseholdMoveIn, viewer: ApiViewer, session: DbSession
) -> Any:
    """The person says "we moved to …": the sender's household is now at ``place``, and the
    move is recorded as a movement from where it was (counted in flows and arrivals)."""
    require(viewer, Capability.HOUSEHOLDS_WRITE)
    contact = _contact(session, sender)
    from models.base import utcnow
    from tickets.households import household_of_contact, record_household_move

    household = household_of_contact(session, contact.id)
    if household is None:
        raise _not_found(f"sender {sender!r} has no registered household: POST /households")
    destination = _place_id(session, _place_or_422(session, "place", body.place))
    today = utcnow().date()
    moved_on = body.moved_on or today
    if moved_on > today + timedelta(days=1):
        raise HTTPException(422, "moved_on: is in the future")
    if destination == household.current_place_id and body.status is None:
        raise HTTPException(422, "place: the household is already registered there")
    record_household_move(
        session,
        household,
        destination_id=destination,
        moved_on=moved_on,
        status=body.status,
        size=body.size,
        is_test=contact.is_test,
        recorded_by_user_id=viewer.user.id,
    )
    session.flush()
    out = _households_out(session, [household])[0]
    session.commit()
    return out


class HouseholdMergeIn(_Strict):
    into: int = Field(ge=1, le=INT32_MAX, description="the household kept")


@router.post("/households/{household_id}/merge", response_model=HouseholdOut)
def merge_household(
    household_id: PathId, body: HouseholdMergeIn, viewer: ApiViewer, session: DbSession
) -> Any:
    """Merge a duplicate into the household kept (supervisors): its phones and movements go
    to the kept one, which fills what it lacks from it; the duplicate then points to it.
    Audited (``household.merged``). Answers the household kept."""
    require(viewer, Capability.HOUSEHOLDS_MERGE)
    duplicate = _active_household(session, household_id)
    kept = session.get(Household, body.into)
    if kept is None:
        raise HTTPException(422, f"into: no household {body.into}")
    from tickets.households import RegistryError, merge_households

    try:
        merge_households(
            session,
            duplicate=duplicate,
            kept=kept,
            actor_label=_actor(viewer),
            actor_user_id=viewer.user.id,
        )
    except RegistryError as exc:
        raise HTTPException(422, str(exc)) from exc
    session.flush()
    out = _households_out(session, [kept])[0]
    session.commit()
    return out


# --- flows (flow monitoring) -----------------------------------------------------------------


class FlowIn(_Strict):
    date: calendar_date = Field(description="the day the group was counted")
    point_place: str = Field(
        min_length=1, max_length=120, description="the place of the monitoring point (code or name)"
    )
    point_name: str = Field(
        min_length=1, max_length=120, description="the entry or transit point, e.g. 'gare routière'"
    )
    origin: str | None = Field(
        None, max_length=120, description="where they come from (code or name; empty: unknown)"
    )
    destination: str = Field(min_length=1, max_length=120, description="where they are going")
    people: int = Field(ge=1, le=100_000, description="how many people in the group")
    reason: MovementReason
    status: MovementStatus = Field(description="displaced, returning or in transit")


def _movements_out(session: Session, rows: list[Movement]) -> list[MovementOut]:
    place_ids = {
        p for m in rows for p in (m.point_place_id, m.origin_place_id, m.destination_place_id) if p
    }
    places = {p.id: p for p in session.scalars(select(Place).where(Place.id.in_(place_ids)))}

    def ref(place_id: int | None) -> PlaceRef | None:
        place = places.get(place_id or 0)
        return None if place is None else PlaceRef(code=place.code, name=place.name)

    out = []
    for movement in rows:
        destination = ref(movement.destination_place_id)
        assert destination is not None
        out.append(
            MovementOut(
                id=movement.id,
                source=movement.source,
                date=movement.observed_on,
                point=ref(movement.point_place_id),
                point_name=movement.point_name,
                origin=ref(movement.origin_place_id),
                destination=destination,
                people=movement.people,
                reason=movement.reason,
                status=movement.status,
                household=movement.household_id,
                channel=movement.channel,
                created_at=movement.created_at,
            )
        )
    return out


@router.post("/flows", status_code=201, response_model=MovementOut)
def create_flow(body: FlowIn, viewer: ApiViewer, session: DbSession) -> Any:
    """Record a flow counted at a flow-monitoring point (an enumerator, or an integration of a
    DTM team). Places may be codes or names; every problem is named in one 422."""
    require(viewer, Capability.FLOWS_RECORD)
    from tickets.flows import FlowError, FlowInput, record_flow

    codes: dict[str, str | None] = {}
    problems: dict[str, str] = {}
    for field, text in (
        ("point_place", body.point_place),
        ("origin", body.origin),
        ("destination", body.destination),
    ):
        codes[field] = resolve_place_code(session, text) if text else None
        if text and codes[field] is None:
            problems[field] = f"no place matches {text!r}"
    try:
        if problems:
            raise FlowError(problems)
        movement = record_flow(
            session,
            FlowInput(
                observed_on=body.date,
                point_code=codes["point_place"],
                point_name=body.point_name,
                origin_code=codes["origin"],
                destination_code=codes["destination"],
                people=body.people,
                reason=body.reason,
                status=body.status,
            ),
            recorded_by_user_id=viewer.user.id,
            channel=MovementChannel.API,
        )
    except FlowError as exc:
        raise HTTPException(422, str(exc)) from exc
    out = _movements_out(session, [movement])[0]
    session.commit()
    return out


@router.get("/flows", response_model=MovementListOut)
def list_flows(
    viewer: ApiViewer,
    session: DbSession,
    date_from: calendar_date | None = None,
    date_to: calendar_date | None = None,
    destination: Annotated[
        str | None, Query(max_length=32, description="place code; includes places under it")
    ] = None,
    source: MovementSource | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
    offset: Annotated[int, Query(ge=0, le=INT32_MAX)] = 0,
) -> Any:
    """Movements, newest first: flows counted at monitoring points and households' own moves."""
    require(viewer, Capability.FLOWS_RECORD)
    conditions: list[Any] = [Movement.is_test.is_(False)]
    if date_from and date_to and date_from > date_to:
        raise HTTPException(422, "date_to: is before date_from")
    if date_from:
        conditions.append(Movement.observed_on >= date_from)
    if date_to:
        conditions.append(Movement.observed_on <= date_to)
    if source is not None:
        conditions.append(Movement.source == source)
    if destination:
        from ops_console.queries import descendant_place_ids

        try:
            ids = descendant_place_ids(session, destination)
        except FilterError as exc:
            raise HTTPException(422, str(exc).replace("place:", "destination:", 1)) from exc
        conditions.append(Movement.destination_place_id.in_(ids))
    rows = list(
        session.scalars(
            select(Movement)
            .where(*conditions)
            .order_by(Movement.observed_on.desc(), Movement.id.desc())
            .offset(offset)
            .limit(limit)
        )
    )
    total = session.scalar(select(func.coalesce(func.sum(Movement.people), 0)).where(*conditions))
    return MovementListOut(flows=_movements_out(session, rows), total_people=int(total or 0))


# --- places ----------------------------------------------------------------------------------


def _place_out(place: Place, codes: dict[int, str]) -> PlaceOut:
    return PlaceOut(
        code=place.code,
        name=place.name,
        kind=place.kind,
        parent=codes.get(place.parent_id or 0),
        latitude=place.latitude,
        longitude=place.longitude,
    )


@router.get("/places", response_model=list[PlaceOut])
def list_places(
    viewer: ApiViewer,
    session: DbSession,
    kind: PlaceKind | None = None,
    parent: Annotated[str | None, Query(description="code of the parent place")] = None,
) -> Any:
    require(viewer, Capability.PLACES_READ)
    statement = select(Place)
    if kind is not None:
        statement = statement.where(Place.kind == kind)
    if parent:
        parent_place = place_by_code(session, parent)
        if parent_place is None:
            raise HTTPException(422, f"parent: unknown place code {parent!r}")
        statement = statement.where(Place.parent_id == parent_place.id)
    rows = list(session.scalars(statement.order_by(Place.code)))
    codes: dict[int, str] = dict(session.execute(select(Place.id, Place.code)).tuples().all())
    return [_place_out(p, codes) for p in rows]


@router.get("/places/resolve", response_model=PlaceResolveOut)
def resolve_place(
    viewer: ApiViewer,
    q: Annotated[str, Query(min_length=1, max_length=120, description="what the person typed")],
    kind: Annotated[list[PlaceKind] | None, Query()] = None,
    within: Annotated[str | None, Query(description="only places under this code")] = None,
) -> Any:
    """The place a short answer names ("tbk", "sevare", "commune 6"), with a confidence; else,
    with no ``kind``/``within`` filter, the place a longer answer mentions ("on est a Medina
    Coura pres du marche")."""
    require(viewer, Capability.PLACES_READ)
    from tickets.gazetteer import Gazetteer

    gazetteer = Gazetteer.default()
    try:
        match = gazetteer.resolve(q, kinds=kind or None, within=within)
    except ValueError as exc:
        raise HTTPException(422, f"within: {exc}") from exc
    if match is None and not kind and not within:
        match = gazetteer.find_in_text(q)
    if match is None:
        return PlaceResolveOut(match=None)
    return PlaceResolveOut(
        match=PlaceMatchOut(
            code=match.place.code,
            name=match.place.name,
            kind=match.place.kind,
            confidence=round(match.confidence, 3),
        )
    )


@router.get("/places/{code}", response_model=PlaceOut)
def get_place(code: str, viewer: ApiViewer, session: DbSession) -> Any:
    require(viewer, Capability.PLACES_READ)
    place = place_by_code(session, code)
    if place is None:
        raise _not_found(f"unknown place code {code!r}")
    codes: dict[int, str] = dict(session.execute(select(Place.id, Place.code)).tuples().all())
    return _place_out(place, codes)
