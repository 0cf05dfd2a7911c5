"""Pydantic shapes of /api/v1 and the loader that fills them without one query per row."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, datetime
from datetime import date as calendar_date  # for a field named ``date``

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.phones import mask_phone
from models.contacts import Contact, Household
from models.enums import (
    HouseholdStatus,
    Language,
    MessageDirection,
    MessageStatus,
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
)
from models.messages import Message
from models.places import Place
from models.teams import Team
from models.tickets import Ticket
from models.users import User
from ops_console.queries import sla_state


class PlaceRef(BaseModel):
    code: str
    name: str


class PlaceOut(PlaceRef):
    kind: PlaceKind
    parent: str | None = Field(None, description="code of the parent place")
    latitude: float | None = None
    longitude: float | None = None


class PlaceMatchOut(BaseModel):
    code: str
    name: str
    kind: PlaceKind
    confidence: float


class PlaceResolveOut(BaseModel):
    match: PlaceMatchOut | None


class TeamRef(BaseModel):
    slug: str
    name: str


class UserRef(BaseModel):
    id: int
    username: str
    display_name: str


class ContactRef(BaseModel):
    sender: str = Field(description="the contact's opaque public id (never the phone number)")
    phone_masked: str


class TicketCreatedOut(BaseModel):
    """The answer the bot's actions expect (docs/architecture.md)."""

    reference: str
    status: TicketStatus
    category: TicketCategory
    kind: TicketKind
    place: PlaceRef | None
    household_size: int | None


class TicketOut(BaseModel):
    reference: str
    status: TicketStatus
    category: TicketCategory
    kind: TicketKind = Field(
        description="need, complaint, positive_feedback, rumour, information_request or psea"
    )
    priority: TicketPriority
    sensitive: bool
    source: TicketSource
    language: Language | None
    summary: str | None
    description: str | None
    place: PlaceRef | None
    team: TeamRef | None
    assignee: UserRef | None
    contact: ContactRef | None
    household_size: int | None
    callback_ok: bool | None
    callback_time: str | None
    needs_review: bool
    sla_state: str | None = Field(description="breached, due_soon, on_time, or null when closed")
    first_response_due_at: datetime | None
    resolution_due_at: datetime | None
    merged_into: str | None
    created_at: datetime
    updated_at: datetime


