"""Never lose a message, never send one twice — with real processes: uvicorn with several
workers, a redis-server killed mid-traffic, a database cut off behind a TCP proxy, and a
Celery worker SIGKILLed during a provider call."""

from __future__ import annotations

import json
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.celery_app import OUTBOUND_QUEUE
from models import Message, MessageDirection, MessageStatus
from support import PROJECT_ROOT, queued_tasks, wait_until
from support.workers import WorkerProcess
from tests.gateway import fake_provider as fp
from tests.gateway.gateway_helpers import (
    RedisServer,
    TcpProxy,
    UvicornServer,
    environ,
    signed,
    twilio_sms_form,
)

SENDERS = [f"+2237612{n:04d}" for n in range(10)]


@pytest.fixture()
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.kill()


def _post(client: httpx.Client, form: dict[str, str]) -> tuple[int, float]:
    body, headers = signed("/webhooks/twilio/sms", form)
    started = time.monotonic()
    response = client.post("/webhooks/twilio/sms", content=body, headers=headers)
    return response.status_code, time.monotonic() - started


def _inbound_count(db: Session) -> int:
    db.expire_all()
    return int(
        db.scalar(
            select(func.count(Message.id)).where(Message.direction == MessageDirection.INBOUND)
        )
        or 0
    )


@pytest.mark.server_only(reason="counts the tasks left in a private Redis broker's queue")
def test_duplicate_storm_makes_one_message_and_one_task_per_sid(
    db: Session, twilio_channel: Any, private_redis: RedisServer
) -> None:
    server = UvicornServer({"DEME_REDIS_URL": private_redis.url}, workers=2)
    try:
        forms = [twilio_sms_form(SENDERS[n % 10], f"storm {n}") for n in range(100)]
        posts = [form for form in forms for _ in range(10)]
        random.Random(7).shuffle(posts)

        def run(chunk: list[dict[str, str]]) -> list[int]:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                return [_post(client, form)[0] for form in chunk]

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = [
                s for chunk in pool.map(run, [posts[i::16] for i in range(16)]) for s in chunk
            ]
    finally:
        server.stop()
    assert statuses == [200] * 1000, server.log()
    assert _inbound_count(db) == 100
    ids = set(db.scalars(select(Message.id).where(Message.direction == MessageDirection.INBOUND)))
    tasks = queued_tasks(private_redis.client())
    assert len(tasks) == 100
    assert {name for name, _ in tasks} == {"gateway.process_inbound"}
    assert {args[0] for _, args in tasks} == ids


@pytest.mark.server_only(reason="kills the Redis server under traffic")
def test_redis_killed_during_traffic_loses_nothing(
    db: Session, twilio_channel: Any, private_redis: RedisServer
) -> None:
    server = UvicornServer({"DEME_REDIS_URL": private_redis.url}, workers=2)
    results: list[tuple[int, float]] = []
    try:
        forms = [twilio_sms_form(SENDERS[n % 10], f"msg {n}") for n in range(300)]
        with httpx.Client(base_url=server.url, timeout=30) as client:
            results += [_post(client, form) for form in forms[:100]]

        def run(chunk: list[dict[str, str]]) -> list[tuple[int, float]]:
            with httpx.Client(base_url=server.url, timeout=30) as client:
                return [_post(client, form) for form in chunk]

        private_redis.kill()
        with ThreadPoolExecutor(max_workers=8) as pool:
            for chunk in pool.map(run, [forms[100:][i::8] for i in range(8)]):
                results += chunk
    finally:
        server.stop()
    assert [status for status, _ in results] == [200] * 300, server.log()
    assert max(elapsed for _, elapsed in results) < 5.0
    assert _inbound_count(db) == 300

    # Redis is back (empty: what it held died with it); the relay publishes what is missing.
    restarted = RedisServer(private_redis.port).start()
    try:
        relay = subprocess.run(
            [
                sys.executable,
                "-c",
                "from datetime import timedelta\n"
                "from gateway.inbound import relay_stuck_inbound\n"
                "print(relay_stuck_inbound(older_than=timedelta(0)))",
            ],
            cwd=PROJECT_ROOT,
            capture_output=True,
            text=True,
            timeout=60,
            env={**__import__("os").environ, "DEME_REDIS_URL": restarted.url},
        )
        assert relay.returncode == 0, relay.stderr
        assert relay.stdout.strip() == "300"
        tasks = queued_tasks(restarted.client())
        ids = set(
            db.scalars(select(Message.id).where(Message.direction == MessageDirection.INBOUND))
        )
        assert {args[0] for _, args in tasks} == ids
    finally:
        restarted.kill()


