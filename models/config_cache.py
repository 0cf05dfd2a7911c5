"""Per-process cache of the configuration every ticket reads (routing rules, SLA targets,
place codes), invalidated across processes by a version token in Redis.

Each ticket's intake read the same few configuration rows again: the active routing rules,
the SLA target of its category and priority, the id of its place code — a statement each, a
fifth of a fallback turn's statements (bench/message_cpu.py). Those rows change only when an
admin edits them. So a worker keeps what it read, as plain values (never ORM objects: they
belong to one session), under the version token it read then.

**Invalidation.** A commit that wrote a watched model (``WATCHED``: flushed objects, and ORM
``insert``/``update``/``delete`` statements on them) replaces the token (``SET`` to a new
random value, after the commit); every process compares the token with the one its entries
were read under, once per transaction (memoised in ``session.info``), and drops them all on
a change. A random value rather than a counter, so that a flushed Redis (the tests forget
Deme's Redis state between tests) never brings an old number back: a missing token is set
to a new one, which matches no cached entry. Entries also expire after ``MAX_AGE_SECONDS``,
for writes that bypass the ORM session (raw SQL in a shell).

Without Redis (``DEME_REDIS_URL`` unset: a process outside ``deme run``) or while it is
unreachable, nothing is cached: every read goes to the database, as before.
"""

from __future__ import annotations

import logging
import secrets
import threading
import time
from collections.abc import Callable
from functools import lru_cache
from typing import Any, TypeVar

from sqlalchemy import event
from sqlalchemy.orm import ORMExecuteState, Session

from core.settings import get_settings

log = logging.getLogger(__name__)

T = TypeVar("T")

TOKEN_KEY = "deme:config-version"
MAX_AGE_SECONDS = 60.0
_SESSION_TOKEN = "deme_config_token"
_SESSION_DIRTY = "deme_config_dirty"
_SESSION_COMMITTED = "deme_config_committed"

# The models whose rows are cached (registered by their modules' users: ``watch``).
WATCHED: set[type] = set()


def watch(*models: type) -> None:
    """Writes to these models invalidate every process's cache."""
    WATCHED.update(models)


@lru_cache(maxsize=4)
def _client_for(url: str) -> Any:
    import redis

    return redis.Redis.from_url(url, socket_timeout=1, socket_connect_timeout=1)


def _client() -> Any | None:
    url = get_settings().redis_url
    return _client_for(url) if url else None


def _read_token() -> str | None:
    """The current version token (set to a new one when missing); None without Redis."""
    client = _client()
    if client is None:
        return None
    try:
        token = client.get(TOKEN_KEY)
        if token is None:
            client.set(TOKEN_KEY, secrets.token_hex(8), nx=True)
            token = client.get(TOKEN_KEY)
    except Exception as exc:  # Redis down: no cache, read the database
        log.warning("config cache off, Redis unavailable: %s", type(exc).__name__)
        return None
    return None if token is None else token.decode() if isinstance(token, bytes) else str(token)


def bump() -> None:
    """A watched model changed: every process reloads (after the writer's commit)."""
    client = _client()
    if client is None:
        return
    try:
        client.set(TOKEN_KEY, secrets.token_hex(8))
    except Exception as exc:  # entries still expire after MAX_AGE_SECONDS
        log.warning("config cache: could not publish a change: %s", type(exc).__name__)


class _Cache:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._token: str | None = None
        self._entries: dict[Any, tuple[float, Any]] = {}

    def get(self, session: Session, key: Any, load: Callable[[], T]) -> T:
        token = session.info.get(_SESSION_TOKEN, "")
        if token == "":
            token = _read_token()
            session.info[_SESSION_TOKEN] = token
        if token is None or _changed_here(session):
            return load()  # no Redis, or this transaction changed the configuration itself
        now = time.monotonic()
        with self._lock:
            if token != self._token:
                self._entries.clear()
                self._token = token
            hit = self._entries.get(key)
        if hit is not None and now - hit[0] < MAX_AGE_SECONDS:
            return hit[1]  # type: ignore[no-any-return]
        value = load()
        with self._lock:
            if token == self._token:
                self._entries[key] = (now, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
            self._token = None


_cache = _Cache()


def cached(session: Session, key: Any, load: Callable[[], T]) -> T:
    """``load()``'s value for ``key`` (hashable), from this process's cache when the
    configuration has not changed since. ``load`` must return a plain value."""
    return _cache.get(session, key, load)


def clear() -> None:
    """Forget this process's entries (tests)."""
    _cache.clear()


def _touches_watched(objects: Any) -> bool:
    return any(type(obj) in WATCHED for obj in objects)


def _changed_here(session: Session) -> bool:
    """Whether this transaction wrote (or is about to flush) a watched model: it must read
    its own writes, not another version's cache. ``dirty`` walks modified objects only."""
    return bool(session.info.get(_SESSION_DIRTY)) or (
        bool(WATCHED)
        and (
            _touches_watched(session.new)
            or _touches_watched(session.deleted)
            or _touches_watched(session.dirty)
        )
    )


@event.listens_for(Session, "after_flush")
def _after_flush(session: Session, _context: Any) -> None:
    if WATCHED and (
        _touches_watched(session.new)
        or _touches_watched(session.dirty)
        or _touches_watched(session.deleted)
    ):
        session.info[_SESSION_DIRTY] = True


@event.listens_for(Session, "do_orm_execute")
def _orm_execute(state: ORMExecuteState) -> None:
    if not (state.is_insert or state.is_update or state.is_delete):
        return
    entity = state.bind_mapper.class_ if state.bind_mapper is not None else None
    if entity in WATCHED:
        state.session.info[_SESSION_DIRTY] = True


@event.listens_for(Session, "after_commit")
def _after_commit(session: Session) -> None:
    # Also called when a savepoint is released: the flags are settled when the outermost
    # transaction ends (below), so a savepoint neither loses nor publishes them early.
    session.info[_SESSION_COMMITTED] = True


@event.listens_for(Session, "after_transaction_end")
def _after_transaction_end(session: Session, transaction: Any) -> None:
    if transaction.parent is not None:
        return
    session.info.pop(_SESSION_TOKEN, None)  # the next transaction reads the token again
    committed = session.info.pop(_SESSION_COMMITTED, False)
    if session.info.pop(_SESSION_DIRTY, False) and committed:
        bump()  # (after a released savepoint and a rolled-back outer one: a reload too many)
