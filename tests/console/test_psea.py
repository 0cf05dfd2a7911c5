"""PSEA cases through every path of the console and the API (issue 15): only the members of
the PSEA focal-point team they are routed to see them; every other role — admin, supervisor,
operator, protection officer, team member, the bot's service token — gets 404 (not 403) for
their reference on the page and the API, finds them in no list, search, conversation, export,
dashboard count or audit line; an administrator sees one number. Closing a protection or PSEA
case takes a lead's approval."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from core.settings import get_settings
from models.enums import MessageDirection, MessageStatus, TicketKind, UserRole
from models.messages import Message
from models.teams import Team, TeamMember
from models.tickets import Ticket
from tests.console.conftest import PASSWORD, Actor, World, csrf_of, login, new_ticket

PSEA_TEXT = "Le chef de site Ibrahim demande aux femmes de coucher avec lui contre les cartes"
PHONE = "+22376123456"
OTHER_ROLES = ("admin", "supervisor", "operator", "protection_officer", "team_member")


@dataclass
class Psea:
    team_id: int
    lead: Actor
    member: Actor


def _actor(db: Session, username: str, team_id: int, *, lead: bool) -> Actor:
    from ops_console.auth import create_user, issue_api_token

    user = create_user(db, username=username, role=UserRole.TEAM_MEMBER, password=PASSWORD)
    db.add(TeamMember(team_id=team_id, user_id=user.id, is_lead=lead))
    token = issue_api_token(db, user, "tests")
    return Actor(user.username, "team_member", user.id, token)


@pytest.fixture()
def psea(world: World, db: Session) -> Psea:
    """The seeded PSEA focal-point team, with a lead and a member who can log in."""
    team = db.scalar(select(Team).where(Team.handles_psea.is_(True)))
    assert team is not None, "deme seed creates the PSEA focal-point team"
    lead = _actor(db, "psea-lead", team.id, lead=True)
    member = _actor(db, "psea-member", team.id, lead=False)
    db.commit()
    return Psea(team.id, lead, member)


@pytest.fixture()
def shared_with_protection(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("DEME_PSEA_SHARE_WITH_PROTECTION", "true")
    get_settings.cache_clear()
    yield
    monkeypatch.delenv("DEME_PSEA_SHARE_WITH_PROTECTION")
    get_settings.cache_clear()


def _bot_report(client: Any, world: World, db: Session, **fields: Any) -> str:
    from tickets.contacts import get_or_create_contact

    contact = get_or_create_contact(db, PHONE)
    db.commit()
    body = {"sender": contact.public_id, "category": "other", "description": PSEA_TEXT}
    response = client.post("/api/v1/tickets", headers=world["service"].headers, json=body | fields)
    assert response.status_code == 201, response.text
    return str(response.json()["reference"])


def test_the_seed_has_a_psea_team_led_by_psea_focal(world: World, db: Session) -> None:
    from models.users import User

    team = db.scalar(select(Team).where(Team.handles_psea.is_(True)))
    focal = db.scalar(select(User).where(User.username == "psea_focal"))
    assert team is not None and focal is not None
    assert team.lead_user_id == focal.id and focal.password_hash is None
    assert not team.handles_protection


def test_the_bot_posts_psea_and_it_becomes_an_urgent_protection_case_of_the_focal_points(
    client: Any, world: World, db: Session, psea: Psea
) -> None:
    reference = _bot_report(client, world, db, kind="psea", category="protection")
    ticket = db.scalar(select(Ticket).where(Ticket.reference == reference))
    assert ticket is not None and ticket.team_id == psea.team_id
    out = client.get(f"/api/v1/tickets/{reference}", headers=psea.member.headers).json()
    assert out["kind"] == "psea" and out["category"] == "protection"
    assert out["priority"] == "urgent" and out["sensitive"] is True
    assert out["team"]["slug"] == "psea-focal-points"
    assert out["description"] == PSEA_TEXT
    # Whatever the creator sent: a "wash, not sensitive" PSEA report is still protection.
    other = _bot_report(client, world, db, kind="psea", category="wash", sensitive=False)
    out = client.get(f"/api/v1/tickets/{other}", headers=psea.lead.headers).json()
    assert (out["category"], out["priority"], out["sensitive"]) == ("protection", "urgent", True)
    # ... and stays so: a lower priority or another category is not applied to it.
    response = client.patch(
        f"/api/v1/tickets/{other}", headers=psea.lead.headers, json={"priority": "low"}
    )
    assert response.status_code == 200 and response.json()["category"] == "protection"
    out = client.get(f"/api/v1/tickets/{other}", headers=psea.lead.headers).json()
    assert out["priority"] == "urgent"
    response = client.patch(
        f"/api/v1/tickets/{other}", headers=psea.lead.headers, json={"category": "health"}
    )
    assert response.status_code == 422 and "protection case" in response.json()["detail"]


def test_a_psea_report_the_nlu_filed_as_other_still_reaches_only_the_focal_points(
    client: Any, world: World, db: Session, psea: Psea
) -> None:
    reference = _bot_report(client, world, db)  # no kind: the words say it
    out = client.get(f"/api/v1/tickets/{reference}", headers=psea.lead.headers).json()
    assert out["kind"] == "psea"
    ordinary = _bot_report(client, world, db, description="Le forage de Sevare est en panne")
    out = client.get(f"/api/v1/tickets/{ordinary}", headers=world["operator"].headers).json()
    assert out["kind"] == "need"


def test_every_other_role_gets_404_on_the_api_and_finds_it_nowhere(
    client: Any, world: World, db: Session, psea: Psea
) -> None:
    reference = _bot_report(client, world, db, kind="psea")
    ordinary = new_ticket(db, category="health", phone="+22376000002")
    for role in (*OTHER_ROLES, "service"):
        headers = world[role].headers
        response = client.get(f"/api/v1/tickets/{reference}", headers=headers)
        assert response.status_code == 404, role
        assert response.json() == {"detail": f"no ticket {reference!r}"}
        if role != "service":
            assert (
                client.get(f"/api/v1/tickets/{reference}/messages", headers=headers).status_code
                == 404
            ), role
            listed = client.get("/api/v1/tickets", headers=headers).json()["tickets"]
            assert reference not in {t["reference"] for t in listed}, role
            for query in (reference, "coucher", "Ibrahim"):
                found = client.post(
                    "/api/v1/tickets/search", headers=headers, json={"q": query}
                ).json()["tickets"]
                assert reference not in {t["reference"] for t in found}, (role, query)
            kind_list = client.get("/api/v1/tickets?kind=psea", headers=headers).json()
            assert kind_list["tickets"] == [], role
    # The bot that created a report may say later that it is PSEA, never the other way.
    later = _bot_report(client, world, db, kind="need", description="le chef me suit partout")
    service = world["service"].headers
    response = client.patch(f"/api/v1/tickets/{later}", headers=service, json={"kind": "psea"})
    assert response.status_code == 200, response.text
    assert (
        client.get(f"/api/v1/tickets/{later}", headers=psea.lead.headers).json()["kind"] == "psea"
    )
    response = client.patch(f"/api/v1/tickets/{later}", headers=service, json={"kind": "need"})
    assert response.status_code == 422 and "only report PSEA" in response.json()["detail"]
    # Even the bot that created it may complete it, but never read it.
    response = client.patch(
        f"/api/v1/tickets/{reference}", headers=world["service"].headers, json={"callback_ok": True}
    )
    assert response.status_code == 200
    # The focal points find it in the list, by kind, by reference and by its words.
    for actor in (psea.lead, psea.member):
        listed = client.get("/api/v1/tickets?kind=psea", headers=actor.headers).json()["tickets"]
        assert {t["reference"] for t in listed} == {reference, later}
        found = client.post(
            "/api/v1/tickets/search", headers=actor.headers, json={"q": "coucher cartes"}
        ).json()["tickets"]
        assert [t["reference"] for t in found] == [reference]
        # ... and nothing else: they are no operators.
        assert (
            client.get(f"/api/v1/tickets/{ordinary.reference}", headers=actor.headers).status_code
            == 404
        )


def test_every_other_role_gets_404_on_the_page_and_sees_no_trace_in_the_queue(
    browser_client: Callable[[], Any], client: Any, world: World, db: Session, psea: Psea
) -> None:
    reference = _bot_report(client, world, db, kind="psea")
    for role in OTHER_ROLES:
        browser = browser_client()
        login(browser, world[role].username)
        assert browser.get(f"/tickets/{reference}").status_code == 404, role
        queue = browser.get("/queue").text
        assert reference not in queue and "Ibrahim" not in queue, role
        # (the search box shows what was typed; no row links to the case)
        assert f'href="/tickets/{reference}"' not in browser.get(f"/queue?q={reference}").text
    focal = browser_client()
    login(focal, psea.member.username)
    page = focal.get(f"/tickets/{reference}")
    assert page.status_code == 200
    assert PSEA_TEXT.split()[3] in page.text  # Ibrahim: the focal point reads the report
    assert "Exploitation ou abus sexuel par un travailleur humanitaire" in page.text
    assert f'href="/tickets/{reference}"' in focal.get("/queue?kind=psea").text


def test_an_operator_who_recognises_psea_hands_it_over_and_loses_sight_of_it(
    client: Any, world: World, db: Session, psea: Psea
) -> None:
    ticket = new_ticket(db, category="other", description="l'homme qui donne les vivres me suit")
    operator = world["operator"].headers
    response = client.patch(
        f"/api/v1/tickets/{ticket.reference}", headers=operator, json={"kind": "psea"}
    )
    assert response.status_code == 200, response.text
    assert client.get(f"/api/v1/tickets/{ticket.reference}", headers=operator).status_code == 404
    out = client.get(f"/api/v1/tickets/{ticket.reference}", headers=psea.lead.headers).json()
    assert (out["kind"], out["category"], out["priority"]) == ("psea", "protection", "urgent")
    assert out["team"]["slug"] == "psea-focal-points"
    # It stays protection, and only the focal points move it to another PSEA team member.
    response = client.patch(
        f"/api/v1/tickets/{ticket.reference}",
        headers=psea.lead.headers,
        json={"assignee": world["protection_officer"].username},
    )
    assert response.status_code == 422
    response = client.patch(
        f"/api/v1/tickets/{ticket.reference}",
        headers=psea.lead.headers,
        json={"assignee": "psea-member"},
    )
    assert response.status_code == 200, response.text


def test_the_conversation_of_a_psea_case_is_the_focal_points_alone(
    client: Any, world: World, db: Session, psea: Psea
) -> None:
    from conversation.dispatch import handle_message
    from tickets.contacts import get_or_create_contact

    assert get_settings().bot == "fallback"  # the test environment's: Rasa is not running
    contact = get_or_create_contact(db, PHONE)
    text = "the NGO distributor asked my sister for sex before giving her the food card"
    message = Message(
        channel_id=world.simulator_channel_id,
        contact_id=contact.id,
        direction=MessageDirection.INBOUND,
        provider_id="sim-psea-1",
        body=text,
        status=MessageStatus.RECEIVED,
    )
    db.add(message)
    db.commit()
    handle_message(message.id)
    db.expire_all()
    ticket = db.scalar(select(Ticket).where(Ticket.source_message_id == message.id))
    assert ticket is not None and ticket.kind == TicketKind.PSEA and ticket.team_id == psea.team_id
    reply = db.scalar(
        select(Message).where(
            Message.contact_id == contact.id, Message.direction == MessageDirection.OUTBOUND
        )
    )
    assert reply is not None and reply.ticket_id == ticket.id
    # Who (the PSEA focal point), when (24 h), anonymity; nothing of what was written.
    assert "PSEA focal point" in reply.body and "24 h" in reply.body
    assert "anonymous" in reply.body
    for word in ("sex", "sister", "food", "card", "NGO"):
        assert word not in reply.body
    path = f"/api/v1/contacts/{contact.public_id}/messages"
    for role in ("admin", "supervisor", "operator", "protection_officer"):
        bodies = [
            m["body"] for m in client.get(path, headers=world[role].headers).json()["messages"]
        ]
        assert text not in bodies and reply.body not in bodies, role
    bodies = [m["body"] for m in client.get(path, headers=psea.member.headers).json()["messages"]]
    assert bodies == [text, reply.body]


def test_exports_leave_psea_out_and_the_dashboard_never_counts_it_by_place(
    browser_client: Callable[[], Any],
    client: Any,
    world: World,
    db: Session,
    psea: Psea,
    shared_with_protection: None,
) -> None:
    # Shared with protection (an admin's setting): the officer sees the case in the queue,
    # so what the export and the dashboard leave out is really left out.
    reference = _bot_report(client, world, db, kind="psea", place="Gao")
    protection = new_ticket(db, category="protection", sensitive=True, phone="+22376000004")
    officer = browser_client()
    login(officer, world["protection_officer"].username)
    assert officer.get(f"/tickets/{reference}").status_code == 200
    rows = list(csv.reader(io.StringIO(officer.get("/exports/queue.csv").text)))
    assert rows[0][3] == "kind"
    references = {row[0] for row in rows[1:]}
    assert protection.reference in references and reference not in references
    assert all(row[3] != "psea" for row in rows[1:])
    from models.users import User
    from ops_console.pages_reports import dashboard_data
    from ops_console.permissions import Viewer

    officer_user = db.scalar(
        select(User).where(User.username == world["protection_officer"].username)
    )
    assert officer_user is not None
    viewer = Viewer.load(db, officer_user)
    data = dashboard_data(db, viewer)
    assert data["open_total"] == 1  # the protection ticket; the PSEA case is in no place count
    assert sum(sum(c.values()) for _code, c in data["matrix_rows"]) == 1
    assert data["psea_open"] == 1  # one number, never by place
    assert "psea" not in data["open_by_kind"]
    page = officer.get("/dashboard").text
    assert 'id="psea-open"' in page


def test_an_admin_sees_a_count_only_and_a_warning_when_no_team_would_get_it(
    browser_client: Callable[[], Any], client: Any, world: World, db: Session
) -> None:
    db.execute(Team.__table__.update().values(handles_psea=False))
    db.commit()
    reference = _bot_report(client, world, db, kind="psea")
    admin = browser_client()
    login(admin, world["admin"].username)
    page = admin.get("/dashboard").text
    assert 'id="psea-admin"' in page and reference not in page
    assert "équipe de points focaux PSEA : créez-en une dans Admin." in page
    assert admin.get(f"/tickets/{reference}").status_code == 404
    supervisor = browser_client()
    login(supervisor, world["supervisor"].username)
    assert 'id="psea-admin"' not in supervisor.get("/dashboard").text


def test_audit_lines_about_a_psea_case_are_hidden_from_admins(
    browser_client: Callable[[], Any], client: Any, world: World, db: Session, psea: Psea
) -> None:
    reference = _bot_report(client, world, db, kind="psea")
    focal = browser_client()
    login(focal, psea.member.username)
    page = focal.get(f"/tickets/{reference}")
    response = focal.post(f"/tickets/{reference}/reveal", data={"csrf_token": csrf_of(page.text)})
    assert response.status_code == 200
    for role in ("admin", "supervisor"):
        browser = browser_client()
        login(browser, world[role].username)
        audit = browser.get("/admin/audit").text
        assert "phone.revealed" not in audit and reference not in audit, role


def _status(client: Any, actor_headers: dict[str, str], reference: str, status: str) -> Any:
    return client.patch(
        f"/api/v1/tickets/{reference}", headers=actor_headers, json={"status": status}
    )


def test_closing_a_psea_case_needs_the_psea_focal_leads_approval(
    client: Any, world: World, db: Session, psea: Psea
) -> None:
    reference = _bot_report(client, world, db, kind="psea")
    response = _status(client, psea.member.headers, reference, "closed")
    assert response.status_code == 200 and response.json()["status"] == "awaiting_approval"
    again = _status(client, psea.member.headers, reference, "closed")
    assert again.status_code == 422 and "another person" in again.json()["detail"]
    assert _status(client, psea.lead.headers, reference, "closed").json()["status"] == "closed"
    # A lead who asks needs another lead: the seeded psea_focal leads the team too.
    second = _bot_report(
        client, world, db, kind="psea", description="le volontaire veut m'epouser pour le kit"
    )
    assert (
        _status(client, psea.lead.headers, second, "resolved").json()["status"]
        == "awaiting_approval"
    )
    refused = _status(client, psea.lead.headers, second, "resolved")
    assert refused.status_code == 422
    # Asking directly for "awaiting approval" is refused with a message saying what to do.
    third = _bot_report(client, world, db, kind="psea")
    direct = _status(client, psea.member.headers, third, "awaiting_approval")
    assert direct.status_code == 422 and "Resolved or Closed" in direct.json()["detail"]


def test_closing_a_protection_case_needs_its_team_leads_approval_ordinary_ones_do_not(
    client: Any, world: World, db: Session
) -> None:
    from ops_console.auth import create_user, issue_api_token

    team_id = world.teams["protection"]
    lead = create_user(
        db, username="prot-lead", role=UserRole.PROTECTION_OFFICER, password=PASSWORD
    )
    db.add(TeamMember(team_id=team_id, user_id=lead.id, is_lead=True))
    lead_headers = {"Authorization": f"Bearer {issue_api_token(db, lead, 'tests')}"}
    db.commit()
    case = new_ticket(db, category="protection", sensitive=True, place_code="ML05")
    assert case.team_id == team_id
    officer = world["protection_officer"].headers
    assert (
        _status(client, officer, case.reference, "resolved").json()["status"] == "awaiting_approval"
    )
    assert _status(client, officer, case.reference, "resolved").status_code == 422
    assert _status(client, lead_headers, case.reference, "resolved").json()["status"] == "resolved"
    ordinary = new_ticket(db, category="health", phone="+22376000005")
    assert (
        _status(client, world["operator"].headers, ordinary.reference, "closed").json()["status"]
        == "closed"
    )


def test_a_team_without_a_lead_approves_by_another_member_never_the_one_who_asked(
    client: Any, world: World, db: Session
) -> None:
    """The demo's protection teams have no lead: their cases must not wait for ever."""
    from ops_console.auth import create_user, issue_api_token

    team_id = world.teams["protection"]
    assert not db.scalars(
        select(TeamMember).where(TeamMember.team_id == team_id, TeamMember.is_lead.is_(True))
    ).all()
    colleague = create_user(
        db, username="prot-colleague", role=UserRole.PROTECTION_OFFICER, password=PASSWORD
    )
    db.add(TeamMember(team_id=team_id, user_id=colleague.id))
    colleague_headers = {"Authorization": f"Bearer {issue_api_token(db, colleague, 'tests')}"}
    db.commit()
    case = new_ticket(db, category="protection", sensitive=True, place_code="ML05")
    assert case.team_id == team_id
    officer = world["protection_officer"].headers
    assert (
        _status(client, officer, case.reference, "closed").json()["status"] == "awaiting_approval"
    )
    refused = _status(client, officer, case.reference, "closed")
    assert refused.status_code == 422 and "another person" in refused.json()["detail"]
    approved = _status(client, colleague_headers, case.reference, "closed")
    assert approved.status_code == 200 and approved.json()["status"] == "closed"


