"""Referral pathways and consent per purpose (issue 15): the one home of their rules.

- **Consent** is stored per purpose (``call_back``, ``share_with_partner``), with who, when
  and how (SMS, USSD, told to an operator on a call); the newest answer counts, and "no" is
  respected everywhere: no referral is made, no call-back is offered.
- **A referral** of a ticket to a partner service needs the person's consent to share
  (``share_with_partner`` = yes) first; it shares a snapshot of only the fields the
  organisation's data-sharing agreement allows (``PartnerOrganisation.shared_fields``), and for
  a protection or PSEA case only the minimum (``PROTECTION_MINIMUM``) of those. A PSEA case
  may be referred only by a member of the PSEA focal-point team it is routed to.
- **The partner link** is ``/partner/referral?token=<id>.<expiry>.<signature>``: an HMAC
  (SHA-256, key derived from ``DEME_SECRET_KEY``) over the referral's id, the expiry and a
  nonce stored with the referral, so a link names one referral only, cannot be edited into
  another's or made to last longer, and is voided by issuing a new one. It carries the token
  in the query string, which the access log never writes.

Every change writes a timeline event on the ticket (``referral_*``, ``consent_recorded``) and
an audit line (ids and field names only, never what was shared).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from core.settings import get_settings
from models.audit import record_audit
from models.base import utcnow
from models.contacts import Contact, Household
from models.enums import ConsentPurpose, ConsentSource, ReferralMethod, ReferralStatus
from models.places import Place
from models.referrals import Consent, PartnerOrganisation, PartnerService, Referral
from models.tickets import Ticket
from tickets.psea import is_psea
from tickets.timeline import record_event

# The ticket fields a data-sharing agreement may allow, in the order the partner sees them.
FIELDS = ("category", "place", "household_size", "language", "summary", "phone")
# A protection or PSEA case: at most these, whatever the agreement allows (the partner then
# reaches the person through the referring officer, never directly).
PROTECTION_MINIMUM = ("category", "place", "language")

LINK_LIFETIME = timedelta(days=14)
# The follow-up clock: when the referrer checks on a referral the partner has not answered
# (sent), or has accepted but not completed.
FOLLOW_UP_AFTER = {
    ReferralStatus.SENT: timedelta(days=2),
    ReferralStatus.ACCEPTED: timedelta(days=7),
}
MAX_NOTE_LENGTH = 1000


class ReferralError(ValueError):
    """A referral or consent cannot be recorded; ``field`` names the input, ``detail`` is a
    catalog message id (English) the console translates."""

    def __init__(self, field: str, detail: str) -> None:
        super().__init__(detail)
        self.field = field
        self.detail = detail


class LinkRefused(Exception):
    """A partner link that is not (or no longer) valid: ``status`` 403 (forged, edited,
    voided) or 410 (expired)."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


# --- consent ------------------------------------------------------------------------------


def latest_consent(
    session: Session, contact_id: int | None, purpose: ConsentPurpose
) -> Consent | None:
    if contact_id is None:
        return None
    return session.scalar(
        select(Consent)
        .where(Consent.contact_id == contact_id, Consent.purpose == purpose)
        .order_by(Consent.id.desc())
        .limit(1)
    )


def consents_of(session: Session, contact_id: int | None) -> dict[ConsentPurpose, Consent]:
    """The answer that counts for each purpose the person was asked about."""
    return {
        purpose: consent
        for purpose in ConsentPurpose
        if (consent := latest_consent(session, contact_id, purpose)) is not None
    }


def refused(session: Session, contact_id: int | None, purpose: ConsentPurpose) -> bool:
    """Whether the person said no to ``purpose`` (their newest answer)."""
    consent = latest_consent(session, contact_id, purpose)
    return consent is not None and not consent.given


