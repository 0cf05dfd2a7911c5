"""Delivery unknown: outbound SMS whose outcome the provider left unknown (5xx, timeout) and
that no look-up resolved (``gateway.delivery``). Supervisors and admins (and protection
officers, for their tickets) see them and may resend one, after confirming that they accept
the risk of the person receiving it twice; each resend is audited.

Protection rules: the one rule for listing messages (``Viewer.message_clause``): a message
attached to a ticket only for viewers who may see that ticket, an unattached one of a sender
with a protection case only for protection officers; bodies are never shown, numbers are
masked.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select

from gateway.delivery import NotResendable, resend_unknown, unresolved
from gateway.outbound import BodyTooLong, NoChannel
from models.audit import record_audit
from models.channels import Channel
from models.contacts import Contact
from models.messages import Message
from models.outbox_relay import publish_committed
from models.tickets import Ticket
from ops_console.deps import PathId
from ops_console.forms import form_text
from ops_console.i18n import N_
from ops_console.permissions import Capability, Viewer
from ops_console.web import Page, PageCtx, PostPage, redirect, render

router = APIRouter(include_in_schema=False)

PAGE_LIMIT = 200


def _require(page: Page) -> Viewer:
    viewer = page.user_viewer
    if not (viewer.can(Capability.AUDIT_LOG) or viewer.sees_protection):
        raise HTTPException(403)
    return viewer


def _context(page: Page, viewer: Viewer, **extra: Any) -> dict[str, Any]:
    session = page.session
    messages = list(
        session.scalars(
            select(Message)
            .where(*unresolved(), viewer.message_clause())
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(PAGE_LIMIT)
        )
    )
    contact_ids = {m.contact_id for m in messages if m.contact_id}
    phones = {
        c.id: c.phone for c in session.scalars(select(Contact).where(Contact.id.in_(contact_ids)))
    }
    ticket_ids = {m.ticket_id for m in messages if m.ticket_id}
    references = dict(
        session.execute(select(Ticket.id, Ticket.reference).where(Ticket.id.in_(ticket_ids)))
        .tuples()
        .all()
    )
    channel_ids = {m.channel_id for m in messages}
    channels = dict(
        session.execute(select(Channel.id, Channel.name).where(Channel.id.in_(channel_ids)))
        .tuples()
        .all()
    )
    return {
        "messages": messages,
        "phones": phones,
        "references": references,
        "channels": channels,
        "notice": None,
        "error": None,
        **extra,
    }


@router.get("/delivery-unknown")
def delivery_unknown(page: PageCtx) -> Response:
    viewer = _require(page)
    notice = N_("Resent.") if page.request.query_params.get("resent") else None
    return render(page, "delivery.html", _context(page, viewer, notice=notice))


@router.post("/delivery-unknown/{message_id}/resend")
async def resend(message_id: PathId, request: Request, page: PostPage) -> Response:
    viewer = _require(page)
    session = page.session
    message = session.scalar(
        select(Message).where(Message.id == message_id, *unresolved(), viewer.message_clause())
    )
    if message is None:
        raise HTTPException(404)
    form = await request.form()
    if form_text(form, "accept_double") != "yes":
        error = N_("Not resent: tick the box to confirm you accept that it may arrive twice.")
        return render(page, "delivery.html", _context(page, viewer, error=error), status_code=400)
    try:
        new = resend_unknown(session, message_id)
    except (NotResendable, BodyTooLong, NoChannel):
        session.rollback()
        error = N_("Not resent: already resolved or resent, or the person opted out.")
        return render(page, "delivery.html", _context(page, viewer, error=error), status_code=409)
    record_audit(
        session,
        action="message.resent",
        actor_label=viewer.user.username,
        actor_user_id=viewer.user.id,
        object_type="message",
        object_id=message_id,
        ticket_id=message.ticket_id,  # the audit page filters it like the ticket
        new_message_id=new.id,
        accepted_double_risk=True,
    )
    session.commit()
    publish_committed(session)
    return redirect("/delivery-unknown?resent=1", request)