@pytest.mark.server_only(reason="cuts the TCP connection to the PostgreSQL server")
def test_database_unreachable_spools_then_replays(
    db: Session, twilio_channel: Any, private_redis: RedisServer
) -> None:
    from core.settings import get_settings
    from gateway import spool

    for leftover in spool.pending_files():
        leftover.unlink()
    database_url = get_settings().effective_database_url
    proxy = TcpProxy(5432)
    proxied = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    assert proxied != database_url
    server = UvicornServer(
        {"DEME_DATABASE_URL": proxied, "DEME_REDIS_URL": private_redis.url}, workers=1
    )
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            warm = twilio_sms_form(SENDERS[0], "before the outage")
            assert _post(client, warm)[0] == 200  # stored; the channel is now cached
            proxy.close()
            forms = [twilio_sms_form(SENDERS[n % 10], f"during {n} 😀") for n in range(20)]
            sent = [*forms, forms[0], warm]  # a provider retry, and a message already stored
            results = [_post(client, form) for form in sent]
            status_form = {
                "AccountSid": warm["AccountSid"],
                "MessageSid": "SMunknown",
                "MessageStatus": "delivered",
            }
            body, headers = signed("/webhooks/twilio/status", status_form)
            status = client.post("/webhooks/twilio/status", content=body, headers=headers)
    finally:
        server.stop()
        proxy.close()
    assert [code for code, _ in results] == [200] * 22, server.log()
    assert status.status_code == 204
    assert max(elapsed for _, elapsed in results) < 5.0
    assert len(spool.pending_files()) == 23
    assert _inbound_count(db) == 1

    replayed = spool.replay_spool()
    assert replayed == 23
    assert spool.pending_files() == []
    assert _inbound_count(db) == 21
    bodies = set(db.scalars(select(Message.body)))
    assert {f"during {n} 😀" for n in range(20)} <= bodies


@pytest.mark.server_only(reason="freezes the PostgreSQL server (a TCP proxy that forwards nothing)")
def test_frozen_database_answers_within_a_second_spools_then_replays(
    db: Session, twilio_channel: Any, private_redis: RedisServer
) -> None:
    """PostgreSQL that neither answers nor refuses (a TCP proxy that forwards nothing): every
    webhook still answers 200 within about a second, concurrently, and nothing is lost."""
    from core.settings import get_settings
    from gateway import spool

    for leftover in spool.pending_files():
        leftover.unlink()
    database_url = get_settings().effective_database_url
    proxy = TcpProxy(5432)
    proxied = database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    server = UvicornServer(
        {"DEME_DATABASE_URL": proxied, "DEME_REDIS_URL": private_redis.url}, workers=1
    )
    try:
        with httpx.Client(base_url=server.url, timeout=30) as client:
            warm = twilio_sms_form(SENDERS[0], "before the freeze")
            assert _post(client, warm)[0] == 200  # stored; the channel is now cached
            proxy.freeze()
            forms = [twilio_sms_form(SENDERS[n % 10], f"frozen {n}") for n in range(12)]
            started = time.monotonic()
            with ThreadPoolExecutor(max_workers=6) as pool:
                results = list(pool.map(lambda form: _post(client, form), forms))
            wall = time.monotonic() - started
    finally:
        server.stop()
        proxy.close()
    assert [code for code, _ in results] == [200] * 12, server.log()
    assert max(elapsed for _, elapsed in results) < 1.5, results
    assert wall < 4.0  # concurrent requests did not queue behind the frozen one
    assert len(spool.pending_files()) == 12
    assert _inbound_count(db) == 1

    assert spool.replay_spool() == 12
    assert spool.pending_files() == []
    assert _inbound_count(db) == 13
    bodies = set(db.scalars(select(Message.body)))
    assert {f"frozen {n}" for n in range(12)} <= bodies


