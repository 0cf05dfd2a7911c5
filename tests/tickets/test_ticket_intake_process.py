"""Intake in two steps: ``record_ticket`` (fast, what a USSD caller waits for) and
``process_intake`` (the worker: routing, SLA, surges, alerts, the sender's SMS).

The contract: record + process gives what ``create_ticket`` gives; processing runs once however
often its task is delivered; a lost task is caught up; nothing leaves the system from the
record step, and what the worker sends about a protection report carries no content.
"""

from __future__ import annotations

import json
import threading
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
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

from models.alerts import Alert
from models.base import utcnow
from models.enums import (
    AlertKind,
    AlertStatus,
    MessageDirection,
    TicketCategory,
    TicketSource,
    TicketStatus,
)
from models.messages import Message
from models.outbox import OutboxTask
from models.outbox_relay import discard_pending
from models.routing import RoutingDecision
from models.tickets import Incident, Ticket, TicketEvent
from support import wait_until
from tickets import intake
from tickets.intake import create_ticket, process_ticket, record_ticket

C = TicketCategory


def commit_unpublished(db: Any) -> None:
    """Commit without publishing the outbox: the test runs the process step itself, and the
    session's shared worker (started by an earlier test) must not race it."""
    db.commit()
    discard_pending(db)


def _tasks(db: Any) -> list[tuple[str, list[Any]]]:
    db.expire_all()
    return [
        (row.task_name, list(row.args))
        for row in db.scalars(select(OutboxTask).order_by(OutboxTask.id))
    ]


def _events(db: Any, ticket_id: int) -> list[str]:
    return list(
        db.scalars(
            select(TicketEvent.kind)
            .where(TicketEvent.ticket_id == ticket_id)
            .order_by(TicketEvent.id)
        )
    )


def _count(db: Any, model: Any, *where: Any) -> int:
    db.expire_all()
    return int(db.scalar(select(func.count()).select_from(model).where(*where)) or 0)


def _ussd_help(db: Any, contact: Any, **extra: Any) -> dict[str, Any]:
    return {
        "category": C.HEALTH,
        "source": TicketSource.USSD,
        "contact": contact,
        "place_code": "ML070201",
        "household_size": 5,
        "language": "fr",
        **extra,
    }


def test_record_ticket_records_and_leaves_the_rest_to_the_worker(db: Any, world: World) -> None:
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url="http://127.0.0.1:9/hook")
    contact = reachable_contact(db)
    commit(db)
    ticket = record_ticket(db, **_ussd_help(db, contact, description="il saigne"))
    assert ticket.reference.startswith("T-")
    # Triage is pure and done at once: the queue shows the right priority immediately.
    assert ticket.priority.value == "urgent" and ticket.sensitive is False
    assert ticket.status is TicketStatus.NEW and ticket.triaged_at is None
    assert ticket.team_id is None and ticket.first_response_due_at is None
    assert ticket.household_id is not None and ticket.place_id == world.place("ML070201").id
    db.commit()
    # No outbox row: the caller pushes the process step itself once it has answered
    # (publish_processing); process_pending is the safety net.
    assert _tasks(db) == []
    assert _events(db, ticket.id) == ["created"]
    assert _count(db, RoutingDecision) == 0 and _count(db, Alert) == 0


