"""The per-channel circuit breaker and the due-sweep on both deployments' databases
(PostgreSQL, and SQLite as `make run` has it): the state every worker process shares."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Channel, ChannelBreaker, ChannelType, Message, MessageDirection, MessageStatus
from models.base import utcnow
from support.embedded import embedded_deployment


@pytest.fixture(params=["postgresql", "sqlite"])
def session(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Session]:
    if request.param == "postgresql":
        yield request.getfixturevalue("db")
        return
    from core.db import get_sessionmaker

    with embedded_deployment(tmp_path, monkeypatch), get_sessionmaker()() as own:
        yield own


@pytest.fixture()
def channel(session: Session) -> Channel:
    row = Channel(name="breaker-test", type=ChannelType.TWILIO, config={}, address="+22370000001")
    session.add(row)
    session.commit()
    return row


def _state(session: Session, channel_id: int) -> ChannelBreaker | None:
    session.expire_all()
    return session.get(ChannelBreaker, channel_id)


def test_consecutive_failures_open_it_a_probe_decides(
    session: Session, channel: Channel, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core.settings import get_settings
    from gateway import breaker

    settings = get_settings()
    now = utcnow()
    channel_id = channel.id
    gate = breaker.check(session, channel_id, now=now)
    assert gate.allowed and not gate.probe
    for _ in range(settings.breaker_failures - 1):
        assert not breaker.record_failure(channel_id, "500", gate, now=now)
    assert breaker.check(session, channel_id, now=now).allowed  # one short of the threshold
    session.rollback()
    assert breaker.record_failure(channel_id, "connect", gate, now=now)  # the Nth: open
    row = _state(session, channel_id)
    assert row is not None and row.open_until is not None and row.last_error_code == "connect"
    assert not breaker.check(session, channel_id, now=now).allowed
    session.rollback()

    # Past the cooldown: exactly one of several concurrent senders is the probe.
    later = now + timedelta(seconds=settings.breaker_cooldown_seconds + 1)

    def try_probe(_: int) -> bool:
        from core.db import get_sessionmaker

        with get_sessionmaker()() as own:
            return breaker.check(own, channel_id, now=later).probe

    with ThreadPoolExecutor(4) as pool:
        probes = list(pool.map(try_probe, range(8)))
    assert probes.count(True) == 1
    probe = breaker.Gate(allowed=True, probe=True, failures=settings.breaker_failures)

    # The probe fails: open again for a cooldown.
    assert breaker.record_failure(channel_id, "500", probe, now=later)
    assert not breaker.check(session, channel_id, now=later).allowed
    session.rollback()
    # The next probe succeeds: closed, counters reset.
    again = later + timedelta(seconds=settings.breaker_cooldown_seconds + 1)
    gate = breaker.check(session, channel_id, now=again)
    session.rollback()
    assert gate.probe
    breaker.record_success(channel_id, gate)
    row = _state(session, channel_id)
    assert row is not None and row.open_until is None and row.failures == 0
    assert row.times_opened == 2
    assert [s.state for s in breaker.states(session)] == ["closed"]


def test_the_due_sweep_holds_an_open_channel_and_probes_a_half_open_one(
    session: Session, channel: Channel
) -> None:
    from core.settings import get_settings
    from gateway import breaker
    from gateway.tasks import DUE_LEASE, send_due

    other = Channel(name="healthy", type=ChannelType.TWILIO, config={}, address="+22370000002")
    session.add(other)
    session.commit()
    failing_id, healthy_id = channel.id, other.id
    now = utcnow()
    for channel_id in (failing_id, failing_id, failing_id, healthy_id, healthy_id):
        session.add(
            Message(
                channel_id=channel_id,
                direction=MessageDirection.OUTBOUND,
                status=MessageStatus.QUEUED,
                body="réponse",
                next_attempt_at=now - timedelta(seconds=1),
            )
        )
    session.add(
        Message(
            channel_id=healthy_id,
            direction=MessageDirection.OUTBOUND,
            status=MessageStatus.QUEUED,
            body="plus tard",
            next_attempt_at=now + timedelta(minutes=5),  # backoff not over
        )
    )
    session.commit()
    gate = breaker.CLOSED
    for _ in range(get_settings().breaker_failures):
        breaker.record_failure(failing_id, "500", gate, now=now)

    def leased() -> dict[int, int]:
        session.expire_all()
        rows = session.scalars(select(Message).where(Message.next_attempt_at > now + DUE_LEASE / 2))
        counts: dict[int, int] = {}
        for m in rows:
            if m.body == "réponse":
                counts[m.channel_id] = counts.get(m.channel_id, 0) + 1
        return counts

    assert send_due(now=now) == 2  # the healthy channel's two due sends; the open one waits
    assert leased() == {healthy_id: 2}
    assert send_due(now=now) == 0  # claimed: never published twice

    half_open = now + timedelta(seconds=get_settings().breaker_cooldown_seconds + 1)
    assert send_due(now=half_open) == 1  # one probe, not three
    assert leased() == {healthy_id: 2, failing_id: 1}
