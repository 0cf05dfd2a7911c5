"""/api/v1 for referral pathways (issue 15): the service directory, consent per purpose, and
referrals. The same rules as the console (``tickets.referrals``, ``Viewer.referral_clause``):
a referral of a ticket the caller may not see answers 404 like one that does not exist."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Query
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.enums import (
    ConsentPurpose,
    ConsentSource,
    ReferralMethod,
    ReferralStatus,
    TicketCategory,
    UserRole,
)
from models.referrals import Consent, PartnerOrganisation, PartnerService, Referral
from models.tickets import Ticket
from models.users import SERVICE_ACTOR_LABEL
from ops_console.api import _ERRORS, _ticket_by_reference, resolve_place_code
from ops_console.deps import ApiViewer, DbSession, PathId, require
from ops_console.permissions import Capability, Viewer
from tickets import referrals as rules

router = APIRouter(prefix="/api/v1", tags=["referrals"], responses=_ERRORS)


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


# --- shapes -------------------------------------------------------------------------------


class ServiceOut(BaseModel):
    id: int
    organisation_id: int
    name: str
    category: TicketCategory
    places: list[str] = Field(description="place codes served (and every place under them)")
    hours: str | None
    languages: list[str]
    focal_point: str | None
    active: bool


class OrganisationOut(BaseModel):
    id: int
    name: str
    contact_email: str | None
    contact_phone: str | None
    referral_method: ReferralMethod
    shared_fields: list[str] = Field(
        description="the data-sharing agreement: ticket fields this partner may receive"
    )
    active: bool
    services: list[ServiceOut]


class OrganisationListOut(BaseModel):
    organisations: list[OrganisationOut]
    shareable_fields: list[str]
    protection_minimum: list[str]


class OrganisationIn(_Strict):
    name: str = Field(min_length=1, max_length=160)
    referral_method: ReferralMethod
    shared_fields: list[str] = Field(default_factory=list, max_length=10)
    contact_email: str | None = Field(None, max_length=254)
    contact_phone: str | None = Field(None, max_length=40)
    active: bool = True


class ServiceIn(_Strict):
    name: str = Field(min_length=1, max_length=160)
    category: TicketCategory
    places: list[Annotated[str, Field(max_length=120)]] = Field(
        min_length=1, max_length=200, description="place codes or names"
    )
    hours: str | None = Field(None, max_length=160)
    languages: list[str] = Field(default_factory=list, max_length=10)
    focal_point: str | None = Field(None, max_length=160)
    active: bool = True


class ConsentIn(_Strict):
    purpose: ConsentPurpose
    given: bool
    source: ConsentSource = Field(
        ConsentSource.OPERATOR,
        description="how the person answered; a person's token always records 'operator'",
    )


class ConsentOut(BaseModel):
    id: int
    purpose: ConsentPurpose
    given: bool
    source: ConsentSource
    recorded_by: str | None
    created_at: datetime


class ConsentListOut(BaseModel):
    consents: list[ConsentOut] = Field(description="the answer that counts, per purpose asked")


class ReferralIn(_Strict):
    service_id: int = Field(ge=1, le=2**31 - 1)


class ReferralOut(BaseModel):
    id: int
    ticket: str = Field(description="the ticket's reference")
    organisation: str
    service: str
    status: ReferralStatus
    shared_fields: list[str] = Field(description="the fields shared (names only)")
    follow_up_due_at: datetime | None
    partner_link: str = Field(description="the signed link to send the partner")
    link_expires_at: datetime
    created_at: datetime


class ReferralListOut(BaseModel):
    referrals: list[ReferralOut]


class ReferralOptionOut(BaseModel):
    service: ServiceOut
    organisation: str
    would_share: list[str]


class ReferralOptionsOut(BaseModel):
    consent_to_share: bool | None = Field(
        description="the person's answer (null: not asked): a referral needs true"
    )
    options: list[ReferralOptionOut]


# --- helpers ------------------------------------------------------------------------------


def _service_out(service: PartnerService) -> ServiceOut:
    return ServiceOut(
        id=service.id,
        organisation_id=service.organisation_id,
        name=service.name,
        category=service.category,
        places=list(service.place_codes or []),
        hours=service.hours,
        languages=list(service.languages or []),
        focal_point=service.focal_point,
        active=service.active,
    )


def _organisation_out(session: Session, organisation: PartnerOrganisation) -> OrganisationOut:
    services = session.scalars(
        select(PartnerService)
        .where(PartnerService.organisation_id == organisation.id)
        .order_by(PartnerService.id)
    )
    return OrganisationOut(
        id=organisation.id,
        name=organisation.name,
        contact_email=organisation.contact_email,
        contact_phone=organisation.contact_phone,
        referral_method=organisation.referral_method,
        shared_fields=list(organisation.shared_fields or []),
        active=organisation.active,
        services=[_service_out(s) for s in services],
    )


def _directory_error(exc: rules.DirectoryError) -> HTTPException:
    return HTTPException(422, "; ".join(f"{k}: {v}" for k, v in exc.problems.items()))


def _actor(viewer: Viewer) -> str:
    return SERVICE_ACTOR_LABEL if viewer.role == UserRole.SERVICE else viewer.user.username


def _referral_out(session: Session, referral: Referral) -> ReferralOut:
    ticket = session.get(Ticket, referral.ticket_id)
    organisation = session.get(PartnerOrganisation, referral.organisation_id)
    service = session.get(PartnerService, referral.service_id)
    assert ticket is not None and organisation is not None and service is not None
    return ReferralOut(
        id=referral.id,
        ticket=ticket.reference,
        organisation=organisation.name,
        service=service.name,
        status=referral.status,
        shared_fields=[field for field, _value in rules.shared_items(referral)],
        follow_up_due_at=referral.follow_up_due_at,
        partner_link=rules.link_url(referral),
        link_expires_at=referral.link_expires_at,
        created_at=referral.created_at,
    )


# --- the directory ------------------------------------------------------------------------


@router.get("/partners", response_model=OrganisationListOut)
def list_partners(viewer: ApiViewer, session: DbSession) -> Any:
    """The service directory: partner organisations, their agreements and services."""
    require(viewer, Capability.DIRECTORY_READ)
    organisations = session.scalars(select(PartnerOrganisation).order_by(PartnerOrganisation.name))
    return OrganisationListOut(
        organisations=[_organisation_out(session, o) for o in organisations],
        shareable_fields=list(rules.FIELDS),
        protection_minimum=list(rules.PROTECTION_MINIMUM),
    )


def _save_partner(
    session: Session, viewer: Viewer, organisation: PartnerOrganisation | None, body: OrganisationIn
) -> OrganisationOut:
    require(viewer, Capability.DIRECTORY_MANAGE)
    try:
        saved = rules.save_organisation(
            session,
            organisation,
            rules.OrganisationInput(
                name=body.name,
                referral_method=body.referral_method.value,
                shared_fields=body.shared_fields,
                contact_email=body.contact_email,
                contact_phone=body.contact_phone,
                active=body.active,
            ),
            actor_label=_actor(viewer),
            actor_user_id=viewer.user.id,
        )
    except rules.DirectoryError as exc:
        raise _directory_error(exc) from exc
    out = _organisation_out(session, saved)
    session.commit()
    return out


@router.post("/partners", status_code=201, response_model=OrganisationOut)
def create_partner(body: OrganisationIn, viewer: ApiViewer, session: DbSession) -> Any:
    """Add a partner organisation (admins and supervisors)."""
    return _save_partner(session, viewer, None, body)


@router.put("/partners/{organisation_id}", response_model=OrganisationOut)
def update_partner(
    organisation_id: PathId, body: OrganisationIn, viewer: ApiViewer, session: DbSession
) -> Any:
    """Replace a partner organisation's details and agreement (admins and supervisors)."""
    require(viewer, Capability.DIRECTORY_MANAGE)
    organisation = session.get(PartnerOrganisation, organisation_id)
    if organisation is None:
        raise HTTPException(404, f"no partner organisation {organisation_id}")
    return _save_partner(session, viewer, organisation, body)


