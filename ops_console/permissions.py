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

PSEA tickets (``Ticket.kind == psea``: sexual exploitation and abuse by an aid worker) are
stricter still: visible only to the members of the PSEA focal-point team they are routed to
(``Team.handles_psea``), whatever their role — not to supervisors, not to protection officers
(unless an administrator set ``DEME_PSEA_SHARE_WITH_PROTECTION``), not to admins. Everyone
else gets 404 for their references and they are in no list, count or search; administrators
see one number (open PSEA cases, and those waiting for a PSEA team), never a place or a
reference, so that a response without focal points cannot lose them unnoticed.

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
)
from sqlalchemy.orm import Session

from core.settings import get_settings
from models.audit import AuditLog
from models.enums import TicketCategory, TicketKind, UserRole
from models.messages import Message
from models.referrals import Referral
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
    CANNED_MANAGE = "canned.manage"  # canned replies and macros (the leads of a shift)
    MESSAGES_READ = "messages.read"
    HOUSEHOLDS_READ = "households.read"
    HOUSEHOLDS_WRITE = "households.write"
    HOUSEHOLDS_MERGE = "households.merge"  # merging duplicate households (audited)
    FLOWS_RECORD = "flows.record"  # flow monitoring: enumerators' counts at entry points
    ENUMERATORS_MANAGE = "enumerators.manage"  # which phones may send FLOW SMS (audited)
    PLACES_READ = "places.read"
    CONTACTS_BOT = "contacts.bot"  # the bot's per-sender endpoints (status, opt-out)
    CONTACTS_ERASE = "contacts.erase"
    BROADCASTS = "broadcasts.send"  # create, preview, send and cancel SMS broadcasts
    CONSOLE = "console"  # may log in to the pages at all
    DIRECTORY_READ = "directory.read"  # the partner service directory
    DIRECTORY_MANAGE = "directory.manage"  # create and edit partners and their services
    REFERRALS = "referrals"  # refer a ticket one may work on, record the person's consent


_HUMAN_WORK = {
    Capability.TICKETS_READ,
    Capability.TICKETS_UPDATE,
    Capability.TICKETS_REPLY,
    Capability.PHONE_REVEAL,
    Capability.MESSAGES_READ,
    Capability.PLACES_READ,
    Capability.CONSOLE,
    # PSEA focal points are team members: they refer their cases (tickets.referrals).
    Capability.DIRECTORY_READ,
    Capability.REFERRALS,
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
    # Enumerators at flow-monitoring points have operator accounts (no role of their own:
    # the same people answer the hotline in the field offices).
    Capability.FLOWS_RECORD,
}

