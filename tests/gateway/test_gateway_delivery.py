"""Every reply delivered once, soon, and visibly: database outages retried, lost tasks swept
within a minute, and errors of earlier attempts cleared — with real worker processes, real
PostgreSQL behind a TCP proxy that can be cut, a private Redis, and the fake provider."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session

from core.outbox import discard_pending, publish_committed
from models import Message, MessageStatus
from models.base import utcnow
from support import queued_tasks, wait_until
from support.workers import WorkerProcess
from tests.gateway import fake_provider as fp
from tests.gateway.gateway_helpers import RedisServer, TcpProxy, environ
from tickets.contacts import get_or_create_contact

SENDER = "+22376125555"


@pytest.fixture()
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.kill()


class CutOffWorker:
    """A worker whose database connections go through a proxy the test can cut."""

    def __init__(self, redis: RedisServer) -> None:
        from core.celery_app import make_celery
        from core.settings import Settings, get_settings

        self.proxy = TcpProxy(5432)
        url = get_settings().effective_database_url
        proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{self.proxy.port}")
        assert proxied != url
        self.broker = make_celery(Settings(redis_url=redis.url))
        with environ(DEME_REDIS_URL=redis.url, DEME_DATABASE_URL=proxied):
            self.worker = WorkerProcess(concurrency=1)

    def send(self, task: str, *args: Any) -> None:
        self.broker.send_task(task, args=list(args))

    def stop(self) -> None:
        self.worker.stop()
        self.proxy.close()


@pytest.fixture()
def cut_off_worker(private_redis: RedisServer) -> Iterator[CutOffWorker]:
    worker = CutOffWorker(private_redis)
    yield worker
    worker.stop()


def _queue(db: Session, channel: Any, body: str = "Votre demande est recue.") -> int:
    from gateway.outbound import queue_sms

    message = queue_sms(db, contact=get_or_create_contact(db, SENDER), body=body, channel=channel)
    assert message is not None
    db.commit()
    return message.id


def _message(db: Session, message_id: int) -> Message:
    db.expire_all()
    message = db.get(Message, message_id)
    assert message is not None
    return message


def test_database_stopped_mid_send_the_reply_goes_out_soon_after_recovery(
    db: Session, twilio_channel: Any, fake: fp.FakeProvider, cut_off_worker: CutOffWorker
) -> None:
    message_id = _queue(db, twilio_channel)
    discard_pending(db)  # published by hand, to the worker's private broker
    cut_off_worker.proxy.cut()
    cut_off_worker.send("gateway.send_outbound", message_id, "reply")
    wait_until(lambda: "OperationalError" in cut_off_worker.worker.log(), timeout=30)
    time.sleep(2.0)
    assert fake.sent() == []
    cut_off_worker.proxy.restore()
    recovered = time.monotonic()
    wait_until(lambda: _message(db, message_id).status == MessageStatus.SENT, timeout=60)
    assert time.monotonic() - recovered < 60
    assert len(fake.sent("twilio")) == 1
    message = _message(db, message_id)
    assert message.provider_id and message.error_code is None
    log = cut_off_worker.worker.log()
    assert SENDER not in log and "recue" not in log  # no number, no body in the logs


def test_database_lost_after_the_provider_call_records_the_answer_without_resending(
    db: Session, twilio_channel: Any, fake: fp.FakeProvider, cut_off_worker: CutOffWorker
) -> None:
    """The provider took the message but the database went away before it was recorded: the
    retry records the provider's answer; it never calls the provider again."""
    message_id = _queue(db, twilio_channel)
    discard_pending(db)
    fake.hang_seconds = 3.0
    fake.fail_next(fp.DELAYED_OK)  # answers success after hang_seconds
    cut_off_worker.send("gateway.send_outbound", message_id, "reply")
    wait_until(lambda: len(fake.sent()) == 1, timeout=30)
    cut_off_worker.proxy.cut()  # while the provider call is in flight
    time.sleep(5.0)
    cut_off_worker.proxy.restore()
    wait_until(lambda: _message(db, message_id).status == MessageStatus.SENT, timeout=60)
    message = _message(db, message_id)
    assert message.provider_id and message.provider_id.startswith("SM")
    assert len(fake.sent()) == 1


def test_lost_reply_task_is_found_by_the_sweep_once_even_with_two_sweeps(
    db: Session, twilio_channel: Any, fake: fp.FakeProvider, private_redis: RedisServer
) -> None:
    from gateway.tasks import sweep_outbound

    lost = _queue(db, twilio_channel)
    fresh = _queue(db, twilio_channel, "a reply still in flight")
    discard_pending(db)  # its task was lost: only the data knows it is waiting
    db.execute(
        update(Message)
        .where(Message.id == lost)
        .values(status_updated_at=utcnow() - timedelta(seconds=40))
    )
    db.commit()
    results: list[tuple[int, int]] = []
    barrier = threading.Barrier(2)

    def sweep() -> None:
        barrier.wait()
        results.append(sweep_outbound())

    with environ(DEME_REDIS_URL=private_redis.url):
        from core import fastpublish
        from core.settings import get_settings

        get_settings.cache_clear()
        fastpublish.reset()
        try:
            threads = [threading.Thread(target=sweep) for _ in range(2)]
            for thread in threads:
                thread.start()
            for thread in threads:
                thread.join(30)
        finally:
            get_settings.cache_clear()
            fastpublish.reset()
    assert sum(republished for _, republished in results) == 1
    tasks = queued_tasks(private_redis.client())
    assert tasks == [("gateway.send_outbound", [lost])]
    assert _message(db, fresh).status == MessageStatus.PENDING


def test_the_sweep_runs_every_thirty_seconds_and_takes_a_thirty_second_old_reply() -> None:
    from core.celery_app import beat_schedule
    from core.settings import get_settings
    from gateway.tasks import STUCK_PENDING_AFTER

    entries = beat_schedule(get_settings()).values()
    schedule = {entry["task"]: entry["schedule"] for entry in entries}
    assert schedule["gateway.sweep_outbound"] <= timedelta(seconds=30)
    assert timedelta(seconds=30) >= STUCK_PENDING_AFTER
    # Found again within a minute: threshold + one period.
    assert STUCK_PENDING_AFTER + schedule["gateway.sweep_outbound"] <= timedelta(minutes=1)
    assert schedule["tickets.sweep_notifications"] <= timedelta(minutes=1)
    assert schedule["tickets.retry_alerts"] <= timedelta(minutes=1)
    assert schedule["gateway.reconcile_unknown"] <= timedelta(minutes=1)


def test_a_send_that_succeeds_after_a_throttle_has_no_error_left(
    celery_worker: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    fake.fail_next(fp.THROTTLE)
    message_id = _queue(db, twilio_channel)
    publish_committed(db)
    wait_until(lambda: _message(db, message_id).status == MessageStatus.SENT, timeout=30)
    message = _message(db, message_id)
    assert len(fake.sent()) == 2 and message.send_attempts == 2
    assert message.error_code is None and message.error_message is None
