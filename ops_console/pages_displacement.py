"""Displacement tracking pages: the registry (households by place, origins, merging
duplicates), flow monitoring (the enumerators' form, flows per week, arrivals by place) and
the DTM-shaped CSV export."""

from __future__ import annotations

import csv
import io
from datetime import date
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import select

from core.sanitize import parse_id, spreadsheet_cell
from models.audit import record_audit
from models.base import utcnow
from models.contacts import Household
from models.enums import MovementChannel, MovementReason, MovementStatus, PlaceKind
from models.movements import Movement
from ops_console.displacement import (
    DTM_FLOW_HEADERS,
    PlaceTree,
    dtm_flow_rows,
    flows_dashboard,
    registry_data,
)
from ops_console.forms import form_text
from ops_console.i18n import N_
from ops_console.permissions import Capability
from ops_console.queries import place_choices
from ops_console.web import Page, PageCtx, PostPage, redirect, render
from tickets.flows import flow_points

router = APIRouter(include_in_schema=False)


# --- registry ---------------------------------------------------------------------------------


def _registry_context(page: Page, **extra: Any) -> dict[str, Any]:
    return {
        **registry_data(page.session),
        "errors": extra.pop("errors", {}),
        "values": extra.pop("values", {}),
        **extra,
    }


@router.get("/registry")
def registry(page: PageCtx) -> Response:
    page.require(Capability.REGISTRY)
    return render(page, "registry.html", _registry_context(page))


@router.post("/registry/merge")
async def merge_from_registry(request: Request, page: PostPage) -> Response:
    """A supervisor merges a duplicate household into the one kept (audited)."""
    viewer = page.require(Capability.HOUSEHOLDS_MERGE)
    form = await request.form()
    values = {key: form_text(form, key, 20) for key in ("duplicate", "into")}
    errors: dict[str, str] = {}
    households: dict[str, Household] = {}
    for field in ("duplicate", "into"):
        ident = parse_id(values.get(field) or None)
        household = page.session.get(Household, ident) if ident is not None else None
        if household is None:
            errors[field] = N_("No household with this number.")
        else:
            households[field] = household
    if not errors:
        from tickets.households import RegistryError, merge_households

        try:
            merge_households(
                page.session,
                duplicate=households["duplicate"],
                kept=households["into"],
                actor_label=viewer.user.username,
                actor_user_id=viewer.user.id,
            )
        except RegistryError as exc:
            errors["into" if exc.field == "into" else "duplicate"] = {
                "a household cannot be merged into itself": N_(
                    "A household cannot be merged into itself."
                ),
            }.get(exc.detail, N_("This household is already merged into another."))
    if errors:
        page.session.rollback()
        return render(
            page,
            "registry.html",
            _registry_context(page, errors=errors, values=values),
            status_code=422,
        )
    page.session.commit()
    return redirect(f"/registry?merged={households['duplicate'].id}", request)


# --- flow monitoring --------------------------------------------------------------------------


def _flows_context(page: Page, **extra: Any) -> dict[str, Any]:
    session = page.session
    tree = PlaceTree(session)
    recent = list(
        session.scalars(
            select(Movement)
            .where(Movement.is_test.is_(False))
            .order_by(Movement.created_at.desc(), Movement.id.desc())
            .limit(20)
        )
    )
    return {
        **flows_dashboard(session),
        **_enumerators_context(page),
        "flow_points": flow_points(),
        "recent": [
            {
                "date": m.observed_on,
                "point": m.point_name or "",
                "point_place": tree.path(m.point_place_id),
                "origin": tree.path(m.origin_place_id),
                "destination": tree.path(m.destination_place_id),
                "people": m.people,
                "reason": m.reason.value if m.reason else "",
                "status": m.status.value,
                "source": m.source.value,
                "channel": m.channel.value if m.channel else "",
            }
            for m in recent
        ],
        "places": place_choices(
            session, (PlaceKind.REGION, PlaceKind.CERCLE, PlaceKind.COMMUNE, PlaceKind.SITE)
        ),
        "reasons": [r.value for r in MovementReason],
        "movement_statuses": [s.value for s in MovementStatus],
        "today": utcnow().date(),
        "errors": extra.pop("errors", {}),
        "values": extra.pop("values", {}),
        "enumerator_errors": extra.pop("enumerator_errors", {}),
        "enumerator_values": extra.pop("enumerator_values", {}),
        **extra,
    }