def record_consent(
    session: Session,
    *,
    contact_id: int,
    purpose: ConsentPurpose,
    given: bool,
    source: ConsentSource,
    actor_label: str,
    actor_user_id: int | None = None,
    ticket: Ticket | None = None,
    now: datetime | None = None,
) -> Consent:
    """Store one answer; on the ticket it was asked about, a timeline event. A "no" to
    call-backs also marks that ticket "do not call back"."""
    at = now or utcnow()
    consent = Consent(
        contact_id=contact_id,
        purpose=purpose,
        given=given,
        source=source,
        recorded_by_user_id=actor_user_id,
        ticket_id=ticket.id if ticket is not None else None,
        created_at=at,
    )
    session.add(consent)
    session.flush()
    if ticket is not None:
        if purpose == ConsentPurpose.CALL_BACK:
            ticket.callback_ok = given
        record_event(
            session,
            ticket,
            "consent_recorded",
            actor_label=actor_label,
            actor_user_id=actor_user_id,
            now=at,
            purpose=purpose.value,
            given=given,
            source=source.value,
        )
    record_audit(
        session,
        action="consent.recorded",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        object_type="consent",
        object_id=consent.id,
        ticket_id=ticket.id if ticket is not None else None,
        purpose=purpose.value,
        given=given,
        source=source.value,
    )
    return consent


# --- the directory ------------------------------------------------------------------------


def place_lineage(session: Session, place_id: int | None) -> set[str]:
    """The codes of a place and of every place above it (current and former parents)."""
    codes: set[str] = set()
    pending = [place_id] if place_id else []
    seen: set[int] = set()
    while pending:
        current = pending.pop()
        if current in seen:
            continue
        seen.add(current)
        place = session.get(Place, current)
        if place is None:
            continue
        codes.add(place.code)
        pending.extend(p for p in (place.parent_id, place.former_parent_id) if p)
    return codes


def matching_services(session: Session, ticket: Ticket) -> list[PartnerService]:
    """Active services of active organisations for the ticket's category that serve its
    place (a service for a cercle serves its communes and sites). A ticket with no place
    matches only services for the whole country."""
    lineage = place_lineage(session, ticket.place_id)
    if not lineage:
        lineage = set(session.scalars(select(Place.code).where(Place.parent_id.is_(None))))
    rows = session.scalars(
        select(PartnerService)
        .join(PartnerOrganisation, PartnerOrganisation.id == PartnerService.organisation_id)
        .where(
            PartnerService.active.is_(True),
            PartnerOrganisation.active.is_(True),
            PartnerService.category == ticket.category,
        )
        .order_by(PartnerOrganisation.name, PartnerService.name, PartnerService.id)
    )
    return [service for service in rows if lineage & set(service.place_codes or [])]


# The languages a service may list: the hotline's three and Mali's other main ones.
SERVICE_LANGUAGES = ("fr", "bm", "en", "ff", "ses", "tmh", "ar")


class DirectoryError(ValueError):
    """Every problem of a directory form at once: field → catalog message id (English)."""

    def __init__(self, problems: dict[str, str]) -> None:
        super().__init__("; ".join(f"{field}: {detail}" for field, detail in problems.items()))
        self.problems = problems


@dataclass(frozen=True)
class OrganisationInput:
    name: str
    referral_method: str
    shared_fields: list[str]
    contact_email: str | None = None
    contact_phone: str | None = None
    active: bool = True


@dataclass(frozen=True)
class ServiceInput:
    organisation_id: int
    name: str
    category: str
    place_codes: list[str]
    hours: str | None = None
    languages: list[str] | None = None
    focal_point: str | None = None
    active: bool = True


def _text(value: str | None, limit: int) -> str | None:
    cleaned = (value or "").strip()
    return cleaned[:limit] if cleaned else None


