"""Inbound processing and outbound sending with a real Celery worker, real PostgreSQL and
Redis, and the real Twilio / Africa's Talking SDKs talking to the local fake provider."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models import Contact, Message, MessageDirection, MessageEncoding, MessageStatus
from models.outbox_relay import publish_committed
from support import wait_until
from tests.gateway import fake_provider as fp
from tests.gateway.gateway_helpers import ACCOUNT_SID, free_port, signed, twilio_sms_form
from tickets.contacts import get_or_create_contact

SENDER = "+22376123456"


def _contact(db: Session, phone: str = SENDER) -> Contact:
    contact = get_or_create_contact(db, phone)
    db.commit()
    return contact


def _queue(db: Session, contact: Contact, channel: Any, body: str = "Bonjour", **kw: Any) -> int:
    from gateway.outbound import queue_sms

    message = queue_sms(db, contact=contact, body=body, channel=channel, **kw)
    assert message is not None
    db.commit()
    publish_committed(db)
    return message.id


def _message(db: Session, message_id: int) -> Message:
    db.expire_all()
    message = db.get(Message, message_id)
    assert message is not None
    return message


def _status(db: Session, message_id: int) -> MessageStatus:
    return _message(db, message_id).status


def test_send_through_twilio_sdk(
    celery_worker: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    contact = _contact(db)
    message_id = _queue(db, contact, twilio_channel, "Votre demande a été reçue à Sévaré.")
    wait_until(lambda: _status(db, message_id) == MessageStatus.SENT)
    message = _message(db, message_id)
    assert message.provider_id and message.provider_id.startswith("SM")
    assert message.sent_at is not None and message.send_attempts == 1
    assert message.transliterated and message.encoding == MessageEncoding.GSM7
    [request] = fake.sent("twilio")
    assert request.path == f"/2010-04-01/Accounts/{ACCOUNT_SID}/Messages.json"
    assert request.form["To"] == SENDER and request.form["From"] == "+22370000001"
    assert request.form["Body"] == "Votre demande a été recue à Sévaré."
    assert request.form["StatusCallback"] == "https://deme.test/webhooks/twilio/status"
    assert request.headers["Authorization"].startswith("Basic ")


def test_throttled_send_is_retried_with_backoff(
    celery_worker: Any, beat: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    fake.fail_next(fp.THROTTLE)
    message_id = _queue(db, _contact(db), twilio_channel)
    wait_until(lambda: _status(db, message_id) == MessageStatus.SENT, timeout=30)
    assert len(fake.sent()) == 2
    assert _message(db, message_id).send_attempts == 2


def test_server_error_after_sending_is_unknown_and_never_resent(
    celery_worker: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    fake.fail_next(fp.SERVER_ERROR)
    message_id = _queue(db, _contact(db), twilio_channel)
    wait_until(lambda: _status(db, message_id) == MessageStatus.UNKNOWN)
    time.sleep(2.5)  # no retry may follow
    assert len(fake.sent()) == 1
    assert _status(db, message_id) == MessageStatus.UNKNOWN


def test_timeout_is_unknown_and_never_resent(
    celery_worker: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    twilio_channel.config = {**twilio_channel.config, "timeout_seconds": 1}
    db.commit()
    fake.fail_next(fp.HANG)
    message_id = _queue(db, _contact(db), twilio_channel)
    wait_until(lambda: _status(db, message_id) == MessageStatus.UNKNOWN)
    time.sleep(2.0)
    assert len(fake.sent()) == 1


def test_invalid_number_fails_at_once(
    celery_worker: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    fake.fail_next(fp.INVALID_NUMBER)
    message_id = _queue(db, _contact(db), twilio_channel)
    wait_until(lambda: _status(db, message_id) == MessageStatus.FAILED)
    assert _message(db, message_id).error_code == "21211"
    assert len(fake.sent()) == 1


def test_21610_fails_and_opts_the_contact_out(
    celery_worker: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    from gateway.outbound import queue_sms

    contact = _contact(db)
    fake.fail_next(fp.OPTED_OUT)
    message_id = _queue(db, contact, twilio_channel)
    wait_until(lambda: _status(db, message_id) == MessageStatus.FAILED)
    db.refresh(contact)
    assert contact.opted_out_at is not None
    assert queue_sms(db, contact=contact, body="encore", channel=twilio_channel) is None


def test_connection_refused_is_retried_until_the_provider_is_back(
    celery_worker: Any, beat: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    real_url = twilio_channel.config["api_base_url"]
    twilio_channel.config = {
        **twilio_channel.config,
        "api_base_url": f"http://127.0.0.1:{free_port()}",
    }
    db.commit()
    message_id = _queue(db, _contact(db), twilio_channel)
    wait_until(lambda: _message(db, message_id).error_code == "connect")
    assert _status(db, message_id) in (MessageStatus.QUEUED, MessageStatus.SENDING)
    twilio_channel.config = {**twilio_channel.config, "api_base_url": real_url}
    db.commit()
    wait_until(lambda: _status(db, message_id) == MessageStatus.SENT, timeout=40)
    assert len(fake.sent()) == 1


def test_send_through_africastalking_sdk(
    celery_worker: Any, db: Session, at_channel: Any, fake: fp.FakeProvider
) -> None:
    contact = _contact(db)
    message_id = _queue(db, contact, at_channel, "I ni ce")
    wait_until(lambda: _status(db, message_id) == MessageStatus.SENT)
    assert (_message(db, message_id).provider_id or "").startswith("ATXid_")
    [request] = fake.sent("africastalking")
    assert request.path == "/version1/messaging"
    assert request.form["username"] == "deme" and request.form["to"] == SENDER
    assert request.form["message"] == "I ni ce" and request.form["from"] == "36665"
    assert request.headers["apiKey"] == "at-key"

    fake.fail_next(fp.OPTED_OUT)
    blocked = _queue(db, contact, at_channel, "second")
    wait_until(lambda: _status(db, blocked) == MessageStatus.FAILED)
    db.refresh(contact)
    assert contact.opted_out_at is not None


def test_africastalking_throttling_is_retried(
    celery_worker: Any, beat: Any, db: Session, at_channel: Any, fake: fp.FakeProvider
) -> None:
    fake.fail_next(fp.THROTTLE)
    message_id = _queue(db, _contact(db), at_channel)
    wait_until(lambda: _status(db, message_id) == MessageStatus.SENT, timeout=30)
    assert len(fake.sent()) == 2


def test_too_long_bodies_are_refused_naming_the_limit(db: Session, twilio_channel: Any) -> None:
    from gateway.outbound import queue_sms

    contact = _contact(db)
    with pytest.raises(ValueError, match="allows at most 6"):
        queue_sms(db, contact=contact, body="x" * (153 * 6 + 1), channel=twilio_channel)
    assert queue_sms(db, contact=contact, body="x" * (153 * 6), channel=twilio_channel)
    twilio_channel.config = {**twilio_channel.config, "max_segments": 1, "transliterate": False}
    with pytest.raises(ValueError, match="max_segments"):
        queue_sms(db, contact=contact, body="ê" * 71, channel=twilio_channel)
    kept = queue_sms(db, contact=contact, body="ê" * 70, channel=twilio_channel)
    assert kept is not None and kept.body == "ê" * 70 and kept.encoding == MessageEncoding.UCS2
    assert kept.transliterated is False
    db.rollback()


def _post_inbound(client: Any, body: str, sender: str = SENDER) -> None:
    data, headers = signed("/webhooks/twilio/sms", twilio_sms_form(sender, body))
    assert client.post("/webhooks/twilio/sms", content=data, headers=headers).status_code == 200


def _inbound(db: Session) -> list[Message]:
    db.expire_all()
    return list(
        db.scalars(
            select(Message)
            .where(Message.direction == MessageDirection.INBOUND)
            .order_by(Message.id)
        )
    )


def test_opt_out_and_opt_in_cycle(
    celery_worker: Any, client: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    from gateway.i18n import translate
    from gateway.outbound import queue_sms

    contact = _contact(db)
    _post_inbound(client, "  Arrêt ! ")
    wait_until(lambda: len(fake.sent()) == 1)
    assert fake.sent()[0].form["Body"] == translate("opt_out.confirmation", "fr")
    db.refresh(contact)
    assert contact.opted_out_at is not None
    [stop] = _inbound(db)
    assert stop.status == MessageStatus.IGNORED

    # Nothing else reaches an opted-out contact: not a reply, not a second confirmation.
    assert queue_sms(db, contact=contact, body="hello", channel=twilio_channel) is None
    _post_inbound(client, "STOP")
    _post_inbound(client, "An mago be ji la Sevare")
    wait_until(lambda: all(m.status != MessageStatus.RECEIVED for m in _inbound(db)[:2]))
    time.sleep(3)
    assert len(fake.sent()) == 1

    _post_inbound(client, "start")
    wait_until(lambda: len(fake.sent()) == 2)
    db.refresh(contact)
    assert contact.opted_out_at is None
    # In the contact's language (the bot may have learnt it from the Bambara message).
    expected = translate("opt_in.confirmation", contact.language or "fr")
    assert fake.sent()[1].form["Body"] == expected


def test_bambara_keyword_confirms_in_bambara(
    celery_worker: Any, client: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    from gateway.i18n import translate

    _post_inbound(client, "a dabila", sender="+22365000001")
    wait_until(lambda: len(fake.sent()) == 1)
    assert fake.sent()[0].form["Body"] == translate("opt_out.confirmation", "bm")


def test_flood_control_stores_but_does_not_forward(db: Session, twilio_channel: Any) -> None:
    from core.settings import get_settings
    from gateway.inbound import InboundSms, record_inbound
    from gateway.tasks import handle_inbound
    from models.outbox_relay import discard_pending, pending_tasks

    limit = get_settings().flood_limit_per_minute
    ids = []
    for n in range(limit + 3):
        message_id = record_inbound(
            InboundSms(twilio_channel.id, f"SMflood{n}", SENDER, f"msg {n}")
        )
        assert message_id is not None
        ids.append(message_id)
    outcomes = []
    handoffs: list[int] = []
    for message_id in ids:
        outcomes.append(handle_inbound(db, message_id))
        db.commit()
        handoffs += [a[0] for t, a in pending_tasks(db) if t == "conversation.handle_message"]
        discard_pending(db)
    assert outcomes.count("handed-off") == limit
    assert outcomes[-3:] == ["flood-limited"] * 3
    flooded = [m for m in _inbound(db) if m.flood_limited]
    assert len(flooded) == 3 and all(m.status == MessageStatus.IGNORED for m in flooded)
    assert sorted(handoffs) == ids[:limit]
    assert handle_inbound(db, ids[0]) == "handed-off"  # a re-run does not count twice
    db.rollback()


def test_channel_rate_limit_is_shared() -> None:
    from gateway.limits import acquire_send_slot

    granted: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        for _ in range(15):
            assert acquire_send_slot(424242, 10, max_wait=10)
            with lock:
                granted.append(time.time())

    threads = [threading.Thread(target=worker) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    per_second: dict[int, int] = {}
    for moment in granted:
        per_second[int(moment)] = per_second.get(int(moment), 0) + 1
    assert len(granted) == 30
    assert max(per_second.values()) <= 10
    assert len(per_second) >= 3