def test_with_the_broker_down_the_process_step_waits_for_process_pending(
    db: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    from core import fastpublish
    from core.settings import get_settings

    contact = reachable_contact(db)
    ticket = record_ticket(db, **_ussd_help(db, contact))
    db.commit()
    monkeypatch.setenv("DEME_REDIS_URL", "redis://127.0.0.1:1/0")  # nothing listens there
    get_settings.cache_clear()
    fastpublish.reset()
    try:
        intake.publish_processing(ticket.id)  # never raises: the caller already has its answer
    finally:
        monkeypatch.undo()
        get_settings.cache_clear()
        fastpublish.reset()
    assert intake.process_pending(older_than=timedelta(0)) == 1
    db.expire_all()
    processed = db.get(Ticket, ticket.id)
    assert processed.status is TicketStatus.TRIAGED and processed.team_id is not None


def test_record_then_process_gives_what_create_ticket_gives(db: Any, world: World) -> None:
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url="http://127.0.0.1:9/hook")
    contact = reachable_contact(db)
    commit_unpublished(db)
    at_once = create_ticket(db, **_ussd_help(db, contact))
    commit_unpublished(db)
    later = record_ticket(db, **_ussd_help(db, contact))
    commit_unpublished(db)
    assert process_ticket(later.id) is True
    db.expire_all()
    for ticket in (at_once, later):
        db.refresh(ticket)
    fields = (
        "status",
        "priority",
        "sensitive",
        "team_id",
        "place_id",
        "household_id",
        "language",
        "needs_review",
    )
    assert {f: getattr(later, f) for f in fields} == {f: getattr(at_once, f) for f in fields}
    assert later.status is TicketStatus.TRIAGED and later.team_id == world.teams["health"].id
    assert later.triaged_at is not None
    assert later.first_response_due_at is not None and later.resolution_due_at is not None
    assert (later.first_response_due_at - later.created_at) == (
        at_once.first_response_due_at - at_once.created_at
    )
    # (The session's shared worker may still be draining earlier tests' notification tasks,
    # whose ids the truncation recycles: compare the intake's own events.)
    own = {"created", "routed", "assigned", "status_changed", "incident_linked"}
    assert [k for k in _events(db, later.id) if k in own] == [
        k for k in _events(db, at_once.id) if k in own
    ]
    for ticket in (at_once, later):
        assert _count(db, RoutingDecision, RoutingDecision.ticket_id == ticket.id) == 1
        assert _count(db, Alert, Alert.ticket_id == ticket.id) == 1
    # Both senders get the "received" SMS scheduled (USSD tickets are acknowledged).
    notify = [args for name, args in _tasks(db) if name == "tickets.notify_sender"]
    assert sorted(args[0] for args in notify) == sorted([at_once.id, later.id])


def test_processing_runs_once_however_often_the_task_is_delivered(db: Any, world: World) -> None:
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url="http://127.0.0.1:9/hook")
    add_channel(db, world.teams["health"], AlertKind.EMAIL, email="health@deme.test")
    contact = reachable_contact(db)
    ticket = record_ticket(db, **_ussd_help(db, contact))
    commit_unpublished(db)
    assert process_ticket(ticket.id) is True
    assert process_ticket(ticket.id) is False  # a redelivery, or the relay publishing again
    assert process_ticket(ticket.id) is False
    assert _count(db, RoutingDecision, RoutingDecision.ticket_id == ticket.id) == 1
    assert _count(db, Alert, Alert.ticket_id == ticket.id) == 2  # one per channel
    events = _events(db, ticket.id)
    # The sender's notice is its own task: the session's shared worker may already have run it
    # (once) from the relay, so it is counted apart from what processing itself records.
    assert [kind for kind in events if kind != "sender_notified"] == ["created", "routed"]
    assert events.count("sender_notified") <= 1
    notify = [args for name, args in _tasks(db) if name == "tickets.notify_sender"]
    assert len(notify) == 1
    assert process_ticket(10**9) is False  # a ticket that is gone (erased, rolled back)


