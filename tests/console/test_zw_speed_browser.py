"""Speed and oversight in Debian's chromium (issue 13): macros managed by a supervisor and
applied by an operator after a confirmation that says "this sends an SMS"; "/" in the
reply box inserting a canned reply in the ticket's language; the "awaiting my approval"
tab of a lead, approved from it (on a 412 px phone); the console in Bambara with French for
what is not translated; the dashboard's map labelled with region names and a legend whose
numbers are the table's. Against a real uvicorn process on the session's database
(PostgreSQL or SQLite); sorts before test_zz_browser.py (its simulator test leaves a worker
running)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.console.conftest import PASSWORD, World, new_ticket
from tests.console.test_zx_queue_browser import _open
from tests.console.test_zy_shift_browser import DESKTOP, PHONE
from tests.console.test_zz_browser import _shot, bworld, chromium, server

pytestmark = pytest.mark.browser
__all__ = ["bworld", "chromium", "server"]

# A code shown to a person instead of words (a catalog key left untranslated).
RAW_KEY = re.compile(r"\b(status|category|priority|event|language|source|admin|sla)\.[a-z_]+\b")


def _outbound(db: Any, ticket: Any) -> list[Any]:
    from sqlalchemy import select

    from models.enums import MessageDirection
    from models.messages import Message

    db.expire_all()
    return list(
        db.scalars(
            select(Message).where(
                Message.ticket_id == ticket.id, Message.direction == MessageDirection.OUTBOUND
            )
        )
    )


def test_supervisor_manages_macros_operator_applies_one_after_confirmation(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    from sqlalchemy import select

    from models.enums import TicketStatus
    from models.tickets import Ticket, TicketEvent

    # The supervisor writes a macro in the three languages (the "new macro" card).
    lead = _open(chromium, server, "supervisor-user", DESKTOP)
    lead.click("text=Réponses types et macros")
    lead.click("nav.tabs >> text=Macros")
    lead.wait_for_url("**/admin/macros")
    card = lead.locator("fieldset.macro-card").last
    card.locator("input[name=key]").fill("visit")
    card.locator("input[name=title]").fill("Visite prévue")
    card.locator("textarea[name=fr]").fill(
        "Une équipe passera vous voir cette semaine. Réf: {reference}"
    )
    card.locator("textarea[name=bm]").fill(
        "Jɛkulu dɔ bɛna i bɔ ɲɔgɔn ye nin dɔgɔkun in. Réf: {reference}"
    )
    card.locator("textarea[name=en]").fill("A team will visit you this week. Ref: {reference}")
    card.locator("select[name=status]").select_option("in_progress")
    card.locator("textarea[name=note]").fill("Visite annoncée à la personne.")
    lead.click("#macros-form button:has-text('Enregistrer')")
    lead.wait_for_url("**/admin/macros")
    assert lead.locator("legend", has_text="Visite prévue").count() == 1
    # A reply in Bambara only, without the French it falls back to: refused, said why.
    card = lead.locator("fieldset.macro-card").last
    card.locator("input[name=key]").fill("bm_only")
    card.locator("textarea[name=bm]").fill("I ni ce.")
    lead.click("#macros-form button:has-text('Enregistrer')")
    assert "Écrivez aussi la réponse en français" in lead.inner_text("p.error[role=alert]")
    lead.context.close()

    ticket = new_ticket(db, category="wash", phone="+22376890001", language="bm")
    page = _open(chromium, server, "operator-user", DESKTOP)
    page.goto(f"{server}/tickets/{ticket.reference}")
    # The keyboard reaches the macros too ("m"), listed in the "?" dialog.
    page.keyboard.press("?")
    assert "Choisir une macro" in page.inner_text("dialog#shortcuts")
    page.keyboard.press("Escape")
    page.locator("h1").click()
    page.keyboard.press("m")
    assert page.evaluate("document.activeElement.id") == "macro"
    page.select_option("#macro", "visit")
    page.click("text=Voir la macro avant de l'appliquer")
    confirm = page.locator("#macro-confirm")
    confirm.wait_for()
    text = confirm.inner_text()
    assert "Ceci envoie un SMS à la personne" in text and "(Bambara)" in text
    assert f"Jɛkulu dɔ bɛna i bɔ ɲɔgɔn ye nin dɔgɔkun in. Réf: {ticket.reference}" in text
    assert "En cours" in text and "Visite annoncée à la personne." in text
    as_sent = confirm.locator("#macro-sent").inner_text()
    # Nothing happened yet: the confirmation only shows.
    assert _outbound(db, ticket) == []
    _shot(page, "ticket-macro-confirm")
    page.click("#macro-apply")
    page.wait_for_selector("p.notice:has-text('Macro appliquée.')")
    db.expire_all()
    saved = db.get(Ticket, ticket.id)
    assert saved.status == TicketStatus.IN_PROGRESS
    sent = _outbound(db, ticket)
    # One SMS, the macro's reply in the person's language, exactly as the confirmation said
    # it would reach the phone (letters a basic phone may not show replaced): the status
    # change adds none.
    assert [m.body for m in sent] == [as_sent]
    assert as_sent.startswith("Jekulu do bena i bo") and ticket.reference in as_sent
    notes = [
        event.body
        for event in db.scalars(
            select(TicketEvent).where(
                TicketEvent.ticket_id == ticket.id, TicketEvent.kind == "note"
            )
        )
    ]
    assert notes == ["Visite annoncée à la personne."]
    conversation = page.inner_text("#conversation")
    assert as_sent in conversation
    timeline = page.inner_text("ol.timeline")
    assert "Visite annoncée à la personne." in timeline
    # Words, not codes: the machine steps are named ("routing", "system" were shown raw).
    assert "orientation automatique" in timeline and "routing:" not in timeline
    page.context.close()


def test_slash_inserts_a_canned_reply_in_the_tickets_language(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    ticket = new_ticket(db, category="health", phone="+22376890101", language="bm")
    page = _open(chromium, server, "operator-user", DESKTOP)
    page.goto(f"{server}/tickets/{ticket.reference}")
    page.click("#reply-body")
    page.keyboard.type("/tran")
    menu = page.locator("#canned-menu")
    menu.wait_for()
    labels = menu.locator("[role=option]").all_inner_texts()
    assert labels and all("(Bambara)" in label for label in labels)
    visible = menu.locator("[role=option]:not([hidden])").all_inner_texts()
    assert visible == ["Transmis / Referred (Bambara)"]
    page.keyboard.press("Enter")
    assert page.input_value("#reply-body") == (
        f"I ka ɲininkali {ticket.reference} cira jɛkulu ma. U bɛna i wele."
    )
    assert not menu.is_visible()
    page.context.close()


def test_lead_sees_cases_awaiting_approval_and_approves_from_the_list(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    from models.enums import TicketStatus, UserRole
    from models.teams import TeamMember
    from models.tickets import Ticket
    from models.users import User
    from ops_console import actions
    from ops_console.auth import create_user
    from ops_console.permissions import Viewer

    ticket = new_ticket(
        db, category="protection", phone="+22376890201", sensitive=True, description="Menaces"
    )
    lead = create_user(
        db, username="protection-lead", role=UserRole.PROTECTION_OFFICER, password=PASSWORD
    )
    db.add(TeamMember(team_id=ticket.team_id, user_id=lead.id, is_lead=True))
    officer = db.get(User, bworld["protection_officer"].user_id)
    viewer = Viewer.load(db, officer)
    # The officer works the case (assigned to them) and asks to resolve it.
    actions.assign(db, ticket, viewer, officer, notify=False)
    actions.change_status(db, ticket, viewer, TicketStatus.RESOLVED, notify=False)
    db.commit()
    assert db.get(Ticket, ticket.id).status == TicketStatus.AWAITING_APPROVAL

    page = _open(chromium, server, "protection-lead", PHONE)
    # The default view (mine and unassigned) does not list a colleague's case…
    assert ticket.reference not in page.inner_text("#results")
    # …the tab does, with its count.
    assert page.inner_text("#awaiting-count") == "1"
    page.click("#awaiting-tab")
    page.wait_for_url("**/queue?awaiting=me")
    assert "cas dont la clôture attend votre approbation" in page.inner_text("h1")
    rows = page.locator("tr.ticket-row")
    assert rows.count() == 1 and ticket.reference in rows.first.inner_text()
    # A 412 px phone: no sideways scrolling.
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]
    _shot(page, "queue-awaiting-approval-phone")
    rows.first.locator("a").first.click()
    page.wait_for_url(f"**/tickets/{ticket.reference}")
    assert "Résolu" in page.inner_text("#approve-closure")
    page.click("#approve-closure button[type=submit]")
    page.wait_for_selector("p.notice:has-text('Enregistré.')")
    db.expire_all()
    assert db.get(Ticket, ticket.id).status == TicketStatus.RESOLVED
    page.goto(f"{server}/queue?awaiting=me")
    assert page.inner_text("#awaiting-count") == "0"
    assert page.locator("tr.ticket-row").count() == 0
    page.context.close()

    # The officer who asked sees no such tab entry for their own request, and an operator
    # (who never sees protection cases) has no tab at all.
    operator = _open(chromium, server, "operator-user", DESKTOP)
    assert operator.locator("#awaiting-tab").count() == 0
    operator.context.close()


def test_console_in_bambara_falls_back_to_french(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    ticket = new_ticket(db, category="health", phone="+22376890301", language="fr")
    page = _open(chromium, server, "operator-user", DESKTOP)
    page.click("button[name=language][value=bm]")
    page.wait_for_url("**/queue*")
    assert page.get_attribute("html", "lang") == "bm"
    nav = page.inner_text("nav[aria-label]")
    assert "Tikɛ lisi" in nav and "Weleliw" in nav and "Ka bɔ" in page.inner_text("header")
    body = page.inner_text("body")
    assert "Kɛnɛya" in body  # the ticket's category, in Bambara
    assert not RAW_KEY.search(body), RAW_KEY.search(body)
    page.goto(f"{server}/tickets/{ticket.reference}")
    body = page.inner_text("body")
    assert "Baro" in body and "Jaabi ci SMS la" in body and "A mara" in body
    # Not translated yet: in French, the hotline's working language (never English, never
    # a code).
    assert "Historique" in body and "Timeline" not in body
    assert not RAW_KEY.search(body), RAW_KEY.search(body)
    _shot(page, "ticket-bambara")
    # The choice is kept, and French is one click away.
    page.goto(f"{server}/queue")
    assert "Tikɛ lisi" in page.inner_text("h1")
    page.click("button[name=language][value=fr]")
    page.wait_for_url("**/queue*")
    assert "File" in page.inner_text("h1")
    page.context.close()


def test_map_names_regions_and_its_legend_adds_up_to_the_table(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    for index, code in enumerate(("ML07", "ML07", "ML05", "ML18", None)):
        new_ticket(db, category="wash", phone=f"+2237689040{index}", place_code=code)
    page = _open(chromium, server, "supervisor-user", DESKTOP)
    page.goto(f"{server}/dashboard")
    labels = page.evaluate(
        """Array.from(document.querySelectorAll('svg.map text.map-label'))
        .map((t) => Array.from(t.children).map((c) => c.textContent).join(' '))"""
    )
    names = {" ".join(label.split()[:-1]) for label in labels}
    assert {"Gao", "Mopti", "Kayes", "Tombouctou", "Kidal"} <= names
    assert any(label.split() == ["Gao", "2"] for label in labels)
    # Douentza (a 2023 region) is shaded with Mopti: 1 + 1, and the legend says so.
    assert any(label.split() == ["Mopti", "2"] for label in labels)
    table = {
        row.locator("th").inner_text().strip(): int(row.locator("td").last.inner_text())
        for row in page.locator("table.matrix tbody tr").all()
    }
    assert table == {"Gao": 2, "Mopti": 1, "Douentza": 1, "Lieu pas encore connu": 1}

    def counts(selector: str) -> dict[str, int]:
        found: dict[str, int] = {}
        for row in page.locator(selector).all():
            cells = row.locator("th, td").all_inner_texts()
            found[cells[0].lstrip("· ").strip()] = int(cells[1])
        return found

    outlines = counts("table.legend-counts tbody tr:not(.part)")
    parts = counts("table.legend-counts tbody tr.part")
    assert outlines == {"Gao": 2, "Mopti": 2, "Lieu pas encore connu": 1}
    # Mopti's outline counts Mopti and Douentza, each named with its own number.
    assert parts == {"Douentza": 1, "Mopti": 1}
    # So every row of the table is in the legend with the same number, and the totals agree.
    for name, count in table.items():
        assert parts.get(name, outlines.get(name)) == count, name
    assert sum(outlines.values()) == sum(table.values()) == 5
    assert int(page.inner_text("#legend-total")) == 5
    steps = page.locator("ul.legend-steps li").all_inner_texts()
    assert any("aucun ticket ouvert" in step for step in steps)
    assert any("2 tickets ouverts" in step for step in steps)
    _shot(page, "dashboard-map-legend")
    page.context.close()
