"""Every role rule of the console and the API, in one place.

Roles
- ``admin``: runs the platform (users, teams, routing, SLA targets, channels, audit log) and
  sees every non-protection ticket. Admins do **not** see protection tickets: the issue says
  only protection officers do, and an administrator who needs to can only get there by giving
  themself the protection-officer role, which is an audited change visible to everyone.
- ``supervisor``: every non-protection ticket, dashboard, exports, audit log.
- ``operator``: hotline work on every non-protection ticket: reply, assign, log calls, simulator.
- ``protection_officer``: everything operators see, plus protection (sensitive) tickets.
- ``team_member``: only the tickets routed to one of their teams (never protection ones).
- ``service``: machines (the bot's action server, integrators) through /api/v1 only.

Protection tickets (``sensitive`` or category ``protection``) are invisible to everyone else:
not listed, not counted (pages show one anonymous total), and fetching one by reference answers
404 exactly like a reference that does not exist. The service role may create and complete
tickets it holds the reference of (the bot fills in a protection report step by step) and read
the status of a sender's own tickets, but cannot list or read protection content.

What belongs to a ticket is filtered exactly like the ticket, on every path (API, pages):
- messages (``Viewer.message_clause``): a message linked to a ticket (``Message.ticket_id``:
  the bot's replies and the sender's messages of that conversation are linked by the
  dispatcher) is visible when the ticket is; an unlinked message of a sender who has a
  protection case is treated as part of it (protection officers only);
- audit lines (``Viewer.audit_clause``): a line about a ticket (``AuditLog.ticket_id``) is
  visible when the ticket is.
"""

from __future__ import annotations

from enum import StrEnum

from sqlalchemy import (
    ColumnElement,
    SQLColumnExpression,
    and_,
    exists,
    false,
    not_,
    or_,
    select,
    true,
)
from sqlalchemy.orm import Session

from models.audit import AuditLog
from models.enums import TicketCategory, UserRole
from models.messages import Message
from models.teams import TeamMember
from models.tickets import Ticket, TicketEvent
from models.users import User


class Capability(StrEnum):
    TICKETS_READ = "tickets.read"
    TICKETS_CREATE = "tickets.create"
    TICKETS_UPDATE = "tickets.update"
    TICKETS_REPLY = "tickets.reply"
    TICKETS_MERGE = "tickets.merge"
    CALLS_LOG = "calls.log"
    PHONE_REVEAL = "phone.reveal"
    DASHBOARD = "dashboard.view"
    REGISTRY = "registry.view"
    EXPORT = "export"
    SIMULATOR = "simulator"
    ADMIN = "admin"
    AUDIT_LOG = "audit.view"
    MESSAGES_READ = "messages.read"
    HOUSEHOLDS_READ = "households.read"
    HOUSEHOLDS_WRITE = "households.write"
    PLACES_READ = "places.read"
    CONTACTS_BOT = "contacts.bot"  # the bot's per-sender endpoints (status, opt-out)
    CONTACTS_ERASE = "contacts.erase"
    CONSOLE = "console"  # may log in to the pages at all


_HUMAN_WORK = {
    Capability.TICKETS_READ,
    Capability.TICKETS_UPDATE,
    Capability.TICKETS_REPLY,
    Capability.PHONE_REVEAL,
    Capability.MESSAGES_READ,
    Capability.PLACES_READ,
    Capability.CONSOLE,
}
_HOTLINE = _HUMAN_WORK | {
    Capability.TICKETS_CREATE,
    Capability.TICKETS_MERGE,
    Capability.CALLS_LOG,
    Capability.DASHBOARD,
    Capability.REGISTRY,
    Capability.SIMULATOR,
    Capability.HOUSEHOLDS_READ,
    Capability.HOUSEHOLDS_WRITE,
}

ROLE_CAPABILITIES: dict[UserRole, frozenset[Capability]] = {
    UserRole.ADMIN: frozenset(
        _HOTLINE
        | {
            Capability.EXPORT,
            Capability.ADMIN,
            Capability.AUDIT_LOG,
            Capability.CONTACTS_ERASE,
        }
    ),
    UserRole.SUPERVISOR: frozenset(_HOTLINE | {Capability.EXPORT, Capability.AUDIT_LOG}),
    UserRole.OPERATOR: frozenset(_HOTLINE),
    UserRole.PROTECTION_OFFICER: frozenset(_HOTLINE | {Capability.EXPORT}),
    UserRole.TEAM_MEMBER: frozenset(_HUMAN_WORK),
    UserRole.SERVICE: frozenset(
        {
            Capability.TICKETS_READ,
            Capability.TICKETS_CREATE,
            Capability.TICKETS_UPDATE,
            Capability.HOUSEHOLDS_READ,
            Capability.HOUSEHOLDS_WRITE,
            Capability.PLACES_READ,
            Capability.CONTACTS_BOT,
            Capability.CONTACTS_ERASE,
        }
    ),
}


def can(user: User, capability: Capability) -> bool:
    return capability in ROLE_CAPABILITIES.get(user.role, frozenset())


def sees_protection(user: User) -> bool:
    return user.role == UserRole.PROTECTION_OFFICER


def team_scoped(user: User) -> bool:
    return user.role == UserRole.TEAM_MEMBER


def user_team_ids(session: Session, user: User) -> frozenset[int]:
    rows = session.scalars(select(TeamMember.team_id).where(TeamMember.user_id == user.id))
    return frozenset(rows)


def protection_clause() -> ColumnElement[bool]:
    """True for protection tickets. The flag alone is enough in SQL: triage makes every
    protection-category ticket sensitive and re-categorising to protection sets it too
    (tickets.triage / tickets.workflow), and a single column keeps the queue's indexes usable
    (an OR with the category turned the 1M-ticket queue into a sequential scan)."""
    return Ticket.sensitive.is_(True)


