"""Celery tasks of the tickets domain. Each receives ids, reloads rows, commits its own
transaction, and is safe to run twice (acks_late redelivery, the outbox relay)."""

from __future__ import annotations

from typing import Any

from core.celery_app import celery_app
from core.db import TRANSIENT_ERRORS, get_sessionmaker
from core.locks import single_run
from core.tasks import retry_transient
from models.outbox_relay import publish_committed
from tickets import alerts, erasure, intake, notifications, sla


@celery_app.task(name="tickets.process_intake", ignore_result=True)
def process_intake(ticket_id: int) -> bool:
    """Routing, assignment, SLA, surge, alerts, the sender's SMS for a recorded ticket."""
    return intake.process_ticket(ticket_id)


@celery_app.task(bind=True, name="tickets.deliver_alert", ignore_result=True, max_retries=None)
def deliver_alert(self: Any, alert_id: int) -> str | None:
    try:
        status = alerts.deliver_alert(alert_id)
    except TRANSIENT_ERRORS as exc:  # database/broker down: soon again, then the sweep
        raise retry_transient(self, exc) from exc
    return None if status is None else status.value


@celery_app.task(name="tickets.retry_alerts", ignore_result=True)
def retry_alerts() -> int:
    return alerts.retry_due_alerts()


@celery_app.task(name="tickets.check_sla", ignore_result=True)
@single_run("tickets.check_sla", skipped=0)
def check_sla() -> int:
    # First the recorded tickets whose processing task was lost: until processed they have no
    # due times, so this check (and everyone else) would never notice them.
    intake.process_pending()
    with get_sessionmaker()() as session:
        breaches = sla.check_sla(session)
        session.commit()
        publish_committed(session)
    return len(breaches)


@celery_app.task(
    bind=True, name="tickets.notify_sender", ignore_result=True, acks_late=True, max_retries=None
)
def notify_sender(self: Any, ticket_id: int, kind: str, event_id: int) -> bool:
    try:
        return notifications.notify_sender(ticket_id, kind, event_id)
    except TRANSIENT_ERRORS as exc:  # database/broker down: soon again, then the sweep
        raise retry_transient(self, exc) from exc


@celery_app.task(name="tickets.sweep_notifications", ignore_result=True)
def sweep_notifications() -> int:
    """Sender notifications due but never sent (their task failed or was lost)."""
    return notifications.sweep_unsent()


@celery_app.task(name="tickets.notify_incident_closed", ignore_result=True)
def notify_incident_closed(incident_id: int) -> int:
    return notifications.notify_incident_closed(incident_id)


@celery_app.task(name="tickets.purge_retention", ignore_result=True)
def purge_retention() -> dict[str, int]:
    with get_sessionmaker()() as session:
        counts = erasure.purge_retention(session)
        session.commit()
    return counts


@celery_app.task(name="tickets.finish_erasures", ignore_result=True)
def finish_erasures() -> int:
    """Numbers kept for an erasure confirmation are removed once it is sent, or when due."""
    with get_sessionmaker()() as session:
        done = erasure.finish_due_erasures(session)
        session.commit()
    return done
