"""Broadcast pages: the list, a new broadcast with its preview (people, SMS parts, cost per
channel), and a broadcast's page with live progress, delivery, test send and its replies.

Supervisors and administrators only (``Capability.BROADCASTS``); every action is audited
through the same helpers as /api/v1/broadcasts. Replies are listed with the one rule for
messages (``Viewer.message_clause``), numbers masked."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from starlette.datastructures import UploadFile

from core.phones import InvalidPhoneNumber, normalize_phone
from gateway import broadcasts as bc
from models.broadcasts import Broadcast
from models.contacts import Contact
from models.enums import Language, PlaceKind, TicketCategory, TicketKind, TicketStatus
from models.outbox_relay import publish_committed
from ops_console.api_broadcasts import audit
from ops_console.deps import PathId
from ops_console.forms import form_text
from ops_console.i18n import N_
from ops_console.permissions import Capability, Viewer
from ops_console.queries import place_choices
from ops_console.web import Page, PageCtx, PostPage, is_htmx, redirect, render

router = APIRouter(include_in_schema=False)

MAX_UPLOAD_BYTES = 60000


def _require(page: Page) -> Viewer:
    viewer = page.user_viewer
    if not viewer.can(Capability.BROADCASTS):
        raise HTTPException(403)
    return viewer


def _refusal(page: Page, exc: bc.SelectionRefused) -> str:
    return page.t(exc.template).format(**exc.variables)


def _form_context(page: Page, form: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    protected = {TicketCategory.PROTECTION}
    return {
        "form": form or {},
        "places": place_choices(page.session, (PlaceKind.REGION, PlaceKind.CERCLE)),
        "languages": [language.value for language in bc.LANGUAGES],
        "kinds": [k.value for k in TicketKind if k != TicketKind.PSEA],
        "categories": [c.value for c in TicketCategory if c not in protected],
        "statuses": [s.value for s in TicketStatus],
        "preview": None,
        "error": None,
        **extra,
    }


def _enum(value: str, enum: Any) -> Any:
    try:
        return enum(value) if value else None
    except ValueError:
        raise bc.SelectionRefused("unknown choice {value}", value=value[:40]) from None


async def _read_form(request: Request) -> tuple[dict[str, Any], bc.Selection, dict[Language, str]]:
    raw = await request.form()
    form: dict[str, Any] = {
        "name": form_text(raw, "name", 120),
        "place": form_text(raw, "place", 32),
        "languages": [v for v in raw.getlist("languages") if isinstance(v, str)],
        "ticket_kind": form_text(raw, "ticket_kind", 40),
        "ticket_category": form_text(raw, "ticket_category", 40),
        "ticket_status": form_text(raw, "ticket_status", 40),
        "fr": form_text(raw, "text_fr", 2000),
        "en": form_text(raw, "text_en", 2000),
        "bm": form_text(raw, "text_bm", 2000),
        "action": form_text(raw, "action", 20),
    }
    phones = None
    upload = raw.get("phones")
    csv_text = form_text(raw, "phones_text", MAX_UPLOAD_BYTES)
    if isinstance(upload, UploadFile) and upload.filename:
        data = await upload.read(MAX_UPLOAD_BYTES + 1)
        if len(data) > MAX_UPLOAD_BYTES:
            raise bc.SelectionRefused(
                "the uploaded list is larger than {limit} bytes", limit=MAX_UPLOAD_BYTES
            )
        csv_text = data.decode("utf-8", errors="replace")
    form["phones_text"] = csv_text
    if csv_text.strip():
        phones = bc.parse_phone_list(csv_text)
    languages = tuple(_enum(v, Language) for v in form["languages"])
    selection = bc.Selection(
        place_code=form["place"] or None,
        languages=languages,
        ticket_kind=_enum(form["ticket_kind"], TicketKind),
        ticket_category=_enum(form["ticket_category"], TicketCategory),
        ticket_status=_enum(form["ticket_status"], TicketStatus),
        phones=phones,
    )
    texts = bc.clean_texts({"fr": form["fr"], "en": form["en"], "bm": form["bm"]})
    return form, selection, texts


@router.get("/broadcasts")
def broadcasts(page: PageCtx) -> Response:
    _require(page)
    rows = list(page.session.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(100)))
    return render(page, "broadcasts.html", {"broadcasts": rows})


@router.get("/broadcasts/new")
def new_broadcast(page: PageCtx) -> Response:
    _require(page)
    return render(page, "broadcast_new.html", _form_context(page))


@router.post("/broadcasts/new")
async def post_new_broadcast(request: Request, page: PostPage) -> Response:
    viewer = _require(page)
    session = page.session
    form: dict[str, Any] = {}
    try:
        form, selection, texts = await _read_form(request)
        if form["action"] == "create":
            if not form["name"]:
                raise bc.SelectionRefused("give the broadcast a name")
            broadcast = bc.prepare(
                session, selection, texts, name=form["name"], created_by_id=viewer.user.id
            )
            audit(
                session,
                viewer,
                "broadcast.created",
                broadcast.id,
                recipients=broadcast.recipients_count,
                skipped=broadcast.skipped_count,
                parts=broadcast.parts_total,
            )
            session.commit()
            return redirect(f"/broadcasts/{broadcast.id}", request)
        result = bc.preview(session, selection, texts)
    except bc.SelectionRefused as exc:
        session.rollback()
        context = _form_context(page, form, error=_refusal(page, exc))
        return render(page, "broadcast_new.html", context, status_code=422)
    bad = selection.phones.bad if selection.phones else []
    return render(page, "broadcast_new.html", _form_context(page, form, preview=result, bad=bad))


def _detail(page: Page, viewer: Viewer, broadcast: Broadcast, **extra: Any) -> dict[str, Any]:
    session = page.session
    total, shown = bc.replies(session, broadcast.id, viewer.message_clause())
    phones = {
        c.id: c.phone
        for c in session.scalars(
            select(Contact).where(Contact.id.in_({m.contact_id for m in shown if m.contact_id}))
        )
    }
    return {
        "b": broadcast,
        "texts": {k.value: v for k, v in bc.broadcast_texts(broadcast).items()},
        "progress": bc.recipient_counts(session, broadcast.id),
        "delivery": bc.delivery_counts(session, broadcast.id),
        "reply_total": total,
        "replies": shown,
        "phones": phones,
        "notice": None,
        "error": None,
        **extra,
    }


def _load(page: Page, broadcast_id: int) -> Broadcast:
    broadcast = page.session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise HTTPException(404)
    return broadcast


NOTICES = {
    "sent": N_("Sending has started: progress updates below."),
    "scheduled": N_("Scheduled."),
    "tested": N_("Test SMS queued to your phone."),
    "cancelled": N_("Cancelled: nobody else will receive it."),
}


@router.get("/broadcasts/{broadcast_id}")
def broadcast_page(broadcast_id: PathId, page: PageCtx) -> Response:
    viewer = _require(page)
    broadcast = _load(page, broadcast_id)
    notice = NOTICES.get(page.request.query_params.get("done", ""))
    context = _detail(page, viewer, broadcast, notice=notice)
    if is_htmx(page.request):
        return render(page, "broadcast.html", context, block="progress")
    return render(page, "broadcast.html", context)


def _when(raw: str) -> datetime | None:
    if not raw:
        return None
    try:
        return datetime.fromisoformat(raw).replace(tzinfo=UTC)
    except ValueError:
        raise bc.SelectionRefused("not a date and time: {value}", value=raw[:30]) from None


@router.post("/broadcasts/{broadcast_id}/{action}")
async def broadcast_action(
    broadcast_id: PathId, action: str, request: Request, page: PostPage
) -> Response:
    viewer = _require(page)
    session = page.session
    broadcast = _load(page, broadcast_id)
    raw = await request.form()
    try:
        if action == "send":
            bc.start(session, broadcast, _when(form_text(raw, "scheduled_at", 30)))
            done = "scheduled" if broadcast.scheduled_at else "sent"
            audit(
                session,
                viewer,
                f"broadcast.{done}",
                broadcast.id,
                recipients=broadcast.recipients_count,
            )
        elif action == "test":
            try:
                phone = normalize_phone(form_text(raw, "phone", 40))
            except InvalidPhoneNumber:
                raise bc.SelectionRefused("not a phone number: check your number") from None
            language = _enum(form_text(raw, "language", 8), Language) or Language.FRENCH
            if bc.send_test(session, broadcast, phone, language) is None:
                raise bc.SelectionRefused("that number opted out of SMS: nothing was sent")
            audit(session, viewer, "broadcast.test_sent", broadcast.id, language=language.value)
            done = "tested"
        elif action == "cancel":
            left = bc.cancel(session, broadcast)
            audit(session, viewer, "broadcast.cancelled", broadcast.id, not_sent=left)
            done = "cancelled"
        else:
            raise HTTPException(404)
    except bc.SelectionRefused as exc:
        session.rollback()
        context = _detail(page, viewer, broadcast, error=_refusal(page, exc))
        return render(page, "broadcast.html", context, status_code=409)
    session.commit()
    publish_committed(session)
    return redirect(f"/broadcasts/{broadcast.id}?done={done}", request)