def is_protection(ticket: Ticket) -> bool:
    return bool(ticket.sensitive) or ticket.category == TicketCategory.PROTECTION


# The bot took over a ticket the keyword fallback had made from the same inbound message.
BOT_JOINED_EVENT = "bot_joined"


def created_by(session: Session, ticket: Ticket, user: User) -> bool:
    """Whether ``user`` (a service account, through any of its tokens) created ``ticket``
    (the actor of its "created" timeline event) or took it over from the fallback (of its
    "bot_joined" event, written when the bot's create call for the same message returned
    the fallback's ticket)."""
    return (
        session.scalar(
            select(TicketEvent.id)
            .where(
                TicketEvent.ticket_id == ticket.id,
                TicketEvent.kind.in_(("created", BOT_JOINED_EVENT)),
                TicketEvent.actor_user_id == user.id,
            )
            .limit(1)
        )
        is not None
    )


class Viewer:
    """A user plus what is needed to decide visibility without a query per ticket."""

    def __init__(self, user: User, team_ids: frozenset[int]) -> None:
        self.user = user
        self.team_ids = team_ids

    @classmethod
    def load(cls, session: Session, user: User) -> Viewer:
        return cls(user, user_team_ids(session, user) if team_scoped(user) else frozenset())

    @property
    def role(self) -> UserRole:
        return self.user.role

    def can(self, capability: Capability) -> bool:
        return can(self.user, capability)

    @property
    def sees_protection(self) -> bool:
        return sees_protection(self.user)

    def ticket_clause(self) -> ColumnElement[bool]:
        """The SQL condition for tickets this viewer may list, count or open."""
        if not self.can(Capability.TICKETS_READ):
            return false()
        clause: ColumnElement[bool] = true()
        if not self.sees_protection:
            clause = and_(clause, not_(protection_clause()))
        if team_scoped(self.user):
            if not self.team_ids:
                return false()
            clause = and_(clause, Ticket.team_id.in_(sorted(self.team_ids)))
        return clause

    def _ticket_visible(self, ticket_id: SQLColumnExpression[int | None]) -> ColumnElement[bool]:
        """True when the ticket with this id (a correlated column) is one this viewer sees."""
        return exists(select(Ticket.id).where(Ticket.id == ticket_id, self.ticket_clause()))

    def message_clause(self) -> ColumnElement[bool]:
        """The SQL condition for messages this viewer may read (any listing of messages)."""
        if not self.can(Capability.MESSAGES_READ) or not self.can(Capability.TICKETS_READ):
            return false()
        linked = and_(Message.ticket_id.is_not(None), self._ticket_visible(Message.ticket_id))
        if team_scoped(self.user):
            return linked  # team members read only the conversations of their teams' tickets
        if self.sees_protection:
            return or_(Message.ticket_id.is_(None), linked)
        # Not linked (yet) to a ticket: part of a protection case when the sender has one.
        sender_has_protection_case = exists(
            select(Ticket.id).where(Ticket.contact_id == Message.contact_id, protection_clause())
        )
        unlinked = and_(Message.ticket_id.is_(None), not_(sender_has_protection_case))
        return or_(unlinked, linked)

    def audit_clause(self) -> ColumnElement[bool]:
        """The SQL condition for audit lines this viewer may read: those about a ticket only
        when the ticket is visible to them."""
        if not self.can(Capability.AUDIT_LOG):
            return false()
        return or_(AuditLog.ticket_id.is_(None), self._ticket_visible(AuditLog.ticket_id))

    def without_legacy_references(
        self, session: Session, entries: list[AuditLog]
    ) -> list[AuditLog]:
        """Lines written before ``audit_log.ticket_id`` existed named the ticket of a
        ``phone.revealed`` by its reference in ``details.reason``: leave out those naming a
        ticket this viewer may not see (rows are append-only, they cannot be rewritten)."""
        reasons = {
            str(entry.details.get("reason"))
            for entry in entries
            if entry.ticket_id is None and isinstance(entry.details, dict)
            if isinstance(entry.details.get("reason"), str)
        }
        if not reasons:
            return entries
        hidden = set(
            session.scalars(
                select(Ticket.reference).where(
                    Ticket.reference.in_(sorted(reasons)), not_(self.ticket_clause())
                )
            )
        )
        return [
            entry
            for entry in entries
            if entry.ticket_id is not None
            or not isinstance(entry.details, dict)
            or entry.details.get("reason") not in hidden
        ]

    def may_see(self, ticket: Ticket) -> bool:
        if not self.can(Capability.TICKETS_READ):
            return False
        if is_protection(ticket) and not self.sees_protection:
            return False
        return not (team_scoped(self.user) and ticket.team_id not in self.team_ids)

    def may_act_by_reference(self, session: Session, ticket: Ticket) -> bool:
        """The bot may complete the tickets it created itself (including protection ones:
        it fills in the report step by step) — not any reference it can guess, so a probe
        answers exactly like a reference that does not exist. People follow the normal
        visibility rules."""
        if not self.can(Capability.TICKETS_UPDATE):
            return False
        if self.role == UserRole.SERVICE:
            return created_by(session, ticket, self.user)
        return self.may_see(ticket)

    def may_assign_to(self, assignee: User, assignee_team_ids: frozenset[int]) -> bool:
        """Team members may only hand work to people of their own teams."""
        if not assignee.active or assignee.role == UserRole.SERVICE:
            return False
        if team_scoped(self.user):
            return bool(self.team_ids & assignee_team_ids)
        return True
