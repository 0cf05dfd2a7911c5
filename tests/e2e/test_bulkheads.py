"""Bulkheads and the per-channel circuit breaker, with the real parts: the topology's workers
(core.celery_app.WORKERS, each on its own queues, as `deme run` and compose start them) and
beat on a private Redis, the real app (`deme web`), PostgreSQL, the real Twilio SDK against
the fake provider, whose API goes unreachable (connections refused) or answers 500.

What a user would see: while the provider is down and hundreds of replies wait, a new SMS
still becomes a ticket within seconds; the provider is not hammered (the breaker opens, a
probe every cooldown); once it is back every waiting reply goes out exactly once."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from models import ChannelBreaker, Message, MessageDirection, MessageStatus
from support import wait_until
from support.workers import BeatProcess, WorkerProcess, stop_all, topology_workers
from tests.e2e.helpers import SMS_PATH, ticket_for
from tests.gateway import fake_provider as fp
from tests.gateway.gateway_helpers import (
    RedisServer,
    UvicornServer,
    environ,
    signed,
    twilio_sms_form,
)
from tickets.contacts import get_or_create_contact

WAITING = 300  # replies queued to the dead provider
COOLDOWN = "2"  # seconds the breaker stays open (DEME_BREAKER_COOLDOWN_SECONDS)


class Stack:
    def __init__(self, redis: RedisServer) -> None:
        self.env = {
            "DEME_REDIS_URL": redis.url,
            "DEME_BREAKER_COOLDOWN_SECONDS": COOLDOWN,
            "DEME_OUTBOX_RELAY_SECONDS": "1",
        }
        self.workers: list[WorkerProcess] = []
        self.beat: BeatProcess | None = None
        self.web: UvicornServer | None = None
        with environ(**self.env):
            try:
                self.workers = topology_workers()
                self.beat = BeatProcess(due_seconds=0.5)
                self.web = UvicornServer(self.env, workers=1)
            except BaseException:
                self.stop()
                raise

    @property
    def url(self) -> str:
        assert self.web is not None
        return self.web.url

    def stop(self) -> None:
        if self.web is not None:
            self.web.stop()
        if self.beat is not None:
            self.beat.stop()
        stop_all(self.workers)


@pytest.fixture()
def stack(platform: Any) -> Iterator[Stack]:
    redis = RedisServer().start()
    running = Stack(redis)
    yield running
    running.stop()
    redis.kill()


def _queue_replies(db: Session, channel: Any, count: int) -> list[int]:
    """Replies waiting in the database, due now, as a deferred send leaves them: the stack's
    due-sweep (beat) publishes them on the stack's broker. (A reply has no outbox row: its
    after-commit publish would go from this process to the session's broker, not the stack's.)"""
    from sqlalchemy import update

    from gateway.outbound import queue_sms
    from models.base import utcnow

    ids = []
    for n in range(count):
        contact = get_or_create_contact(db, f"+2237650{n:04d}")
        message = queue_sms(db, contact=contact, body=f"Réponse {n}", channel=channel)
        assert message is not None
        ids.append(message.id)
    db.execute(
        update(Message)
        .where(Message.id.in_(ids))
        .values(status=MessageStatus.QUEUED, next_attempt_at=utcnow())
    )
    db.commit()
    return ids


def _post_like_twilio(base_url: str, sender: str, text: str) -> float:
    """Post a signed SMS; a 503 (the web app's 1 s database timeouts on a loaded 2-core
    machine, cold start) is retried as Twilio retries. Returns when it was accepted."""
    body, headers = signed(SMS_PATH, twilio_sms_form(sender, text))
    for _ in range(5):
        accepted = time.monotonic()
        response = httpx.post(base_url + SMS_PATH, content=body, headers=headers, timeout=10)
        if response.status_code != 503:
            assert response.status_code == 200, response.text
            return accepted
        time.sleep(1)
    raise AssertionError("webhook kept answering 503")


def _breaker(db: Session, channel_id: int) -> ChannelBreaker | None:
    db.expire_all()
    return db.get(ChannelBreaker, channel_id)


def _outbound_by_status(db: Session) -> dict[MessageStatus, int]:
    db.expire_all()
    rows = db.execute(
        select(Message.status, func.count())
        .where(Message.direction == MessageDirection.OUTBOUND)
        .group_by(Message.status)
    )
    return {status: int(n) for status, n in rows}


def _attempts(db: Session) -> int:
    db.expire_all()
    return int(db.scalar(select(func.sum(Message.send_attempts))) or 0)


def test_provider_down_never_delays_intake_and_each_reply_goes_out_once(
    db: Session, platform: Any, provider: fp.FakeProvider, stack: Stack
) -> None:
    provider.go_down()
    try:
        waiting = _queue_replies(db, platform, WAITING)
        # The first sends fail (connection refused) and open the breaker; the rest are not
        # attempted: they wait in the database, not in the broker.
        wait_until(lambda: (b := _breaker(db, platform.id)) is not None and b.open_until, 60)
        wait_until(lambda: _outbound_by_status(db).get(MessageStatus.QUEUED, 0) == WAITING, 120)

        sender = "+22376999001"
        started = _post_like_twilio(stack.url, sender, "pa d'eau potable ici a sevare, ns sommes 6")
        wait_until(lambda: ticket_for(db, sender) is not None, timeout=10, interval=0.05)
        to_ticket = time.monotonic() - started
        assert to_ticket < 5.0, f"inbound to ticket took {to_ticket:.1f} s behind the outage"

        time.sleep(2 * float(COOLDOWN) + 1)  # probes come and fail, one per cooldown
        attempts = _attempts(db)
        # Not one try per waiting message: the failures that opened it (≤ the outbound
        # worker's threads in flight) and one probe per cooldown.
        assert attempts < 40, attempts
        metrics = httpx.get(f"{stack.url}/metrics", timeout=10).text
        assert f'deme_channel_breaker_open{{channel="{platform.id}"}} 1.0' in metrics
        assert "deme_outbound_waiting " in metrics
    finally:
        provider.go_up()

    # Every reply — the waiting ones and those to the new sender — goes out, each once.
    def all_sent() -> bool:
        counts = _outbound_by_status(db)
        return set(counts) == {MessageStatus.SENT} and counts[MessageStatus.SENT] > WAITING

    wait_until(all_sent, timeout=90)
    everyone = _outbound_by_status(db)[MessageStatus.SENT]
    sent = Counter((r.form["To"], r.form["Body"]) for r in provider.sent("twilio"))
    assert len(sent) == everyone and set(sent.values()) == {1}, "a reply sent twice"
    assert {f"Réponse {n}" for n in range(WAITING)} <= {body for (_to, body) in sent}
    assert any(to == sender for (to, _body) in sent)
    db.expire_all()
    assert {m.status for m in db.scalars(select(Message).where(Message.id.in_(waiting)))} == {
        MessageStatus.SENT
    }
    breaker = _breaker(db, platform.id)
    assert breaker is not None and breaker.open_until is None and breaker.failures == 0
    assert breaker.times_opened >= 1


def test_a_failing_provider_opens_the_breaker_and_a_probe_closes_it(
    db: Session, platform: Any, provider: fp.FakeProvider, stack: Stack
) -> None:
    """HTTP 500: the send may have been taken, so the messages tried are UNKNOWN (never
    resent blindly); every other one waits for the breaker and goes out once."""
    provider.fail_all(fp.SERVER_ERROR)
    _queue_replies(db, platform, 60)
    wait_until(lambda: (b := _breaker(db, platform.id)) is not None and b.open_until, 20)
    time.sleep(float(COOLDOWN) + 1)
    tried = len(provider.sent("twilio"))
    assert 5 <= tried < 20, tried  # the failures that opened it, a probe; not 60
    provider.recover()

    def settled() -> bool:
        counts = _outbound_by_status(db)
        return counts.get(MessageStatus.SENT, 0) + counts.get(MessageStatus.UNKNOWN, 0) == 60

    wait_until(settled, timeout=60)
    counts = _outbound_by_status(db)
    failed_tries = [r for r in provider.sent("twilio") if r.outcome == fp.SERVER_ERROR]
    assert counts[MessageStatus.UNKNOWN] == len(failed_tries)
    sent = Counter((r.form["To"], r.form["Body"]) for r in provider.sent("twilio"))
    assert set(sent.values()) == {1}, "a message tried twice"
    breaker = _breaker(db, platform.id)
    assert breaker is not None and breaker.open_until is None
