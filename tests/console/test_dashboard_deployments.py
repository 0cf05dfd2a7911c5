"""The dashboard — the page supervisors open first — on the session's deployment.

It once returned 500 on SQLite (``date_trunc`` exists only on PostgreSQL) while every page
test ran on PostgreSQL; `make test` now runs the console tests on the embedded default as
well (``--deployment=embedded``), so this test runs on both.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from console.conftest import World, login, new_ticket


def test_the_dashboard_answers_with_todays_tickets(client: Any, db: Session, world: World) -> None:
    new_ticket(db, category="health", place_code="ML07")
    new_ticket(db, category="wash", phone="+22376000999", place_code="ML07")
    login(client, "supervisor-user")
    page = client.get("/dashboard")
    assert page.status_code == 200, page.text[:300]
    assert "Gao" in page.text  # ML07's open tickets are in the region table
