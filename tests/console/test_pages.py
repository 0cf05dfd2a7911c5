"""Console pages through the real app: login and throttling, queue, ticket work, escaping,
audited phone reveal, exports, dashboard, admin, language."""

from __future__ import annotations

import csv
import io
from typing import Any

from sqlalchemy import func, select

from tests.console.conftest import PASSWORD, World, csrf_of, login, new_ticket


def test_login_logout_and_session_cookie(browser_client: Any, world: World, db: Any) -> None:
    client = browser_client()
    page = client.get("/queue", follow_redirects=False)
    assert page.status_code == 303 and page.headers["location"].startswith("/login")
    login_page = client.get("/login")
    assert 'lang="fr"' in login_page.text and "Se connecter" in login_page.text
    response = client.post(
        "/login",
        data={
            "username": "OPERATOR-user",  # case-insensitive
            "password": PASSWORD,
            "csrf_token": csrf_of(login_page.text),
            "next": "https://evil.example/",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303
    assert response.headers["location"] == "/queue"  # never an outside URL
    cookie = response.headers["set-cookie"]
    assert "deme_session=" in cookie and "HttpOnly" in cookie and "Secure" in cookie
    assert "samesite=lax" in cookie.lower()
    queue = client.get("/queue")
    assert queue.status_code == 200
    assert "Content-Security-Policy" in queue.headers
    client.post("/logout", data={"csrf_token": csrf_of(queue.text)})
    assert client.get("/queue", follow_redirects=False).status_code == 303


def test_login_requires_csrf(browser_client: Any, world: World) -> None:
    client = browser_client()
    client.get("/login")
    response = client.post("/login", data={"username": "admin-user", "password": PASSWORD})
    assert response.status_code == 403


def test_wrong_passwords_slow_down_that_address_only(
    browser_client: Any, world: World, db: Any
) -> None:
    client = browser_client()
    token = csrf_of(client.get("/login").text)
    for _ in range(3):
        response = client.post(
            "/login", data={"username": "operator-user", "password": "nope", "csrf_token": token}
        )
        assert response.status_code == 401
        assert "Identifiant ou mot de passe incorrect" in response.text
    response = client.post(
        "/login", data={"username": "operator-user", "password": PASSWORD, "csrf_token": token}
    )
    assert response.status_code == 429
    assert "pour ce compte depuis cette adresse" in response.text
    from models.users import User

    db.expire_all()
    user = db.scalar(select(User).where(User.username == "operator-user"))
    assert user.locked_until is None  # the account itself is never locked


def test_queue_filters_and_size(browser_client: Any, world: World, db: Any) -> None:
    for index in range(60):
        new_ticket(db, category="health" if index % 2 else "wash", phone=f"+223761{index:05d}")
    client = browser_client()
    login(client, "operator-user")
    page = client.get("/queue")
    assert page.status_code == 200
    assert len(page.content) < 100_000, len(page.content)
    assert page.text.count('<a href="/tickets/T-') == 50
    assert "Plus de tickets" in page.text  # keyset "more" link of the default view
    assert "60 tickets" in page.text  # the total count
    older = client.get("/queue", params={"view": "custom"})
    assert "Tickets plus anciens" in older.text  # newest first: the next page is older
    wash = client.get("/queue", params={"category": "wash"})
    assert wash.text.count('<a href="/tickets/T-') == 30
    partial = client.get(
        "/queue",
        params={"category": "wash"},
        headers={"HX-Request": "true", "HX-Target": "results"},
    )
    assert partial.text.lstrip().startswith('<div id="results">')
    assert "<html" not in partial.text
    bad = client.get("/queue", params={"phone": "not a phone"})
    assert bad.status_code == 200 and "Pas un numéro de téléphone" in bad.text
    # The filter could not apply: no list that would look filtered (issue 13).
    assert "ne peuvent pas être appliqués" in bad.text and "/tickets/T-" not in bad.text
    indicator = client.get("/queue/live", params={"since": 0})
    assert "60 nouveaux tickets" in indicator.text


def test_queue_phone_filter_is_posted_and_never_in_the_url(
    browser_client: Any, world: World, db: Any
) -> None:
    mine = new_ticket(db, category="health", phone="+22376000191")
    other = new_ticket(db, category="health", phone="+22376000192")
    client = browser_client()
    csrf = login(client, "operator-user")
    posted = client.post(
        "/queue", data={"csrf_token": csrf, "phone": "76 00 01 91"}, follow_redirects=False
    )
    assert posted.status_code == 303
    location = posted.headers["location"]
    assert "phone_token=" in location and "76" not in location.split("phone_token=")[0]
    assert "000191" not in location and "phone=" not in location
    page = client.get(location)
    assert mine.reference in page.text and other.reference not in page.text
    # Carried on into "older tickets", exports and the live indicator as the token only.
    assert "000191" not in page.text.split('name="phone"')[1].split(">", 1)[1]
    old = client.get("/queue", params={"phone": "+22376000191"}, follow_redirects=False)
    assert old.status_code == 303 and "000191" not in old.headers["location"]
    forged = client.get("/queue", params={"phone_token": "not-a-token"})
    assert forged.status_code == 200 and "Valeur inconnue" in forged.text
    # A stored (column-encrypted) number is no token: the page is no decryption oracle.
    from core.crypto import encrypt_text

    stored = encrypt_text("+22376000191")
    oracle = client.get("/queue", params={"phone_token": stored})
    assert "Valeur inconnue" in oracle.text and "000191" not in oracle.text


def test_sms_content_is_escaped(browser_client: Any, world: World, db: Any) -> None:
    payload = '<script>alert("x")</script><img src=x onerror=alert(1)>'
    ticket = new_ticket(db, category="health", description=payload)
    client = browser_client()
    login(client, "operator-user")
    page = client.get(f"/tickets/{ticket.reference}")
    assert page.status_code == 200
    assert "<script>alert" not in page.text and "<img src=x" not in page.text
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in page.text
    queue = client.get("/queue")
    assert "<script>alert" not in queue.text


def test_ticket_work_note_and_reply(browser_client: Any, world: World, db: Any) -> None:
    from models.messages import Message
    from models.tickets import Ticket, TicketEvent

    ticket = new_ticket(db, category="health")
    client = browser_client()
    csrf = login(client, "operator-user")
    url = f"/tickets/{ticket.reference}"
    response = client.post(
        f"{url}/work",
        data={
            "csrf_token": csrf,
            "status": "in_progress",
            "priority": "high",
            "assignee": str(world["operator"].user_id),
        },
    )
    assert response.status_code == 200 and "Enregistré." in response.text
    response = client.post(
        f"{url}/note", data={"csrf_token": csrf, "note": "appelé le chef de site"}
    )
    assert "appelé le chef de site" in response.text
    response = client.post(f"{url}/reply", data={"csrf_token": csrf, "body": "Bonjour, on arrive."})
    assert response.status_code == 200, response.text[response.text.find('role="alert"') :][:300]
    db.expire_all()
    saved = db.get(Ticket, ticket.id)
    assert saved.status.value == "in_progress" and saved.priority.value == "high"
    assert saved.assignee_id == world["operator"].user_id
    assert saved.first_responded_at is not None
    # (the status change also notified the sender: look for the operator's own words)
    # (bodies are encrypted at rest, with random IVs: compared after loading, not in SQL)
    outbound = next(
        (
            m
            for m in db.scalars(select(Message).where(Message.ticket_id == ticket.id))
            if m.body == "Bonjour, on arrive."
        ),
        None,
    )
    assert outbound is not None and outbound.direction.value == "out"
    kinds = set(db.scalars(select(TicketEvent.kind).where(TicketEvent.ticket_id == ticket.id)))
    assert {"status_changed", "note", "replied", "assigned"} <= kinds
    # A refused change saves nothing (protection category by an operator).
    response = client.post(
        f"{url}/work", data={"csrf_token": csrf, "priority": "low", "category": "protection"}
    )
    assert response.status_code == 422
    db.expire_all()
    assert db.get(Ticket, ticket.id).priority.value == "high"
    empty = client.post(f"{url}/reply", data={"csrf_token": csrf, "body": "  "})
    assert empty.status_code == 422 and "La réponse est vide." in empty.text


def test_phone_reveal_is_audited(browser_client: Any, world: World, db: Any) -> None:
    from models.audit import AuditLog

    ticket = new_ticket(db, category="health", phone="+22376123456")
    client = browser_client()
    csrf = login(client, "operator-user")
    page = client.get(f"/tickets/{ticket.reference}")
    assert "+22376123456" not in page.text and "56" in page.text
    revealed = client.post(f"/tickets/{ticket.reference}/reveal", data={"csrf_token": csrf})
    assert "+22376123456" in revealed.text
    entry = db.scalar(select(AuditLog).where(AuditLog.action == "phone.revealed"))
    assert entry is not None and entry.actor_user_id == world["operator"].user_id
    assert "+2237" not in str(entry.details)


def test_protection_cases_counted_anonymously(browser_client: Any, world: World, db: Any) -> None:
    secret = new_ticket(db, category="protection", description="cas sensible", sensitive=True)
    new_ticket(db, category="health", phone="+22376000009")
    client = browser_client()
    login(client, "supervisor-user")
    queue = client.get("/queue")
    assert secret.reference not in queue.text and "cas sensible" not in queue.text
    assert "1 cas de protection ouvert" in queue.text
    assert client.get(f"/tickets/{secret.reference}").status_code == 404
    dashboard = client.get("/dashboard")
    assert dashboard.status_code == 200 and "<svg" in dashboard.text
    officer = browser_client()
    login(officer, "protection-officer-user")
    assert secret.reference in officer.get("/queue").text
    assert "cas sensible" in officer.get(f"/tickets/{secret.reference}").text


def test_exports(browser_client: Any, world: World, db: Any) -> None:
    for index in range(6):
        new_ticket(db, category="wash", phone=f"+2237620000{index}", description="=HYPERLINK(1)")
    new_ticket(db, category="health", phone="+22376300000")
    new_ticket(db, category="protection", phone="+22376300001", sensitive=True)
    client = browser_client()
    login(client, "supervisor-user")
    response = client.get("/exports/queue.csv", params={"category": "wash"})
    assert response.status_code == 200
    rows = list(csv.reader(io.StringIO(response.text)))
    assert rows[0][0] == "reference" and len(rows) == 7
    assert all(row[3] == "need" and row[4] == "wash" for row in rows[1:])
    assert all(not row[-1].startswith("=") for row in rows[1:])
    assert "+2237620000" not in response.text
    xlsx = client.get("/exports/queue.xlsx")
    assert xlsx.content[:2] == b"PK"
    hxl = list(csv.reader(io.StringIO(client.get("/exports/aggregate.hxl.csv").text)))
    assert hxl[1][:3] == ["#adm1+name", "#adm1+code", "#sector"]
    sectors = {row[2]: row for row in hxl[2:]}
    assert "protection" not in sectors  # excluded for a supervisor
    assert sectors["wash"][3] == "6" and sectors["health"][3] == "<5"
    officer = browser_client()
    login(officer, "protection-officer-user")
    officer_hxl = officer.get("/exports/aggregate.hxl.csv").text
    assert ",protection," in officer_hxl
    from models.audit import AuditLog

    assert db.scalar(select(func.count()).where(AuditLog.action == "export.downloaded")) >= 3


def test_admin_creates_a_user_and_issues_a_token(
    browser_client: Any, world: World, db: Any
) -> None:
    client = browser_client()
    csrf = login(client, "admin-user")
    response = client.post(
        "/admin/users",
        data={"csrf_token": csrf, "username": "awa", "role": "operator", "password": "short"},
    )
    assert response.status_code == 422 and "Au moins 12 caractères." in response.text
    response = client.post(
        "/admin/users",
        data={
            "csrf_token": csrf,
            "username": "awa",
            "role": "operator",
            "password": "long-enough-1",
            "display_name": "Awa <b>Traoré</b>",
        },
    )
    assert response.status_code == 200
    assert "Awa &lt;b&gt;Traoré&lt;/b&gt;" in response.text
    from models.users import User

    awa = db.scalar(select(User).where(User.username == "awa"))
    issued = client.post(
        "/admin/tokens", data={"csrf_token": csrf, "user_id": str(awa.id), "name": "integration"}
    )
    token = issued.text.split("<code>deme_", 1)[1].split("</code>", 1)[0]
    api = browser_client()
    assert (
        api.get("/api/v1/tickets", headers={"Authorization": f"Bearer deme_{token}"}).status_code
        == 200
    )
    new_session = browser_client()
    login(new_session, "awa", "long-enough-1")


def test_language_switch(browser_client: Any, world: World) -> None:
    client = browser_client()
    csrf = login(client, "operator-user")
    assert "File" in client.get("/queue").text
    client.post("/language", data={"csrf_token": csrf, "language": "en", "next": "/queue"})
    page = client.get("/queue")
    assert 'lang="en"' in page.text and "No tickets match these filters." in page.text


def test_log_a_call_creates_a_ticket(browser_client: Any, world: World, db: Any) -> None:
    from models.messages import Call
    from models.tickets import Ticket

    client = browser_client()
    csrf = login(client, "operator-user")
    bad = client.post("/calls", data={"csrf_token": csrf, "phone": "123", "category": ""})
    assert bad.status_code == 422
    assert db.scalar(select(func.count()).select_from(Ticket)) == 0  # nothing half-saved
    response = client.post(
        "/calls",
        data={
            "csrf_token": csrf,
            "phone": "76 12 34 99",
            "language": "bm",
            "category": "health",
            "place": "ML07",
            "household_size": "4",
            "notes": "Enfant malade, fièvre",
        },
        follow_redirects=False,
    )
    assert response.status_code == 303 and response.headers["location"].startswith("/tickets/T-")
    ticket = db.scalar(select(Ticket))
    assert ticket.source.value == "call" and ticket.description == "Enfant malade, fièvre"
    assert db.scalar(select(Call).where(Call.ticket_id == ticket.id)) is not None


def test_simulator_ussd_walks_the_gateway_menu(browser_client: Any, world: World) -> None:
    client = browser_client()
    csrf = login(client, "operator-user")
    first = client.post(
        "/simulator/ussd",
        data={"csrf_token": csrf, "phone": "+22300111222"},
        headers={"HX-Request": "true"},
    )
    assert first.status_code == 200
    assert 'class="ussd-screen"' in first.text and "<html" not in first.text
    session_id = first.text.split('name="session_id" value="', 1)[1].split('"', 1)[0]
    second = client.post(
        "/simulator/ussd",
        data={
            "csrf_token": csrf,
            "phone": "+22300111222",
            "session_id": session_id,
            "previous": "",
            "input": "1",
        },
        headers={"HX-Request": "true"},
    )
    assert second.status_code == 200 and 'class="ussd-screen"' in second.text
    assert first.text != second.text  # the menu moved on
