"""Provider channels as the gateway sees them: a cached, decrypted view of ``Channel`` rows.

Webhooks look a channel up on every request, so the active channels are kept in memory for a
short time (``CACHE_TTL_SECONDS``) with their credentials already decrypted: a Fernet decrypt
and a query per request would be most of the hot path's cost. A lookup that misses reloads at
most once a second, so a newly created channel is seen at once but random AccountSids from an
attacker cannot hammer the database. When the database is down the last snapshot keeps
serving (stale-if-error), so signatures can still be checked and messages spooled.

Webhooks look channels up on the event loop (``lookup_on_loop``: a fresh cache is a few
microseconds of CPU); a reload, a query that a frozen database can hold for seconds, then runs
through the asyncio driver without blocking the loop, bounded by the webhook's budget.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import threading
import time
from collections.abc import Callable, Mapping
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import Any, TypeVar

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
# Longest a webhook waits for a reload when it could answer from the cached snapshot.
SNAPSHOT_WAIT_SECONDS = 0.2

T = TypeVar("T")

# Set while a lookup runs on the event loop, where it must not query the database: "raise"
# (ChannelCacheStale when a reload is due) or "snapshot" (answer from what is cached).
_cache_only: ContextVar[str | None] = ContextVar("channel_cache_only", default=None)


class ChannelCacheStale(Exception):
    """The lookup needs a reload from the database, which the event loop must not do."""

    def __init__(self, missed: bool) -> None:
        super().__init__("channel cache needs a reload")
        self.missed = missed


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


def _active_channels(session: Session) -> tuple[ChannelInfo, ...]:
    rows = session.scalars(select(Channel).where(Channel.active.is_(True))).all()
    return tuple(channel_info(row) for row in rows)


class ChannelCache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: tuple[ChannelInfo, ...] = ()
        self._loaded_at = float("-inf")
        # The event loop's reload in flight, shared by the requests that need it.
        self._reload: asyncio.Task[None] | None = None

    def _needs_load(self, missed: bool) -> bool:
        age = time.monotonic() - self._loaded_at
        return age > CACHE_TTL_SECONDS or (missed and age > MISS_RELOAD_SECONDS)

    def _loaded(self, channels: tuple[ChannelInfo, ...]) -> None:
        self._channels = channels
        self._loaded_at = time.monotonic()

    def _load_failed(self, exc: SQLAlchemyError) -> None:
        if self._channels:
            # Stale-if-error: keep verifying with what we knew; retry in a second.
            self._loaded_at = time.monotonic() - CACHE_TTL_SECONDS + MISS_RELOAD_SECONDS
            return
        raise DatabaseUnavailable(str(exc).splitlines()[0][:200]) from exc

    def _load(self) -> None:
        try:
            with get_sessionmaker()() as session:
                channels = _active_channels(session)
        except SQLAlchemyError as exc:
            self._load_failed(exc)
            return
        self._loaded(channels)

    def channels(self, *, missed: bool = False) -> tuple[ChannelInfo, ...]:
        if self._needs_load(missed):
            mode = _cache_only.get()
            if mode == "raise":
                raise ChannelCacheStale(missed)
            if mode == "snapshot":
                return self._channels
            with self._lock:
                if self._needs_load(missed):
                    self._load()
        return self._channels

    async def reload_async(self, missed: bool) -> None:
        """Reload on the event loop (PostgreSQL's asyncio driver; a thread on SQLite), one
        reload at a time, shared by the requests that need it; shielded, so a caller whose
        budget ran out leaves it to finish. With a snapshot to fall back on, waits at most
        ``SNAPSHOT_WAIT_SECONDS``: a database that hangs (rather than fails) must not turn
        verifiable requests into 503s."""
        if not self._needs_load(missed):
            return
        loop = asyncio.get_running_loop()
        task = self._reload
        if task is None or task.done() or task.get_loop() is not loop:
            task = self._reload = loop.create_task(self._reload_now())
        if not self._channels:
            await asyncio.shield(task)
            return
        # Past the wait: answered from the snapshot, the reload goes on.
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(asyncio.shield(task), SNAPSHOT_WAIT_SECONDS)

    async def _reload_now(self) -> None:
        from gateway.dbwork import in_session

        try:
            channels = await in_session(_active_channels, lookup=True)
        except SQLAlchemyError as exc:
            self._load_failed(exc)
            return
        self._loaded(channels)

    def invalidate(self) -> None:
        with self._lock:
            self._channels = ()
            self._loaded_at = float("-inf")


_cache = ChannelCache()


def cached_channels(*, missed: bool = False) -> tuple[ChannelInfo, ...]:
    return _cache.channels(missed=missed)


def have_snapshot() -> bool:
    """Whether channels were ever loaded (a stale snapshot can still verify requests)."""
    return bool(_cache._channels)


def cache_only(lookup: Callable[[], T]) -> T:
    """``lookup()`` from memory alone; ``ChannelCacheStale`` when a reload is due."""
    token = _cache_only.set("raise")
    try:
        return lookup()
    finally:
        _cache_only.reset(token)


async def lookup_on_loop(lookup: Callable[[], T]) -> T:
    """``lookup()`` (a ``channel_for``, with the verification) from the cache, on the event
    loop: a stale cache is reloaded without blocking the loop (``reload_async``), then the
    lookup is answered from whatever the cache holds (the snapshot, if the database failed).
    The caller bounds it in time."""
    token = _cache_only.set("raise")
    try:
        return lookup()
    except ChannelCacheStale as stale:
        missed = stale.missed
    finally:
        _cache_only.reset(token)
    await _cache.reload_async(missed)
    token = _cache_only.set("snapshot")
    try:
        return lookup()
    finally:
        _cache_only.reset(token)


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
