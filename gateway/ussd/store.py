"""Where a caller's menu state lives between hops: Redis (with a TTL) or the database.

State is keyed on the caller (the keyed hash of their phone number), not on the aggregator's
session id: when an operator cuts an idle session and the caller dials again, the new session
finds the old state and can offer to continue. One caller has one walk in progress at a time.

* :class:`RedisStore` – one ``GET`` and one ``SET … EX`` per hop; the TTL is the resume window,
  so abandoned walks disappear on their own.
* :class:`DatabaseStore` – the embedded default without Redis (SQLite or PostgreSQL): the
  ``ussd_sessions`` table, one row per aggregator session, the newest row of the caller's
  contact being their state.
"""

from __future__ import annotations

import asyncio
import weakref
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any, Protocol

from gateway.dbwork import in_db_thread
from gateway.ussd.engine import MenuState

if TYPE_CHECKING:
    from sqlalchemy import Select

    from models.ussd import UssdSession

# A dropped walk can be resumed for this long after its last hop.
RESUME_WINDOW_SECONDS = 600
# A finished walk is kept briefly so an aggregator's retry of the final hop gets the same END.
DONE_TTL_SECONDS = 120
_REDIS_TIMEOUT_SECONDS = 1.0


class StoreUnavailable(RuntimeError):
    """The state backend did not answer (the caller gets a polite END, never an HTTP error)."""


@dataclass(frozen=True, slots=True)
class CallerKey:
    phone_hash: str
    channel_id: int
    session_id: str
    service_code: str | None

    def session_row(self) -> Select[tuple[UssdSession]]:
        """The query for this aggregator session's ``ussd_sessions`` row."""
        from sqlalchemy import select

        from models.ussd import UssdSession

        return select(UssdSession).where(
            UssdSession.channel_id == self.channel_id,
            UssdSession.session_id == self.session_id,
        )

    def new_session_row(self) -> UssdSession:
        """A fresh, not yet completed ``ussd_sessions`` row for this aggregator session."""
        from models.ussd import UssdSession

        return UssdSession(
            channel_id=self.channel_id,
            session_id=self.session_id,
            service_code=self.service_code,
            state={},
            hops=0,
            completed=False,
        )


class SessionStore(Protocol):
    # True when the store needs a Contact row before the first save (the database store
    # finds a caller's state through their contact).
    needs_contact: bool

    async def load(self, key: CallerKey) -> MenuState | None: ...

    async def save(self, key: CallerKey, state: MenuState) -> None: ...

    async def forget(self, key: CallerKey) -> None: ...


class RedisStore:
    needs_contact = False

    def __init__(self, url: str, *, prefix: str = "deme:ussd:") -> None:
        self.url = url
        self.prefix = prefix
        # redis.asyncio connections belong to the event loop that opened them; the app has one
        # loop per process, tests open several (one per TestClient), hence one client per loop.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary()
        )

    def _client(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            import redis.asyncio

            client = redis.asyncio.Redis.from_url(
                self.url,
                socket_timeout=_REDIS_TIMEOUT_SECONDS,
                socket_connect_timeout=_REDIS_TIMEOUT_SECONDS,
                max_connections=256,
            )
            self._clients[loop] = client
        return client

    def key(self, key: CallerKey) -> str:
        return self.prefix + key.phone_hash

    async def load(self, key: CallerKey) -> MenuState | None:
        try:
            raw = await self._client().get(self.key(key))
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__) from exc
        return None if raw is None else MenuState.from_json(raw)

    async def save(self, key: CallerKey, state: MenuState) -> None:
        ttl = DONE_TTL_SECONDS if state.done else RESUME_WINDOW_SECONDS
        try:
            await self._client().set(self.key(key), state.to_json(), ex=ttl)
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__) from exc

    async def forget(self, key: CallerKey) -> None:
        try:
            await self._client().delete(self.key(key))
        except Exception as exc:
            raise StoreUnavailable(type(exc).__name__) from exc


class DatabaseStore:
    needs_contact = True

    async def load(self, key: CallerKey) -> MenuState | None:
        return await in_db_thread(self._load, key)

    async def save(self, key: CallerKey, state: MenuState) -> None:
        await in_db_thread(self._save, key, state)

    async def forget(self, key: CallerKey) -> None:
        await in_db_thread(self._forget, key)

    @staticmethod
    def _load(key: CallerKey) -> MenuState | None:
        from sqlalchemy import select

        from core.db import get_sessionmaker
        from models.base import utcnow
        from models.contacts import Contact
        from models.ussd import UssdSession

        with get_sessionmaker()() as session:
            row = session.scalar(
                select(UssdSession)
                .join(Contact, UssdSession.contact_id == Contact.id)
                .where(Contact.phone_hash == key.phone_hash)
                .where(
                    UssdSession.updated_at >= utcnow() - timedelta(seconds=RESUME_WINDOW_SECONDS)
                )
                .order_by(UssdSession.updated_at.desc(), UssdSession.id.desc())
                .limit(1)
            )
            if row is None or not isinstance(row.state, dict) or "sid" not in row.state:
                return None
            return MenuState.from_dict(row.state)

    @staticmethod
    def _save(key: CallerKey, state: MenuState) -> None:

        from core.db import get_sessionmaker
        from models.base import utcnow

        with get_sessionmaker()() as session:
            row = session.scalar(key.session_row())
            if row is None:
                row = key.new_session_row()
                session.add(row)
            row.contact_id = state.contact_id
            row.language = state.language
            row.state = state.to_dict()
            row.hops = state.hops
            row.updated_at = utcnow()
            if state.done and not row.completed:
                row.completed = True
                row.ended_at = utcnow()
            session.commit()

    @staticmethod
    def _forget(key: CallerKey) -> None:
        from sqlalchemy import delete, select

        from core.db import get_sessionmaker
        from models.contacts import Contact
        from models.ussd import UssdSession

        with get_sessionmaker()() as session:
            contact_ids = select(Contact.id).where(Contact.phone_hash == key.phone_hash)
            session.execute(delete(UssdSession).where(UssdSession.contact_id.in_(contact_ids)))
            session.commit()


def store_from_settings() -> SessionStore:
    from core.settings import get_settings

    url = get_settings().redis_url
    return RedisStore(url) if url else DatabaseStore()
