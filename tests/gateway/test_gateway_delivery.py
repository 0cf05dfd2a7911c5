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

from models import Message, MessageStatus
from models.base import utcnow
from models.outbox_relay import discard_pending, publish_committed
from support import queued_tasks, wait_until
from tests.gateway import fake_provider as fp
from tests.gateway.gateway_helpers import CutOffWorker, RedisServer, environ
from tickets.contacts import get_or_create_contact

SENDER = "+22376125555"


@pytest.fixture()
def private_redis() -> Iterator[RedisServer]:
    server = RedisServer().start()
    yield server
    server.kill()


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


@pytest.mark.server_only(reason="cuts the worker's TCP connection to PostgreSQL")
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


@pytest.mark.server_only(reason="cuts the worker's TCP connection to PostgreSQL")
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


@pytest.mark.server_only(reason="reads the republished task from a private Redis broker's queue")
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
    assert tasks == [("gateway.send_outbound", [lost, "swept"])]
    assert _message(db, fresh).status == MessageStatus.PENDING


def test_a_swept_opt_out_confirmation_still_reaches_the_opted_out_contact(
    celery_worker: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    """The sweep re-publishes by id; the kind comes back from the message's outbox row, so
    the one SMS an opted-out contact may get (the confirmation) is sent, and nothing else."""
    from gateway.outbound import KIND_OPT_OUT_CONFIRMATION, queue_sms
    from models.outbox_relay import publish
    from tickets.contacts import opt_out

    reply = _queue(db, twilio_channel, "a reply queued before the opt-out")
    discard_pending(db)
    contact = get_or_create_contact(db, SENDER)
    opt_out(contact)
    confirmation = queue_sms(
        db,
        contact=contact,
        body="Desinscrit.",
        channel=twilio_channel,
        kind=KIND_OPT_OUT_CONFIRMATION,
    )
    db.commit()
    discard_pending(db)
    assert confirmation is not None
    publish("gateway.send_outbound", [confirmation.id, "swept"])
    publish("gateway.send_outbound", [reply, "swept"])
    wait_until(lambda: _message(db, reply).status == MessageStatus.FAILED)
    wait_until(lambda: _message(db, confirmation.id).status == MessageStatus.SENT)
    assert [r.form["Body"] for r in fake.sent()] == ["Desinscrit."]


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
    celery_worker: Any, beat: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    fake.fail_next(fp.THROTTLE)
    message_id = _queue(db, twilio_channel)
    publish_committed(db)
    wait_until(lambda: _message(db, message_id).status == MessageStatus.SENT, timeout=30)
    message = _message(db, message_id)
    assert len(fake.sent()) == 2 and message.send_attempts == 2
    assert message.error_code is None and message.error_message is None


# --- ambiguous sends: reconciled, counted, listed, resent on purpose ----------------------


def test_unknown_twilio_send_is_reconciled_by_lookup_and_never_resent(
    celery_worker: Any, client: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    from gateway.delivery import reconcile_unknown
    from tests.gateway.gateway_helpers import ACCOUNT_SID, signed

    fake.fail_next(fp.ACCEPTED_THEN_500)  # Twilio took it, then answered 500
    message_id = _queue(db, twilio_channel)
    publish_committed(db)
    wait_until(lambda: _message(db, message_id).status == MessageStatus.UNKNOWN)
    assert _message(db, message_id).error_code == "20500"

    assert reconcile_unknown() == (1, 1)
    message = _message(db, message_id)
    [held] = fake.messages
    assert message.status == MessageStatus.SENT and message.provider_id == held["sid"]
    assert message.error_code is None and message.error_message is None
    [lookup] = fake.lookups()
    assert lookup.form["To"] == SENDER and "DateSent>" in lookup.form
    assert len(fake.sent()) == 1  # looked up, never sent again
    assert reconcile_unknown() == (0, 0)
    assert len(fake.lookups()) == 1

    # Now that its provider id is known, Twilio's status callbacks follow it as usual.
    form = {"AccountSid": ACCOUNT_SID, "MessageSid": held["sid"], "MessageStatus": "delivered"}
    body, headers = signed("/webhooks/twilio/status", form)
    assert client.post("/webhooks/twilio/status", content=body, headers=headers).status_code == 204
    assert _message(db, message_id).status == MessageStatus.DELIVERED


def test_unknown_twilio_send_not_at_the_provider_stays_unknown_and_is_asked_again_later(
    celery_worker: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    from gateway.delivery import reconcile_unknown

    fake.fail_next(fp.SERVER_ERROR)
    message_id = _queue(db, twilio_channel)
    publish_committed(db)
    wait_until(lambda: _message(db, message_id).status == MessageStatus.UNKNOWN)
    results: list[tuple[int, int]] = []
    barrier = threading.Barrier(2)

    def reconcile() -> None:
        barrier.wait()
        results.append(reconcile_unknown())

    threads = [threading.Thread(target=reconcile) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [(0, 0), (1, 0)]  # one look-up, by one of the two
    assert len(fake.lookups()) == 1 and len(fake.sent()) == 1
    assert _message(db, message_id).status == MessageStatus.UNKNOWN
    db.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(reconciled_at=utcnow() - timedelta(minutes=6))
    )
    db.commit()
    assert reconcile_unknown() == (1, 0)  # asked again after RECHECK_EVERY


def _unknown_row(db: Session, channel: Any, ticket_id: int | None = None) -> int:
    message_id = _queue(db, channel)
    discard_pending(db)
    db.execute(
        update(Message)
        .where(Message.id == message_id)
        .values(
            status=MessageStatus.UNKNOWN,
            send_started_at=utcnow(),
            error_code="500",
            ticket_id=ticket_id,
        )
    )
    db.commit()
    return message_id


def test_unknown_on_africastalking_is_listed_and_resent_only_after_confirmation(
    celery_worker: Any, client: Any, db: Session, at_channel: Any, fake: fp.FakeProvider
) -> None:
    from sqlalchemy import select

    from gateway.delivery import reconcile_unknown
    from models.audit import AuditLog
    from ops_console.auth import address_throttle
    from tests.console.conftest import csrf_of, login, make_world, new_ticket

    address_throttle.reset()
    world = make_world(db)
    fake.fail_next(fp.SERVER_ERROR)
    message_id = _queue(db, at_channel)
    publish_committed(db)
    wait_until(lambda: _message(db, message_id).status == MessageStatus.UNKNOWN)
    assert reconcile_unknown() == (0, 0)  # no look-up API: surfaced instead
    assert fake.lookups() == []
    protection = new_ticket(db, category="protection", phone="+22376333333", sensitive=True)
    db.commit()
    hidden = _unknown_row(db, at_channel, ticket_id=protection.id)

    login(client, world["supervisor"].username)
    page = client.get("/delivery-unknown")
    assert page.status_code == 200
    assert f'id="unknown-{message_id}"' in page.text
    assert f'id="unknown-{hidden}"' not in page.text  # a protection case's SMS: not for them
    assert SENDER not in page.text and "recue" not in page.text  # masked, no body
    csrf = csrf_of(page.text)

    refused = client.post(f"/delivery-unknown/{message_id}/resend", data={"csrf_token": csrf})
    assert refused.status_code == 400
    assert "deux fois" in refused.text or "twice" in refused.text
    assert db.scalar(select(AuditLog).where(AuditLog.action == "message.resent")) is None
    assert (
        client.post(
            f"/delivery-unknown/{hidden}/resend", data={"csrf_token": csrf, "accept_double": "yes"}
        ).status_code
        == 404
    )

    done = client.post(
        f"/delivery-unknown/{message_id}/resend",
        data={"csrf_token": csrf, "accept_double": "yes"},
        follow_redirects=False,
    )
    assert done.status_code == 303
    wait_until(lambda: len(fake.sent("africastalking")) == 2)
    db.expire_all()
    [audit] = db.scalars(select(AuditLog).where(AuditLog.action == "message.resent"))
    assert audit.actor_user_id == world["supervisor"].user_id
    assert audit.object_id == str(message_id) and audit.details["accepted_double_risk"] is True
    new_id = audit.details["new_message_id"]
    wait_until(lambda: _message(db, new_id).status == MessageStatus.SENT)
    assert f'id="unknown-{message_id}"' not in client.get("/delivery-unknown").text
    again = client.post(
        f"/delivery-unknown/{message_id}/resend", data={"csrf_token": csrf, "accept_double": "yes"}
    )
    assert again.status_code == 404  # resent once; a second click sends nothing
    assert len(fake.sent()) == 2

    client.post("/logout", data={"csrf_token": csrf})
    login(client, world["protection_officer"].username)
    assert f'id="unknown-{hidden}"' in client.get("/delivery-unknown").text
    client.cookies.clear()
    login(client, world["operator"].username)
    assert client.get("/delivery-unknown").status_code == 403


def test_unknown_sends_are_counted_on_metrics_and_warned_past_the_threshold(
    client: Any, db: Session, at_channel: Any, caplog: pytest.LogCaptureFixture
) -> None:
    import logging

    from gateway.delivery import check_unknown_share

    for _ in range(4):
        _unknown_row(db, at_channel)
    sent = _queue(db, at_channel)
    discard_pending(db)
    db.execute(
        update(Message)
        .where(Message.id == sent)
        .values(status=MessageStatus.SENT, send_started_at=utcnow(), provider_id="ATX1")
    )
    db.commit()
    metrics = client.get("/metrics").text
    assert "deme_outbound_unknown 4.0" in metrics
    assert "deme_outbound_unknown_share 0.8" in metrics
    assert "deme_outbound_unknown_alert 1.0" in metrics
    with caplog.at_level(logging.WARNING, logger="deme.alerts"):
        stats = check_unknown_share()
    assert stats.alerting and stats.window_unknown == 4 and stats.window_ended == 5
    [record] = [r for r in caplog.records if r.name == "deme.alerts"]
    assert "4 of 5" in record.getMessage() and SENDER not in record.getMessage()


def test_an_unlinked_unknown_sms_of_a_protection_case_is_for_protection_officers_only(
    client: Any, db: Session, at_channel: Any
) -> None:
    """A bot reply queued before its ticket was linked still belongs to the protection case
    of its sender: the list follows the one rule for messages (``Viewer.message_clause``)."""
    from gateway.outbound import queue_sms
    from ops_console.auth import address_throttle
    from tests.console.conftest import login, make_world, new_ticket

    address_throttle.reset()
    world = make_world(db)
    victim = "+22376444444"
    new_ticket(db, category="protection", phone=victim, sensitive=True)
    reply = queue_sms(
        db, contact=get_or_create_contact(db, victim), body="Merci.", channel=at_channel
    )
    assert reply is not None and reply.ticket_id is None
    db.commit()
    discard_pending(db)
    db.execute(
        update(Message)
        .where(Message.id == reply.id)
        .values(status=MessageStatus.UNKNOWN, send_started_at=utcnow(), error_code="500")
    )
    db.commit()

    login(client, world["supervisor"].username)
    assert f'id="unknown-{reply.id}"' not in client.get("/delivery-unknown").text
    client.cookies.clear()
    login(client, world["protection_officer"].username)
    assert f'id="unknown-{reply.id}"' in client.get("/delivery-unknown").text