def _save_service(
    session: Session,
    viewer: Viewer,
    organisation_id: int,
    service: PartnerService | None,
    body: ServiceIn,
) -> ServiceOut:
    require(viewer, Capability.DIRECTORY_MANAGE)
    if session.get(PartnerOrganisation, organisation_id) is None:
        raise HTTPException(404, f"no partner organisation {organisation_id}")
    codes: list[str] = []
    unknown: list[str] = []
    for text in body.places:
        code = resolve_place_code(session, text)
        if code is None:
            unknown.append(text)
        else:
            codes.append(code)
    if unknown:
        raise HTTPException(422, "places: no place matches " + ", ".join(map(repr, unknown)))
    try:
        saved = rules.save_service(
            session,
            service,
            rules.ServiceInput(
                organisation_id=organisation_id,
                name=body.name,
                category=body.category.value,
                place_codes=codes,
                hours=body.hours,
                languages=body.languages,
                focal_point=body.focal_point,
                active=body.active,
            ),
            actor_label=_actor(viewer),
            actor_user_id=viewer.user.id,
        )
    except rules.DirectoryError as exc:
        raise _directory_error(exc) from exc
    out = _service_out(saved)
    session.commit()
    return out


@router.post("/partners/{organisation_id}/services", status_code=201, response_model=ServiceOut)
def create_partner_service(
    organisation_id: PathId, body: ServiceIn, viewer: ApiViewer, session: DbSession
) -> Any:
    """Add a service (sector × places) to a partner organisation."""
    return _save_service(session, viewer, organisation_id, None, body)


