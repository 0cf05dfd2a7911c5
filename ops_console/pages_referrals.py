"""Referral pathways in the console (issue 15): the service directory (admins and supervisors
edit it, everyone who works tickets reads it), the referral list, consent and referral on the
ticket page, and the partner page reached through a signed link (no account, no cookie).

The rules themselves live in ``tickets.referrals``; who sees which referral in
``ops_console.permissions`` (``Viewer.referral_clause``)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import HTMLResponse, Response
from sqlalchemy import select
from sqlalchemy.orm import Session
from starlette.datastructures import FormData

from core.sanitize import is_id
from models.base import utcnow
from models.enums import (
    ConsentPurpose,
    ConsentSource,
    PlaceKind,
    ReferralMethod,
    ReferralStatus,
    TicketCategory,
)
from models.places import Place
from models.referrals import PartnerOrganisation, PartnerService, Referral
from models.tickets import Ticket
from models.users import User
from ops_console.deps import DbSession, PathId
from ops_console.forms import form_text
from ops_console.i18n import N_, make_gettext, pick_language, translations_for
from ops_console.permissions import Capability, Viewer, is_psea
from ops_console.queries import place_choices
from ops_console.web import (
    LANGUAGE_COOKIE,
    SECURITY_HEADERS,
    Page,
    PageCtx,
    PostPage,
    environment,
    redirect,
    render,
)
from tickets import referrals as rules

router = APIRouter(include_in_schema=False)


# --- the directory ------------------------------------------------------------------------


def _directory_context(page: Page, **extra: Any) -> dict[str, Any]:
    session = page.session
    organisations = list(
        session.scalars(select(PartnerOrganisation).order_by(PartnerOrganisation.name))
    )
    services = list(
        session.scalars(
            select(PartnerService).order_by(PartnerService.category, PartnerService.name)
        )
    )
    codes = {code for s in services for code in s.place_codes or []}
    places = {p.code: p for p in session.scalars(select(Place).where(Place.code.in_(codes)))}
    return {
        "organisations": organisations,
        "org_by_id": {o.id: o for o in organisations},
        "services": services,
        "service_places": places,
        "methods": [m.value for m in ReferralMethod],
        "fields": rules.FIELDS,
        "minimum": rules.PROTECTION_MINIMUM,
        "categories": [c.value for c in TicketCategory],
        "languages": rules.SERVICE_LANGUAGES,
        "place_options": place_choices(session, tuple(PlaceKind)),
        "may_manage": page.user_viewer.can(Capability.DIRECTORY_MANAGE),
        "errors": extra.pop("errors", {}),
        "values": extra.pop("values", {}),
        "editing": extra.pop("editing", None),
        "notice": extra.pop("notice", None),
        **extra,
    }


@router.get("/directory")
def directory(page: PageCtx, saved: str | None = None) -> Response:
    page.require(Capability.DIRECTORY_READ)
    return render(
        page, "directory.html", _directory_context(page, notice=N_("Saved.") if saved else None)
    )


def _org_values(form: FormData) -> dict[str, Any]:
    return {
        "name": form_text(form, "name", 160),
        "contact_email": form_text(form, "contact_email", 254),
        "contact_phone": form_text(form, "contact_phone", 40),
        "referral_method": form_text(form, "referral_method", 16),
        "shared_fields": [v for v in form.getlist("shared_fields") if isinstance(v, str)],
        "active": form.get("active") == "1",
    }


def _resolve_places(session: Session, text: str) -> tuple[list[str], bool]:
    """Place codes for a comma-separated list of codes or names; False when one is unknown."""
    from ops_console.api import resolve_place_code

    codes: list[str] = []
    ok = True
    for part in text.split(","):
        if not part.strip():
            continue
        code = resolve_place_code(session, part.strip())
        if code is None:
            ok = False
        else:
            codes.append(code)
    return codes, ok


def _service_values(form: FormData) -> dict[str, Any]:
    return {
        "organisation": form_text(form, "organisation", 12),
        "name": form_text(form, "name", 160),
        "category": form_text(form, "category", 24),
        "places": form_text(form, "places", 2000),
        "hours": form_text(form, "hours", 160),
        "languages": [v for v in form.getlist("languages") if isinstance(v, str)],
        "focal_point": form_text(form, "focal_point", 160),
        "active": form.get("active") == "1",
    }


async def _save_organisation(
    request: Request, page: Page, organisation: PartnerOrganisation | None
) -> Response:
    viewer = page.require(Capability.DIRECTORY_MANAGE)
    values = _org_values(await request.form())
    try:
        rules.save_organisation(
            page.session,
            organisation,
            rules.OrganisationInput(
                name=values["name"],
                referral_method=values["referral_method"],
                shared_fields=values["shared_fields"],
                contact_email=values["contact_email"],
                contact_phone=values["contact_phone"],
                active=values["active"],
            ),
            actor_label=viewer.user.username,
            actor_user_id=viewer.user.id,
        )
    except rules.DirectoryError as exc:
        page.session.rollback()
        context = _directory_context(
            page,
            errors={"org_" + k: v for k, v in exc.problems.items()},
            values={"org": values},
            editing=("organisation", organisation.id) if organisation is not None else None,
        )
        return render(page, "directory.html", context, status_code=422)
    page.session.commit()
    return redirect("/directory?saved=1")


@router.post("/directory/organisations")
async def create_organisation(request: Request, page: PostPage) -> Response:
    return await _save_organisation(request, page, None)


@router.get("/directory/organisations/{organisation_id}")
def edit_organisation_form(organisation_id: PathId, page: PageCtx) -> Response:
    page.require(Capability.DIRECTORY_MANAGE)
    organisation = page.session.get(PartnerOrganisation, organisation_id)
    if organisation is None:
        raise HTTPException(404)
    values = {
        "name": organisation.name,
        "contact_email": organisation.contact_email or "",
        "contact_phone": organisation.contact_phone or "",
        "referral_method": organisation.referral_method.value,
        "shared_fields": organisation.shared_fields,
        "active": organisation.active,
    }
    context = _directory_context(
        page, values={"org": values}, editing=("organisation", organisation.id)
    )
    return render(page, "directory.html", context)


@router.post("/directory/organisations/{organisation_id}")
async def update_organisation(
    organisation_id: PathId, request: Request, page: PostPage
) -> Response:
    page.require(Capability.DIRECTORY_MANAGE)
    organisation = page.session.get(PartnerOrganisation, organisation_id)
    if organisation is None:
        raise HTTPException(404)
    return await _save_organisation(request, page, organisation)


async def _save_service(request: Request, page: Page, service: PartnerService | None) -> Response:
    viewer = page.require(Capability.DIRECTORY_MANAGE)
    values = _service_values(await request.form())
    codes, places_ok = _resolve_places(page.session, values["places"])
    problems: dict[str, str] = {}
    try:
        if not places_ok:
            problems["places"] = N_("No place by that name: pick one from the list.")
        organisation_id = int(values["organisation"]) if is_id(values["organisation"]) else 0
        rules.save_service(
            page.session,
            service,
            rules.ServiceInput(
                organisation_id=organisation_id,
                name=values["name"],
                category=values["category"],
                place_codes=codes if places_ok else [],
                hours=values["hours"],
                languages=values["languages"],
                focal_point=values["focal_point"],
                active=values["active"],
            ),
            actor_label=viewer.user.username,
            actor_user_id=viewer.user.id,
        )
        if problems:
            raise rules.DirectoryError(problems)
    except rules.DirectoryError as exc:
        page.session.rollback()
        context = _directory_context(
            page,
            errors={"svc_" + k: v for k, v in (exc.problems | problems).items()},
            values={"svc": values},
            editing=("service", service.id) if service is not None else None,
        )
        return render(page, "directory.html", context, status_code=422)
    page.session.commit()
    return redirect("/directory?saved=1")


@router.post("/directory/services")
async def create_service(request: Request, page: PostPage) -> Response:
    return await _save_service(request, page, None)


@router.get("/directory/services/{service_id}")
def edit_service_form(service_id: PathId, page: PageCtx) -> Response:
    page.require(Capability.DIRECTORY_MANAGE)
    service = page.session.get(PartnerService, service_id)
    if service is None:
        raise HTTPException(404)
    values = {
        "organisation": str(service.organisation_id),
        "name": service.name,
        "category": service.category.value,
        "places": ", ".join(service.place_codes or []),
        "hours": service.hours or "",
        "languages": service.languages or [],
        "focal_point": service.focal_point or "",
        "active": service.active,
    }
    context = _directory_context(page, values={"svc": values}, editing=("service", service.id))
    return render(page, "directory.html", context)


@router.post("/directory/services/{service_id}")
async def update_service(service_id: PathId, request: Request, page: PostPage) -> Response:
    page.require(Capability.DIRECTORY_MANAGE)
    service = page.session.get(PartnerService, service_id)
    if service is None:
        raise HTTPException(404)
    return await _save_service(request, page, service)


# --- the referral list --------------------------------------------------------------------


def visible_referrals(session: Session, viewer: Viewer, *, limit: int = 200) -> list[Referral]:
    return list(
        session.scalars(
            select(Referral)
            .where(viewer.referral_clause())
            .order_by(Referral.created_at.desc(), Referral.id.desc())
            .limit(limit)
        )
    )


def referral_rows(session: Session, referrals: list[Referral]) -> dict[str, Any]:
    """What a list of referrals shows next to each: ticket references, names."""
    tickets = {
        t.id: t
        for t in session.scalars(
            select(Ticket).where(Ticket.id.in_({r.ticket_id for r in referrals}))
        )
    }
    services = {
        s.id: s
        for s in session.scalars(
            select(PartnerService).where(PartnerService.id.in_({r.service_id for r in referrals}))
        )
    }
    organisations = {
        o.id: o
        for o in session.scalars(
            select(PartnerOrganisation).where(
                PartnerOrganisation.id.in_({r.organisation_id for r in referrals})
            )
        )
    }
    users = {
        u.id: u
        for u in session.scalars(
            select(User).where(User.id.in_({r.created_by_user_id for r in referrals}))
        )
    }
    return {
        "ref_tickets": tickets,
        "ref_services": services,
        "ref_organisations": organisations,
        "ref_users": users,
    }


@router.get("/referrals")
def referral_list(page: PageCtx) -> Response:
    viewer = page.require(Capability.REFERRALS)
    referrals = visible_referrals(page.session, viewer)
    context = {
        "referrals": referrals,
        "now": utcnow(),
        **referral_rows(page.session, referrals),
    }
    return render(page, "referrals.html", context)


# --- on the ticket page -------------------------------------------------------------------


def ticket_referral_context(session: Session, ticket: Ticket, viewer: Viewer) -> dict[str, Any]:
    """The ticket page's consent and referral box."""
    referrals = list(
        session.scalars(
            select(Referral)
            .where(Referral.ticket_id == ticket.id, viewer.referral_clause())
            .order_by(Referral.id)
        )
    )
    may_refer = viewer.can(Capability.REFERRALS) and (
        not is_psea(ticket)
        or (ticket.team_id is not None and ticket.team_id in viewer.psea_team_ids)
    )
    services = rules.matching_services(session, ticket) if may_refer else []
    organisations = {
        o.id: o
        for o in session.scalars(
            select(PartnerOrganisation).where(
                PartnerOrganisation.id.in_(
                    {s.organisation_id for s in services} | {r.organisation_id for r in referrals}
                )
            )
        )
    }
    consents = rules.consents_of(session, ticket.contact_id)
    recorders = {
        u.id: u
        for u in session.scalars(
            select(User).where(User.id.in_({c.recorded_by_user_id for c in consents.values()}))
        )
    }
    return {
        "consents": consents,
        "consent_recorders": recorders,
        "consent_purposes": [p.value for p in ConsentPurpose],
        "ticket_referrals": referrals,
        "referral_services": services,
        "referral_organisations": organisations,
        "referral_service_names": {
            s.id: s
            for s in session.scalars(
                select(PartnerService).where(
                    PartnerService.id.in_({r.service_id for r in referrals})
                )
            )
        },
        "may_refer": may_refer,
        "psea_refer_refused": viewer.can(Capability.REFERRALS) and not may_refer,
        "link_url": rules.link_url,
        "allowed_fields": {
            s.id: rules.allowed_fields(organisations[s.organisation_id], ticket) for s in services
        },
        "share_refused": rules.refused(
            session, ticket.contact_id, ConsentPurpose.SHARE_WITH_PARTNER
        ),
    }


