"""Provider channels: a Twilio number, an Africa's Talking account, a local aggregator."""

from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, String
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
