"""The dashboard — the page supervisors open first — on both deployments.

It once returned 500 on SQLite (``date_trunc`` exists only on PostgreSQL) while every page
test ran on PostgreSQL; these tests run the same page on the embedded default as well.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from console.conftest import login, make_world, new_ticket
from support.embedded import embedded_deployment


@pytest.fixture(params=["postgresql", "sqlite"])
def deployment_client(
    request: pytest.FixtureRequest, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Any]:
    """A TestClient on a seeded world with two tickets today, on PostgreSQL or SQLite."""
    from fastapi.testclient import TestClient

    from core.db import get_sessionmaker
    from deme.app import create_app
    from ops_console.auth import address_throttle

    def populate() -> None:
        address_throttle.reset()
        with get_sessionmaker()() as session:
            make_world(session)
            new_ticket(session, category="health", place_code="ML07")
            new_ticket(session, category="wash", phone="+22376000999", place_code="ML07")

    if request.param == "sqlite":
        with embedded_deployment(tmp_path, monkeypatch):
            populate()
            with TestClient(create_app(), base_url="https://deme.test") as client:
                yield client
    else:
        request.getfixturevalue("db")
        populate()
        with TestClient(create_app(), base_url="https://deme.test") as client:
            yield client


def test_the_dashboard_answers_on_both_deployments_with_todays_tickets(
    deployment_client: Any,
) -> None:
    login(deployment_client, "supervisor-user")
    page = deployment_client.get("/dashboard")
    assert page.status_code == 200, page.text[:300]
    assert "Gao" in page.text  # ML07's open tickets are in the region table


@pytest.mark.parametrize("engine_kind", ["postgresql", "sqlite"])
def test_utc_day_groups_by_the_calendar_day_on_both_databases(
    engine_kind: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    request: pytest.FixtureRequest,
) -> None:
    from datetime import UTC, date, datetime

    from sqlalchemy import func

    from core.db import get_sessionmaker
    from core.sqldialect import utc_day
    from models.tickets import Ticket

    def count_by_day(session: Session) -> dict[date, int]:
        day = utc_day(Ticket.created_at)
        rows = session.execute(select(day, func.count()).group_by(day)).all()
        return {d: n for d, n in rows}

    def scenario() -> dict[date, int]:
        with get_sessionmaker()() as session:
            make_world(session)
            first = new_ticket(session)
            second = new_ticket(session, phone="+22376000998")
            first.created_at = datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC)
            second.created_at = datetime(2026, 3, 2, 0, 0, 30, tzinfo=UTC)
            session.commit()
            return count_by_day(session)

    if engine_kind == "sqlite":
        with embedded_deployment(tmp_path, monkeypatch):
            counts = scenario()
    else:
        request.getfixturevalue("db")
        counts = scenario()
    # 23:59:30 and 00:00:30 UTC fall on two days, whatever the server's own time zone.
    assert counts == {date(2026, 3, 1): 1, date(2026, 3, 2): 1}, counts