ROLE_CAPABILITIES: dict[UserRole, frozenset[Capability]] = {
    UserRole.ADMIN: frozenset(
        _HOTLINE
        | {
            Capability.EXPORT,
            Capability.ADMIN,
            Capability.AUDIT_LOG,
            Capability.CANNED_MANAGE,
            Capability.CONTACTS_ERASE,
            Capability.HOUSEHOLDS_MERGE,
            Capability.DIRECTORY_MANAGE,
            Capability.ENUMERATORS_MANAGE,
            Capability.BROADCASTS,
        }
    ),
    UserRole.SUPERVISOR: frozenset(
        _HOTLINE
        | {
            Capability.EXPORT,
            Capability.AUDIT_LOG,
            Capability.HOUSEHOLDS_MERGE,
            Capability.DIRECTORY_MANAGE,
            Capability.ENUMERATORS_MANAGE,
            Capability.BROADCASTS,
            Capability.CANNED_MANAGE,
        }
    ),
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
            Capability.FLOWS_RECORD,  # integrations (a KoBo or USSD bridge of a DTM team)
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


def psea_clause() -> ColumnElement[bool]:
    """True for PSEA tickets (``tickets.kind``, indexed)."""
    return Ticket.kind == TicketKind.PSEA


def is_psea(ticket: Ticket) -> bool:
    return ticket.kind == TicketKind.PSEA


def _psea_shared_with_protection() -> bool:
    return get_settings().psea_share_with_protection


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

    def __init__(
        self, user: User, team_ids: frozenset[int], psea_team_ids: frozenset[int] = frozenset()
    ) -> None:
        self.user = user
        self.team_ids = team_ids
        # The PSEA focal-point teams this person belongs to: the PSEA cases they may see.
        self.psea_team_ids = psea_team_ids if user.role != UserRole.SERVICE else frozenset()

    @classmethod
    def load(cls, session: Session, user: User) -> Viewer:
        from tickets.psea import psea_team_ids_of

        return cls(
            user,
            user_team_ids(session, user) if team_scoped(user) else frozenset(),
            # Machines never see a PSEA case: no query for the bot's every call.
            psea_team_ids_of(session, user.id) if user.role != UserRole.SERVICE else frozenset(),
        )

    @property
    def role(self) -> UserRole:
        return self.user.role

    def can(self, capability: Capability) -> bool:
        return can(self.user, capability)

    @property
    def sees_protection(self) -> bool:
        return sees_protection(self.user)

    @property
    def sees_psea(self) -> bool:
        """Whether any PSEA case may be visible to this viewer (a PSEA focal point, or a
        protection officer when an administrator shares PSEA cases with protection)."""
        return bool(self.psea_team_ids) or (self.sees_protection and _psea_shared_with_protection())

    @property
    def sees_sensitive(self) -> bool:
        """Whether some sensitive (unindexed) tickets are visible: search decrypts them."""
        return self.sees_protection or self.sees_psea

    def _non_psea_clause(self) -> ColumnElement[bool]:
        clause: ColumnElement[bool] = not_(psea_clause())
        if not self.sees_protection:
            clause = and_(clause, not_(protection_clause()))
        if team_scoped(self.user):
            if not self.team_ids:
                return false()
            clause = and_(clause, Ticket.team_id.in_(sorted(self.team_ids)))
        return clause

    def psea_ticket_clause(self) -> ColumnElement[bool]:
        """The PSEA tickets this viewer may see: those routed to their PSEA team."""
        if not self.can(Capability.TICKETS_READ):
            return false()
        if self.sees_protection and _psea_shared_with_protection():
            return psea_clause()
        if not self.psea_team_ids:
            return false()
        return and_(psea_clause(), Ticket.team_id.in_(sorted(self.psea_team_ids)))

    def ticket_clause(self) -> ColumnElement[bool]:
        """The SQL condition for tickets this viewer may list, count or open."""
        if not self.can(Capability.TICKETS_READ):
            return false()
        if not self.sees_psea:
            return self._non_psea_clause()
        return or_(self._non_psea_clause(), self.psea_ticket_clause())

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
            if self.sees_psea:
                return or_(Message.ticket_id.is_(None), linked)
            # Not linked (yet): part of a PSEA case when the sender has one.
            sender_has_psea_case = exists(
                select(Ticket.id).where(Ticket.contact_id == Message.contact_id, psea_clause())
            )
            return or_(and_(Message.ticket_id.is_(None), not_(sender_has_psea_case)), linked)
        # Not linked (yet) to a ticket: part of a protection case when the sender has one
        # (a PSEA case is sensitive, so this covers it too).
        sender_has_protection_case = exists(
            select(Ticket.id).where(Ticket.contact_id == Message.contact_id, protection_clause())
        )
        unlinked = and_(Message.ticket_id.is_(None), not_(sender_has_protection_case))
        return or_(unlinked, linked)

    def referral_clause(self) -> ColumnElement[bool]:
        """The referrals this viewer may list or open: those of tickets they see (a PSEA
        case's referral stays with the PSEA focal points, a protection case's with
        protection officers), never by reference guessing."""
        if not self.can(Capability.REFERRALS) and not self.can(Capability.DIRECTORY_MANAGE):
            return false()
        visible = self._ticket_visible(Referral.ticket_id)
        if not self.sees_psea:
            return and_(visible, Referral.psea.is_(False))
        return visible

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
        if is_psea(ticket):
            if self.sees_protection and _psea_shared_with_protection():
                return True
            return ticket.team_id is not None and ticket.team_id in self.psea_team_ids
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
