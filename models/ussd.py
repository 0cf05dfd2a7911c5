"""USSD sessions: the state of a menu walk, kept so a dropped session can be resumed."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from models.base import Base, str_enum, utcnow
from models.enums import Language


class UssdSession(Base):
    __tablename__ = "ussd_sessions"
    __table_args__ = (UniqueConstraint("channel_id", "session_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("channels.id"))
    session_id: Mapped[str] = mapped_column(String(100))  # the aggregator's session id
    contact_id: Mapped[int | None] = mapped_column(
        ForeignKey("contacts.id", ondelete="CASCADE"), index=True
    )
    service_code: Mapped[str | None] = mapped_column(String(32))
    language: Mapped[Language | None] = mapped_column(str_enum(Language, 8))
    state: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    hops: Mapped[int] = mapped_column(default=0)
    completed: Mapped[bool] = mapped_column(default=False)
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    ended_at: Mapped[datetime | None]
