"""Log a hotline call (creates a ticket), the callback list, and the phone simulator."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select

from core.phones import SIMULATOR_EXAMPLE, InvalidPhoneNumber, is_simulator_number, normalize_phone
from models.channels import Channel
from models.enums import (
    ChannelType,
    Language,
    MessageDirection,
    PlaceKind,
    TicketCategory,
    TicketKind,
    TicketSource,
)
from models.messages import Call, Message
from models.tickets import Ticket
from ops_console.deps import PathId
from ops_console.forms import form_text
from ops_console.i18n import N_
from ops_console.permissions import Capability
from ops_console.queries import place_choices
from ops_console.web import Page, PageCtx, PostPage, is_htmx, redirect, render

router = APIRouter(include_in_schema=False)

CALLBACK_STATUSES = ("missed", "callback_requested")


def _calls_context(page: Page, **extra: Any) -> dict[str, Any]:
    session = page.session
    viewer = page.user_viewer
    callbacks = list(
        session.scalars(
            select(Call)
            .where(Call.status.in_(CALLBACK_STATUSES))
            .order_by(Call.created_at)
            .limit(100)
        )
    )
    # A callback attached to a protection ticket is listed only for those who see it.
    ticket_ids = {c.ticket_id for c in callbacks if c.ticket_id}
    visible = set(
        session.scalars(select(Ticket.id).where(Ticket.id.in_(ticket_ids), viewer.ticket_clause()))
    )
    callbacks = [c for c in callbacks if c.ticket_id is None or c.ticket_id in visible]
    references: dict[int, str] = dict(
        session.execute(select(Ticket.id, Ticket.reference).where(Ticket.id.in_(visible)))
        .tuples()
        .all()
    )
    from models.contacts import Contact

    contact_ids = {c.contact_id for c in callbacks if c.contact_id}
    contacts = {
        c.id: c for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
    }
    categories = [
        c for c in TicketCategory if c != TicketCategory.PROTECTION or viewer.sees_protection
    ]
    from models.enums import ConsentPurpose
    from tickets.referrals import refused

    # "No" to call-backs is respected: such a request is listed, but no call-back is offered.
    no_callback = {
        contact_id
        for contact_id in contact_ids
        if refused(session, contact_id, ConsentPurpose.CALL_BACK)
    }
    return {
        "callbacks": callbacks,
        "no_callback": no_callback,
        "references": references,
        "contacts": contacts,
        "categories": categories,
        # Every kind, PSEA included: anyone may *report* one (it is then hidden from them).
        "kinds": list(TicketKind),
        "places": place_choices(
            session, (PlaceKind.REGION, PlaceKind.CERCLE, PlaceKind.COMMUNE, PlaceKind.SITE)
        ),
        "languages": [language.value for language in Language],
        "errors": extra.pop("errors", {}),
        "values": extra.pop("values", {}),
        **extra,
    }


@router.get("/calls")
def calls_page(page: PageCtx) -> Response:
    page.require(Capability.CALLS_LOG)
    return render(page, "calls.html", _calls_context(page))


@router.post("/calls")
async def log_call(request: Request, page: PostPage) -> Response:
    """A call becomes a ticket (source "call") with the call attached; all or nothing."""
    viewer = page.require(Capability.CALLS_LOG)
    form = await request.form()
    values = {key: form_text(form, key, 5000) for key in form}
    errors: dict[str, str] = {}
    session = page.session
    phone = values.get("phone", "")
    e164 = None
    if phone:
        try:
            e164 = normalize_phone(phone)
        except InvalidPhoneNumber:
            errors["phone"] = N_("Not a valid phone number.")
    try:
        category = TicketCategory(values.get("category", ""))
        if category == TicketCategory.PROTECTION and not viewer.sees_protection:
            # Anyone may *report* a protection case; it is then hidden from them.
            pass
    except ValueError:
        errors["category"] = N_("Choose a category.")
        category = TicketCategory.OTHER
    kind = TicketKind.NEED
    try:
        kind = TicketKind(values.get("kind") or TicketKind.NEED.value)
    except ValueError:
        errors["kind"] = N_("Unknown value.")
    language = values.get("language") or None
    if language and language not in {lang.value for lang in Language}:
        errors["language"] = N_("Unknown value.")
    # A picked code or a typed name ("Gao", "sevare"): the gazetteer, as for the bot.
    from ops_console.api import resolve_place_code

    place_code = resolve_place_code(session, values.get("place") or None)
    if values.get("place") and place_code is None:
        errors["place"] = N_("No place by that name: pick one from the list.")
    size_raw = values.get("household_size", "")
    household_size = None
    if size_raw:
        if size_raw.isdigit() and 1 <= int(size_raw) <= 200:
            household_size = int(size_raw)
        else:
            errors["household_size"] = N_("A number between 1 and 200.")
    notes = values.get("notes", "")
    if not notes:
        errors["notes"] = N_("Write what the caller said.")
    callback_id = values.get("callback_id", "")
    if errors:
        return render(
            page,
            "calls.html",
            _calls_context(page, errors=errors, values=values),
            status_code=422,
        )
    from tickets.contacts import get_or_create_contact
    from tickets.intake import create_ticket

    contact = get_or_create_contact(session, e164) if e164 else None
    ticket = create_ticket(
        session,
        category=category,
        kind=kind,
        source=TicketSource.CALL,
        contact=contact,
        description=notes,
        place_code=place_code,
        household_size=household_size,
        language=Language(language) if language else None,
        sensitive=True if category == TicketCategory.PROTECTION else None,
        callback_ok=True if e164 else None,
        actor_label=viewer.user.username,
        actor_user_id=viewer.user.id,
    )
    session.flush()
    call = session.get(Call, int(callback_id)) if callback_id.isdigit() else None
    if call is not None and call.status in CALLBACK_STATUSES:
        call.status = "called_back"
        call.ticket_id = ticket.id
        call.operator_id = viewer.user.id
        call.notes = notes
    else:
        session.add(
            Call(
                contact_id=contact.id if contact else None,
                ticket_id=ticket.id,
                operator_id=viewer.user.id,
                direction=MessageDirection.INBOUND,
                status="completed",
                notes=notes,
            )
        )
    reference = ticket.reference
    visible = viewer.may_see(ticket)
    session.commit()
    from models.outbox_relay import publish_committed

    publish_committed(session)
    # A protection report logged by someone who may not see it: confirm without opening it.
    return redirect(f"/tickets/{reference}" if visible else f"/calls?logged={reference}", request)


@router.post("/calls/{call_id}/done")
def callback_done(call_id: PathId, request: Request, page: PostPage) -> Response:
    """Mark a missed call as called back without creating a ticket (nobody answered, or the
    person only had a question)."""
    viewer = page.require(Capability.CALLS_LOG)
    call = page.session.get(Call, call_id)
    if call is None or call.status not in CALLBACK_STATUSES:
        raise HTTPException(404)
    if call.ticket_id is not None:
        ticket = page.session.get(Ticket, call.ticket_id)
        if ticket is not None and not viewer.may_see(ticket):
            raise HTTPException(404)
    call.status = "called_back"
    call.operator_id = viewer.user.id
    page.session.commit()
    return redirect("/calls", request)


# --- phone simulator -----------------------------------------------------------------------


def simulator_channel(page: Page) -> Channel:
    channel = page.session.scalar(
        select(Channel).where(Channel.type == ChannelType.SIMULATOR).order_by(Channel.id).limit(1)
    )
    if channel is None:
        # `deme seed` creates it; a console without it still works for demos.
        channel = Channel(name="simulator", type=ChannelType.SIMULATOR, config={})
        page.session.add(channel)
        page.session.flush()
    return channel


SIMULATOR_ONLY = N_(
    "The simulator speaks only from test numbers +223 00 xx xx xx (for example +22300000001): "
    "real numbers are refused."
)


def simulator_phone(raw: str) -> tuple[str | None, str | None]:
    """(E.164, None) for a number of the simulator range, else (None, error msgid): the
    simulator must never speak, or read answers, as a real sender."""
    try:
        e164 = normalize_phone(raw)
    except InvalidPhoneNumber:
        return None, N_("Not a valid phone number.")
    if not is_simulator_number(e164):
        return None, SIMULATOR_ONLY
    return e164, None


def _simulator_contact(page: Page, e164: str) -> None:
    """The contact the simulator speaks as, marked as test data (left out of dashboards,
    reports and exports; never sent to a real provider)."""
    from tickets.contacts import get_or_create_contact

    contact = get_or_create_contact(page.session, e164)
    if not contact.is_test:
        contact.is_test = True
        page.session.flush()


def _thread(page: Page, phone: str | None) -> list[Message]:
    e164, error = simulator_phone(phone or "")
    if e164 is None or error is not None:
        return []
    from tickets.contacts import find_contact_by_phone

    contact = find_contact_by_phone(page.session, e164)
    if contact is None or not contact.is_test:
        return []
    channel = simulator_channel(page)
    return list(
        page.session.scalars(
            select(Message)
            .where(Message.contact_id == contact.id, Message.channel_id == channel.id)
            .order_by(Message.created_at, Message.id)
            .limit(200)
        )
    )


@router.get("/simulator")
def simulator_page(request: Request, page: PageCtx) -> Response:
    # The phone number is never taken from the URL (access logs, history): the thread of
    # another number is fetched by POST /simulator/thread.
    page.require(Capability.SIMULATOR)
    phone = SIMULATOR_EXAMPLE
    context: dict[str, Any] = {
        "phone": phone,
        "thread": _thread(page, phone),
        "errors": {},
        "ussd": None,
    }
    page.session.commit()
    return render(page, "simulator.html", context)


@router.post("/simulator/thread")
async def simulator_thread(request: Request, page: PostPage) -> Response:
    """The conversation of the posted phone number (polled by the page every 3 s)."""
    page.require(Capability.SIMULATOR)
    form = await request.form()
    phone = form_text(form, "phone", 40) or SIMULATOR_EXAMPLE
    context: dict[str, Any] = {
        "phone": phone,
        "thread": _thread(page, phone),
        "errors": {},
        "ussd": None,
    }
    page.session.commit()
    return render(page, "simulator.html", context, block="thread" if is_htmx(request) else None)


@router.post("/simulator/sms")
async def simulator_sms(request: Request, page: PostPage) -> Response:
    """An SMS "from a phone": recorded and handed to the workers exactly as a provider's
    webhook would (gateway.inbound), so the bot, triage and routing all run for real."""
    page.require(Capability.SIMULATOR)
    form = await request.form()
    phone = form_text(form, "phone", 40)
    text = form_text(form, "text", 1600)
    errors: dict[str, str] = {}
    e164, phone_error = simulator_phone(phone)
    if phone_error is not None:
        errors["phone"] = phone_error
    if not text:
        errors["text"] = N_("Write a message.")
    channel = simulator_channel(page)
    if not errors and e164 is not None:
        _simulator_contact(page, e164)
    page.session.commit()
    if not errors and e164 is not None:
        from gateway.inbound import InboundSms, publish_inbound, record_inbound

        message_id = record_inbound(
            InboundSms(
                channel_id=channel.id,
                provider_id=f"sim-{uuid.uuid4().hex}",
                sender=e164,
                text=text,
            )
        )
        if message_id is not None:
            publish_inbound(message_id)
    context = {"phone": phone, "thread": _thread(page, phone), "errors": errors, "ussd": None}
    return render(
        page,
        "simulator.html",
        context,
        block="sms" if is_htmx(request) else None,
        status_code=422 if errors else 200,
    )


@router.post("/simulator/ussd")
async def simulator_ussd(request: Request, page: PostPage) -> Response:
    """One USSD hop through the gateway's USSD handler, on the simulator channel."""
    page.require(Capability.SIMULATOR)
    form = await request.form()
    phone = form_text(form, "phone", 40)
    session_id = form_text(form, "session_id", 100) or f"sim-{uuid.uuid4().hex[:12]}"
    # Aggregators send the whole walk so far ("1*2*3"), so the simulator does the same.
    previous = form_text(form, "previous", 200)
    answer_text = form_text(form, "input", 40)
    if "session_id" not in form:
        text = ""
    else:
        text = f"{previous}*{answer_text}" if previous else answer_text
    errors: dict[str, str] = {}
    screen = ""
    ended = False
    e164, phone_error = simulator_phone(phone)
    if phone_error is not None:
        errors["phone"] = errors["ussd"] = phone_error
    channel = simulator_channel(page)
    if e164 is not None:
        _simulator_contact(page, e164)
    page.session.commit()
    if e164 is not None:
        from gateway.ussd.service import Hop, default_service

        answer = await default_service().handle(
            Hop(
                channel_id=channel.id,
                session_id=session_id,
                phone=e164,
                service_code=None,
                text=text,
            )
        )
        ended = answer.startswith("END")
        screen = answer.removeprefix("CON ").removeprefix("END ")
    context: dict[str, Any] = {
        "phone": phone,
        "thread": [],
        "errors": errors,
        "ussd": {"session_id": session_id, "screen": screen, "ended": ended, "history": text},
    }
    return render(
        page,
        "simulator.html",
        context,
        block="ussd" if is_htmx(request) else None,
        status_code=422 if errors else 200,
    )