def save_organisation(
    session: Session,
    organisation: PartnerOrganisation | None,
    data: OrganisationInput,
    *,
    actor_label: str,
    actor_user_id: int | None,
) -> PartnerOrganisation:
    """Create (``organisation`` None) or update a partner organisation; DirectoryError naming
    every bad field, nothing written."""
    from core.phones import normalize_phone

    problems: dict[str, str] = {}
    name = _text(data.name, 160)
    if not name:
        problems["name"] = "Give the organisation's name."
    else:
        clash = session.scalar(
            select(PartnerOrganisation.id).where(PartnerOrganisation.name == name)
        )
        if clash is not None and (organisation is None or clash != organisation.id):
            problems["name"] = "An organisation with this name is already in the directory."
    try:
        method = ReferralMethod(data.referral_method)
    except ValueError:
        problems["referral_method"] = "Choose how the organisation takes referrals."
        method = ReferralMethod.LINK
    email = _text(data.contact_email, 254)
    if email and ("@" not in email or " " in email or email.startswith("@") or email.endswith("@")):
        problems["contact_email"] = "Not an email address."
    phone: str | None = None
    if _text(data.contact_phone, 40):
        try:
            phone = normalize_phone(str(data.contact_phone))
        except ValueError:
            problems["contact_phone"] = (
                "Not a phone number: type it like 76 12 34 56 or +223 76 12 34 56."
            )
    if method == ReferralMethod.EMAIL and not email and "contact_email" not in problems:
        problems["contact_email"] = "Referrals by email need the organisation's email address."
    if method == ReferralMethod.SMS and not phone and "contact_phone" not in problems:
        problems["contact_phone"] = "Referrals by SMS need the organisation's phone number."
    unknown = [field for field in data.shared_fields if field not in FIELDS]
    if unknown:
        problems["shared_fields"] = "Unknown field to share."
    if problems:
        raise DirectoryError(problems)
    assert name is not None
    created = organisation is None
    if organisation is None:
        organisation = PartnerOrganisation(name=name, referral_method=method)
        session.add(organisation)
    organisation.name = name
    organisation.referral_method = method
    organisation.contact_email = email
    organisation.contact_phone = phone
    organisation.shared_fields = [field for field in FIELDS if field in data.shared_fields]
    organisation.active = data.active
    session.flush()
    record_audit(
        session,
        action="partner.created" if created else "partner.updated",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        object_type="partner_organisation",
        object_id=organisation.id,
        shared_fields=organisation.shared_fields,
        active=organisation.active,
    )
    return organisation


def save_service(
    session: Session,
    service: PartnerService | None,
    data: ServiceInput,
    *,
    actor_label: str,
    actor_user_id: int | None,
) -> PartnerService:
    """Create or update a partner service; DirectoryError naming every bad field."""
    from models.enums import TicketCategory

    problems: dict[str, str] = {}
    if session.get(PartnerOrganisation, data.organisation_id) is None:
        problems["organisation"] = "Choose the organisation."
    name = _text(data.name, 160)
    if not name:
        problems["name"] = "Give the service's name."
    try:
        category = TicketCategory(data.category)
    except ValueError:
        problems["category"] = "Choose the sector."
        category = TicketCategory.OTHER
    codes = list(dict.fromkeys(code.strip() for code in data.place_codes if code.strip()))
    known = (
        set(session.scalars(select(Place.code).where(Place.code.in_(codes)))) if codes else set()
    )
    if not codes:
        problems["places"] = "Name at least one place the service covers."
    elif set(codes) - known:
        problems["places"] = "No place by that name: pick one from the list."
    languages = list(dict.fromkeys(data.languages or []))
    if any(language not in SERVICE_LANGUAGES for language in languages):
        problems["languages"] = "Unknown language."
    if problems:
        raise DirectoryError(problems)
    assert name is not None
    created = service is None
    if service is None:
        service = PartnerService(organisation_id=data.organisation_id, name=name, category=category)
        session.add(service)
    service.organisation_id = data.organisation_id
    service.name = name
    service.category = category
    service.place_codes = codes
    service.hours = _text(data.hours, 160)
    service.languages = languages
    service.focal_point = _text(data.focal_point, 160)
    service.active = data.active
    session.flush()
    record_audit(
        session,
        action="partner_service.created" if created else "partner_service.updated",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        object_type="partner_service",
        object_id=service.id,
        organisation_id=service.organisation_id,
        active=service.active,
    )
    return service


# --- referrals ----------------------------------------------------------------------------


def allowed_fields(organisation: PartnerOrganisation, ticket: Ticket) -> list[str]:
    """What this organisation may receive about this ticket."""
    agreed = [field for field in FIELDS if field in (organisation.shared_fields or [])]
    if ticket.sensitive or is_psea(ticket):
        return [field for field in agreed if field in PROTECTION_MINIMUM]
    return agreed


def _snapshot(session: Session, ticket: Ticket, fields: list[str]) -> dict[str, Any]:
    values: dict[str, Any] = {}
    for field in fields:
        if field == "category":
            values[field] = ticket.category.value
        elif field == "place":
            place = session.get(Place, ticket.place_id) if ticket.place_id else None
            if place is not None:
                values[field] = {"code": place.code, "name": place.name}
        elif field == "household_size":
            household = session.get(Household, ticket.household_id) if ticket.household_id else None
            if household is not None and household.size:
                values[field] = household.size
        elif field == "language":
            if ticket.language is not None:
                values[field] = ticket.language.value
        elif field == "summary":
            text = ticket.summary or ticket.description
            if text:
                values[field] = text
        elif field == "phone":
            contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
            if contact is not None and contact.phone:
                values[field] = contact.phone
    return values