def test_closing_from_the_console_page_asks_then_the_lead_approves(
    browser_client: Callable[[], Any], client: Any, world: World, db: Session, psea: Psea
) -> None:
    reference = _bot_report(client, world, db, kind="psea")
    ticket = db.scalar(select(Ticket).where(Ticket.reference == reference))
    assert ticket is not None

    def submit(username: str, status: str) -> Any:
        browser = browser_client()
        login(browser, username)
        page = browser.get(f"/tickets/{reference}")
        db.expire_all()
        fresh = db.get(Ticket, ticket.id)
        assert fresh is not None
        return browser.post(
            f"/tickets/{reference}/work",
            data={
                "csrf_token": csrf_of(page.text),
                "version": str(fresh.version),
                "status": status,
                "priority": "urgent",
                "category": "protection",
                "kind": "psea",
                "assignee": "",
            },
        )

    asked = submit(psea.member.username, "closed")
    assert asked.status_code == 200, asked.text[:500]
    assert 'id="closure-pending"' in asked.text
    approved = submit(psea.lead.username, "closed")
    assert approved.status_code == 200, approved.text[:500]
    db.expire_all()
    assert db.get(Ticket, ticket.id).status.value == "closed"  # type: ignore[union-attr]


def test_the_call_form_records_a_psea_report_the_operator_then_cannot_open(
    browser_client: Callable[[], Any], world: World, db: Session, psea: Psea
) -> None:
    operator = browser_client()
    login(operator, world["operator"].username)
    page = operator.get("/calls")
    assert "Exploitation ou abus sexuel par un travailleur humanitaire" in page.text
    response = operator.post(
        "/calls",
        data={
            "csrf_token": csrf_of(page.text),
            "phone": "76 11 22 33",
            "language": "fr",
            "category": "other",
            "kind": "psea",
            "notes": "La personne dit que le gardien du site exige des faveurs",
        },
        follow_redirects=False,
    )
    assert response.status_code in (303, 200), response.text[:300]
    ticket = db.scalar(select(Ticket).where(Ticket.kind == TicketKind.PSEA))
    assert ticket is not None and ticket.team_id == psea.team_id
    assert ticket.category.value == "protection" and ticket.source.value == "call"
    assert operator.get(f"/tickets/{ticket.reference}").status_code == 404


def test_an_operator_hands_a_case_over_from_the_work_form_and_is_sent_back_to_the_queue(
    browser_client: Callable[[], Any], world: World, db: Session, psea: Psea
) -> None:
    ticket = new_ticket(db, category="other", description="le gardien du site me fait peur")
    operator = browser_client()
    login(operator, world["operator"].username)
    page = operator.get(f"/tickets/{ticket.reference}")
    assert 'value="psea"' in page.text  # anyone may recognise it
    response = operator.post(
        f"/tickets/{ticket.reference}/work",
        data={
            "csrf_token": csrf_of(page.text),
            "version": str(ticket.version),
            "status": ticket.status.value,
            "priority": ticket.priority.value,
            "category": "other",
            "kind": "psea",
            "team": str(ticket.team_id),
            "assignee": "",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"] == "/queue"
    assert operator.get(f"/tickets/{ticket.reference}").status_code == 404
    db.expire_all()
    moved = db.get(Ticket, ticket.id)
    assert moved is not None and moved.kind == TicketKind.PSEA and moved.team_id == psea.team_id
