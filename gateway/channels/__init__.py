"""Provider channels as the gateway sees them: a cached, decrypted view of ``Channel`` rows.

Webhooks look a channel up on every request, so the active channels are kept in memory for a
short time (``CACHE_TTL_SECONDS``) with their credentials already decrypted: a Fernet decrypt
and a query per request would be most of the hot path's cost. A lookup that misses reloads at
most once a second, so a newly created channel is seen at once but random AccountSids from an
attacker cannot hammer the database. When the database is down the last snapshot keeps
serving (stale-if-error), so signatures can still be checked and messages spooled.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from core.settings import Settings, get_settings
from gateway.errors import DatabaseUnavailable
from models.channels import Channel
from models.enums import ChannelType

CACHE_TTL_SECONDS = 30.0
MISS_RELOAD_SECONDS = 1.0


@dataclass(frozen=True, slots=True)
class ChannelInfo:
    id: int
    name: str
    type: ChannelType
    address: str | None
    config: Mapping[str, Any]
    credentials: Mapping[str, Any]
    # Per-channel objects worth building once (e.g. twilio's RequestValidator).
    extras: dict[str, Any] = field(default_factory=dict, compare=False)

    def credential(self, name: str) -> str | None:
        value = self.credentials.get(name)
        return None if value is None else str(value)


def channel_info(row: Channel) -> ChannelInfo:
    return ChannelInfo(
        id=row.id,
        name=row.name,
        type=ChannelType(row.type),
        address=row.address,
        config=dict(row.config or {}),
        credentials=dict(row.credentials or {}),
    )


class ChannelCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: tuple[ChannelInfo, ...] = ()
        self._loaded_at = float("-inf")

    def _load(self) -> None:
        try:
            with get_sessionmaker()() as session:
                rows = session.scalars(select(Channel).where(Channel.active.is_(True))).all()
                channels = tuple(channel_info(row) for row in rows)
        except SQLAlchemyError as exc:
            if self._channels:
                # Stale-if-error: keep verifying with what we knew; retry in a second.
                self._loaded_at = time.monotonic() - CACHE_TTL_SECONDS + MISS_RELOAD_SECONDS
                return
            raise DatabaseUnavailable(str(exc).splitlines()[0][:200]) from exc
        self._channels = channels
        self._loaded_at = time.monotonic()

    def channels(self, *, missed: bool = False) -> tuple[ChannelInfo, ...]:
        age = time.monotonic() - self._loaded_at
        if age > CACHE_TTL_SECONDS or (missed and age > MISS_RELOAD_SECONDS):
            with self._lock:
                age = time.monotonic() - self._loaded_at
                if age > CACHE_TTL_SECONDS or (missed and age > MISS_RELOAD_SECONDS):
                    self._load()
        return self._channels

    def invalidate(self) -> None:
        with self._lock:
            self._channels = ()
            self._loaded_at = float("-inf")


_cache = ChannelCache()


def cached_channels(*, missed: bool = False) -> tuple[ChannelInfo, ...]:
    return _cache.channels(missed=missed)


def invalidate_channel_cache() -> None:
    """Forget cached channels (after an admin edits one; tests that recreate them)."""
    _cache.invalidate()


def find_channel(predicate: Any, channel_type: ChannelType) -> list[ChannelInfo]:
    """Active channels of ``channel_type`` for which ``predicate(info)`` holds; reloads once
    (rate-limited) when nothing matches, so a channel created a moment ago is found."""
    found = [c for c in cached_channels() if c.type == channel_type and predicate(c)]
    if not found:
        found = [c for c in cached_channels(missed=True) if c.type == channel_type and predicate(c)]
    return found


def load_channel(session: Session, channel_id: int) -> ChannelInfo | None:
    """Fresh (uncached) channel for workers: one primary-key read per outbound message."""
    row = session.get(Channel, channel_id)
    return None if row is None else channel_info(row)


def ensure_settings_channels(session: Session, settings: Settings | None = None) -> list[Channel]:
    """Create or update the channels described by ``DEME_TWILIO_*`` / ``DEME_AFRICASTALKING_*``.

    Called by the seed. Returns the channels it touched; the caller commits. An Africa's
    Talking channel gets a random webhook secret on creation (put it in the callback URL
    as ``?secret=...``; see gateway/README.md).
    """
    settings = settings or get_settings()
    touched: list[Channel] = []
    if settings.twilio_configured:
        row = session.scalar(select(Channel).where(Channel.name == "twilio"))
        if row is None:
            row = Channel(name="twilio", type=ChannelType.TWILIO, config={})
            session.add(row)
        assert settings.twilio_auth_token is not None
        row.credentials = {
            "account_sid": settings.twilio_account_sid,
            "auth_token": settings.twilio_auth_token.get_secret_value(),
        }
        row.address = settings.twilio_from
        config = dict(row.config or {})
        if settings.twilio_messaging_service_sid:
            config["messaging_service_sid"] = settings.twilio_messaging_service_sid
        row.config = config
        row.active = True
        touched.append(row)
    if settings.africastalking_configured:
        row = session.scalar(select(Channel).where(Channel.name == "africastalking"))
        if row is None:
            row = Channel(name="africastalking", type=ChannelType.AFRICASTALKING, config={})
            session.add(row)
        assert settings.africastalking_api_key is not None
        previous = dict(row.credentials or {})
        row.credentials = {
            **previous,  # keeps the USSD secret
            "username": settings.africastalking_username,
            "api_key": settings.africastalking_api_key.get_secret_value(),
            "webhook_secret": previous.get("webhook_secret") or secrets.token_urlsafe(24),
        }
        row.address = settings.africastalking_from
        row.active = True
        touched.append(row)
    session.flush()
    return touched
