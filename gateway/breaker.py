"""A circuit breaker per provider channel, shared by every worker process (in the database,
so it works the same on `make run` — SQLite, no Redis — and on the server stack).

Closed (no row, or ``open_until`` unset): sends go out. ``DEME_BREAKER_FAILURES`` consecutive
transient failures (HTTP 5xx, timeout, refused connection, 429 — whatever the provider
answers when it is sick, as opposed to "this number is invalid") open it for
``DEME_BREAKER_COOLDOWN_SECONDS``: sends are not attempted, their messages wait QUEUED in the
database (``gateway.tasks``), never in the broker. Past the cooldown the breaker is
half-open: one send — the probe — takes a lease (compare-and-set on ``probe_until``) and
decides: success closes it (everything waiting goes out, in order), a transient failure opens
it for another cooldown.

Cost on the healthy path: the breaker row is read in the transaction that already loads the
message; a success writes only when the row shows failures.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from core.settings import get_settings
from models.base import utcnow
from models.channels import ChannelBreaker

log = logging.getLogger(__name__)

# Longer than any provider call (SDK timeouts are ≤ 30 s): a probe whose worker died frees
# the channel for another probe after this.
PROBE_LEASE = timedelta(seconds=60)


@dataclass(frozen=True, slots=True)
class Gate:
    allowed: bool
    probe: bool = False  # this send is the half-open probe
    failures: int = 0  # consecutive failures seen when checked (0: a success writes nothing)


CLOSED = Gate(allowed=True)


def check(session: Session, channel_id: int, *, now: datetime | None = None) -> Gate:
    """May a send on ``channel_id`` be attempted now? Reads in ``session``; a half-open
    probe lease is taken in a transaction of its own."""
    row = session.get(ChannelBreaker, channel_id)
    if row is None:
        return CLOSED
    if row.open_until is None:
        return Gate(allowed=True, failures=row.failures)
    moment = now or utcnow()
    if row.open_until > moment:
        return Gate(allowed=False, failures=row.failures)
    with get_sessionmaker()() as own:
        taken = own.execute(
            update(ChannelBreaker)
            .where(
                ChannelBreaker.channel_id == channel_id,
                ChannelBreaker.open_until.is_not(None),
                ChannelBreaker.open_until <= moment,
                or_(ChannelBreaker.probe_until.is_(None), ChannelBreaker.probe_until < moment),
            )
            .values(probe_until=moment + PROBE_LEASE)
        )
        own.commit()
    if getattr(taken, "rowcount", 0):
        log.info("breaker channel=%s: half-open, probing", channel_id)
        return Gate(allowed=True, probe=True, failures=row.failures)
    return Gate(allowed=False, failures=row.failures)


def record_success(channel_id: int, gate: Gate) -> None:
    """The provider answered (sent, or a permanent refusal of this one message): closed."""
    if not gate.probe and gate.failures == 0:
        return
    with get_sessionmaker()() as session:
        session.execute(
            update(ChannelBreaker)
            .where(ChannelBreaker.channel_id == channel_id)
            .values(failures=0, open_until=None, probe_until=None, last_error_code=None)
        )
        session.commit()
    if gate.probe:
        log.info("breaker channel=%s: probe succeeded, closed", channel_id)


def _ensure_row(channel_id: int) -> None:
    with get_sessionmaker()() as session:
        if session.get(ChannelBreaker, channel_id) is not None:
            return
        session.add(ChannelBreaker(channel_id=channel_id, failures=0, times_opened=0))
        try:
            session.commit()
        except IntegrityError:  # another process created it first
            session.rollback()


def record_failure(channel_id: int, code: str, gate: Gate, *, now: datetime | None = None) -> bool:
    """A transient provider failure; True when it opened (or re-opened) the breaker."""
    settings = get_settings()
    _ensure_row(channel_id)
    moment = now or utcnow()
    with get_sessionmaker()() as session:
        row = session.execute(
            update(ChannelBreaker)
            .where(ChannelBreaker.channel_id == channel_id)
            .values(failures=ChannelBreaker.failures + 1, last_error_code=code[:40])
            .returning(ChannelBreaker.failures, ChannelBreaker.open_until)
        ).one()
        failures, open_until = int(row[0]), row[1]
        opens = gate.probe or (open_until is None and failures >= settings.breaker_failures)
        if opens:
            session.execute(
                update(ChannelBreaker)
                .where(ChannelBreaker.channel_id == channel_id)
                .values(
                    open_until=moment + timedelta(seconds=settings.breaker_cooldown_seconds),
                    probe_until=None,
                    opened_at=moment,
                    times_opened=ChannelBreaker.times_opened + 1,
                )
            )
        session.commit()
    if opens:
        log.warning(
            "breaker channel=%s: open for %.0f s after %d failures (last %s)",
            channel_id,
            settings.breaker_cooldown_seconds,
            failures,
            code,
        )
    return opens


@dataclass(frozen=True, slots=True)
class BreakerState:
    channel_id: int
    state: str  # "closed" | "open" | "half-open"
    failures: int
    times_opened: int


def states(session: Session, *, now: datetime | None = None) -> list[BreakerState]:
    """Every channel that has a breaker row (for /metrics)."""
    moment = now or utcnow()
    result = []
    for row in session.scalars(select(ChannelBreaker).order_by(ChannelBreaker.channel_id)):
        if row.open_until is None:
            state = "closed"
        elif row.open_until > moment:
            state = "open"
        else:
            state = "half-open"
        result.append(BreakerState(row.channel_id, state, row.failures, row.times_opened))
    return result


def held_channels(session: Session, *, now: datetime | None = None) -> tuple[set[int], set[int]]:
    """(channels whose sends must not be published now, half-open channels free to probe):
    open ones and those with a probe in flight are held; a half-open one gets one send."""
    moment = now or utcnow()
    held: set[int] = set()
    probe: set[int] = set()
    rows = session.execute(
        select(
            ChannelBreaker.channel_id, ChannelBreaker.open_until, ChannelBreaker.probe_until
        ).where(ChannelBreaker.open_until.is_not(None))
    )
    for channel_id, open_until, probe_until in rows:
        if open_until > moment or (probe_until is not None and probe_until > moment):
            held.add(channel_id)
        else:
            probe.add(channel_id)
    return held, probe
