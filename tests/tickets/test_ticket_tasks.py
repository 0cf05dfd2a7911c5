"""The periodic tasks run in the real worker under their registered names (as beat sends
them), and the beat schedule declares them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import func, select
from ticket_helpers import SmtpSink, WebhookReceiver, World, add_channel, commit

from core.celery_app import beat_schedule
from core.settings import get_settings
from models.alerts import Alert
from models.audit import AuditLog
from models.base import utcnow
from models.enums import AlertKind, AlertStatus, TicketCategory, TicketStatus
from models.outbox_relay import publish
from models.tickets import Ticket
from support import wait_until
from tickets.intake import create_ticket


def test_beat_declares_the_tickets_tasks() -> None:
    tasks = {entry["task"] for entry in beat_schedule(get_settings()).values()}
    assert {"tickets.check_sla", "tickets.purge_retention", "tickets.retry_alerts"} <= tasks


def test_check_sla_task_escalates_in_the_worker(
    db: Any, world: World, webhook: WebhookReceiver, smtp: SmtpSink, celery_worker: Any
) -> None:
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url=webhook.url)
    two_days_ago = utcnow() - timedelta(days=2)
    ticket = create_ticket(
        db, category=TicketCategory.HEALTH, source="sms", place_code="ML0702", now=two_days_ago
    )
    commit(db)
    publish("tickets.check_sla", [])

    def escalated() -> bool:
        db.expire_all()
        return (
            db.scalar(
                select(func.count(Alert.id)).where(
                    Alert.reason == "escalation", Alert.status == AlertStatus.DELIVERED
                )
            )
            == 2  # the team's webhook and the supervisor's email
        )

    wait_until(escalated, timeout=30)
    db.refresh(ticket)
    assert ticket.first_response_escalated_at is not None
    assert ticket.priority.value == "high"
    assert any(b'"escalation"' in r["body"] for r in webhook.requests)
    wait_until(lambda: any("sup@deme.test" in m["to"] for m in smtp.messages), timeout=10)


def test_purge_retention_task_runs_in_the_worker(db: Any, world: World, celery_worker: Any) -> None:
    ticket = create_ticket(
        db, category=TicketCategory.WASH, source="sms", description="secret words"
    )
    ticket.status = TicketStatus.CLOSED
    ticket.closed_at = utcnow() - timedelta(days=400)
    commit(db)
    publish("tickets.purge_retention", [])

    def purged() -> bool:
        db.expire_all()
        return db.get(Ticket, ticket.id).personal_data_purged_at is not None

    wait_until(purged, timeout=30)
    assert db.get(Ticket, ticket.id).description is None
    assert db.scalar(select(AuditLog).where(AuditLog.action == "retention.purged")) is not None