@router.put("/partner-services/{service_id}", response_model=ServiceOut)
def update_partner_service(
    service_id: PathId, body: ServiceIn, viewer: ApiViewer, session: DbSession
) -> Any:
    """Replace a partner service's details."""
    require(viewer, Capability.DIRECTORY_MANAGE)
    service = session.get(PartnerService, service_id)
    if service is None:
        raise HTTPException(404, f"no partner service {service_id}")
    return _save_service(session, viewer, service.organisation_id, service, body)


# --- consent --------------------------------------------------------------------------------


def _ticket_to_act_on(session: Session, viewer: Viewer, reference: str) -> Ticket:
    """A ticket the caller may work on: people by visibility, the bot its own tickets."""
    if viewer.role == UserRole.SERVICE:
        from tickets.references import normalize_reference

        normalized = normalize_reference(reference)
        ticket = (
            session.scalar(select(Ticket).where(Ticket.reference == normalized))
            if normalized
            else None
        )
        if ticket is None or not viewer.may_act_by_reference(session, ticket):
            raise HTTPException(404, f"no ticket {reference!r}")
        return ticket
    return _ticket_by_reference(session, viewer, reference)


def _consents_out(session: Session, ticket: Ticket) -> ConsentListOut:
    from models.users import User

    consents = rules.consents_of(session, ticket.contact_id)
    names = {
        u.id: u.username
        for u in session.scalars(
            select(User).where(User.id.in_({c.recorded_by_user_id for c in consents.values()}))
        )
    }
    return ConsentListOut(
        consents=[
            ConsentOut(
                id=c.id,
                purpose=c.purpose,
                given=c.given,
                source=c.source,
                recorded_by=names.get(c.recorded_by_user_id or 0),
                created_at=c.created_at,
            )
            for c in consents.values()
        ]
    )


@router.get("/tickets/{reference}/consents", response_model=ConsentListOut)
def get_consents(reference: str, viewer: ApiViewer, session: DbSession) -> Any:
    """The person's consent per purpose (call back, share with a partner)."""
    require(viewer, Capability.REFERRALS)
    ticket = _ticket_by_reference(session, viewer, reference)
    return _consents_out(session, ticket)