@router.post("/tickets/{reference}/consent")
async def ticket_consent(request: Request, reference: str, page: PostPage) -> Response:
    """The operator records what the person said on the call, for one purpose."""
    from ops_console.pages import _after_action, _load_ticket

    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.REFERRALS) or not viewer.can(Capability.TICKETS_UPDATE):
        raise HTTPException(403)
    form = await request.form()
    errors: dict[str, str] = {}
    purpose = form_text(form, "purpose", 24)
    given = form_text(form, "given", 4)
    if purpose not in {p.value for p in ConsentPurpose}:
        errors["consent_purpose"] = N_("Choose what the consent is for.")
    if given not in ("yes", "no"):
        errors["consent_given"] = N_("Choose what the person said: yes or no.")
    if ticket.contact_id is None:
        errors["consent_purpose"] = N_("The person is unknown: there is nobody to ask.")
    if not errors:
        assert ticket.contact_id is not None
        rules.record_consent(
            page.session,
            contact_id=ticket.contact_id,
            purpose=ConsentPurpose(purpose),
            given=given == "yes",
            source=ConsentSource.OPERATOR,
            actor_label=viewer.user.username,
            actor_user_id=viewer.user.id,
            ticket=ticket,
        )
    return _after_action(page, ticket, errors, N_("The person's answer was recorded."))


