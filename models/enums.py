"""Enumerations stored as short strings (portable across PostgreSQL and SQLite)."""

from __future__ import annotations

from enum import StrEnum


class Language(StrEnum):
    FRENCH = "fr"
    BAMBARA = "bm"
    ENGLISH = "en"


class PlaceKind(StrEnum):
    COUNTRY = "country"
    REGION = "region"
    CERCLE = "cercle"
    COMMUNE = "commune"
    SITE = "site"


class ChannelType(StrEnum):
    TWILIO = "twilio"
    AFRICASTALKING = "africastalking"
    HTTP = "http"  # a generic aggregator (Orange Mali / Moov Africa Malitel via local aggregators)
    SIMULATOR = "simulator"  # the console's phone simulator, same code path as real traffic


class MessageDirection(StrEnum):
    INBOUND = "in"
    OUTBOUND = "out"


class MessageStatus(StrEnum):
    # inbound
    RECEIVED = "received"
    HANDLED = "handled"
    IGNORED = "ignored"  # flood control, opted-out keyword traffic, etc.
    # outbound, in the order a status may only move forward
    PENDING = "pending"
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    DELIVERED = "delivered"
    READ = "read"
    UNDELIVERED = "undelivered"
    FAILED = "failed"
    UNKNOWN = "unknown"  # ambiguous failure: may have gone out, never resent automatically


class MessageEncoding(StrEnum):
    GSM7 = "gsm7"
    UCS2 = "ucs2"


class TicketCategory(StrEnum):
    HEALTH = "health"
    WASH = "wash"
    SHELTER_NFI = "shelter_nfi"
    # Food needs: not one of the response's four sectors here, but not "other" either —
    # the hotline refers them to the food-security partners (issue 14). Stored as VARCHAR
    # (models.base.str_enum), so the new value needs no migration.
    FOOD = "food"
    PROTECTION = "protection"
    OTHER = "other"


class TicketKind(StrEnum):
    """What kind of feedback a ticket is (IFRC community-feedback practice, issue 15), apart
    from its sector (``TicketCategory``). ``PSEA`` is sexual exploitation and abuse by an aid
    worker: always protection, sensitive and urgent, seen only by the PSEA focal points."""

    NEED = "need"
    COMPLAINT = "complaint"
    POSITIVE_FEEDBACK = "positive_feedback"
    RUMOUR = "rumour"
    INFORMATION_REQUEST = "information_request"
    PSEA = "psea"


class TicketPriority(StrEnum):
    LOW = "low"
    NORMAL = "normal"
    HIGH = "high"
    URGENT = "urgent"

    @property
    def rank(self) -> int:
        return _PRIORITY_RANK[self]


_PRIORITY_RANK = {
    TicketPriority.LOW: 0,
    TicketPriority.NORMAL: 1,
    TicketPriority.HIGH: 2,
    TicketPriority.URGENT: 3,
}


class TicketStatus(StrEnum):
    NEW = "new"
    TRIAGED = "triaged"
    ASSIGNED = "assigned"
    IN_PROGRESS = "in_progress"
    WAITING = "waiting"  # waiting on the sender: the SLA clock pauses
    # A sensitive or PSEA case someone asked to close: a second person (the team's lead)
    # approves (it then becomes RESOLVED or CLOSED, as asked) or sends it back (issue 15).
    AWAITING_APPROVAL = "awaiting_approval"
    RESOLVED = "resolved"
    CLOSED = "closed"


class TicketSource(StrEnum):
    SMS = "sms"
    USSD = "ussd"
    CALL = "call"
    MISSED_CALL = "missed_call"
    CONSOLE = "console"
    API = "api"


class UserRole(StrEnum):
    ADMIN = "admin"
    SUPERVISOR = "supervisor"
    OPERATOR = "operator"
    PROTECTION_OFFICER = "protection_officer"
    TEAM_MEMBER = "team_member"
    SERVICE = "service"  # machine users (the bot's action server, integrations)


class AlertKind(StrEnum):
    SMS = "sms"
    EMAIL = "email"
    WEBHOOK = "webhook"


class AlertStatus(StrEnum):
    PENDING = "pending"
    SENDING = "sending"
    DELIVERED = "delivered"
    FAILED = "failed"  # retries exhausted, visible in the console


class IncidentStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"


class HouseholdStatus(StrEnum):
    """The DTM's population categories in Mali: displaced people (IDPs), displaced people who
    returned home, and repatriates (Malians back from abroad); ``other`` for the rest."""

    DISPLACED = "displaced"
    RETURNEE = "returnee"
    REPATRIATE = "repatriate"
    OTHER = "other"


class MovementStatus(StrEnum):
    """Who a movement counts, as flow monitoring records it."""

    DISPLACED = "displaced"
    RETURNING = "returning"
    IN_TRANSIT = "in_transit"


class MovementReason(StrEnum):
    CONFLICT = "conflict"  # conflict, insecurity, violence
    DISASTER = "disaster"  # floods, drought
    ECONOMIC = "economic"  # work, trade, livelihood
    FAMILY = "family"  # joining family
    SERVICES = "services"  # health care, school, aid
    SEASONAL = "seasonal"  # transhumance, seasonal work
    OTHER = "other"


class MovementChannel(StrEnum):
    """Where a flow-monitoring count was entered."""

    CONSOLE = "console"
    API = "api"
    SMS = "sms"
    USSD = "ussd"


class MovementSource(StrEnum):
    """How a movement was recorded: counted by an enumerator at a flow-monitoring point, or
    told by a registered household ("we moved to …")."""

    FLOW_MONITORING = "flow_monitoring"
    HOUSEHOLD = "household"


class ConsentPurpose(StrEnum):
    """What a person's consent is for (issue 15): asked and stored per purpose."""

    CALL_BACK = "call_back"
    SHARE_WITH_PARTNER = "share_with_partner"


class ConsentSource(StrEnum):
    """How the consent was given: by SMS, on the USSD menu, or told to an operator on a call."""

    SMS = "sms"
    USSD = "ussd"
    OPERATOR = "operator"


class ReferralMethod(StrEnum):
    """How a partner organisation takes referrals."""

    EMAIL = "email"
    SMS = "sms"
    LINK = "link"  # a signed, expiring partner page (no account)


class ReferralStatus(StrEnum):
    SENT = "sent"
    ACCEPTED = "accepted"
    DECLINED = "declined"
    COMPLETED = "completed"
