"""Provider channels: a Twilio number, an Africa's Talking account, a local aggregator."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, ForeignKey, String
from sqlalchemy.orm import Mapped, mapped_column

from core.crypto import EncryptedJSON
from models.base import Base, TimestampMixin, str_enum
from models.enums import ChannelType


class Channel(TimestampMixin, Base):
    __tablename__ = "channels"

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    type: Mapped[ChannelType] = mapped_column(str_enum(ChannelType), index=True)
    # The number or short code people write to (E.164 or short code), for display and routing.
    address: Mapped[str | None] = mapped_column(String(40))
    # Account SIDs, tokens, API keys, shared secrets: encrypted at rest.
    credentials: Mapped[dict[str, Any] | None] = mapped_column(EncryptedJSON())
    # Non-secret behaviour: field mapping of a generic aggregator, messages per second,
    # transliteration on/off, maximum segments, USSD service code.
    config: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    active: Mapped[bool] = mapped_column(default=True)


class ChannelBreaker(Base):
    """A channel's circuit breaker (``gateway.breaker``), shared by every worker process:
    consecutive transient provider failures, and while open, until when no send is tried.
    No row = closed and healthy."""

    __tablename__ = "channel_breakers"

    channel_id: Mapped[int] = mapped_column(
        ForeignKey("channels.id", ondelete="CASCADE"), primary_key=True
    )
    failures: Mapped[int] = mapped_column(default=0)
    # Set while open; once past, the next send is the half-open probe.
    open_until: Mapped[datetime | None]
    # The probe in flight holds this lease; another probe only after it lapses.
    probe_until: Mapped[datetime | None]
    opened_at: Mapped[datetime | None]
    last_error_code: Mapped[str | None] = mapped_column(String(40))
    times_opened: Mapped[int] = mapped_column(default=0)
