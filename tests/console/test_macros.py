"""Macros and the approval list through the console's routes (the browser tests in
test_zw_speed_browser.py show them working; these pin the refusals and the visibility)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from tests.console.conftest import PASSWORD, World, csrf_of, login, new_ticket


def test_unknown_macro_and_bad_macro_forms_are_refused_with_a_message(
    browser_client: Callable[[], Any], world: World, db: Session
) -> None:
    ticket = new_ticket(db, category="health", phone="+22376891001")
    operator = browser_client()
    csrf = login(operator, world["operator"].username)
    answer = operator.post(
        f"/tickets/{ticket.reference}/macro", data={"csrf_token": csrf, "macro": "nope"}
    )
    assert answer.status_code == 422
    assert "Choisissez une macro dans la liste." in answer.text
    # Operators do not manage macros.
    assert operator.get("/admin/macros").status_code == 403

    supervisor = browser_client()
    csrf = login(supervisor, world["supervisor"].username)
    page = supervisor.get("/admin/macros")
    assert page.status_code == 200 and "Demander le lieu" in page.text
    bad_status = supervisor.post(
        "/admin/macros",
        data={"csrf_token": csrf_of(page.text), "key": "x", "fr": "Bonjour", "status": "gone"},
    )
    assert bad_status.status_code == 422 and "Valeur inconnue." in bad_status.text
    empty = supervisor.post(
        "/admin/macros", data={"csrf_token": csrf, "key": "x", "status": "", "note": ""}
    )
    assert empty.status_code == 422
    assert "Une macro doit envoyer une réponse, changer le statut ou ajouter une note." in (
        empty.text
    )
    twice = supervisor.post(
        "/admin/macros",
        data={"csrf_token": csrf, "key": ["x", "x"], "note": ["a", "b"]},
    )
    assert twice.status_code == 422 and "Deux macros ont la même clé" in twice.text


def test_a_stale_macro_confirmation_changes_nothing(
    browser_client: Callable[[], Any], world: World, db: Session
) -> None:
    from models.enums import MessageDirection, TicketStatus
    from models.messages import Message
    from models.tickets import Ticket

    ticket = new_ticket(db, category="health", phone="+22376891002", language="fr")
    operator = browser_client()
    csrf = login(operator, world["operator"].username)
    shown = db.get(Ticket, ticket.id).version  # type: ignore[union-attr]
    ticket.version = shown + 1  # someone saved meanwhile
    db.commit()
    answer = operator.post(
        f"/tickets/{ticket.reference}/macro/apply",
        data={"csrf_token": csrf, "macro": "referred", "version": str(shown), "seen_event": "0"},
    )
    assert answer.status_code == 409 and "a modifié ce ticket après" in answer.text
    db.expire_all()
    assert db.get(Ticket, ticket.id).status != TicketStatus.IN_PROGRESS  # type: ignore[union-attr]
    assert not list(
        db.scalars(
            select(Message).where(
                Message.ticket_id == ticket.id, Message.direction == MessageDirection.OUTBOUND
            )
        )
    )


def test_awaiting_approval_lists_only_what_the_viewer_may_approve(
    world: World, db: Session
) -> None:
    from models.enums import TicketStatus, UserRole
    from models.teams import TeamMember
    from models.users import User
    from ops_console import actions
    from ops_console.auth import create_user
    from ops_console.permissions import Viewer
    from ops_console.queries import awaiting_my_approval_clause
    from tickets.workflow import awaiting_approval_of

    ticket = new_ticket(db, category="protection", phone="+22376891003", sensitive=True)
    lead = create_user(
        db, username="protection-lead", role=UserRole.PROTECTION_OFFICER, password=PASSWORD
    )
    db.add(TeamMember(team_id=ticket.team_id, user_id=lead.id, is_lead=True))
    officer = db.get(User, world["protection_officer"].user_id)
    assert officer is not None
    actions.change_status(db, ticket, Viewer.load(db, officer), TicketStatus.RESOLVED, notify=False)
    db.commit()
    assert awaiting_approval_of(db, lead.id) == [ticket.id]
    # Not the person who asked, not a member when the team has a lead.
    assert awaiting_approval_of(db, officer.id) == []
    # An operator may not see the case: nothing, whatever the rule would say.
    operator = db.get(User, world["operator"].user_id)
    assert operator is not None
    clause = awaiting_my_approval_clause(db, Viewer.load(db, operator))
    from models.tickets import Ticket

    assert list(db.scalars(select(Ticket.id).where(clause))) == []