@router.post("/tickets/{reference}/refer")
async def ticket_refer(request: Request, reference: str, page: PostPage) -> Response:
    from ops_console.pages import _after_action, _load_ticket

    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.REFERRALS):
        raise HTTPException(403)
    form = await request.form()
    value = form_text(form, "service", 12)
    service = page.session.get(PartnerService, int(value)) if is_id(value) else None
    errors: dict[str, str] = {}
    if service is None:
        errors["referral_service"] = N_("Choose a service from the list.")
    else:
        try:
            rules.create_referral(
                page.session,
                ticket,
                service,
                rules.Referrer(viewer.user.id, viewer.user.username, viewer.psea_team_ids),
            )
        except rules.ReferralError as exc:
            errors["referral_" + exc.field] = exc.detail
    return _after_action(
        page, ticket, errors, N_("Referred: send the partner its link."), status_code=422
    )


# --- the partner page (no account) ---------------------------------------------------------


def _partner_response(
    request: Request,
    *,
    status_code: int,
    referral: Referral | None = None,
    session: Session | None = None,
    token: str = "",
    **context: Any,
) -> HTMLResponse:
    """The partner page, rendered outside the console: no navigation, no session, no CSRF
    seed cookie (the signed link is the only credential)."""
    language = pick_language(request.query_params.get("lang"), request.cookies.get(LANGUAGE_COOKIE))
    gettext, ngettext = make_gettext(translations_for(language))
    values: dict[str, Any] = {
        "lang": language,
        "gettext": gettext,
        "ngettext": ngettext,
        "status_code": status_code,
        "referral": referral,
        "token": token,
        "items": rules.shared_items(referral) if referral is not None else [],
        "actions": rules.partner_actions(referral) if referral is not None else [],
        "errors": context.pop("errors", {}),
        "notice": context.pop("notice", None),
        **context,
    }
    if referral is not None and session is not None:
        values["organisation"] = session.get(PartnerOrganisation, referral.organisation_id)
        values["service"] = session.get(PartnerService, referral.service_id)
    body = environment.get_template("partner_referral.html").render(values)
    headers = dict(SECURITY_HEADERS)
    headers["Referrer-Policy"] = "no-referrer"  # the link must not leave in a Referer
    return HTMLResponse(body, status_code=status_code, headers=headers)