@dataclass(frozen=True)
class Referrer:
    """Who makes a referral and whether they are a focal point of the ticket's PSEA team."""

    user_id: int
    label: str
    psea_team_ids: frozenset[int] = frozenset()


def create_referral(
    session: Session,
    ticket: Ticket,
    service: PartnerService,
    referrer: Referrer,
    *,
    now: datetime | None = None,
) -> Referral:
    """Refer ``ticket`` to ``service``; ReferralError (nothing written) when it may not be."""
    at = now or utcnow()
    if is_psea(ticket) and (ticket.team_id is None or ticket.team_id not in referrer.psea_team_ids):
        raise ReferralError("service", "Only a PSEA focal point may refer a PSEA case.")
    organisation = session.get(PartnerOrganisation, service.organisation_id)
    if organisation is None or not organisation.active or not service.active:
        raise ReferralError("service", "This service is not in the directory any more.")
    if service.id not in {s.id for s in matching_services(session, ticket)}:
        raise ReferralError(
            "service", "This service does not cover the ticket's category and place."
        )
    if ticket.contact_id is None:
        raise ReferralError(
            "consent", "No consent to share: the person is unknown, so nothing can be shared."
        )
    consent = latest_consent(session, ticket.contact_id, ConsentPurpose.SHARE_WITH_PARTNER)
    if consent is None:
        raise ReferralError(
            "consent",
            "No consent to share: ask the person first and record their answer.",
        )
    if not consent.given:
        raise ReferralError(
            "consent",
            "The person said no to sharing their information with a partner: "
            "the referral was not made and nothing was shared.",
        )
    fields = allowed_fields(organisation, ticket)
    referral = Referral(
        ticket_id=ticket.id,
        service_id=service.id,
        organisation_id=organisation.id,
        consent_id=consent.id,
        shared=_snapshot(session, ticket, fields),
        sensitive=bool(ticket.sensitive),
        psea=is_psea(ticket),
        status=ReferralStatus.SENT,
        follow_up_due_at=at + FOLLOW_UP_AFTER[ReferralStatus.SENT],
        created_by_user_id=referrer.user_id,
        link_nonce=secrets.token_hex(16),
        link_expires_at=at + LINK_LIFETIME,
        created_at=at,
        updated_at=at,
    )
    session.add(referral)
    session.flush()
    record_event(
        session,
        ticket,
        "referral_sent",
        actor_label=referrer.label,
        actor_user_id=referrer.user_id,
        now=at,
        referral=referral.id,
        organisation=organisation.name,
        service=service.name,
    )
    record_audit(
        session,
        action="referral.created",
        actor_label=referrer.label,
        actor_user_id=referrer.user_id,
        object_type="referral",
        object_id=referral.id,
        ticket_id=ticket.id,
        organisation_id=organisation.id,
        service_id=service.id,
        fields=sorted(referral.shared or {}),
    )
    return referral


def shared_items(referral: Referral) -> list[tuple[str, Any]]:
    """The shared fields in the partner's order (what the partner page shows)."""
    shared = referral.shared or {}
    return [(field, shared[field]) for field in FIELDS if field in shared]


# --- the partner link ---------------------------------------------------------------------


def _link_key() -> bytes:
    secret = get_settings().secret_key.get_secret_value().encode("utf-8")
    return hmac.new(secret, b"deme-referral-link:v1", hashlib.sha256).digest()


