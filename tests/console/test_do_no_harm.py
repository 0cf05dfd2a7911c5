"""Adversarial checks of the do-no-harm rule: what a curious operator or a focal point can do
by hand (ids typed into a form) never puts a PSEA case where others see or count it."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from models.enums import IncidentStatus, TicketCategory
from models.tickets import Incident, Ticket
from tests.console.conftest import World, csrf_of, login, new_ticket
from tests.console.test_psea import Psea, _bot_report, psea  # noqa: F401  (fixture)


def _incident(db: Session, category: TicketCategory) -> Incident:
    incident = Incident(
        reference=f"I-{category.value[:4].upper()}1",
        category=category,
        status=IncidentStatus.OPEN,
        report_count=3,
    )
    db.add(incident)
    db.commit()
    return incident


def _link(browser: Any, reference: str, incident_id: int) -> Any:
    page = browser.get(f"/tickets/{reference}")
    assert page.status_code == 200
    return browser.post(
        f"/tickets/{reference}/incident",
        data={"csrf_token": csrf_of(page.text), "incident": str(incident_id)},
    )


def test_a_psea_case_cannot_be_put_into_a_protection_surge_by_hand(
    browser_client: Callable[[], Any],
    client: Any,
    world: World,
    db: Session,
    psea: Psea,  # noqa: F811
) -> None:
    surge = _incident(db, TicketCategory.PROTECTION)
    reference = _bot_report(client, world, db, kind="psea")
    focal = browser_client()
    login(focal, psea.lead.username)
    assert surge.reference not in focal.get(f"/tickets/{reference}").text  # none offered
    response = _link(focal, reference, surge.id)
    assert response.status_code == 422
    db.expire_all()
    ticket = db.scalar(select(Ticket).where(Ticket.reference == reference))
    assert ticket is not None and ticket.incident_id is None
    assert db.get(Incident, surge.id).report_count == 3  # type: ignore[union-attr]


def test_an_operator_cannot_link_a_ticket_to_another_categorys_incident_by_id(
    browser_client: Callable[[], Any], world: World, db: Session
) -> None:
    surge = _incident(db, TicketCategory.PROTECTION)
    health = new_ticket(db, category="health", phone="+22376000009")
    operator = browser_client()
    login(operator, world["operator"].username)
    response = _link(operator, health.reference, surge.id)
    assert response.status_code == 422 and surge.reference not in response.text
    db.expire_all()
    assert db.get(Ticket, health.id).incident_id is None  # type: ignore[union-attr]
    same = _incident(db, TicketCategory.HEALTH)
    assert _link(operator, health.reference, same.id).status_code == 200
    db.expire_all()
    assert db.get(Ticket, health.id).incident_id == same.id  # type: ignore[union-attr]