def _partner_referral(
    request: Request, session: Session, token: str | None
) -> Referral | HTMLResponse:
    try:
        return rules.referral_for_link(session, token)
    except rules.LinkRefused as refused:
        from models.audit import record_audit

        record_audit(
            session,
            action="referral.partner_link_refused",
            actor_label="partner link",
            object_type="referral",
            reason=refused.reason,
        )
        session.commit()
        return _partner_response(request, status_code=refused.status)


@router.get("/partner/referral")
def partner_referral(request: Request, session: DbSession, token: str | None = None) -> Response:
    found = _partner_referral(request, session, token)
    if isinstance(found, HTMLResponse):
        return found
    rules.audit_partner_view(session, found, outcome="viewed")
    session.commit()
    return _partner_response(
        request, status_code=200, referral=found, session=session, token=token or ""
    )


_PARTNER_NOTICES = {
    "accept": N_("Thank you: the referral is accepted."),
    "decline": N_("Thank you: the referral is declined."),
    "done": N_("Thank you: the referral is marked done."),
}


@router.post("/partner/referral")
async def partner_answer(
    request: Request, session: DbSession, token: str | None = None
) -> Response:
    found = _partner_referral(request, session, token)
    if isinstance(found, HTMLResponse):
        return found
    form = await request.form()
    action = form_text(form, "action", 12)
    note = form.get("note")
    note_text = note if isinstance(note, str) else ""
    try:
        rules.partner_respond(session, found, action, note_text)
    except rules.ReferralError as exc:
        session.rollback()
        session.refresh(found)
        rules.audit_partner_view(session, found, outcome="answer_refused")
        session.commit()
        return _partner_response(
            request,
            status_code=409 if exc.field == "action" and action in rules.PARTNER_ACTIONS else 422,
            referral=found,
            session=session,
            token=token or "",
            errors={exc.field: exc.detail},
            note=note_text[: rules.MAX_NOTE_LENGTH + 100],
        )
    session.commit()
    return _partner_response(
        request,
        status_code=200,
        referral=found,
        session=session,
        token=token or "",
        notice=_PARTNER_NOTICES[action],
    )


__all__ = ["ReferralStatus", "router", "ticket_referral_context"]