@router.post("/tickets/{reference}/consents", status_code=201, response_model=ConsentListOut)
def record_consent(reference: str, body: ConsentIn, viewer: ApiViewer, session: DbSession) -> Any:
    """Record the person's answer for one purpose: the bot (``sms``/``ussd``, on a ticket it
    created) or an operator (always ``operator``: told on a call). "No" is respected
    everywhere: no referral, no call-back."""
    source: ConsentSource
    if viewer.role == UserRole.SERVICE:
        require(viewer, Capability.CONTACTS_BOT)
        ticket = _ticket_to_act_on(session, viewer, reference)
        if body.source == ConsentSource.OPERATOR:
            raise HTTPException(422, "source: the bot records sms or ussd")
        source = body.source
    else:
        require(viewer, Capability.REFERRALS)
        require(viewer, Capability.TICKETS_UPDATE)
        ticket = _ticket_to_act_on(session, viewer, reference)
        source = ConsentSource.OPERATOR
    if ticket.contact_id is None:
        raise HTTPException(422, "ticket: the person is unknown, there is nobody to ask")
    rules.record_consent(
        session,
        contact_id=ticket.contact_id,
        purpose=body.purpose,
        given=body.given,
        source=source,
        actor_label=_actor(viewer),
        actor_user_id=viewer.user.id,
        ticket=ticket,
    )
    out = _consents_out(session, ticket)
    session.commit()
    return out


# --- referrals ------------------------------------------------------------------------------


@router.get("/tickets/{reference}/referral-options", response_model=ReferralOptionsOut)
def referral_options(reference: str, viewer: ApiViewer, session: DbSession) -> Any:
    """The services matching the ticket's category and place, and what each would receive."""
    require(viewer, Capability.REFERRALS)
    ticket = _ticket_by_reference(session, viewer, reference)
    consent = rules.latest_consent(session, ticket.contact_id, ConsentPurpose.SHARE_WITH_PARTNER)
    options = []
    for service in rules.matching_services(session, ticket):
        organisation = session.get(PartnerOrganisation, service.organisation_id)
        assert organisation is not None
        options.append(
            ReferralOptionOut(
                service=_service_out(service),
                organisation=organisation.name,
                would_share=rules.allowed_fields(organisation, ticket),
            )
        )
    return ReferralOptionsOut(
        consent_to_share=None if consent is None else consent.given, options=options
    )


@router.post("/tickets/{reference}/referrals", status_code=201, response_model=ReferralOut)
def create_referral(reference: str, body: ReferralIn, viewer: ApiViewer, session: DbSession) -> Any:
    """Refer the ticket to a partner service. Refused (422, ``consent: …``) unless the person
    said yes to sharing with a partner; a PSEA case only by a PSEA focal point."""
    require(viewer, Capability.REFERRALS)
    ticket = _ticket_by_reference(session, viewer, reference)
    service = session.get(PartnerService, body.service_id)
    if service is None:
        raise HTTPException(422, f"service_id: no partner service {body.service_id}")
    try:
        referral = rules.create_referral(
            session,
            ticket,
            service,
            rules.Referrer(viewer.user.id, viewer.user.username, viewer.psea_team_ids),
        )
    except rules.ReferralError as exc:
        session.rollback()
        raise HTTPException(
            403 if "PSEA" in exc.detail else 422, f"{exc.field}: {exc.detail}"
        ) from exc
    out = _referral_out(session, referral)
    session.commit()
    return out


@router.get("/referrals", response_model=ReferralListOut)
def list_referrals(
    viewer: ApiViewer,
    session: DbSession,
    status: ReferralStatus | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 100,
) -> Any:
    """Referrals of the tickets the caller may see, newest first."""
    require(viewer, Capability.REFERRALS)
    query = select(Referral).where(viewer.referral_clause())
    if status is not None:
        query = query.where(Referral.status == status)
    rows = session.scalars(query.order_by(Referral.id.desc()).limit(limit))
    return ReferralListOut(referrals=[_referral_out(session, r) for r in rows])


@router.get("/referrals/{referral_id}", response_model=ReferralOut)
def get_referral(referral_id: PathId, viewer: ApiViewer, session: DbSession) -> Any:
    require(viewer, Capability.REFERRALS)
    referral = session.scalar(
        select(Referral).where(Referral.id == referral_id, viewer.referral_clause())
    )
    if referral is None:
        raise HTTPException(404, f"no referral {referral_id}")
    return _referral_out(session, referral)


__all__ = ["Consent", "router"]
