"""SLA: targets, the pause while waiting, breach escalation with a controlled clock, and
never alerting twice for the same breach (also under concurrent runs)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from ticket_helpers import World, add_channel

from core.db import get_sessionmaker
from models.alerts import Alert
from models.enums import AlertKind, TicketCategory, TicketPriority, TicketStatus
from models.routing import SlaTarget
from models.tickets import Ticket, TicketEvent
from tickets import sla
from tickets.intake import create_ticket
from tickets.workflow import change_priority, change_status

C = TicketCategory
P = TicketPriority
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
DAY = timedelta(days=1)


def _health(db: Any, **kwargs: Any) -> Ticket:
    kwargs.setdefault("description", "fièvre")
    return create_ticket(db, category=C.HEALTH, source="sms", place_code="ML0702", now=T0, **kwargs)


def test_default_targets_cover_every_category_and_priority() -> None:
    table = sla.default_targets()
    assert len(table) == len(C) * len(P)
    assert table[(C.PROTECTION, P.URGENT)] == sla.Targets(HOUR, DAY)
    for targets in table.values():
        assert targets.first_response < targets.resolution


def test_a_stored_target_overrides_the_default(db: Any, world: World) -> None:
    db.add(
        SlaTarget(
            category=C.HEALTH,
            priority=P.NORMAL,
            first_response_minutes=30,
            resolution_minutes=600,
        )
    )
    ticket = _health(db)
    assert ticket.first_response_due_at == T0 + timedelta(minutes=30)
    assert ticket.resolution_due_at == T0 + timedelta(minutes=600)


def test_priority_override_recomputes_due_times(db: Any, world: World) -> None:
    ticket = _health(db)
    assert ticket.first_response_due_at == T0 + DAY
    change_priority(db, ticket, P.URGENT, actor_label="op")
    assert ticket.first_response_due_at == T0 + HOUR
    assert ticket.resolution_due_at == T0 + DAY


def test_the_clock_pauses_while_waiting_on_the_sender(db: Any, world: World) -> None:
    ticket = _health(db)
    change_status(db, ticket, TicketStatus.WAITING, actor_label="op", now=T0 + HOUR)
    assert ticket.sla_paused_at == T0 + HOUR
    # Days of waiting: no breach while paused.
    assert sla.check_sla(db, now=T0 + 10 * DAY) == []
    change_status(db, ticket, TicketStatus.IN_PROGRESS, actor_label="op", now=T0 + 3 * DAY)
    assert ticket.sla_paused_at is None
    waited = 3 * DAY - HOUR
    assert ticket.sla_paused_seconds == int(waited.total_seconds())
    assert ticket.resolution_due_at == T0 + 7 * DAY + waited
    # WAITING counted as the first response (the team asked the sender something).
    assert ticket.first_responded_at == T0 + HOUR
    # A later recompute keeps the paused time.
    change_priority(db, ticket, P.HIGH, actor_label="op")
    assert ticket.resolution_due_at == T0 + 3 * DAY + waited


def test_breaches_escalate_once_raise_priority_and_reach_lead_and_supervisors(
    db: Any, world: World
) -> None:
    team = world.teams["health"]
    team.lead_user_id = world.users["lead"].id
    hook = add_channel(db, team, AlertKind.WEBHOOK, url="http://127.0.0.1:9/h")
    ticket = _health(db)
    db.commit()
    assert ticket.priority == P.NORMAL

    assert sla.check_sla(db, now=T0 + DAY - timedelta(minutes=1)) == []
    breaches = sla.check_sla(db, now=T0 + DAY + timedelta(minutes=1))
    db.commit()
    assert [(b.ticket_id, b.deadline) for b in breaches] == [(ticket.id, "first_response")]
    db.refresh(ticket)
    assert ticket.priority == P.HIGH
    assert ticket.first_response_escalated_at == T0 + DAY + timedelta(minutes=1)
    alerts = db.scalars(select(Alert).where(Alert.reason == "escalation").order_by(Alert.id)).all()
    # the team's channel, the team lead, the supervisor
    assert [(a.alert_channel_id, a.recipient_user_id) for a in alerts] == [
        (hook.id, None),
        (None, world.users["supervisor"].id),
        (None, world.users["lead"].id),
    ]
    event = db.scalar(select(TicketEvent).where(TicketEvent.kind == "sla_breached"))
    assert event.data["deadline"] == "first_response"
    assert (event.data["priority_from"], event.data["priority_to"]) == ("normal", "high")

    # The same breach is never escalated again, however often the check runs.
    for hours in (1, 5, 30):
        assert sla.check_sla(db, now=T0 + DAY + hours * HOUR) == []
    db.commit()
    escalations = select(func.count(Alert.id)).where(Alert.reason == "escalation")
    assert db.scalar(escalations) == 3

    # The resolution deadline (7 days, unchanged by the raise) is a new breach.
    breaches = sla.check_sla(db, now=T0 + 7 * DAY + timedelta(minutes=1))
    db.commit()
    assert [b.deadline for b in breaches] == ["resolution"]
    db.refresh(ticket)
    assert ticket.priority == P.URGENT
    assert db.scalar(escalations) == 6


def test_first_response_in_time_means_no_first_response_breach(db: Any, world: World) -> None:
    ticket = _health(db)
    change_status(db, ticket, TicketStatus.IN_PROGRESS, actor_label="op", now=T0 + HOUR)
    assert sla.check_sla(db, now=T0 + 2 * DAY) == []
    change_status(db, ticket, TicketStatus.RESOLVED, actor_label="op", now=T0 + 3 * DAY)
    assert sla.check_sla(db, now=T0 + 30 * DAY) == []


def test_concurrent_checks_escalate_each_breach_once(db: Any, world: World) -> None:
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url="http://127.0.0.1:9/h")
    for _ in range(20):
        _health(db)
    db.commit()
    barrier = threading.Barrier(4)
    results: list[int] = []
    errors: list[BaseException] = []

    def run() -> None:
        try:
            with get_sessionmaker()() as session:
                barrier.wait()
                breaches = sla.check_sla(session, now=T0 + 2 * DAY)
                session.commit()
                results.append(len(breaches))
        except BaseException as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors
    assert sum(results) == 20
    assert db.scalar(select(func.count(Alert.id)).where(Alert.reason == "escalation")) == 40
    assert (
        db.scalar(select(func.count(TicketEvent.id)).where(TicketEvent.kind == "sla_breached"))
        == 20
    )
