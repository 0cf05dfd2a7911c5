"""The operator's queue in Debian's chromium (issue 13): urgency first (the default view,
countdowns, sortable columns, the total), saved views, bulk actions with a confirmation
step, new tickets arriving without a reload, the keyboard, canned replies with "/", the
delivery status updating in place, and the 412 px phone layout. Against a real uvicorn
process on the session's database (PostgreSQL or SQLite); sorts before test_zz_browser.py,
whose simulator test leaves a Celery worker running."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from tests.console.conftest import PASSWORD, World, new_ticket
from tests.console.test_zy_shift_browser import DESKTOP, PHONE
from tests.console.test_zz_browser import _shot, bworld, chromium, server

pytestmark = pytest.mark.browser
__all__ = ["bworld", "chromium", "server"]


def _open(
    chromium: Any, server: str, username: str, viewport: dict[str, int], init_script: str = ""
) -> Any:
    # bypass_csp: Playwright evaluates its waits as strings (the console's CSP forbids eval).
    context = chromium.new_context(locale="fr-FR", viewport=viewport, bypass_csp=True)
    if init_script:
        context.add_init_script(init_script)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{server}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/queue*")
    return page


def _set(db: Any, ticket: Any, **values: Any) -> None:
    from sqlalchemy import update

    from models.tickets import Ticket

    db.execute(update(Ticket).where(Ticket.id == ticket.id).values(**values))
    db.commit()


def _rows(page: Any) -> list[str]:
    return [
        text.strip() for text in page.locator("tr.ticket-row td:nth-child(2) a").all_inner_texts()
    ]


def test_default_view_is_urgency_first(chromium: Any, server: str, bworld: World, db: Any) -> None:
    from models.base import utcnow
    from models.enums import TicketStatus

    now = utcnow()
    later = new_ticket(db, category="health", phone="+22376810001", description="Toux")
    overdue = new_ticket(db, category="wash", phone="+22376810002", description="Forage cassé")
    mine = new_ticket(db, category="health", phone="+22376810003", description="Fièvre")
    others = new_ticket(db, category="health", phone="+22376810004", description="Blessure")
    closed = new_ticket(db, category="wash", phone="+22376810005", description="Latrines")
    _set(db, later, first_response_due_at=now + timedelta(hours=3))
    _set(db, overdue, first_response_due_at=now - timedelta(minutes=35))
    _set(db, mine, first_response_due_at=now + timedelta(minutes=50))
    _set(db, mine, assignee_id=bworld["operator"].user_id)
    _set(db, others, assignee_id=bworld["supervisor"].user_id)
    _set(db, closed, status=TicketStatus.RESOLVED)

    page = _open(chromium, server, "operator-user", DESKTOP)
    # Open, mine and unassigned, the most overdue answer first; the others' and the
    # resolved ones are not in this view.
    assert _rows(page) == [overdue.reference, mine.reference, later.reference]
    assert page.inner_text("#queue-total") == "3 tickets"
    first = page.locator("tr.ticket-row").first.locator(".countdown")
    assert "en retard de" in first.inner_text() and "35 min" in first.inner_text()
    assert "overdue" in (first.get_attribute("class") or "")
    assert "dans" in page.locator("tr.ticket-row").nth(1).locator(".countdown").inner_text()
    due_header = page.locator("th", has_text="Réponse attendue")
    assert due_header.get_attribute("aria-sort") == "ascending"
    _shot(page, "queue-urgency-first")
    # Newest first by a click on "Reçu"; the header says it, the URL keeps the view.
    page.locator("th.sortable a", has_text="Reçu").click()
    page.wait_for_url("**sort=-created*")
    received = page.locator("th", has_text="Reçu")
    assert received.get_attribute("aria-sort") == "descending"
    assert page.locator("th", has_text="Réponse attendue").get_attribute("aria-sort") == "none"
    assert _rows(page) == [mine.reference, overdue.reference, later.reference]
    # Every ticket, on request: five, with the total to match.
    page.goto(f"{server}/queue?view=custom")
    assert page.inner_text("#queue-total") == "5 tickets"
    page.context.close()


def test_saved_views(chromium: Any, server: str, bworld: World, db: Any) -> None:
    new_ticket(db, category="wash", phone="+22376820001")
    new_ticket(db, category="health", phone="+22376820002")
    page = _open(chromium, server, "operator-user", DESKTOP)
    page.select_option("select[name=category]", "wash")
    page.wait_for_function("location.search.includes('category=wash')")
    page.wait_for_function("document.querySelectorAll('tr.ticket-row').length === 1")
    page.click("#view-name")  # the filters' own change must have settled first
    page.fill("#view-name", "Eau")
    page.click("form.save-view button[type=submit]")
    page.locator(".saved-view a", has_text="Eau").wait_for()
    # An empty name is refused, said next to the field.
    page.fill("#view-name", "")
    page.click("form.save-view button[type=submit]")
    page.wait_for_selector("#view-error")
    assert "Donnez un nom" in page.inner_text("#view-error")
    page.goto(f"{server}/queue")
    page.locator(".saved-view a", has_text="Eau").click()
    page.wait_for_url("**category=wash*")
    assert page.inner_text("#queue-total") == "1 ticket"
    # Another person does not see it.
    other = _open(chromium, server, "supervisor-user", DESKTOP)
    assert other.locator(".saved-view").count() == 0
    other.context.close()
    page.click("button[aria-label='Supprimer la vue Eau']")
    page.wait_for_function("document.querySelectorAll('.saved-view').length === 0")
    page.context.close()


def test_bulk_actions_confirm_audit_lock_and_protection(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    from sqlalchemy import func, select

    from models.audit import AuditLog
    from models.tickets import Ticket, TicketEvent

    first = new_ticket(db, category="health", phone="+22376830001")
    second = new_ticket(db, category="wash", phone="+22376830002")
    third = new_ticket(db, category="wash", phone="+22376830003")
    hidden = new_ticket(db, category="protection", phone="+22376830004", sensitive=True)
    page = _open(chromium, server, "operator-user", DESKTOP)
    assert hidden.reference not in page.inner_text("table.queue")
    for ticket in (first, second, third):
        page.check(f"input[name=ticket][value='{ticket.id}']")
    assert "3" in page.inner_text("#bulk-count")
    # A hand-made form naming the protection ticket (a stale page, a curious operator).
    page.evaluate(
        """(id) => { const box = document.createElement('input'); box.type = 'checkbox';
        box.name = 'ticket'; box.value = String(id); box.checked = true;
        document.getElementById('bulk').appendChild(box); }""",
        hidden.id,
    )
    page.select_option("#bulk-action", "note")
    page.fill("#bulk-note", "Vérifié avec le chef de site")
    page.click("#bulk button[type=submit]")
    page.wait_for_selector("#bulk-confirm")
    assert "3 tickets :" in page.inner_text("#bulk-summary")
    assert hidden.reference not in page.content()
    assert "ne sont pas listés" in page.inner_text("main") or "n'est pas listé" in page.inner_text(
        "main"
    )
    _shot(page, "queue-bulk-confirm")
    # Someone changes the third ticket while this page is open: it is left alone.
    from models.enums import TicketPriority
    from tickets import workflow

    db.expire_all()
    workflow.change_priority(
        db, db.get(Ticket, third.id), TicketPriority.URGENT, actor_label="supervisor-user"
    )
    db.commit()
    page.click("#bulk-apply")
    page.wait_for_selector("#bulk-done")
    assert page.inner_text("#bulk-done") == "2 tickets modifiés."
    assert "Quelqu'un d'autre l'a modifié" in page.inner_text("#bulk-results")
    db.expire_all()
    notes = db.scalars(
        select(TicketEvent.ticket_id).where(
            TicketEvent.kind == "note", TicketEvent.body.is_not(None)
        )
    ).all()
    assert sorted(notes) == sorted([first.id, second.id])
    audit = db.scalars(
        select(AuditLog.ticket_id).where(AuditLog.action == "ticket.bulk_changed")
    ).all()
    assert sorted(audit) == sorted([first.id, second.id])
    hidden_notes = select(func.count()).select_from(TicketEvent)
    assert (
        db.scalar(
            hidden_notes.where(TicketEvent.ticket_id == hidden.id, TicketEvent.kind == "note")
        )
        == 0
    )
    # Assign to me in bulk, then the default view shows them as mine.
    page.goto(f"{server}/queue")
    page.check(f"input[name=ticket][value='{first.id}']")
    page.select_option("#bulk-action", "assign_me")
    page.click("#bulk button[type=submit]")
    page.click("#bulk-apply")
    page.wait_for_selector("#bulk-done")
    db.expire_all()
    assert db.get(Ticket, first.id).assignee_id == bworld["operator"].user_id
    page.context.close()


def test_new_tickets_appear_without_reload(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    new_ticket(db, category="wash", phone="+22376840001")
    # A desktop that granted notifications: the page's calls are recorded.
    page = _open(
        chromium,
        server,
        "operator-user",
        DESKTOP,
        init_script="""window.shown = [];
        window.Notification = function (title, options) { window.shown.push(options.body); };
        window.Notification.permission = 'granted';
        window.Notification.requestPermission = () => Promise.resolve('granted');""",
    )
    page.check("#notify-toggle")
    title = page.title()
    assert not title.startswith("(")
    # A protection case this operator may not see arrives first: nothing changes.
    new_ticket(db, category="protection", phone="+22376840002", sensitive=True)
    urgent = new_ticket(
        db, category="health", phone="+22376840003", description="Enfant inconscient"
    )
    from models.enums import TicketPriority

    _set(db, urgent, priority=TicketPriority.URGENT)
    page.wait_for_selector("#new-indicator .new-tickets", timeout=40_000)
    text = page.inner_text("#new-indicator")
    assert "1 nouveau ticket" in text and "1 urgent" in text and urgent.reference in text
    assert page.title() == "(1) " + title
    assert page.evaluate("window.shown.length") == 1
    _shot(page, "queue-live")
    # The page remembers the choice.
    page.reload()
    assert page.is_checked("#notify-toggle")
    page.context.close()


def test_keyboard_shortcuts_and_canned_replies(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    older = new_ticket(db, category="wash", phone="+22376850001", language="en")
    newer = new_ticket(db, category="health", phone="+22376850002", language="en")
    page = _open(chromium, server, "operator-user", DESKTOP)
    page.keyboard.press("?")
    dialog = page.locator("dialog#shortcuts")
    assert dialog.is_visible() and "Ticket suivant" in dialog.inner_text()
    page.keyboard.press("Escape")
    assert not dialog.is_visible()
    page.keyboard.press("j")
    rows = page.locator("tr.ticket-row")
    assert "current" in (rows.nth(0).get_attribute("class") or "")
    page.keyboard.press("j")
    assert "current" in (rows.nth(1).get_attribute("class") or "")
    page.keyboard.press("k")
    assert "current" in (rows.nth(0).get_attribute("class") or "")
    page.keyboard.press("/")
    assert page.evaluate("document.activeElement.id") == "queue-search"
    page.keyboard.press("Escape")
    page.locator("h1").click()
    page.keyboard.press("j")
    opened = page.locator("tr.ticket-row.current").get_attribute("data-href")
    assert opened == rows.nth(1).get_attribute("data-href")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**{opened}")
    reference = opened.rsplit("/", 1)[1]
    assert reference in (older.reference, newer.reference)
    page.keyboard.press("s")
    assert page.evaluate("document.activeElement.id") == "status"
    page.locator("h1").click()
    page.keyboard.press("n")
    assert page.evaluate("document.activeElement.id") == "note"
    page.locator("h1").click()
    page.keyboard.press("r")
    assert page.evaluate("document.activeElement.id") == "reply-body"
    # "/" in the reply box: the canned replies in the person's language (English here).
    page.keyboard.type("Hi. /rec")
    menu = page.locator("#canned-menu")
    menu.wait_for()
    options = menu.locator("[role=option]:not([hidden])")
    assert options.count() >= 1
    assert all("(Anglais)" in text for text in menu.locator("[role=option]").all_inner_texts())
    page.keyboard.press("Enter")
    value = page.input_value("#reply-body")
    assert value.startswith("Hi. Hello, we have received your message") and reference in value
    assert not menu.is_visible()
    page.context.close()


def test_delivery_status_updates_in_place(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    from sqlalchemy import select, update

    from models.enums import MessageStatus
    from models.messages import Message
    from models.users import User
    from ops_console import actions
    from ops_console.permissions import Viewer

    ticket = new_ticket(db, category="health", phone="+22376860001")
    operator = db.get(User, bworld["operator"].user_id)
    message = actions.reply_by_sms(db, ticket, Viewer.load(db, operator), "Une équipe arrive.")
    db.commit()
    page = _open(chromium, server, "operator-user", DESKTOP)
    page.goto(f"{server}/tickets/{ticket.reference}")
    status = page.locator(f"#delivery-{message.id}")
    assert status.get_attribute("data-status") in ("pending", "queued", "sending", "sent")
    db.execute(
        update(Message).where(Message.id == message.id).values(status=MessageStatus.DELIVERED)
    )
    db.commit()
    page.wait_for_selector(f"#delivery-{message.id}[data-status=delivered]", timeout=25_000)
    assert page.inner_text(f"#delivery-{message.id}") == "remis"
    # Delivered is final: it stops asking.
    assert page.locator(f"#delivery-{message.id}").get_attribute("hx-get") is None
    assert db.scalar(select(Message.status).where(Message.id == message.id)) == (
        MessageStatus.DELIVERED
    )
    page.context.close()


def test_phone_layout_cards_and_work_form_first(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    for index in range(3):
        new_ticket(db, category="wash", phone=f"+2237687000{index}", description="Forage " * 12)
    page = _open(chromium, server, "supervisor-user", PHONE)
    # No sideways scrolling: every row is a card as wide as the screen at most.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    assert (
        page.evaluate("getComputedStyle(document.querySelector('tr.ticket-row')).display")
        == "block"
    )
    # Each value says what it is (the table's headers are hidden on a phone).
    labels = page.evaluate(
        """Array.from(document.querySelectorAll('tr.ticket-row:first-child td'))
        .map((td) => getComputedStyle(td, '::before').content).join(' ')"""
    )
    assert "Catégorie" in labels and "Réponse attendue" in labels
    _shot(page, "queue-phone-cards")
    page.locator("tr.ticket-row a").first.click()
    page.wait_for_url("**/tickets/*")
    work = page.locator("aside form").first.bounding_box()
    timeline = page.locator("h2", has_text="Historique").bounding_box()
    conversation = page.locator("#conversation").bounding_box()
    assert work["y"] < conversation["y"] < timeline["y"]
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _shot(page, "ticket-phone-work-first")
    page.context.close()
