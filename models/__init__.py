"""SQLAlchemy 2 typed models, one module per aggregate. Importing this package registers all
tables on ``Base.metadata`` (Alembic and the tests rely on that)."""

from models.alerts import Alert, AlertAttempt, AlertChannel
from models.audit import AuditLog
from models.base import Base, utcnow
from models.broadcasts import Broadcast, BroadcastRecipient, BroadcastStatus, RecipientStatus
from models.channels import Channel, ChannelBreaker
from models.contacts import Contact, Household, HouseholdContact
from models.enums import (
    AlertKind,
    AlertStatus,
    ChannelType,
    IncidentStatus,
    Language,
    MessageDirection,
    MessageEncoding,
    MessageStatus,
    PlaceKind,
    TicketCategory,
    TicketPriority,
    TicketSource,
    TicketStatus,
    UserRole,
)
from models.messages import Call, Message
from models.movements import EnumeratorPhone, Movement
from models.outbox import OutboxTask
from models.places import Place, PlaceAlias
from models.referrals import Consent, PartnerOrganisation, PartnerService, Referral
from models.routing import RoutingDecision, RoutingRule, SlaTarget
from models.teams import Team, TeamMember
from models.tickets import Incident, Ticket, TicketEvent, TicketViewer
from models.users import ApiToken, LoginBackoff, SavedView, User
from models.ussd import UssdSession

__all__ = [
    "Alert",
    "AlertAttempt",
    "AlertChannel",
    "AlertKind",
    "AlertStatus",
    "ApiToken",
    "AuditLog",
    "Base",
    "Broadcast",
    "BroadcastRecipient",
    "BroadcastStatus",
    "Call",
    "Channel",
    "ChannelBreaker",
    "ChannelType",
    "Consent",
    "Contact",
    "EnumeratorPhone",
    "Household",
    "HouseholdContact",
    "Incident",
    "IncidentStatus",
    "Language",
    "LoginBackoff",
    "Message",
    "MessageDirection",
    "MessageEncoding",
    "MessageStatus",
    "Movement",
    "OutboxTask",
    "PartnerOrganisation",
    "PartnerService",
    "Place",
    "PlaceAlias",
    "PlaceKind",
    "RecipientStatus",
    "Referral",
    "RoutingDecision",
    "RoutingRule",
    "SavedView",
    "SlaTarget",
    "Team",
    "TeamMember",
    "Ticket",
    "TicketCategory",
    "TicketEvent",
    "TicketPriority",
    "TicketSource",
    "TicketStatus",
    "TicketViewer",
    "User",
    "UserRole",
    "UssdSession",
    "utcnow",
]

# Imported with the models, so that every process that writes these rows invalidates every
# process's cache of them (models.config_cache).
from models import config_cache

config_cache.watch(AlertChannel, Place, RoutingRule, SlaTarget, Team)
