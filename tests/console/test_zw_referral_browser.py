"""Refer from the ticket page in Debian's chromium (issue 15): the operator sees the consent
is missing, tries to refer and is told why, records the "yes" the person gave on the call,
refers to the one service that matches, and copies the partner link; the partner opens it
in a browser with no account, accepts with a note, and the operator's ticket timeline shows
it. Against a real uvicorn process (the file sorts before test_zz_browser.py)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.console.conftest import PASSWORD, World, new_ticket
from tests.console.test_zz_browser import _shot, bworld, chromium, server

pytestmark = pytest.mark.browser
__all__ = ["bworld", "chromium", "server"]


def test_refer_from_the_ticket_page(chromium: Any, server: str, bworld: World, db: Any) -> None:
    from tickets import referrals as rules

    organisation = rules.save_organisation(
        db,
        None,
        rules.OrganisationInput(
            name="ALIMA", referral_method="link", shared_fields=["category", "place"]
        ),
        actor_label="test",
        actor_user_id=None,
    )
    rules.save_service(
        db,
        None,
        rules.ServiceInput(
            organisation_id=organisation.id,
            name="Clinique mobile",
            category="health",
            place_codes=["ML05"],
        ),
        actor_label="test",
        actor_user_id=None,
    )
    db.commit()
    ticket = new_ticket(
        db, category="health", phone="+22376810000", description="Fièvre", place_code="ML0501"
    )
    context = chromium.new_context(locale="fr-FR")
    page = context.new_page()
    page.set_default_timeout(10_000)
    page.goto(f"{server}/login")
    page.fill("#username", "operator-user")
    page.fill("#password", PASSWORD)
    page.click("button[type=submit]")
    page.wait_for_url(f"{server}/queue*")
    page.goto(f"{server}/tickets/{ticket.reference}")
    assert "non demandé" in page.inner_text("#consents")
    assert page.input_value("#referral-service")  # the matching service is offered
    page.click("#refer-form button[type=submit]")
    page.wait_for_selector("#referral_consent-error")
    assert "Pas de consentement au partage" in page.inner_text("#referral_consent-error")
    # The person says yes on the call.
    page.select_option("#consent-purpose", "share_with_partner")
    page.check("#consent-yes")
    page.click("#consent-form button[type=submit]")
    page.wait_for_selector("p.notice:text-is('La réponse de la personne est enregistrée.')")
    assert "oui" in page.inner_text("#consents [data-purpose=share_with_partner]")
    page.click("#refer-form button[type=submit]")
    page.wait_for_selector("#ticket-referrals li[data-status=sent]")
    assert "ALIMA" in page.inner_text("#ticket-referrals")
    _shot(page, "referral-sent")
    link = page.input_value("#ticket-referrals .partner-link")
    assert "/partner/referral?token=" in link
    # The partner: a fresh browser, no account, no cookie.
    partner_context = chromium.new_context(locale="fr-FR")
    partner = partner_context.new_page()
    partner.set_default_timeout(10_000)
    partner.goto(server + link[link.index("/partner/") :])
    assert "Mopti" in partner.inner_text("#shared")
    assert "Fièvre" not in partner.content()
    assert partner.locator("nav").count() == 0
    partner.fill("#note", "Rendez-vous jeudi à la clinique")
    partner.click("#action-accept")
    partner.wait_for_selector("#notice")
    assert "Acceptée" in partner.inner_text("#referral-status")
    assert partner_context.cookies() == []
    _shot(partner, "referral-partner-accepted")
    page.reload()
    timeline = page.inner_text("ol.timeline")
    assert "le partenaire a accepté l'orientation" in timeline
    assert "Rendez-vous jeudi à la clinique" in timeline
    assert "Acceptée" in page.inner_text("#ticket-referrals")
    partner_context.close()
    context.close()
