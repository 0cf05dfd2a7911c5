"""The queue's plumbing (issue 13), without a browser: the default sort walks an index on
both databases, the idle live check costs next to nothing, bulk actions never reach a ticket
the person cannot see, saved views are per person, responses are gzip-compressed and static
files cached under versioned URLs."""

from __future__ import annotations

import re
from typing import Any

from tests.console.conftest import World, csrf_of, login, new_ticket
from tests.console.test_zz_browser import server

__all__ = ["server"]


def test_default_sort_walks_the_open_due_index(db: Any, world: World) -> None:
    from sqlalchemy import text

    from models.users import User
    from ops_console.forms import default_view_filters
    from ops_console.permissions import Viewer
    from ops_console.queries import queue_statement

    new_ticket(db, category="health", phone="+22376900001")
    viewer = Viewer.load(db, db.get(User, world["operator"].user_id))
    statement = queue_statement(db, default_view_filters(), viewer, sort="due").limit(51)
    compiled = statement.compile(db.get_bind(), compile_kwargs={"literal_binds": True})
    prefix = "EXPLAIN QUERY PLAN " if db.get_bind().dialect.name == "sqlite" else "EXPLAIN "
    if db.get_bind().dialect.name != "sqlite":
        # A tiny table: ask what it would use. Bitmap scans off too: on a few rows the planner
        # may OR two assignee bitmaps and sort them, which says nothing about a full queue.
        db.execute(text("SET LOCAL enable_seqscan = off"))
        db.execute(text("SET LOCAL enable_bitmapscan = off"))
    plan = "\n".join(str(row) for row in db.execute(text(prefix + str(compiled))))
    db.rollback()
    assert "ix_tickets_open_due" in plan, plan


def _server_cpu_seconds(port: str) -> float:
    """User + system CPU of the uvicorn process listening on ``port`` (from /proc)."""
    import os
    from pathlib import Path

    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().split(b"\0")
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if b"uvicorn" in b" ".join(command) and port.encode() in command:
            fields = stat.rsplit(")", 1)[1].split()
            return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    raise AssertionError(f"no uvicorn process on port {port}")


def test_idle_live_check_is_cheap(server: str, world: World, db: Any) -> None:
    """An open console polls /queue/live every 30 s; with nothing new the answer is a 204
    after one primary-key lookup. Measured as the real server process's CPU (/proc), over
    60 polls (half an hour of an idle console), with the session cookie of a real login."""
    import httpx

    new_ticket(db, category="health", phone="+22376900002")
    with httpx.Client(base_url=server, follow_redirects=False) as client:
        login_page = client.get("/login")
        client.post(
            "/login",
            data={
                "username": "operator-user",
                "password": "correct-horse-battery",
                "csrf_token": csrf_of(login_page.text),
            },
        )
        page = client.get("/queue").text
        live_url = re.search(r'hx-get="(/queue/live\?[^"]+)"', page)
        assert live_url
        url = live_url.group(1).replace("&amp;", "&")
        assert client.get(url).status_code == 204  # warm
        port = server.rsplit(":", 1)[1]
        polls = 60
        before = _server_cpu_seconds(port)
        for _ in range(polls):
            answer = client.get(url, headers={"HX-Request": "true"})
            assert answer.status_code == 204 and answer.content == b""
        spent = _server_cpu_seconds(port) - before
        per_minute_ms = spent / polls * 2 * 1000  # two polls a minute
        print(f"idle live check: {per_minute_ms:.2f} ms server CPU per open console per minute")
        # The target is 5 ms; the clock ticks by 10 ms, so 30 polls resolve it well enough.
        assert per_minute_ms <= 5, per_minute_ms
        # Something arrives: the next poll says it.
        new_ticket(db, category="health", phone="+22376900003")
        answer = client.get(url, headers={"HX-Request": "true"})
        assert answer.status_code == 200 and "1 nouveau ticket" in answer.text