class TicketListOut(BaseModel):
    tickets: list[TicketOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page")


class ContactTicketOut(BaseModel):
    reference: str
    category: TicketCategory
    status: TicketStatus
    updated_at: datetime


class ContactTicketsOut(BaseModel):
    tickets: list[ContactTicketOut]


class MessageOut(BaseModel):
    id: int
    direction: MessageDirection
    status: MessageStatus
    body: str | None
    ticket: str | None = Field(description="reference of the ticket it belongs to")
    segments: int | None
    created_at: datetime


class MessageListOut(BaseModel):
    messages: list[MessageOut]


class HouseholdOut(BaseModel):
    id: int
    sender: str | None = Field(description="the registering contact's opaque id")
    phones: list[str] = Field(
        default_factory=list,
        description="every contact reaching the household (opaque ids, registering one first)",
    )
    size: int | None
    place: PlaceRef | None
    origin: PlaceRef | None
    displaced_since: date | None
    status: HouseholdStatus | None = None
    merged_into: int | None = Field(None, description="the household this one was merged into")
    created_at: datetime


class MovementOut(BaseModel):
    id: int
    source: MovementSource
    date: calendar_date
    point: PlaceRef | None
    point_name: str | None
    origin: PlaceRef | None
    destination: PlaceRef
    people: int
    reason: MovementReason | None
    status: MovementStatus
    household: int | None
    # Where it was entered (console, api, sms; null for records from before it was kept).
    channel: MovementChannel | None = None
    created_at: datetime


class MovementListOut(BaseModel):
    flows: list[MovementOut]
    total_people: int


class HouseholdListOut(BaseModel):
    households: list[HouseholdOut]
    total_people: int


class OkOut(BaseModel):
    ok: bool = True


class ErrorOut(BaseModel):
    model_config = ConfigDict(json_schema_extra={"example": {"detail": "unknown sender"}})
    detail: str


class TicketLoader:
    """Fetches the places, teams, users, contacts and households of a batch of tickets in a
    handful of queries (a queue page of 50 tickets costs 6 queries, not 250)."""

    def __init__(self, session: Session) -> None:
        self.session = session
        self.places: dict[int, Place] = {}
        self.teams: dict[int, Team] = {}
        self.users: dict[int, User] = {}
        self.contacts: dict[int, Contact] = {}
        self.households: dict[int, Household] = {}
        self.merged: dict[int, str] = {}

    def load(self, tickets: Sequence[Ticket]) -> TicketLoader:
        def ids(values: Iterable[int | None], known: Mapping[int, object]) -> set[int]:
            return {value for value in values if value is not None and value not in known}

        place_ids = ids((t.place_id for t in tickets), self.places)
        if place_ids:
            for place in self.session.scalars(select(Place).where(Place.id.in_(place_ids))):
                self.places[place.id] = place
        team_ids = ids((t.team_id for t in tickets), self.teams)
        if team_ids:
            for team in self.session.scalars(select(Team).where(Team.id.in_(team_ids))):
                self.teams[team.id] = team
        user_ids = ids((t.assignee_id for t in tickets), self.users)
        if user_ids:
            for user in self.session.scalars(select(User).where(User.id.in_(user_ids))):
                self.users[user.id] = user
        contact_ids = ids((t.contact_id for t in tickets), self.contacts)
        if contact_ids:
            for contact in self.session.scalars(select(Contact).where(Contact.id.in_(contact_ids))):
                self.contacts[contact.id] = contact
        household_ids = ids((t.household_id for t in tickets), self.households)
        if household_ids:
            statement = select(Household).where(Household.id.in_(household_ids))
            for household in self.session.scalars(statement):
                self.households[household.id] = household
        merged_ids = ids((t.merged_into_id for t in tickets), self.merged)
        if merged_ids:
            pairs = select(Ticket.id, Ticket.reference).where(Ticket.id.in_(merged_ids))
            for ident, reference in self.session.execute(pairs):
                self.merged[ident] = reference
        return self

    def place(self, place_id: int | None) -> Place | None:
        if place_id is None:
            return None
        if place_id not in self.places:
            found = self.session.get(Place, place_id)
            if found is None:
                return None
            self.places[place_id] = found
        return self.places[place_id]

    def place_ref(self, place_id: int | None) -> PlaceRef | None:
        place = self.place(place_id)
        return None if place is None else PlaceRef(code=place.code, name=place.name)

    def household_size(self, ticket: Ticket) -> int | None:
        household = self.households.get(ticket.household_id or 0)
        return None if household is None else household.size

    def ticket_out(self, ticket: Ticket) -> TicketOut:
        team = self.teams.get(ticket.team_id or 0)
        assignee = self.users.get(ticket.assignee_id or 0)
        contact = self.contacts.get(ticket.contact_id or 0)
        return TicketOut(
            reference=ticket.reference,
            status=ticket.status,
            category=ticket.category,
            kind=ticket.kind,
            priority=ticket.priority,
            sensitive=ticket.sensitive,
            source=ticket.source,
            language=ticket.language,
            summary=ticket.summary,
            description=ticket.description,
            place=self.place_ref(ticket.place_id),
            team=None if team is None else TeamRef(slug=team.slug, name=team.name),
            assignee=None
            if assignee is None
            else UserRef(
                id=assignee.id, username=assignee.username, display_name=assignee.display_name
            ),
            contact=None
            if contact is None
            else ContactRef(
                sender=contact.public_id,
                phone_masked=mask_phone(contact.phone) if contact.phone else "",
            ),
            household_size=self.household_size(ticket),
            callback_ok=ticket.callback_ok,
            callback_time=ticket.callback_time,
            needs_review=ticket.needs_review,
            sla_state=sla_state(ticket),
            first_response_due_at=ticket.first_response_due_at,
            resolution_due_at=ticket.resolution_due_at,
            merged_into=self.merged.get(ticket.merged_into_id or 0),
            created_at=ticket.created_at,
            updated_at=ticket.updated_at,
        )

    def created_out(self, ticket: Ticket) -> TicketCreatedOut:
        return TicketCreatedOut(
            reference=ticket.reference,
            status=ticket.status,
            category=ticket.category,
            kind=ticket.kind,
            place=self.place_ref(ticket.place_id),
            household_size=self.household_size(ticket),
        )


def message_out(message: Message, references: dict[int, str]) -> MessageOut:
    return MessageOut(
        id=message.id,
        direction=message.direction,
        status=message.status,
        body=message.body,
        ticket=references.get(message.ticket_id or 0),
        segments=message.segments,
        created_at=message.created_at,
    )
