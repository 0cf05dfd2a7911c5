"""/api/v1/broadcasts: preview, create, send, test-send, cancel and follow SMS broadcasts
(``gateway.broadcasts``). Supervisors and administrators only; every action is audited."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, HTTPException
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.phones import InvalidPhoneNumber, normalize_phone
from gateway import broadcasts as bc
from models.audit import record_audit
from models.broadcasts import Broadcast
from models.enums import Language, TicketCategory, TicketKind, TicketStatus
from models.outbox_relay import publish_committed
from ops_console.api import _ERRORS
from ops_console.deps import ApiViewer, DbSession, PathId
from ops_console.permissions import Capability, Viewer

router = APIRouter(prefix="/api/v1", tags=["broadcasts"], responses=_ERRORS)

NOT_ALLOWED = "only a supervisor or an administrator may create, send or follow broadcasts"


def require_broadcasts(viewer: Viewer) -> None:
    if not viewer.can(Capability.BROADCASTS):
        raise HTTPException(403, f"{NOT_ALLOWED} (your role: {viewer.role.value})")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class SelectionIn(_Strict):
    place: str | None = Field(None, max_length=32, description="place code; places under it too")
    languages: list[Language] = Field(default_factory=list, max_length=3)
    ticket_kind: TicketKind | None = None
    ticket_category: TicketCategory | None = None
    ticket_status: TicketStatus | None = None
    phones_csv: str | None = Field(
        None,
        max_length=60000,
        description="an uploaded list: one number per line (first CSV cell); replaces the "
        "other criteria",
    )


class TextsIn(_Strict):
    fr: str | None = Field(None, max_length=bc.MAX_TEXT_LENGTH)
    en: str | None = Field(None, max_length=bc.MAX_TEXT_LENGTH)
    bm: str | None = Field(None, max_length=bc.MAX_TEXT_LENGTH)


class PreviewIn(_Strict):
    selection: SelectionIn
    texts: TextsIn


class BroadcastIn(PreviewIn):
    name: str = Field(..., min_length=1, max_length=120)


class SendIn(_Strict):
    scheduled_at: datetime | None = Field(None, description="UTC; empty: send now")


class TestSendIn(_Strict):
    phone: str = Field(..., min_length=3, max_length=40, description="your own phone")
    language: Language = Language.FRENCH


class ChannelCostOut(BaseModel):
    channel: str
    recipients: int
    parts: int
    cost: float


class TextInfoOut(BaseModel):
    encoding: str
    parts: int


class PreviewOut(BaseModel):
    recipients: int
    skipped: dict[str, int]
    by_language: dict[str, int]
    parts_total: int
    cost_total: float
    currency: str
    channels: list[ChannelCostOut]
    texts: dict[str, TextInfoOut]
    invalid_lines: list[str]
    new_numbers: int


class BroadcastOut(BaseModel):
    id: int
    name: str
    status: str
    criteria: dict[str, Any]
    texts: dict[str, str]
    created_at: datetime
    scheduled_at: datetime | None
    started_at: datetime | None
    finished_at: datetime | None
    recipients: int
    skipped: int
    parts_total: int
    progress: dict[str, int] = Field(description="recipients by status")
    delivery: dict[str, int] = Field(description="their messages by delivery status")
    replies: int


def selection_from(data: SelectionIn) -> bc.Selection:
    phones = bc.parse_phone_list(data.phones_csv) if data.phones_csv else None
    return bc.Selection(
        place_code=data.place or None,
        languages=tuple(data.languages),
        ticket_kind=data.ticket_kind,
        ticket_category=data.ticket_category,
        ticket_status=data.ticket_status,
        phones=phones,
    )


def preview_out(result: bc.Preview) -> PreviewOut:
    return PreviewOut(
        recipients=result.recipients,
        skipped=result.skipped,
        by_language=result.by_language,
        parts_total=result.parts_total,
        cost_total=result.cost_total,
        currency=result.currency,
        channels=[
            ChannelCostOut(channel=c.name, recipients=c.recipients, parts=c.parts, cost=c.cost)
            for c in result.channels
        ],
        texts={k: TextInfoOut(encoding=e, parts=p) for k, (e, p) in result.texts.items()},
        invalid_lines=result.invalid_lines,
        new_numbers=result.new_numbers,
    )


def broadcast_out(session: Session, broadcast: Broadcast) -> BroadcastOut:
    replies, _ = bc.replies(session, broadcast.id, limit=0)
    return BroadcastOut(
        id=broadcast.id,
        name=broadcast.name,
        status=broadcast.status.value,
        criteria=broadcast.criteria or {},
        texts={k.value: v for k, v in bc.broadcast_texts(broadcast).items()},
        created_at=broadcast.created_at,
        scheduled_at=broadcast.scheduled_at,
        started_at=broadcast.started_at,
        finished_at=broadcast.finished_at,
        recipients=broadcast.recipients_count,
        skipped=broadcast.skipped_count,
        parts_total=broadcast.parts_total,
        progress=bc.recipient_counts(session, broadcast.id),
        delivery=bc.delivery_counts(session, broadcast.id),
        replies=replies,
    )


def audit(session: Session, viewer: Viewer, action: str, broadcast_id: int, **details: Any) -> None:
    record_audit(
        session,
        action=action,
        actor_label=viewer.user.username,
        actor_user_id=viewer.user.id,
        object_type="broadcast",
        object_id=broadcast_id,
        **details,
    )


def _refused(exc: ValueError) -> HTTPException:
    return HTTPException(422, str(exc))


def _load(session: Session, broadcast_id: int) -> Broadcast:
    broadcast = session.get(Broadcast, broadcast_id)
    if broadcast is None:
        raise HTTPException(404, f"no broadcast {broadcast_id}")
    return broadcast


@router.post("/broadcasts/preview", response_model=PreviewOut)
def preview_broadcast(body: PreviewIn, viewer: ApiViewer, session: DbSession) -> Any:
    """How many people, SMS parts (GSM-7 or UCS-2) and the estimated cost per channel;
    nothing is written."""
    require_broadcasts(viewer)
    try:
        texts = bc.clean_texts(body.texts.model_dump())
        return preview_out(bc.preview(session, selection_from(body.selection), texts))
    except bc.SelectionRefused as exc:
        raise _refused(exc) from None


@router.post("/broadcasts", response_model=BroadcastOut, status_code=201)
def create_broadcast(body: BroadcastIn, viewer: ApiViewer, session: DbSession) -> Any:
    """A draft with its recipients prepared (per-person text and parts); send it with
    ``POST /broadcasts/{id}/send``."""
    require_broadcasts(viewer)
    try:
        texts = bc.clean_texts(body.texts.model_dump())
        broadcast = bc.prepare(
            session,
            selection_from(body.selection),
            texts,
            name=body.name,
            created_by_id=viewer.user.id,
        )
    except bc.SelectionRefused as exc:
        session.rollback()
        raise _refused(exc) from None
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
    return broadcast_out(session, broadcast)


@router.get("/broadcasts", response_model=list[BroadcastOut])
def list_broadcasts(viewer: ApiViewer, session: DbSession) -> Any:
    require_broadcasts(viewer)
    rows = session.scalars(select(Broadcast).order_by(Broadcast.id.desc()).limit(100))
    return [broadcast_out(session, b) for b in rows]


@router.get("/broadcasts/{broadcast_id}", response_model=BroadcastOut)
def get_broadcast(broadcast_id: PathId, viewer: ApiViewer, session: DbSession) -> Any:
    require_broadcasts(viewer)
    return broadcast_out(session, _load(session, broadcast_id))


@router.post("/broadcasts/{broadcast_id}/send", response_model=BroadcastOut)
def send_broadcast(
    broadcast_id: PathId, body: SendIn, viewer: ApiViewer, session: DbSession
) -> Any:
    """Send now, or at ``scheduled_at`` (beat's tick starts it then)."""
    require_broadcasts(viewer)
    broadcast = _load(session, broadcast_id)
    when = body.scheduled_at
    if when is not None and when.tzinfo is None:
        raise HTTPException(422, "scheduled_at: give a time zone (e.g. 2026-12-03T08:00:00Z)")
    try:
        bc.start(session, broadcast, when)
    except bc.NotAllowedNow as exc:
        raise HTTPException(409, str(exc)) from None
    audit(
        session,
        viewer,
        "broadcast.scheduled" if broadcast.scheduled_at else "broadcast.sent",
        broadcast.id,
        recipients=broadcast.recipients_count,
    )
    session.commit()
    return broadcast_out(session, broadcast)


@router.post("/broadcasts/{broadcast_id}/cancel", response_model=BroadcastOut)
def cancel_broadcast(broadcast_id: PathId, viewer: ApiViewer, session: DbSession) -> Any:
    require_broadcasts(viewer)
    broadcast = _load(session, broadcast_id)
    try:
        left = bc.cancel(session, broadcast)
    except bc.NotAllowedNow as exc:
        raise HTTPException(409, str(exc)) from None
    audit(session, viewer, "broadcast.cancelled", broadcast.id, not_sent=left)
    session.commit()
    return broadcast_out(session, broadcast)


class TestSendOut(BaseModel):
    queued: bool


@router.post("/broadcasts/{broadcast_id}/test", response_model=TestSendOut)
def test_send_broadcast(
    broadcast_id: PathId, body: TestSendIn, viewer: ApiViewer, session: DbSession
) -> Any:
    """The text in one language to your own phone, before sending to everyone."""
    require_broadcasts(viewer)
    broadcast = _load(session, broadcast_id)
    try:
        phone = normalize_phone(body.phone)
    except InvalidPhoneNumber:
        raise HTTPException(422, "phone: not a phone number") from None
    message = bc.send_test(session, broadcast, phone, body.language)
    if message is None:
        raise HTTPException(409, "that number opted out of SMS: nothing was sent")
    audit(session, viewer, "broadcast.test_sent", broadcast.id, language=body.language.value)
    session.commit()
    publish_committed(session)
    return TestSendOut(queued=True)