@router.get("/flows")
def flows_page(page: PageCtx) -> Response:
    page.require(Capability.FLOWS_RECORD)
    return render(page, "flows.html", _flows_context(page))


_REASONS = frozenset(r.value for r in MovementReason)
_STATUSES = frozenset(s.value for s in MovementStatus)

# The domain's English problems, as the form shows them (catalog ids).
_FORM_WORDS = {
    "date": N_("Give the day of the count, not in the future."),
    "point_place": N_("No place by that name: pick one from the list."),
    "point_name": N_("Name the entry or transit point."),
    "origin": N_("No place by that name: pick one from the list."),
    "destination": N_("Pick where they are going (not where they come from)."),
    "people": N_("A number of people between 1 and 100 000."),
    "reason": N_("Choose a reason."),
    "status": N_("Choose: displaced, returning or in transit."),
}


@router.post("/flows")
async def record_flow_from_form(request: Request, page: PostPage) -> Response:
    """An enumerator's count at a flow-monitoring point; all fields checked at once."""
    viewer = page.require(Capability.FLOWS_RECORD)
    form = await request.form()
    values = {key: form_text(form, key, 200) for key in form}
    session = page.session
    from ops_console.api import resolve_place_code
    from tickets.flows import FlowError, FlowInput, record_flow

    errors: dict[str, str] = {}
    codes: dict[str, str | None] = {}
    for field in ("point_place", "origin", "destination"):
        text = values.get(field) or None
        codes[field] = resolve_place_code(session, text) if text else None
        if text and codes[field] is None:
            errors[field] = _FORM_WORDS[field]
    observed_on = None
    try:
        observed_on = date.fromisoformat(values.get("date", ""))
    except ValueError:
        errors["date"] = _FORM_WORDS["date"]
    people_text = values.get("people", "").replace(" ", "")
    people = int(people_text) if people_text.isdigit() and len(people_text) < 8 else None
    if people is None:
        errors["people"] = _FORM_WORDS["people"]
    reason = values.get("reason", "")
    status = values.get("status", "")
    if not errors:
        try:
            record_flow(
                session,
                FlowInput(
                    observed_on=observed_on,
                    point_code=codes["point_place"],
                    point_name=values.get("point_name"),
                    origin_code=codes["origin"],
                    destination_code=codes["destination"],
                    people=people,
                    reason=MovementReason(reason) if reason in _REASONS else None,
                    status=MovementStatus(status) if status in _STATUSES else None,
                ),
                recorded_by_user_id=viewer.user.id,
                channel=MovementChannel.CONSOLE,
            )
        except FlowError as exc:
            errors = {field: _FORM_WORDS[field] for field in exc.problems}
    else:
        # Say every problem at once: the domain's checks of the other fields too.
        if reason not in _REASONS:
            errors["reason"] = _FORM_WORDS["reason"]
        if status not in _STATUSES:
            errors["status"] = _FORM_WORDS["status"]
        if not (values.get("point_name") or "").strip():
            errors["point_name"] = _FORM_WORDS["point_name"]
    if errors:
        session.rollback()
        return render(
            page, "flows.html", _flows_context(page, errors=errors, values=values), status_code=422
        )
    session.commit()
    return redirect("/flows?recorded=1", request)


# --- enumerators' phones (FLOW SMS) ------------------------------------------------------


def _enumerators_context(page: Page) -> dict[str, Any]:
    """Registered enumerator phones (masked) and the accounts a phone may be given to; only
    for a viewer who manages them."""
    if not page.user_viewer.can(Capability.ENUMERATORS_MANAGE):
        return {"enumerator_phones": [], "enumerator_accounts": []}
    from models.contacts import Contact
    from models.movements import EnumeratorPhone
    from models.users import User
    from ops_console.actions import masked
    from ops_console.permissions import can

    rows = page.session.execute(
        select(EnumeratorPhone, User, Contact)
        .join(User, User.id == EnumeratorPhone.user_id)
        .join(Contact, Contact.id == EnumeratorPhone.contact_id)
        .order_by(User.username, EnumeratorPhone.created_at)
    ).all()
    accounts = [
        user
        for user in page.session.scalars(
            select(User).where(User.active.is_(True)).order_by(User.username)
        )
        if can(user, Capability.FLOWS_RECORD) and user.password_hash is not None
    ]
    return {
        "enumerator_phones": [
            {"contact": contact.public_id, "user": user.username, "phone": masked(contact)}
            for _link, user, contact in rows
        ],
        "enumerator_accounts": [user.username for user in accounts],
    }