def test_concurrent_deliveries_process_once(db: Any, world: World) -> None:
    add_channel(db, world.teams["health"], AlertKind.WEBHOOK, url="http://127.0.0.1:9/hook")
    contact = reachable_contact(db)
    ticket = record_ticket(db, **_ussd_help(db, contact))
    commit_unpublished(db)
    results: list[bool] = []
    threads = [
        threading.Thread(target=lambda: results.append(process_ticket(ticket.id))) for _ in range(4)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert sorted(results) == [False, False, False, True]
    assert _count(db, RoutingDecision, RoutingDecision.ticket_id == ticket.id) == 1
    assert _count(db, Alert, Alert.ticket_id == ticket.id) == 1


def test_a_lost_processing_task_is_caught_up_before_the_sla_check(db: Any, world: World) -> None:
    from tickets import tasks

    contact = reachable_contact(db)
    stale = record_ticket(db, **_ussd_help(db, contact), now=utcnow() - timedelta(minutes=5))
    fresh = record_ticket(db, **_ussd_help(db, contact))
    db.commit()
    discard_pending(db)  # the task was never published, or failed inside the worker
    tasks.check_sla()  # what beat runs every minute
    db.expire_all()
    assert db.get(Ticket, stale.id).triaged_at is not None
    assert db.get(Ticket, stale.id).first_response_due_at is not None
    # Within the grace period the task itself is expected to do it.
    assert db.get(Ticket, fresh.id).triaged_at is None
    assert intake.process_pending(older_than=timedelta(0)) == 1
    assert intake.process_pending(older_than=timedelta(0)) == 0
    db.expire_all()
    assert db.get(Ticket, fresh.id).status is TicketStatus.TRIAGED


def test_an_operator_ahead_of_the_worker_is_not_overridden(db: Any, world: World) -> None:
    from tickets.workflow import assign

    contact = reachable_contact(db)
    ticket = record_ticket(db, **_ussd_help(db, contact))
    assign(db, ticket, world.users["medic"].id, actor_label="op")
    commit_unpublished(db)
    assert process_ticket(ticket.id) is True
    db.expire_all()
    ticket = db.get(Ticket, ticket.id)
    assert ticket.status is TicketStatus.ASSIGNED
    assert ticket.assignee_id == world.users["medic"].id
    assert ticket.team_id == world.teams["health"].id and ticket.triaged_at is not None
    # Assigned already: the "assigned" SMS was scheduled by the operator, no "received" one.
    kinds = [args[1] for name, args in _tasks(db) if name == "tickets.notify_sender"]
    assert kinds == ["assigned"]


def test_reports_waiting_for_the_worker_join_their_surge_when_processed(
    db: Any, world: World
) -> None:
    add_channel(db, world.teams["general"], AlertKind.WEBHOOK, url="http://127.0.0.1:9/hook")
    contact = reachable_contact(db)
    recorded = [
        record_ticket(
            db, category=C.WASH, source=TicketSource.USSD, contact=contact, place_code="ML0702"
        )
        for _ in range(3)
    ]
    commit_unpublished(db)
    # Processed in any order: the third one processed opens the incident with all three.
    for ticket in reversed(recorded):
        process_ticket(ticket.id)
    incident = db.scalar(select(Incident))
    assert incident is not None and incident.report_count == 3
    db.expire_all()
    assert {db.get(Ticket, t.id).incident_id for t in recorded} == {incident.id}
    # Two individual alerts before the surge, then the incident's single one.
    assert _count(db, Alert, Alert.ticket_id.is_not(None)) == 2
    assert _count(db, Alert, Alert.incident_id == incident.id) == 1


def test_concurrent_processing_of_one_surge_neither_deadlocks_nor_miscounts(
    db: Any, world: World
) -> None:
    contact = reachable_contact(db)
    recorded = [
        record_ticket(
            db,
            category=C.SHELTER_NFI,
            source=TicketSource.USSD,
            contact=contact,
            place_code="SITE-ANS-1",
        )
        for _ in range(8)
    ]
    commit_unpublished(db)
    errors: list[BaseException] = []

    def work(ids: list[int]) -> None:
        try:
            for ticket_id in ids:
                process_ticket(ticket_id)
        except BaseException as exc:  # reported by the assertion below
            errors.append(exc)

    ids = [t.id for t in recorded]
    threads = [threading.Thread(target=work, args=(ids[i::4],)) for i in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert errors == []
    incidents = db.scalars(select(Incident)).all()
    assert len(incidents) == 1 and incidents[0].report_count == 8
    assert _count(db, Ticket, Ticket.incident_id == incidents[0].id) == 8
    linked = _count(db, TicketEvent, TicketEvent.kind == "incident_linked")
    assert linked == 8  # each report linked once


def test_protection_recorded_fast_is_alerted_by_the_worker_without_content(
    db: Any,
    world: World,
    smtp: SmtpSink,
    webhook: WebhookReceiver,
    celery_worker: Any,
) -> None:
    """The USSD protection path: the alert leaves from the worker only, and neither it nor
    anything else that leaves says more than the reference; the sender gets no SMS."""
    team = world.teams["general"]  # no place on the discreet path: the default team
    add_channel(db, team, AlertKind.WEBHOOK, url=webhook.url, secret="s3cret")
    add_channel(db, team, AlertKind.EMAIL, email="focal@deme.test")
    contact = reachable_contact(db, SENDER_PHONE, language="bm")
    ticket = record_ticket(
        db,
        category=C.PROTECTION,
        source=TicketSource.USSD,
        contact=contact,
        language="bm",
        sensitive=True,
        callback_ok=True,
        callback_time="evening",
        actor_label="ussd",
    )
    assert ticket.sensitive is True and ticket.priority.value == "high"
    commit(db)
    intake.publish_processing(ticket.id)  # what the USSD final hop does once it has answered

    def delivered() -> bool:
        db.expire_all()
        statuses = db.scalars(select(Alert.status)).all()
        return len(statuses) == 2 and all(s == AlertStatus.DELIVERED for s in statuses)

    wait_until(delivered, timeout=30)
    wait_until(lambda: len(smtp.messages) == 1 and len(webhook.requests) == 1, timeout=20)
    db.expire_all()
    processed = db.get(Ticket, ticket.id)
    assert processed.status is TicketStatus.TRIAGED and processed.team_id == team.id
    left = (
        [r["body"].decode() for r in webhook.requests]
        + [json.dumps(r["headers"]) for r in webhook.requests]
        + smtp.decoded()
        + outbound_bodies(db)
    )
    assert all(ticket.reference in r["body"].decode() for r in webhook.requests)
    for text in left:
        for word in ("protection", "evening", "soir", "callback", "76123456", "22376", "ussd"):
            assert word.lower() not in text.lower(), (word, text)
    sender_sms = db.scalars(
        select(Message.id).where(
            Message.contact_id == contact.id, Message.direction == MessageDirection.OUTBOUND
        )
    ).all()
    assert sender_sms == []  # a sensitive report is never acknowledged by SMS


def test_the_worker_runs_process_intake_under_its_registered_name(
    db: Any, world: World, celery_worker: Any
) -> None:
    contact = reachable_contact(db)
    ticket = record_ticket(db, **_ussd_help(db, contact))
    commit(db)
    intake.publish_processing(ticket.id)  # tickets.process_intake(ticket.id) to the real worker

    def processed() -> bool:
        db.expire_all()
        row = db.get(Ticket, ticket.id)
        return row is not None and row.triaged_at is not None

    wait_until(processed, timeout=30)
    db.expire_all()
    assert db.get(Ticket, ticket.id).team_id == world.teams["health"].id
    assert _count(db, RoutingDecision, RoutingDecision.ticket_id == ticket.id) == 1


def test_an_operator_who_triaged_or_rerouted_first_still_gets_sla_and_keeps_the_team(
    db: Any, world: World
) -> None:
    from tickets.workflow import change_status, reroute

    contact = reachable_contact(db)
    triaged = record_ticket(db, **_ussd_help(db, contact))
    change_status(db, triaged, TicketStatus.TRIAGED, actor_label="op")
    rerouted = record_ticket(db, **_ussd_help(db, contact))
    reroute(db, rerouted, world.teams["general"], actor_label="op")
    commit_unpublished(db)
    assert process_ticket(triaged.id) is True
    assert process_ticket(rerouted.id) is True
    db.expire_all()
    first = db.get(Ticket, triaged.id)
    assert first.team_id == world.teams["health"].id  # routed by the rules all the same
    assert first.first_response_due_at is not None
    second = db.get(Ticket, rerouted.id)
    assert second.team_id == world.teams["general"].id  # the operator's choice stands
    assert second.first_response_due_at is not None and second.triaged_at is not None
    assert _count(db, RoutingDecision, RoutingDecision.ticket_id == rerouted.id) == 1
    assert process_ticket(triaged.id) is False and process_ticket(rerouted.id) is False
