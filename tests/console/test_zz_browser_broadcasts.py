"""The broadcast pages in Debian's chromium (Playwright) against a real uvicorn process: a
supervisor writes a 2-language message, previews it (people, parts), creates the draft, sees
its progress, sends it, and the live counters move when the tick hands it to the outbound
path. Fixtures from test_zz_browser (same server, browser and seeded world)."""

from __future__ import annotations

from typing import Any

import pytest

from models.enums import Language
from tests.console.conftest import World
from tests.console.test_zz_browser import _login, _shot, bworld, chromium, server
from tickets.contacts import get_or_create_contact

pytestmark = pytest.mark.browser
__all__ = ["bworld", "chromium", "server"]


def test_supervisor_previews_creates_and_sends_a_broadcast(
    chromium: Any, server: str, bworld: World, db: Any
) -> None:
    from gateway.broadcasts import broadcast_tick

    for n, language in enumerate(("fr", "fr", "en", "bm")):
        contact = get_or_create_contact(db, f"+2237600060{n}")
        contact.language = Language(language)
    db.commit()
    page = _login(chromium, server, "supervisor-user")
    page.click("nav >> text=Diffusions")
    page.click("text=Nouvelle diffusion")
    page.fill("input[name=name]", "Vaccination")
    page.fill("textarea[name=text_fr]", "Vaccination gratuite samedi au centre de santé.")
    page.fill("textarea[name=text_en]", "Free vaccination on Saturday at the health centre.")
    for language in ("fr", "en", "bm"):
        page.check(f"input[name=languages][value={language}]")
    page.click("button[value=preview]")
    summary = page.locator("#preview-recipients")
    assert summary.inner_text() == "4 personnes le recevront, 4 parties de SMS au total."
    _shot(page, "broadcast-preview")
    page.click("button[value=create]")
    page.wait_for_url(f"{server}/broadcasts/*")
    assert page.locator("#broadcast-status").inner_text() == "brouillon"
    assert page.locator("#count-queued").inner_text() == "4"
    page.click("text=Envoyer à 4 personnes")
    page.wait_for_selector("text=L'envoi a commencé")
    assert page.locator("#broadcast-status").inner_text() == "en cours d'envoi"
    assert broadcast_tick() == 4
    # The page polls every 3 s: the counters move without a reload.
    page.wait_for_function("document.querySelector('#count-sent').innerText === '4'")
    _shot(page, "broadcast-sending")