def test_overlapping_spool_replays_store_each_message_once(
    db: Session, twilio_channel: Any
) -> None:
    """Two replays at once (a slow run and the next beat tick): the second skips, neither
    crashes, each spooled message is stored once."""
    from gateway import spool
    from gateway.channels import twilio as tw
    from gateway.webhook_io import parse_form

    for leftover in spool.pending_files():
        leftover.unlink()
    for n in range(30):
        fields = parse_form(urlencode(twilio_sms_form(SENDERS[n % 10], f"spooled {n}")).encode())
        sms = tw.parse_sms(fields, tw.channel_for(fields, "To"))
        spool.write(spool.KIND_SMS, sms.to_json())
    with ThreadPoolExecutor(max_workers=4) as pool:
        counts = list(pool.map(lambda _: spool.replay_spool(), range(4)))
    assert sum(counts) == 30
    assert spool.pending_files() == []
    assert _inbound_count(db) == 30


@pytest.mark.server_only(reason="redelivers through Redis' unacked hash by hand")
def test_worker_killed_mid_send_never_sends_twice(
    db: Session, twilio_channel: Any, fake: fp.FakeProvider, private_redis: RedisServer
) -> None:
    from core.celery_app import make_celery
    from core.settings import Settings
    from gateway.outbound import queue_sms
    from tickets.contacts import get_or_create_contact

    contact = get_or_create_contact(db, SENDERS[0])
    message = queue_sms(db, contact=contact, body="Bonjour", channel=twilio_channel)
    assert message is not None
    db.commit()
    from models.outbox_relay import discard_pending

    discard_pending(db)  # published by hand below, to the private broker
    fake.hang_seconds = 120
    fake.fail_next(fp.HANG)
    broker = make_celery(Settings(redis_url=private_redis.url))
    redis = private_redis.client()
    with environ(DEME_REDIS_URL=private_redis.url):
        first = WorkerProcess(concurrency=1)
    try:
        broker.send_task("gateway.send_outbound", args=[message.id, "reply"])
        wait_until(lambda: len(fake.sent()) == 1)
        db.refresh(message)
        assert message.status == MessageStatus.SENDING and message.send_started_at is not None
        first.kill()  # SIGKILL to the whole process group, mid provider call
    finally:
        first.stop()
    # acks_late: the task was never acknowledged, so the broker still holds it.
    unacked = redis.hgetall("unacked")
    assert len(unacked) == 1
    # Redeliver it now, exactly as kombu does once the visibility timeout has passed.
    tag, raw = next(iter(unacked.items()))
    payload, _exchange, routing_key = json.loads(raw)
    redis.lpush(routing_key or OUTBOUND_QUEUE, json.dumps(payload))
    redis.hdel("unacked", tag)
    redis.zrem("unacked_index", tag)
    with environ(DEME_REDIS_URL=private_redis.url):
        second = WorkerProcess(concurrency=1)
    try:
        wait_until(lambda: (db.refresh(message), message.status)[1] == MessageStatus.UNKNOWN)
        time.sleep(1.0)
        assert len(fake.sent()) == 1
        assert message.error_code == "interrupted" and message.provider_id is None
    finally:
        fake.release.set()
        second.stop()
