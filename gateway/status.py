"""Outbound delivery status: only ever moves forward.

Providers call back out of order (a "sent" can arrive after "delivered") and retry their
callbacks, so each update is a single conditional UPDATE that only matches rows whose current
status ranks lower: no read-modify-write race, and a late or repeated callback is a no-op.
FAILED, UNDELIVERED and READ are final; DELIVERED can still become READ. UNKNOWN (an
ambiguous send) ranks just below SENT so that proof of sending, if it ever comes, wins.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import update
from sqlalchemy.orm import Session

from models.base import utcnow
from models.enums import MessageDirection, MessageStatus
from models.messages import Message

RANK: dict[MessageStatus, int] = {
    MessageStatus.PENDING: 0,
    MessageStatus.QUEUED: 1,
    MessageStatus.SENDING: 2,
    MessageStatus.UNKNOWN: 3,
    MessageStatus.SENT: 4,
    MessageStatus.DELIVERED: 5,
    MessageStatus.UNDELIVERED: 6,
    MessageStatus.FAILED: 6,
    MessageStatus.READ: 7,
}
FINAL = frozenset({MessageStatus.UNDELIVERED, MessageStatus.FAILED, MessageStatus.READ})

# Provider vocabularies → ours. Statuses absent here (receiving, received) are ignored.
TWILIO_STATUS: dict[str, MessageStatus] = {
    "accepted": MessageStatus.QUEUED,
    "scheduled": MessageStatus.QUEUED,
    "queued": MessageStatus.QUEUED,
    "sending": MessageStatus.SENDING,
    "sent": MessageStatus.SENT,
    "delivered": MessageStatus.DELIVERED,
    "partially_delivered": MessageStatus.SENT,
    "read": MessageStatus.READ,
    "undelivered": MessageStatus.UNDELIVERED,
    "failed": MessageStatus.FAILED,
    "canceled": MessageStatus.FAILED,
}
AFRICASTALKING_STATUS: dict[str, MessageStatus] = {
    "success": MessageStatus.DELIVERED,
    "sent": MessageStatus.SENT,
    "submitted": MessageStatus.SENT,
    "buffered": MessageStatus.SENT,
    "rejected": MessageStatus.FAILED,
    "failed": MessageStatus.FAILED,
    "expired": MessageStatus.FAILED,
}


def can_move(current: MessageStatus, new: MessageStatus) -> bool:
    if current in FINAL or current not in RANK or new not in RANK:
        return False
    return RANK[new] > RANK[current]


def statuses_below(new: MessageStatus) -> list[MessageStatus]:
    """Current statuses from which ``new`` is a forward move."""
    return [status for status in RANK if can_move(status, new)]


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    channel_id: int
    provider_id: str
    status: MessageStatus | None
    error_code: str | None = None
    error_message: str | None = None
    raw_status: str | None = None

    def to_json(self) -> dict[str, object]:
        return {
            "channel_id": self.channel_id,
            "provider_id": self.provider_id,
            "status": None if self.status is None else self.status.value,
            "error_code": self.error_code,
            "error_message": self.error_message,
            "raw_status": self.raw_status,
        }

    @classmethod
    def from_json(cls, data: dict[str, object]) -> StatusUpdate:
        status = data.get("status")
        return cls(
            channel_id=int(str(data["channel_id"])),
            provider_id=str(data["provider_id"]),
            status=MessageStatus(str(status)) if status else None,
            error_code=None if data.get("error_code") is None else str(data["error_code"]),
            error_message=None if data.get("error_message") is None else str(data["error_message"]),
            raw_status=None if data.get("raw_status") is None else str(data["raw_status"]),
        )


def advance_status(
    session: Session,
    *,
    message_id: int | None = None,
    channel_id: int | None = None,
    provider_id: str | None = None,
    status: MessageStatus,
    error_code: str | None = None,
    error_message: str | None = None,
    provider_id_to_set: str | None = None,
    clear_error: bool = False,
) -> bool:
    """Move an outbound message to ``status`` if that is forward; True when it moved.

    Identify the message by ``message_id`` or by (``channel_id``, ``provider_id``).
    ``clear_error``: forget an earlier attempt's error (a send that succeeded after retries).
    """
    now = utcnow()
    values: dict[str, object] = {"status": status, "status_updated_at": now}
    if clear_error:
        values["error_code"] = None
        values["error_message"] = None
    if error_code is not None:
        values["error_code"] = error_code[:40]
    if error_message is not None:
        values["error_message"] = error_message[:500]
    if provider_id_to_set is not None:
        values["provider_id"] = provider_id_to_set
    if status in (MessageStatus.SENT, MessageStatus.DELIVERED, MessageStatus.READ):
        values["sent_at"] = _coalesce_now(Message.sent_at, now)
    if status in (MessageStatus.DELIVERED, MessageStatus.READ):
        values["delivered_at"] = _coalesce_now(Message.delivered_at, now)
    statement = update(Message).where(
        Message.direction == MessageDirection.OUTBOUND,
        Message.status.in_(statuses_below(status)),
    )
    if message_id is not None:
        statement = statement.where(Message.id == message_id)
    else:
        statement = statement.where(
            Message.channel_id == channel_id, Message.provider_id == provider_id
        )
    result = session.execute(
        statement.values(**values), execution_options={"synchronize_session": False}
    )
    return bool(getattr(result, "rowcount", 0))


def _coalesce_now(column: object, now: object) -> object:
    from sqlalchemy import func

    return func.coalesce(column, now)


def record_error(
    session: Session,
    *,
    channel_id: int,
    provider_id: str,
    error_code: str | None,
    error_message: str | None,
) -> None:
    """Keep an error code reported with a callback even when its status did not move."""
    if not error_code and not error_message:
        return
    values: dict[str, object] = {}
    if error_code:
        values["error_code"] = error_code[:40]
    if error_message:
        values["error_message"] = error_message[:500]
    session.execute(
        update(Message)
        .where(
            Message.channel_id == channel_id,
            Message.provider_id == provider_id,
            Message.direction == MessageDirection.OUTBOUND,
            Message.error_code.is_(None),
        )
        .values(**values),
        execution_options={"synchronize_session": False},
    )


def apply_status_update(status_update: StatusUpdate) -> bool:
    """Apply a provider's delivery report in its own transaction; True when the status moved.

    An unknown provider id is not an error (a callback may beat the send task's commit, or
    concern a message sent from the provider's console): it is logged and dropped.
    """
    from core.db import get_sessionmaker

    with get_sessionmaker()() as session:
        return apply_status_update_in(session, status_update)


def apply_status_update_in(session: Session, status_update: StatusUpdate) -> bool:
    """``apply_status_update`` in ``session`` (a fresh one: this commits it); the webhooks run
    it through ``gateway.dbwork.in_session``."""
    from sqlalchemy import select

    from tickets.contacts import opt_out

    moved = False
    if status_update.status is not None:
        moved = advance_status(
            session,
            channel_id=status_update.channel_id,
            provider_id=status_update.provider_id,
            status=status_update.status,
            error_code=status_update.error_code,
            error_message=status_update.error_message,
        )
    if not moved:
        record_error(
            session,
            channel_id=status_update.channel_id,
            provider_id=status_update.provider_id,
            error_code=status_update.error_code,
            error_message=status_update.error_message,
        )
    if status_update.error_code in OPTED_OUT_ERROR_CODES:
        from models.contacts import Contact

        contact = session.scalar(
            select(Contact)
            .join(Message, Message.contact_id == Contact.id)
            .where(
                Message.channel_id == status_update.channel_id,
                Message.provider_id == status_update.provider_id,
            )
        )
        if contact is not None:
            opt_out(contact)
    session.commit()
    return moved


# Twilio 21610: "attempt to send to unsubscribed recipient"; AT "UserInBlacklist".
OPTED_OUT_ERROR_CODES = frozenset({"21610", "UserInBlacklist"})
