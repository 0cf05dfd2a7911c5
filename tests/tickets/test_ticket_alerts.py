"""Routed alerts through a real Celery worker: signed webhooks to a local receiver, email to a
local SMTP server, SMS to focal points through the gateway; retries, backoff and visible
failures; and nothing of a protection case leaving the system."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from ticket_helpers import (
    SENDER_PHONE,
    SmtpSink,
    WebhookReceiver,
    World,
    add_channel,
    commit,
    outbound_bodies,
    reachable_contact,
)

from models.alerts import Alert, AlertAttempt
from models.enums import (
    AlertKind,
    AlertStatus,
    MessageDirection,
    TicketCategory,
    TicketStatus,
)
from models.messages import Message
from support import wait_until
from tickets import alerts, sla
from tickets.contacts import get_or_create_contact
from tickets.intake import create_ticket
from tickets.workflow import assign, change_status

C = TicketCategory
SECRET = "s3cret-for-hmac"


def _statuses(db: Any) -> list[AlertStatus]:
    db.expire_all()
    return list(db.scalars(select(Alert.status).order_by(Alert.id)))


def _all_delivered(db: Any, count: int) -> Any:
    def check() -> bool:
        statuses = _statuses(db)
        return len(statuses) == count and all(s == AlertStatus.DELIVERED for s in statuses)

    return check


def test_webhook_alert_is_signed_and_delivered_by_the_worker(
    db: Any, world: World, webhook: WebhookReceiver, celery_worker: Any
) -> None:
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url=webhook.url, secret=SECRET)
    ticket = create_ticket(
        db,
        category=C.HEALTH,
        source="sms",
        description="Mon fils a de la fièvre depuis trois jours",
        place_code="ML070201",
    )
    commit(db)
    wait_until(_all_delivered(db, 1), timeout=30)
    assert len(webhook.requests) == 1
    request = webhook.requests[0]
    expected = "sha256=" + hmac.new(SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
    assert request["headers"]["X-Deme-Signature"] == expected
    payload = json.loads(request["body"])
    assert payload["reference"] == ticket.reference and payload["reason"] == "new_ticket"
    # a non-protection alert tells the team what and where
    assert "santé" in payload["text"] and "Ansongo" in payload["text"]
    assert "fièvre" in payload["text"]
    attempt = db.scalar(select(AlertAttempt))
    assert attempt.ok and attempt.status_code == 200 and attempt.finished_at is not None


def test_email_alert_goes_through_smtp(
    db: Any, world: World, smtp: SmtpSink, celery_worker: Any
) -> None:
    add_channel(db, world.teams["health"], AlertKind.EMAIL, email="health-team@deme.test")
    ticket = create_ticket(
        db, category=C.HEALTH, source="sms", description="il saigne", place_code="ML0702"
    )
    commit(db)
    wait_until(_all_delivered(db, 1), timeout=30)
    wait_until(lambda: len(smtp.messages) == 1, timeout=10)
    message = smtp.messages[0]
    assert message["to"] == ["health-team@deme.test"]
    assert message["from"] == "alerts@deme.test"
    text = smtp.decoded()[0]
    assert f"Nouvelle demande {ticket.reference}" in text and "urgente" in text


def _without_message_id(raw: str) -> str:
    return "\n".join(
        line for line in raw.splitlines() if not line.lower().startswith("message-id:")
    )


def test_protection_alerts_emails_webhooks_and_sender_sms_carry_no_content(
    db: Any, world: World, smtp: SmtpSink, webhook: WebhookReceiver, celery_worker: Any
) -> None:
    team = world.teams["protection"]
    add_channel(db, team, AlertKind.WEBHOOK, url=webhook.url, secret=SECRET)
    add_channel(db, team, AlertKind.EMAIL, email="focal-team@deme.test")
    focal = reachable_contact(db, "+22366001122")
    add_channel(db, team, AlertKind.SMS, phone="+22366001122")
    contact = reachable_contact(db, SENDER_PHONE, language="fr")
    description = "Mon voisin Moussa a frappé sa femme Aminata près du puits de Wabaria"
    t0 = datetime.now(UTC)
    ticket = create_ticket(
        db,
        category=C.PROTECTION,
        source="sms",
        contact=contact,
        description=description,
        place_code="SITE-ANS-1",
        # The person said SMS are safe: automatic SMS on a protection case wait for that.
        callback_ok=True,
        now=t0,
    )
    commit(db)

    # The sender hears about assignment, work, resolution and gets the satisfaction question.
    def sender_count() -> int:
        db.expire_all()
        return len(
            db.scalars(
                select(Message.id).where(
                    Message.contact_id == contact.id,
                    Message.direction == MessageDirection.OUTBOUND,
                )
            ).all()
        )

    assign(db, ticket, world.users["officer"].id, actor_label="op")
    commit(db)
    wait_until(lambda: sender_count() == 1, timeout=30)
    change_status(db, ticket, TicketStatus.IN_PROGRESS, actor_label="op")
    commit(db)
    wait_until(lambda: sender_count() == 2, timeout=30)
    change_status(db, ticket, TicketStatus.RESOLVED, actor_label="op")
    commit(db)
    # And an escalation (an earlier breach: the resolution deadline passed before resolving).
    sla.escalate(db, ticket, deadline="resolution", now=t0 + timedelta(days=2))
    commit(db)

    # 3 channels x (new + escalation) + lead and supervisor emails for the escalation
    wait_until(_all_delivered(db, 8), timeout=60)
    wait_until(lambda: len(smtp.messages) == 4, timeout=20)
    wait_until(lambda: len(webhook.requests) == 2, timeout=20)
    wait_until(lambda: len(outbound_bodies(db)) >= 6, timeout=30)

    left = (
        [r["body"].decode() for r in webhook.requests]
        + [json.dumps(r["headers"]) for r in webhook.requests]
        # The random digits of a Message-ID header can spell "22376" by chance: not content.
        + [_without_message_id(raw) for raw in smtp.decoded()]
        + outbound_bodies(db)
    )
    forbidden = [
        "Moussa",
        "Aminata",
        "frapp",
        "puits",
        "Wabaria",
        "Ansongo",
        "Gao",
        "violence",
        "protection",
        "76123456",
        "22376",
        SENDER_PHONE,
    ]
    for text in left:
        for word in forbidden:
            assert word.lower() not in text.lower(), (word, text)
    # what they do carry: the reference
    assert all(ticket.reference in r["body"].decode() for r in webhook.requests)
    focal_messages = db.scalars(
        select(Message.body).where(
            Message.contact_id == focal.id, Message.direction == MessageDirection.OUTBOUND
        )
    ).all()
    assert len(focal_messages) == 2 and all(ticket.reference in m for m in focal_messages)
    sender_messages = db.scalars(
        select(Message.body)
        .where(Message.contact_id == contact.id, Message.direction == MessageDirection.OUTBOUND)
        .order_by(Message.id)
    ).all()
    assert len(sender_messages) == 4  # assigned, in progress, resolved, satisfaction question
    assert all(ticket.reference in m for m in sender_messages)


def test_failed_attempts_are_retried_with_backoff_then_delivered(
    db: Any, world: World, webhook: WebhookReceiver
) -> None:
    # In-process with a controlled clock: no worker, the outbox is left unpublished.
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url=webhook.url)
    create_ticket(db, category=C.HEALTH, source="sms", place_code="ML0702")
    db.commit()
    alert_id = db.scalar(select(Alert.id))
    webhook.statuses = [500, 503]
    t = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)

    assert alerts.deliver_alert(alert_id, now=t) == AlertStatus.PENDING
    db.expire_all()
    alert = db.get(Alert, alert_id)
    assert alert.last_error == "webhook answered HTTP 500"
    first_delay = alert.next_attempt_at - t
    assert timedelta(seconds=27) <= first_delay <= timedelta(seconds=33)
    # not due yet: nothing happens
    assert alerts.deliver_alert(alert_id, now=t + timedelta(seconds=10)) is None
    assert alerts.deliver_alert(alert_id, now=t + timedelta(seconds=40)) == AlertStatus.PENDING
    db.expire_all()
    second_delay = db.get(Alert, alert_id).next_attempt_at - (t + timedelta(seconds=40))
    assert timedelta(seconds=54) <= second_delay <= timedelta(seconds=66)
    assert alerts.deliver_alert(alert_id, now=t + timedelta(minutes=5)) == AlertStatus.DELIVERED
    assert alerts.deliver_alert(alert_id, now=t + timedelta(minutes=6)) is None  # done is done
    attempts = db.scalars(select(AlertAttempt).order_by(AlertAttempt.attempt_no)).all()
    assert [(a.attempt_no, a.ok, a.status_code) for a in attempts] == [
        (1, False, 500),
        (2, False, 503),
        (3, True, 200),
    ]
    assert len(webhook.requests) == 3
    # every retry carries the same alert id: receivers can deduplicate
    assert {r["headers"]["X-Deme-Alert-Id"] for r in webhook.requests} == {str(alert_id)}


def test_failures_are_visible_after_the_last_attempt(
    db: Any, world: World, webhook: WebhookReceiver
) -> None:
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url=webhook.url)
    create_ticket(db, category=C.HEALTH, source="sms", place_code="ML0702")
    db.commit()
    alert_id = db.scalar(select(Alert.id))
    webhook.statuses = [502] * 10
    t = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
    for step in range(5):
        alerts.deliver_alert(alert_id, now=t + timedelta(hours=step))
    db.expire_all()
    alert = db.get(Alert, alert_id)
    assert alert.status == AlertStatus.FAILED and alert.attempt_count == 5
    assert alert.last_error == "webhook answered HTTP 502" and alert.next_attempt_at is None
    assert alerts.deliver_alert(alert_id, now=t + timedelta(days=1)) is None
    assert len(webhook.requests) == 5


def test_a_permanent_error_fails_at_once(db: Any, world: World, webhook: WebhookReceiver) -> None:
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url=webhook.url)
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url="http://127.0.0.1:9/closed")
    create_ticket(db, category=C.HEALTH, source="sms", place_code="ML0702")
    db.commit()
    first, second = db.scalars(select(Alert.id).order_by(Alert.id)).all()
    webhook.statuses = [404]
    assert alerts.deliver_alert(first) == AlertStatus.FAILED
    # an unreachable receiver is transient: retried later
    assert alerts.deliver_alert(second, now=datetime.now(UTC)) == AlertStatus.PENDING
    db.expire_all()
    assert db.get(Alert, second).last_error == "webhook unreachable: ConnectError"


def test_the_sweep_reclaims_interrupted_and_due_alerts(db: Any, world: World) -> None:
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url="http://127.0.0.1:9/h")
    ticket = create_ticket(db, category=C.HEALTH, source="sms", place_code="ML0702")
    db.commit()
    alert = db.scalar(select(Alert))
    t = alert.created_at + timedelta(minutes=30)
    # a worker died while sending, 20 minutes ago
    alert.status = AlertStatus.SENDING
    alert.attempt_count = 1
    db.add(
        AlertAttempt(
            alert_id=alert.id, attempt_no=1, ok=False, started_at=t - timedelta(minutes=20)
        )
    )
    db.commit()
    assert alerts.retry_due_alerts(now=t) == 1
    db.expire_all()
    assert db.get(Alert, alert.id).status == AlertStatus.PENDING
    attempt = db.scalar(select(AlertAttempt))
    assert attempt.error and attempt.finished_at == t
    assert ticket.reference


def test_sms_alert_reaches_the_focal_point_through_the_gateway(
    db: Any, world: World, celery_worker: Any
) -> None:
    focal = reachable_contact(db, "+22366001122")
    add_channel(db, world.teams["health"], AlertKind.SMS, phone="66 00 11 22")
    ticket = create_ticket(db, category=C.HEALTH, source="sms", place_code="ML0702")
    commit(db)
    wait_until(_all_delivered(db, 1), timeout=30)
    db.expire_all()
    bodies = db.scalars(
        select(Message.body).where(
            Message.contact_id == focal.id, Message.direction == MessageDirection.OUTBOUND
        )
    ).all()
    assert len(bodies) == 1 and ticket.reference in bodies[0]
    assert get_or_create_contact(db, "+22366001122").id == focal.id