_ENUMERATOR_WORDS = {
    "username": N_("No active account by that name that may record flows."),
    "phone": N_("Not a phone number: write it with the country code, e.g. +223 76 12 34 56."),
    "contact": N_("This phone is not registered."),
}


@router.post("/flows/enumerators")
async def manage_enumerator_phone(request: Request, page: PostPage) -> Response:
    """A supervisor lets a phone send FLOW SMS as an enumerator's account, or stops it
    (audited without the number)."""
    viewer = page.require(Capability.ENUMERATORS_MANAGE)
    form = await request.form()
    values = {key: form_text(form, key, 80) for key in ("username", "phone", "remove")}
    session = page.session
    from core.phones import InvalidPhoneNumber
    from models.contacts import Contact
    from models.users import User
    from ops_console.permissions import can
    from tickets.contacts import find_contact_by_public_id, get_or_create_contact
    from tickets.flows import register_enumerator_phone, remove_enumerator_phone

    errors: dict[str, str] = {}
    if values.get("remove"):
        contact: Contact | None = find_contact_by_public_id(session, values["remove"])
        if contact is None or not remove_enumerator_phone(session, contact):
            errors["contact"] = _ENUMERATOR_WORDS["contact"]
        else:
            record_audit(
                session,
                action="enumerator_phone.removed",
                actor_label=viewer.user.username,
                actor_user_id=viewer.user.id,
                contact=contact.public_id,
            )
            session.commit()
            return redirect("/flows?enumerator=removed", request)
    else:
        user = session.scalar(
            select(User).where(User.username == (values.get("username") or "").strip())
        )
        if (
            user is None
            or not user.active
            or user.password_hash is None
            or not can(user, Capability.FLOWS_RECORD)
        ):
            errors["username"] = _ENUMERATOR_WORDS["username"]
        phone = (values.get("phone") or "").strip()
        contact = None
        try:
            contact = get_or_create_contact(session, phone) if phone else None
        except InvalidPhoneNumber:
            contact = None
        if contact is None:
            errors["phone"] = _ENUMERATOR_WORDS["phone"]
        if not errors and user is not None and contact is not None:
            register_enumerator_phone(session, user, contact)
            record_audit(
                session,
                action="enumerator_phone.registered",
                actor_label=viewer.user.username,
                actor_user_id=viewer.user.id,
                contact=contact.public_id,
                enumerator=user.username,
            )
            session.commit()
            return redirect("/flows?enumerator=registered", request)
    session.rollback()
    return render(
        page,
        "flows.html",
        _flows_context(page, enumerator_errors=errors, enumerator_values=values),
        status_code=422,
    )


@router.get("/exports/flows.csv")
def export_flows(page: PageCtx) -> Response:
    """Flows per week in the DTM's shape, with an HXL hashtag row; small counts suppressed.
    A byte-order mark first, so French Excel reads the accents."""
    viewer = page.require(Capability.EXPORT)
    rows = dtm_flow_rows(page.session)
    record_audit(
        page.session,
        action="export.downloaded",
        actor_label=viewer.user.username,
        actor_user_id=viewer.user.id,
        kind="flows.csv",
        rows=len(rows),
    )
    page.session.commit()
    buffer = io.StringIO()
    buffer.write("\ufeff")
    writer = csv.writer(buffer)
    writer.writerows(DTM_FLOW_HEADERS)
    writer.writerows([spreadsheet_cell(cell) for cell in row] for row in rows)
    stamp = utcnow().strftime("%Y%m%d-%H%M")
    return Response(
        buffer.getvalue().encode("utf-8"),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="deme-dtm-flows-{stamp}.csv"'},
    )
