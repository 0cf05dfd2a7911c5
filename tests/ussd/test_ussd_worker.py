"""The final hop only records; the real Celery worker does the rest (routing, SLA, alerts).

What a caller waits for is the reference on the END screen; what the team needs — the ticket
triaged, routed, with its due times and its alert — arrives from the worker a moment later,
through the task the final hop pushed to the broker once the caller had the END screen.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from sqlalchemy import func, select
from ussd.helpers import Phone

from core.db import session_scope
from models.alerts import Alert, AlertChannel
from models.enums import AlertKind, AlertStatus, TicketCategory, TicketSource, TicketStatus
from models.outbox import OutboxTask
from models.routing import RoutingDecision
from models.teams import Team
from models.tickets import Ticket, TicketEvent
from support import wait_until

REFERENCE = re.compile(r"T-[0-9A-Z]{5}")


class Receiver:
    """A local webhook endpoint: what the worker's alerts actually carry out of the system."""

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        bodies = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                self.send_response(200)
                self.end_headers()

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"


@pytest.fixture()
def hotline(client: Any) -> Iterator[Receiver]:
    """The default team, alerted by webhook."""
    receiver = Receiver()
    with session_scope() as session:
        team = Team(slug="hotline", name="Hotline", is_default=True)
        session.add(team)
        session.flush()
        session.add(
            AlertChannel(
                team_id=team.id,
                kind=AlertKind.WEBHOOK,
                name="hotline-hook",
                target={"url": receiver.url},
            )
        )
    yield receiver
    receiver.server.shutdown()
    receiver.server.server_close()


def _processed(reference: str) -> Any:
    def check() -> bool:
        with session_scope() as session:
            ticket = session.scalar(select(Ticket).where(Ticket.reference == reference))
            return ticket is not None and ticket.triaged_at is not None

    return check


def _delivered(count: int) -> Any:
    def check() -> bool:
        with session_scope() as session:
            statuses = session.scalars(select(Alert.status)).all()
            return len(statuses) == count and all(s == AlertStatus.DELIVERED for s in statuses)

    return check


def test_a_ussd_help_request_is_routed_and_triaged_by_the_worker(
    client: Any,
    at_channel: int,
    places_seeded: None,
    hotline: Receiver,
    celery_worker: Any,
) -> None:
    phone = Phone(client)
    phone.dial()
    end = phone.walk("1", "2", "2", "2", "Gao", "1", "6", "1")  # French, water, typed "Gao"
    found = REFERENCE.search(end)
    assert end.startswith("END ") and found, end
    reference = found.group(0)

    wait_until(_processed(reference), timeout=30)
    wait_until(_delivered(1), timeout=30)
    with session_scope() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.reference == reference))
        assert ticket is not None
        assert ticket.category is TicketCategory.WASH and ticket.source is TicketSource.USSD
        assert ticket.status is TicketStatus.TRIAGED
        team = session.scalar(select(Team).where(Team.slug == "hotline"))
        assert team is not None and ticket.team_id == team.id
        assert ticket.first_response_due_at is not None and ticket.resolution_due_at is not None
        decisions = session.scalar(
            select(func.count())
            .select_from(RoutingDecision)
            .where(RoutingDecision.ticket_id == ticket.id)
        )
        assert decisions == 1
        notify = session.scalars(
            select(OutboxTask.args).where(OutboxTask.task_name == "tickets.notify_sender")
        ).all()
        assert [list(args)[:2] for args in notify] == [[ticket.id, "received"]]
        # The process step went straight to the broker: no outbox row for it.
        process_rows = session.scalars(
            select(OutboxTask.id).where(OutboxTask.task_name == "tickets.process_intake")
        ).all()
        assert process_rows == []
        ticket_id = ticket.id

    # The caller hears back: the worker's "received" SMS, in the language of the walk.
    def events() -> list[str]:
        with session_scope() as session:
            return list(
                session.scalars(
                    select(TicketEvent.kind)
                    .where(TicketEvent.ticket_id == ticket_id)
                    .order_by(TicketEvent.id)
                )
            )

    wait_until(lambda: "sender_notified" in events(), timeout=30)
    assert events() == ["created", "routed", "sender_notified"]
    payload = json.loads(hotline.bodies[0])
    assert payload["reference"] == reference and payload["reason"] == "new_ticket"


def test_a_ussd_protection_report_is_alerted_by_the_worker_with_the_reference_only(
    client: Any,
    at_channel: int,
    places_seeded: None,
    hotline: Receiver,
    celery_worker: Any,
) -> None:
    phone = Phone(client)
    phone.dial()
    end = phone.walk("3", "3", "1", "1", "3")  # English, safety, about me, call back, evening
    found = REFERENCE.search(end)
    assert end.startswith("END ") and found, end
    reference = found.group(0)

    wait_until(_processed(reference), timeout=30)
    wait_until(_delivered(1), timeout=30)
    with session_scope() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.reference == reference))
        assert ticket is not None and ticket.sensitive and ticket.team_id is not None
        assert ticket.callback_time == "evening"
        # No SMS to the caller about a sensitive report, only the screen's reference.
        notify = session.scalars(
            select(OutboxTask.id).where(OutboxTask.task_name == "tickets.notify_sender")
        ).all()
        assert notify == []
    [body] = hotline.bodies
    assert reference in body.decode()
    for word in ("protection", "evening", "soir", "safety", "callback", phone.number[4:]):
        assert word.lower() not in body.decode().lower(), (word, body)
