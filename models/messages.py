"""SMS in and out, and calls (hotline calls and missed-call callbacks)."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from core.crypto import EncryptedText
from models.base import Base, str_enum, utcnow
from models.enums import MessageDirection, MessageEncoding, MessageStatus


class Message(Base):
    __tablename__ = "messages"
    __table_args__ = (
        # Same provider id on the same channel = the same message (providers retry webhooks).
        UniqueConstraint("channel_id", "provider_id"),
        Index("ix_messages_contact_created", "contact_id", "created_at"),
        Index("ix_messages_direction_status", "direction", "status"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    direction: Mapped[MessageDirection] = mapped_column(str_enum(MessageDirection, 4))
    provider_id: Mapped[str | None] = mapped_column(String(80))
    body: Mapped[str | None] = mapped_column(EncryptedText())  # encrypted at rest; NULL once erased
    status: Mapped[MessageStatus] = mapped_column(str_enum(MessageStatus))
    segments: Mapped[int | None]
    encoding: Mapped[MessageEncoding | None] = mapped_column(str_enum(MessageEncoding, 8))
    error_code: Mapped[str | None] = mapped_column(String(40))
    error_message: Mapped[str | None] = mapped_column(String(500))
    # The body had NUL bytes or invalid UTF-8 that were removed or replaced.
    sanitized: Mapped[bool] = mapped_column(default=False)
    # Over the sender's flood limit: stored and shown, not sent to the bot, not answered.
    flood_limited: Mapped[bool] = mapped_column(default=False)
    transliterated: Mapped[bool] = mapped_column(default=False)
    send_attempts: Mapped[int] = mapped_column(default=0)
    # QUEUED for a retry (backoff after a transient failure, a throttle, an open circuit
    # breaker): when the due-sweep (gateway.send_due) publishes it again. The retry waits
    # here, not in the broker or a worker.
    next_attempt_at: Mapped[datetime | None]
    # Set in its own commit just before the provider is called: a re-run after a worker crash
    # sees it and records the message as UNKNOWN instead of sending twice.
    send_started_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    status_updated_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    delivered_at: Mapped[datetime | None]
    # UNKNOWN sends: last time the provider was asked whether it has the message (Twilio
    # look-up), and when an operator resent it after accepting the risk of a double.
    reconciled_at: Mapped[datetime | None]
    resent_at: Mapped[datetime | None]


class Call(Base):
    """A hotline call: logged by an operator, or a missed call asking to be called back."""

    __tablename__ = "calls"
    __table_args__ = (UniqueConstraint("channel_id", "provider_call_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    provider_call_id: Mapped[str | None] = mapped_column(String(80))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    ticket_id: Mapped[int | None] = mapped_column(
        ForeignKey("tickets.id", ondelete="SET NULL"), index=True
    )
    operator_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    direction: Mapped[MessageDirection] = mapped_column(str_enum(MessageDirection, 4))
    # missed | callback_requested | called_back | completed
    status: Mapped[str] = mapped_column(String(24))
    notes: Mapped[str | None] = mapped_column(EncryptedText())  # encrypted at rest
    duration_seconds: Mapped[int | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