def test_bulk_never_touches_what_the_person_cannot_see(
    browser_client: Any, world: World, db: Any
) -> None:
    from sqlalchemy import select

    from models.audit import AuditLog
    from models.tickets import Ticket

    health = new_ticket(db, category="health", phone="+22376900004")
    wash = new_ticket(db, category="wash", phone="+22376900005")
    protection = new_ticket(db, category="protection", phone="+22376900006", sensitive=True)
    client = browser_client()
    csrf = login(client, "team-member-user")  # health team only
    form = {
        "csrf_token": csrf,
        "action": "status",
        "status": "in_progress",
        "ticket": [str(health.id), str(wash.id), str(protection.id)],
    }
    confirm = client.post("/queue/bulk", data=form)
    assert confirm.status_code == 200
    assert health.reference in confirm.text
    assert wash.reference not in confirm.text and protection.reference not in confirm.text
    assert "2 tickets sélectionnés ne sont pas listés" in confirm.text
    # Applying with every id and versions made up for the hidden ones changes only health.
    versions = {f"version_{t.id}": "0" for t in (health, wash, protection)}
    applied = client.post("/queue/bulk/apply", data={**form, **versions})
    assert applied.status_code == 200 and "1 ticket modifié." in applied.text
    db.expire_all()
    assert db.get(Ticket, health.id).status.value == "in_progress"
    assert db.get(Ticket, wash.id).status.value != "in_progress"
    assert db.get(Ticket, protection.id).status.value != "in_progress"
    lines = db.scalars(select(AuditLog.ticket_id).where(AuditLog.action == "ticket.bulk_changed"))
    assert list(lines) == [health.id]
    # No version: refused as stale, never applied unchecked.
    again = client.post(
        "/queue/bulk/apply",
        data={**form, "status": "waiting", "ticket": [str(health.id)]},
    )
    assert "Quelqu'un d'autre l'a modifié" in again.text
    # Nothing chosen: said, 422.
    empty = client.post("/queue/bulk", data={"csrf_token": csrf, "action": "status"})
    assert empty.status_code == 422
    assert "Sélectionnez au moins un ticket." in empty.text
    assert "Choisissez le nouveau statut." in empty.text


def test_saved_views_are_per_person(browser_client: Any, world: World, db: Any) -> None:
    from sqlalchemy import select

    from models.users import SavedView

    mine = browser_client()
    csrf = login(mine, "operator-user")
    saved = mine.post(
        "/queue/views",
        data={"csrf_token": csrf, "name": "Urgent", "query": "priority=urgent&view=custom&x=1"},
    )
    assert saved.status_code == 200 and "Urgent" in saved.text
    view = db.scalar(select(SavedView).where(SavedView.name == "Urgent"))
    assert view.query == "priority=urgent&view=custom"  # only filter keys are kept
    other = browser_client()
    other_csrf = login(other, "supervisor-user")
    refused = other.post(f"/queue/views/{view.id}/delete", data={"csrf_token": other_csrf})
    assert refused.status_code == 404
    assert mine.post(f"/queue/views/{view.id}/delete", data={"csrf_token": csrf}).status_code == 200
    db.expire_all()
    assert db.scalar(select(SavedView).where(SavedView.name == "Urgent")) is None


def test_gzip_and_long_cache_for_versioned_static(
    browser_client: Any, world: World, db: Any
) -> None:
    client = browser_client()
    login(client, "operator-user")
    page = client.get("/queue", headers={"Accept-Encoding": "gzip"})
    assert page.headers.get("content-encoding") == "gzip"
    htmx = re.search(r'src="(/static/vendor/htmx\.min\.js\?v=[0-9a-f]{12})"', page.text)
    assert htmx, "htmx is not linked by a versioned URL"
    script = client.get(htmx.group(1), headers={"Accept-Encoding": "gzip"})
    assert script.status_code == 200
    assert script.headers["cache-control"] == "public, max-age=31536000, immutable"
    assert script.headers.get("content-encoding") == "gzip"
    unversioned = client.get("/static/vendor/htmx.min.js")
    assert unversioned.headers["cache-control"] == "no-cache"
    # A tiny answer is not worth compressing.
    small = client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert small.headers.get("content-encoding") is None
    assert csrf_of(page.text)
