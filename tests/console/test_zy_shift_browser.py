"""The operator's shift in Debian's chromium (issue 13): two people on one ticket (a desktop
and a 412 px phone), the server's refusals shown where the person is typing, and an expired
session that loses nothing. Against a real uvicorn process on PostgreSQL; the file sorts
before test_zz_browser.py, whose simulator test leaves a Celery worker running."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import PASSWORD, World, new_ticket
from tests.console.test_zz_browser import _shot, bworld, chromium, server

pytestmark = pytest.mark.browser
__all__ = ["bworld", "chromium", "server"]

PHONE = {"width": 412, "height": 915}
DESKTOP = {"width": 1280, "height": 800}


def _open(chromium: Any, server: str, username: str, viewport: dict[str, int]) -> Any:
    context = chromium.new_context(locale="fr-FR", viewport=viewport)
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{server}/login")
    page.fill("#username", username)
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/queue*")
    return page


def test_two_operators_on_one_ticket(chromium: Any, server: str, bworld: World, db: Any) -> None:
    ticket = new_ticket(db, category="health", phone="+22376800000", description="Fièvre")
    desk = _open(chromium, server, "operator-user", DESKTOP)
    phone = _open(chromium, server, "supervisor-user", PHONE)
    desk.goto(f"{server}/tickets/{ticket.reference}")
    phone.goto(f"{server}/tickets/{ticket.reference}")
    phone.wait_for_selector("#presence .busy")  # the desk opened it first
    assert "Aussi ouvert par" in phone.inner_text("#presence")
    desk.reload()
    desk.wait_for_selector("#presence .busy")
    # The supervisor, on the phone, makes it urgent.
    phone.select_option("#priority", "urgent")
    phone.click("aside form button[type=submit] >> nth=0")
    phone.wait_for_selector("p.notice:text-is('Enregistré.')")
    _shot(phone, "shift-phone-saved")
    # The operator's form still says "normal": saving it is refused, with what changed.
    desk.select_option("#assignee", str(bworld["operator"].user_id))
    desk.click("aside form button[type=submit] >> nth=0")
    desk.wait_for_selector("#changes")
    assert "Quelqu'un d'autre a modifié ce ticket" in desk.inner_text("#form-error")
    assert "Urgente" in desk.inner_text("#changes")
    assert desk.input_value("#priority") == "urgent"  # the form now shows the current values
    _shot(desk, "shift-stale-refused")
    db.expire_all()
    from models.tickets import Ticket

    current = db.get(Ticket, ticket.id)
    assert current.priority.value == "urgent" and current.assignee_id is None
    # Saved again from the fresh form, the assignment goes through and keeps "urgent".
    desk.select_option("#assignee", str(bworld["operator"].user_id))
    desk.click("aside form button[type=submit] >> nth=0")
    desk.wait_for_selector("p.notice:text-is('Enregistré.')")
    db.expire_all()
    current = db.get(Ticket, ticket.id)
    assert current.priority.value == "urgent"
    assert current.assignee_id == bworld["operator"].user_id
    desk.context.close()
    phone.context.close()


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_refusals_are_shown_where_the_person_types(
    chromium: Any, server: str, bworld: World, db: Any, viewport: dict[str, int]
) -> None:
    ticket = new_ticket(db, category="wash", phone="+22376800001")
    page = _open(chromium, server, "operator-user", viewport)
    page.goto(f"{server}/tickets/{ticket.reference}")
    # Over 1,600 characters (the box's own limit lifted, as a paste through a script would).
    page.evaluate("document.getElementById('reply-body').removeAttribute('maxlength')")
    page.fill("#reply-body", "mot " * 450)
    page.click("form.reply button[type=submit]")
    page.wait_for_selector("#body-error")
    assert "1600 caractères" in page.inner_text("#body-error")
    assert page.input_value("#reply-body").startswith("mot mot")  # the text is still there
    page.fill("#merge-target", "T-ZZZZZ")
    page.click("form[action$='/merge'] button[type=submit]")
    page.wait_for_selector("#target-error")
    assert "Aucun ticket avec cette référence" in page.inner_text("#target-error")
    # An invalid simulator number.
    page.goto(f"{server}/simulator")
    page.fill("#sim-phone", "+22376123456")
    page.fill("#sim-text", "bonjour")
    page.click("#sms form button[type=submit]")
    page.wait_for_selector("#phone-error")
    assert "+223 00" in page.inner_text("#phone-error")
    # A phone filter that is no number: said, and no list that looks filtered.
    page.goto(f"{server}/queue")
    assert page.locator("table.queue tbody tr a").count() == 1
    page.fill("input[name=phone]", "abc")
    page.press("input[name=phone]", "Enter")
    page.wait_for_selector("#filter-errors")
    assert "Pas un numéro de téléphone" in page.inner_text("#filter-errors")
    assert page.locator("table.queue tbody tr a").count() == 0
    _shot(page, f"shift-filter-error-{viewport['width']}")
    # Anything else the server refuses (here a form whose CSRF token went stale) is said.
    page.goto(f"{server}/tickets/{ticket.reference}")
    page.evaluate("document.body.setAttribute('hx-headers', '{\"X-CSRF-Token\": \"stale\"}')")
    page.fill("#note", "note")
    page.click("form[action$='/note'] button[type=submit]")
    page.locator("#flash", has_text="rechargez la page").wait_for()
    assert page.locator("#flash").is_visible()
    page.context.close()


def test_expired_session_keeps_the_typed_reply(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    ticket = new_ticket(db, category="health", phone="+22376800002")
    page = _open(chromium, server, "operator-user", PHONE)
    page.goto(f"{server}/tickets/{ticket.reference}")
    page.wait_for_selector("#presence")
    page.wait_for_timeout(500)  # the presence check made at load is answered
    page.fill("#reply-body", "Une équipe passe demain à 10 h.")
    page.context.clear_cookies()  # the session expired while the operator was typing
    page.click("form.reply button[type=submit]")
    page.wait_for_url("**/login?next=**")
    page.fill("#username", "operator-user")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/tickets/{ticket.reference}")
    assert page.input_value("#reply-body") == "Une équipe passe demain à 10 h."
    assert "gardé" in page.inner_text("#flash")
    page.click("form.reply button[type=submit]")
    page.wait_for_selector("text=Réponse mise en file d'envoi.")
    page.reload()
    assert page.input_value("#reply-body") == ""  # sent: the draft is gone
    assert "Une équipe passe demain à 10 h." in page.inner_text("#conversation")
    page.context.close()