def _signature(referral_id: int, expires: int, nonce: str) -> str:
    message = f"{referral_id}.{expires}.{nonce}".encode("ascii")
    digest = hmac.new(_link_key(), message, hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def link_token(referral: Referral) -> str:
    expires = int(referral.link_expires_at.timestamp())
    return f"{referral.id}.{expires}.{_signature(referral.id, expires, referral.link_nonce)}"


def link_path(referral: Referral) -> str:
    return f"/partner/referral?token={link_token(referral)}"


def link_url(referral: Referral) -> str:
    return get_settings().public_url.rstrip("/") + link_path(referral)


def renew_link(
    session: Session,
    referral: Referral,
    *,
    actor_label: str,
    actor_user_id: int | None,
    now: datetime | None = None,
) -> None:
    """A fresh link (another LINK_LIFETIME); every earlier link of this referral stops working."""
    at = now or utcnow()
    referral.link_nonce = secrets.token_hex(16)
    referral.link_expires_at = at + LINK_LIFETIME
    record_audit(
        session,
        action="referral.link_renewed",
        actor_label=actor_label,
        actor_user_id=actor_user_id,
        object_type="referral",
        object_id=referral.id,
        ticket_id=referral.ticket_id,
    )


def referral_for_link(
    session: Session, token: str | None, *, now: datetime | None = None
) -> Referral:
    """The one referral a link names; LinkRefused otherwise (403 forged, edited or voided;
    410 expired — only said once the signature is genuine)."""
    parts = (token or "").split(".")
    if (
        len(parts) != 3
        or not (parts[0].isascii() and parts[0].isdigit())
        or not (parts[1].isascii() and parts[1].isdigit())
        or len(parts[0]) > 10
        or len(parts[1]) > 12
    ):
        raise LinkRefused(403, "malformed")
    referral_id, expires, signature = int(parts[0]), int(parts[1]), parts[2]
    referral = session.get(Referral, referral_id)
    if referral is None:
        raise LinkRefused(403, "unknown")
    expected = _signature(referral_id, expires, referral.link_nonce)
    if not hmac.compare_digest(expected.encode("ascii"), signature.encode("ascii", "replace")):
        raise LinkRefused(403, "signature")
    if expires != int(referral.link_expires_at.timestamp()):
        raise LinkRefused(403, "voided")
    if datetime.fromtimestamp(expires, UTC) <= (now or utcnow()):
        raise LinkRefused(410, "expired")
    return referral


def audit_partner_view(
    session: Session, referral: Referral, *, outcome: str, now: datetime | None = None
) -> None:
    """Every opening of a partner link, valid or not (a refused one names no ticket)."""
    organisation = session.get(PartnerOrganisation, referral.organisation_id)
    referral.last_viewed_at = now or utcnow()
    record_audit(
        session,
        action="referral.partner_viewed",
        actor_label=_partner_label(organisation),
        object_type="referral",
        object_id=referral.id,
        ticket_id=referral.ticket_id,
        outcome=outcome,
    )


def _partner_label(organisation: PartnerOrganisation | None) -> str:
    return (organisation.name if organisation is not None else "partner")[:80]


# What a partner may do from each status.
PARTNER_ACTIONS: dict[str, tuple[tuple[ReferralStatus, ...], ReferralStatus]] = {
    "accept": ((ReferralStatus.SENT,), ReferralStatus.ACCEPTED),
    "decline": ((ReferralStatus.SENT, ReferralStatus.ACCEPTED), ReferralStatus.DECLINED),
    "done": ((ReferralStatus.SENT, ReferralStatus.ACCEPTED), ReferralStatus.COMPLETED),
}


def partner_actions(referral: Referral) -> list[str]:
    return [name for name, (froms, _to) in PARTNER_ACTIONS.items() if referral.status in froms]


def partner_respond(
    session: Session, referral: Referral, action: str, note: str, *, now: datetime | None = None
) -> None:
    """Accept, decline or mark done (with a note), from the partner link."""
    at = now or utcnow()
    if action not in PARTNER_ACTIONS:
        raise ReferralError("action", "Choose accept, decline or done.")
    froms, target = PARTNER_ACTIONS[action]
    if referral.status not in froms:
        raise ReferralError("action", "This referral has already been answered.")
    text = note.strip()
    if len(text) > MAX_NOTE_LENGTH:
        raise ReferralError("note", "Notes are limited to 1000 characters.")
    referral.status = target
    referral.responded_at = at
    referral.updated_at = at
    referral.follow_up_due_at = at + FOLLOW_UP_AFTER[target] if target in FOLLOW_UP_AFTER else None
    if text:
        referral.partner_note = text
    organisation = session.get(PartnerOrganisation, referral.organisation_id)
    ticket = session.get(Ticket, referral.ticket_id)
    label = _partner_label(organisation)
    if ticket is not None:
        record_event(
            session,
            ticket,
            "referral_" + target.value,
            actor_label=label,
            body=text or None,
            now=at,
            referral=referral.id,
            organisation=organisation.name if organisation is not None else None,
        )
    record_audit(
        session,
        action="referral." + target.value,
        actor_label=label,
        object_type="referral",
        object_id=referral.id,
        ticket_id=referral.ticket_id,
        with_note=bool(text),
    )
