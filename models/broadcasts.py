"""Broadcasts: one SMS, written in fr/en/bm, sent to a selection of contacts
(``gateway.broadcasts``). Each recipient is one row, unique per broadcast and contact, so a
sending task that is killed and run again never writes a second message for anyone."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, str_enum, utcnow
from models.enums import Language


class BroadcastStatus(StrEnum):
    DRAFT = "draft"
    SCHEDULED = "scheduled"
    SENDING = "sending"
    DONE = "done"
    CANCELLED = "cancelled"


class RecipientStatus(StrEnum):
    QUEUED = "queued"  # waiting for its turn (the channel's rate)
    SENT = "sent"  # handed to the outbound path: its message carries the delivery status
    FAILED = "failed"
    SKIPPED = "skipped"  # opted out, erased or flood-limited: never sent to


class Broadcast(Base):
    __tablename__ = "broadcasts"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(120))
    # The operator's text, one per language (not personal data: written by staff).
    text_fr: Mapped[str | None] = mapped_column(Text)
    text_en: Mapped[str | None] = mapped_column(Text)
    text_bm: Mapped[str | None] = mapped_column(Text)
    # The selection as chosen (place, languages, ticket kind/status; for an uploaded list only
    # how many numbers, never the numbers).
    criteria: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    status: Mapped[BroadcastStatus] = mapped_column(
        str_enum(BroadcastStatus, 16), default=BroadcastStatus.DRAFT, index=True
    )
    created_by_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    scheduled_at: Mapped[datetime | None]
    started_at: Mapped[datetime | None]
    finished_at: Mapped[datetime | None]
    recipients_count: Mapped[int] = mapped_column(default=0)
    skipped_count: Mapped[int] = mapped_column(default=0)
    parts_total: Mapped[int] = mapped_column(default=0)
    sent_count: Mapped[int] = mapped_column(default=0)
    failed_count: Mapped[int] = mapped_column(default=0)


class BroadcastRecipient(Base):
    __tablename__ = "broadcast_recipients"
    __table_args__ = (
        UniqueConstraint("broadcast_id", "contact_id"),
        Index("ix_broadcast_recipients_status", "broadcast_id", "status", "id"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    broadcast_id: Mapped[int] = mapped_column(ForeignKey("broadcasts.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="SET NULL"), index=True
    )
    channel_id: Mapped[int | None] = mapped_column(ForeignKey("channels.id"))
    language: Mapped[Language | None] = mapped_column(str_enum(Language, 8))
    text: Mapped[str | None] = mapped_column(Text)
    parts: Mapped[int] = mapped_column(default=0)
    status: Mapped[RecipientStatus] = mapped_column(str_enum(RecipientStatus, 16))
    reason: Mapped[str | None] = mapped_column(String(40))
    message_id: Mapped[int | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), index=True
    )
    sent_at: Mapped[datetime | None]
