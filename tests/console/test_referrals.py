"""Referral pathways and consent per purpose (issue 15), through the console and the partner
page as a person would use them: the directory, consent recorded on the call, a referral
refused without it, only the agreed fields on the partner page, a link that expires, cannot
be edited and names one referral only, the partner's answer on the ticket's timeline, and a
PSEA referral that stays with the PSEA focal points."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from models.audit import AuditLog
from models.enums import ConsentPurpose, ConsentSource, ReferralStatus, UserRole
from models.referrals import PartnerOrganisation, PartnerService, Referral
from models.teams import Team, TeamMember
from models.tickets import Ticket
from tests.console.conftest import PASSWORD, World, csrf_of, login, new_ticket

PHONE = "+22376123456"
SUMMARY_WORDS = "Pas d'eau potable au site"


def _org(db: Session, name: str, fields: list[str], *, method: str = "link") -> PartnerOrganisation:
    from tickets import referrals as rules

    organisation = rules.save_organisation(
        db,
        None,
        rules.OrganisationInput(name=name, referral_method=method, shared_fields=fields),
        actor_label="test",
        actor_user_id=None,
    )
    db.commit()
    return organisation


def _service(
    db: Session, organisation: PartnerOrganisation, category: str, places: list[str], name: str
) -> PartnerService:
    from tickets import referrals as rules

    service = rules.save_service(
        db,
        None,
        rules.ServiceInput(
            organisation_id=organisation.id,
            name=name,
            category=category,
            place_codes=places,
            languages=["fr", "bm"],
            hours="Lun–Ven 8h–16h",
            focal_point="Awa",
        ),
        actor_label="test",
        actor_user_id=None,
    )
    db.commit()
    return service


def _consent(db: Session, ticket: Ticket, given: bool) -> None:
    from tickets import referrals as rules

    assert ticket.contact_id is not None
    rules.record_consent(
        db,
        contact_id=ticket.contact_id,
        purpose=ConsentPurpose.SHARE_WITH_PARTNER,
        given=given,
        source=ConsentSource.SMS,
        actor_label="bot",
        ticket=ticket,
    )
    db.commit()


def _refer(db: Session, ticket: Ticket, service: PartnerService, user_id: int) -> Referral:
    from tickets import referrals as rules

    referral = rules.create_referral(db, ticket, service, rules.Referrer(user_id, "operator-user"))
    db.commit()
    return referral


def _operator(
    browser_client: Callable[[], Any], username: str = "operator-user"
) -> tuple[Any, str]:
    client = browser_client()
    return client, login(client, username)


def _post(client: Any, url: str, csrf: str, data: dict[str, Any]) -> Any:
    return client.post(url, data={"csrf_token": csrf, **data}, follow_redirects=False)


def _words(page: str) -> str:
    """The page's text as read: entities decoded, white space collapsed."""
    return re.sub(r"\s+", " ", html.unescape(page))


def _partner_path(referral: Referral) -> str:
    from tickets.referrals import link_path

    return link_path(referral)


def _health_ticket(db: Session, phone: str = PHONE) -> Ticket:
    # The cercle of Mopti (ML0501) is under the region (ML05): a service for the region
    # covers it.
    return new_ticket(
        db, category="health", phone=phone, description=SUMMARY_WORDS, place_code="ML0501"
    )


# --- the directory --------------------------------------------------------------------------


def test_supervisor_builds_the_directory_and_an_operator_only_reads_it(
    world: World, browser_client: Callable[[], Any], db: Session
) -> None:
    supervisor, csrf = _operator(browser_client, "supervisor-user")
    refused = _post(
        supervisor,
        "/directory/organisations",
        csrf,
        {"name": "", "referral_method": "email", "contact_email": "no-at-sign"},
    )
    assert refused.status_code == 422
    assert "Donnez le nom de l'organisation" in refused.text
    assert "Pas une adresse e-mail" in refused.text
    saved = _post(
        supervisor,
        "/directory/organisations",
        csrf,
        {
            "name": "MSF Mopti",
            "referral_method": "sms",
            "contact_phone": "76 00 11 22",
            "shared_fields": ["category", "place", "phone"],
            "active": "1",
        },
    )
    assert saved.status_code == 303, saved.text[:500]
    organisation = db.scalar(
        select(PartnerOrganisation).where(PartnerOrganisation.name == "MSF Mopti")
    )
    assert organisation is not None and organisation.contact_phone == "+22376001122"
    assert organisation.shared_fields == ["category", "place", "phone"]
    bad_place = _post(
        supervisor,
        "/directory/services",
        csrf,
        {
            "organisation": organisation.id,
            "name": "Clinique",
            "category": "health",
            "places": "Nulle-part-du-tout",
        },
    )
    assert bad_place.status_code == 422
    assert "Aucun lieu de ce nom" in bad_place.text
    saved = _post(
        supervisor,
        "/directory/services",
        csrf,
        {
            "organisation": organisation.id,
            "name": "Clinique mobile",
            "category": "health",
            "places": "ML05, Gao",
            "languages": ["fr", "ff"],
            "hours": "8h-16h",
            "focal_point": "Dr Traoré",
            "active": "1",
        },
    )
    assert saved.status_code == 303, saved.text[:500]
    service = db.scalar(select(PartnerService).where(PartnerService.name == "Clinique mobile"))
    assert (
        service is not None and service.place_codes[0] == "ML05" and len(service.place_codes) == 2
    )
    page = supervisor.get("/directory").text
    assert "Clinique mobile" in page and "Mopti" in page and "Peul" in page
    # Edit: deactivate.
    edit = supervisor.get(f"/directory/services/{service.id}")
    assert edit.status_code == 200 and 'value="Clinique mobile"' in edit.text
    saved = _post(
        supervisor,
        f"/directory/services/{service.id}",
        csrf,
        {
            "organisation": organisation.id,
            "name": "Clinique mobile",
            "category": "health",
            "places": "ML05",
        },
    )
    assert saved.status_code == 303
    db.expire_all()
    assert db.get(PartnerService, service.id).active is False  # the box was not ticked
    # An operator reads the directory but has no form and may not post.
    operator, op_csrf = _operator(browser_client)
    page = operator.get("/directory")
    assert page.status_code == 200 and "Clinique mobile" in page.text
    assert 'id="organisation-form"' not in page.text
    assert (
        _post(
            operator, "/directory/organisations", op_csrf, {"name": "X", "referral_method": "link"}
        ).status_code
        == 403
    )
    assert operator.get(f"/directory/services/{service.id}").status_code == 403


# --- consent and referral from the ticket page ----------------------------------------------


def test_without_consent_the_referral_is_refused_and_nothing_is_shared(
    world: World, browser_client: Callable[[], Any], db: Session
) -> None:
    organisation = _org(db, "ALIMA", ["category", "place", "summary", "phone"])
    service = _service(db, organisation, "health", ["ML05"], "Santé mentale")
    _service(db, organisation, "health", ["ML07"], "Clinique de Gao")
    _service(db, organisation, "wash", ["ML05"], "Forages")
    ticket = _health_ticket(db)
    client, csrf = _operator(browser_client)
    page = client.get(f"/tickets/{ticket.reference}").text
    assert "ALIMA · Santé mentale" in page  # offered: same category, place under Mopti
    assert "Clinique de Gao" not in page and "Forages" not in page  # elsewhere, other sector
    assert "non demandé" in page  # consent not asked yet
    refused = _post(client, f"/tickets/{ticket.reference}/refer", csrf, {"service": service.id})
    assert refused.status_code == 422
    assert "Pas de consentement au partage" in refused.text
    # The person says no on the call: recorded with who and when, and respected.
    said_no = _post(
        client,
        f"/tickets/{ticket.reference}/consent",
        csrf,
        {"purpose": "share_with_partner", "given": "no"},
    )
    assert said_no.status_code == 200
    assert 'data-purpose="share_with_partner" data-given="no"' in said_no.text
    assert "Opérateur au téléphone" in said_no.text
    refused = _post(client, f"/tickets/{ticket.reference}/refer", csrf, {"service": service.id})
    assert refused.status_code == 422
    assert "La personne a refusé le partage" in refused.text
    assert db.scalar(select(Referral.id)) is None  # nothing was made, nothing shared
    # Timeline: in words.
    assert "Consentement enregistré" in refused.text
    assert "Partage avec un partenaire : non" in refused.text


def test_consent_no_to_call_back_marks_the_ticket_do_not_call(
    world: World, browser_client: Callable[[], Any], db: Session
) -> None:
    ticket = _health_ticket(db)
    client, csrf = _operator(browser_client)
    response = _post(
        client,
        f"/tickets/{ticket.reference}/consent",
        csrf,
        {"purpose": "call_back", "given": "no"},
    )
    assert response.status_code == 200
    db.expire_all()
    assert db.get(Ticket, ticket.id).callback_ok is False
    assert 'data-purpose="call_back" data-given="no"' in response.text
    bad = _post(client, f"/tickets/{ticket.reference}/consent", csrf, {"purpose": "marketing"})
    assert bad.status_code == 422
    assert "Choisissez à quoi sert le consentement" in bad.text


def test_the_partner_page_shows_only_the_agreed_fields_and_the_answer_reaches_the_timeline(
    world: World, browser_client: Callable[[], Any], db: Session
) -> None:
    organisation = _org(db, "IRC", ["category", "place"])  # no phone, no summary
    service = _service(db, organisation, "health", ["ML05"], "Clinique")
    ticket = _health_ticket(db)
    client, csrf = _operator(browser_client)
    _post(
        client,
        f"/tickets/{ticket.reference}/consent",
        csrf,
        {"purpose": "share_with_partner", "given": "yes"},
    )
    referred = _post(client, f"/tickets/{ticket.reference}/refer", csrf, {"service": service.id})
    assert referred.status_code == 200, referred.text[-2000:]
    assert "Orienté" in referred.text
    referral = db.scalar(select(Referral))
    assert referral is not None and referral.status == ReferralStatus.SENT
    assert referral.follow_up_due_at is not None
    assert "/partner/referral?token=" in referred.text  # the link to send
    partner = browser_client()  # no cookie at all
    page = partner.get(_partner_path(referral))
    assert page.status_code == 200
    assert "Santé" in page.text and "Mopti" in page.text
    assert "7612" not in page.text and "76 12" not in page.text  # no phone
    assert SUMMARY_WORDS not in page.text and "eau potable" not in page.text
    assert ticket.reference not in page.text  # not even the reference
    assert "/queue" not in page.text and "csrf" not in page.text.lower()
    assert not partner.cookies
    answered = partner.post(
        _partner_path(referral), data={"action": "accept", "note": "Rendez-vous jeudi"}
    )
    assert answered.status_code == 200 and "acceptée" in answered.text
    again = partner.post(_partner_path(referral), data={"action": "accept"})
    assert again.status_code == 409 and "déjà reçu une réponse" in again.text
    timeline = _words(client.get(f"/tickets/{ticket.reference}").text)
    assert "IRC: le partenaire a accepté l'orientation" in timeline
    assert "Rendez-vous jeudi" in timeline
    assert "operator-user: a orienté le ticket vers IRC · Clinique" in timeline
    done = partner.post(_partner_path(referral), data={"action": "done", "note": "Vu"})
    assert done.status_code == 200
    db.expire_all()
    assert db.get(Referral, referral.id).status == ReferralStatus.COMPLETED
    timeline = _words(client.get(f"/tickets/{ticket.reference}").text)
    assert "IRC: le partenaire a terminé la prise en charge" in timeline
    # Every view and answer audited, tied to the ticket.
    views = db.scalars(
        select(AuditLog).where(
            AuditLog.action == "referral.partner_viewed", AuditLog.object_id == str(referral.id)
        )
    ).all()
    assert [v.details["outcome"] for v in views] == ["viewed", "answer_refused"]
    assert all(v.ticket_id == ticket.id for v in views)
    assert db.scalar(select(AuditLog.id).where(AuditLog.action == "referral.accepted")) is not None


def test_agreed_summary_and_phone_are_shared_when_the_agreement_allows(
    world: World, browser_client: Callable[[], Any], db: Session
) -> None:
    organisation = _org(db, "NRC", ["category", "summary", "phone"])
    service = _service(db, organisation, "health", ["ML"], "Tout le pays")
    ticket = _health_ticket(db)
    _consent(db, ticket, True)
    referral = _refer(db, ticket, service, world["operator"].user_id)
    page = browser_client().get(_partner_path(referral)).text
    assert SUMMARY_WORDS.replace("'", "&#39;") in page
    assert PHONE in page
    assert 'data-field="place"' not in page  # not in this agreement


def test_protection_case_shares_only_the_minimum(
    world: World, browser_client: Callable[[], Any], db: Session
) -> None:
    organisation = _org(db, "UNHCR", ["category", "place", "summary", "phone"])
    service = _service(db, organisation, "protection", ["ML05"], "Prise en charge")
    ticket = new_ticket(
        db,
        category="protection",
        phone=PHONE,
        description="Violence dans le camp",
        place_code="ML05",
    )
    assert ticket.sensitive
    _consent(db, ticket, True)
    referral = _refer(db, ticket, service, world["protection_officer"].user_id)
    page = browser_client().get(_partner_path(referral)).text
    assert "Violence" not in page and PHONE not in page
    assert 'data-field="place"' in page and "cas de protection" in page
    # The referral list: the protection officer sees it, an operator does not.
    officer, _ = _operator(browser_client, "protection-officer-user")
    assert f'data-referral="{referral.id}"' in officer.get("/referrals").text
    operator, _ = _operator(browser_client)
    assert f'data-referral="{referral.id}"' not in operator.get("/referrals").text


# --- the link ---------------------------------------------------------------------------------


def test_expired_tampered_and_foreign_links_are_refused(
    world: World, browser_client: Callable[[], Any], db: Session
) -> None:
    from models.base import utcnow
    from tickets import referrals as rules

    organisation = _org(db, "ACF", ["category", "place", "summary"])
    service = _service(db, organisation, "health", ["ML05"], "Nutrition")
    first = _health_ticket(db)
    second = _health_ticket(db, phone="+22376999888")
    _consent(db, first, True)
    _consent(db, second, True)
    one = _refer(db, first, service, world["operator"].user_id)
    other = _refer(db, second, service, world["operator"].user_id)
    partner = browser_client()
    token = rules.link_token(one)
    ident, expires, signature = token.split(".")
    # Another referral's id with this link's signature: refused, nothing of either shown.
    forged = partner.get(f"/partner/referral?token={other.id}.{expires}.{signature}")
    assert forged.status_code == 403 and "pas valide" in forged.text
    assert "Mopti" not in forged.text
    # A longer life written into the link: refused.
    longer = partner.get(f"/partner/referral?token={ident}.{int(expires) + 86400}.{signature}")
    assert longer.status_code == 403
    flipped = signature[:-2] + ("AA" if signature[-2:] != "AA" else "BB")
    assert partner.get(f"/partner/referral?token={ident}.{expires}.{flipped}").status_code == 403
    assert partner.get("/partner/referral?token=garbage").status_code == 403
    assert partner.get("/partner/referral").status_code == 403
    assert (
        partner.post(
            f"/partner/referral?token={other.id}.{expires}.{signature}", data={"action": "accept"}
        ).status_code
        == 403
    )
    db.expire_all()
    assert db.get(Referral, other.id).status == ReferralStatus.SENT
    # The genuine link shows its own referral only.
    page = partner.get(f"/partner/referral?token={token}")
    assert page.status_code == 200 and "eau potable" in page.text
    assert f"{other.id}." not in page.text.split("token=")[-1][:5]
    # Expired (the clock past 14 days): 410, answering too.
    referral = db.get(Referral, one.id)
    referral.link_expires_at = utcnow() - timedelta(minutes=1)
    db.commit()
    expired_token = rules.link_token(referral)
    expired = partner.get(f"/partner/referral?token={expired_token}")
    assert (
        expired.status_code == 410
        and "expiré" in expired.text
        and "eau potable" not in expired.text
    )
    assert (
        partner.post(
            f"/partner/referral?token={expired_token}", data={"action": "accept"}
        ).status_code
        == 410
    )
    # The old (pre-expiry) link is void too, and a renewed one works.
    assert partner.get(f"/partner/referral?token={token}").status_code == 403
    rules.renew_link(db, referral, actor_label="test", actor_user_id=None)
    db.commit()
    assert partner.get(_partner_path(referral)).status_code == 200
    refusals = db.scalars(
        select(AuditLog).where(AuditLog.action == "referral.partner_link_refused")
    ).all()
    assert len(refusals) >= 6 and all(r.ticket_id is None for r in refusals)


# --- PSEA ---------------------------------------------------------------------------------------


@pytest.fixture()
def psea_focal(world: World, db: Session) -> tuple[str, int]:
    from ops_console.auth import create_user

    team = db.scalar(select(Team).where(Team.handles_psea.is_(True)))
    assert team is not None
    user = create_user(db, username="psea-focal-test", role=UserRole.TEAM_MEMBER, password=PASSWORD)
    db.add(TeamMember(team_id=team.id, user_id=user.id, is_lead=True))
    db.commit()
    return user.username, team.id


def test_psea_referral_only_by_a_focal_point_and_never_listed_for_others(
    world: World, browser_client: Callable[[], Any], db: Session, psea_focal: tuple[str, int]
) -> None:
    from tickets import referrals as rules

    organisation = _org(db, "UNFPA", ["category", "place", "summary", "phone"])
    service = _service(db, organisation, "protection", ["ML05"], "Prise en charge VBG")
    ticket = new_ticket(
        db,
        category="protection",
        phone=PHONE,
        description="Un agent demande des faveurs sexuelles contre les cartes",
        place_code="ML05",
        kind="psea",
    )
    db.refresh(ticket)
    assert ticket.kind.value == "psea" and ticket.team_id == psea_focal[1]
    _consent(db, ticket, True)
    # Not a focal point (even one who could see it): refused.
    with pytest.raises(rules.ReferralError, match="PSEA"):
        rules.create_referral(
            db, ticket, service, rules.Referrer(world["protection_officer"].user_id, "po")
        )
    db.rollback()
    focal, csrf = _operator(browser_client, psea_focal[0])
    page = focal.get(f"/tickets/{ticket.reference}").text
    assert "UNFPA · Prise en charge VBG" in page
    referred = _post(focal, f"/tickets/{ticket.reference}/refer", csrf, {"service": service.id})
    assert referred.status_code == 200, referred.text[-1500:]
    referral = db.scalar(select(Referral))
    assert referral is not None and referral.psea
    assert set(referral.shared or {}) <= set(rules.PROTECTION_MINIMUM)
    assert f'data-referral="{referral.id}"' in focal.get("/referrals").text
    for username in ("operator-user", "supervisor-user", "admin-user", "protection-officer-user"):
        other, _ = _operator(browser_client, username)
        listing = other.get("/referrals").text
        assert f'data-referral="{referral.id}"' not in listing, username
        assert "UNFPA" not in listing, username
    for role in ("operator", "supervisor", "admin", "protection_officer"):
        api = browser_client()
        listed = api.get("/api/v1/referrals", headers=world[role].headers)
        assert listed.status_code == 200 and listed.json()["referrals"] == [], role
        assert (
            api.get(f"/api/v1/referrals/{referral.id}", headers=world[role].headers).status_code
            == 404
        )


def test_a_regular_operator_cannot_refer_a_protection_or_psea_case_they_cannot_see(
    world: World, browser_client: Callable[[], Any], db: Session
) -> None:
    organisation = _org(db, "IMC", ["category"])
    service = _service(db, organisation, "protection", ["ML05"], "Soutien")
    ticket = new_ticket(db, category="protection", phone=PHONE, description="x", place_code="ML05")
    client, csrf = _operator(browser_client)
    assert (
        _post(
            client, f"/tickets/{ticket.reference}/refer", csrf, {"service": service.id}
        ).status_code
        == 404
    )


def _assert_html_ids_unique(html: str) -> None:
    ids = re.findall(r' id="([^"]+)"', html)
    assert len(ids) == len(set(ids)), [i for i in ids if ids.count(i) > 1]


def test_ticket_page_ids_stay_unique_with_the_referral_box(
    world: World, browser_client: Callable[[], Any], db: Session
) -> None:
    organisation = _org(db, "WFP", ["category"])
    _service(db, organisation, "health", ["ML05"], "Cash")
    ticket = _health_ticket(db)
    client, _ = _operator(browser_client)
    html = client.get(f"/tickets/{ticket.reference}").text
    _assert_html_ids_unique(html)
    assert csrf_of(html)


# --- the API --------------------------------------------------------------------------------


def test_api_directory_consent_and_referral(world: World, client: Any, db: Session) -> None:
    supervisor = world["supervisor"].headers
    created = client.post(
        "/api/v1/partners",
        headers=supervisor,
        json={"name": "DRC", "referral_method": "email", "shared_fields": ["category", "phone"]},
    )
    assert created.status_code == 422
    assert "contact_email" in created.json()["detail"]
    created = client.post(
        "/api/v1/partners",
        headers=supervisor,
        json={
            "name": "DRC",
            "referral_method": "email",
            "contact_email": "referrals@drc.example",
            "shared_fields": ["category", "phone"],
        },
    )
    assert created.status_code == 201, created.text
    partner_id = created.json()["id"]
    bad = client.post(
        f"/api/v1/partners/{partner_id}/services",
        headers=supervisor,
        json={"name": "Abris", "category": "shelter_nfi", "places": ["Atlantis"]},
    )
    assert bad.status_code == 422 and "Atlantis" in bad.json()["detail"]
    unknown_field = client.put(
        f"/api/v1/partners/{partner_id}",
        headers=supervisor,
        json={"name": "DRC", "referral_method": "link", "shared_fields": ["password"]},
    )
    assert unknown_field.status_code == 422 and "shared_fields" in unknown_field.json()["detail"]
    service = client.post(
        f"/api/v1/partners/{partner_id}/services",
        headers=supervisor,
        json={"name": "Abris", "category": "shelter_nfi", "places": ["Mopti"]},
    )
    assert service.status_code == 201, service.text
    service_id = service.json()["id"]
    assert (
        client.post(
            "/api/v1/partners",
            headers=world["operator"].headers,
            json={"name": "X", "referral_method": "link"},
        ).status_code
        == 403
    )
    listed = client.get("/api/v1/partners", headers=world["operator"].headers).json()
    assert listed["organisations"][0]["services"][0]["places"] == ["ML05"]
    # The bot asks for consent by SMS on the ticket it created; the person says no.
    ticket = new_ticket(
        db,
        category="shelter_nfi",
        phone=PHONE,
        description="Tente déchirée",
        place_code="ML0501",
        actor_label="bot",
        actor_user_id=world["service"].user_id,
    )
    said = client.post(
        f"/api/v1/tickets/{ticket.reference}/consents",
        headers=world["service"].headers,
        json={"purpose": "share_with_partner", "given": False, "source": "sms"},
    )
    assert said.status_code == 201, said.text
    operator = world["operator"].headers
    options = client.get(f"/api/v1/tickets/{ticket.reference}/referral-options", headers=operator)
    assert options.json()["consent_to_share"] is False
    assert options.json()["options"][0]["would_share"] == ["category", "phone"]
    refused = client.post(
        f"/api/v1/tickets/{ticket.reference}/referrals",
        headers=operator,
        json={"service_id": service_id},
    )
    assert refused.status_code == 422 and refused.json()["detail"].startswith("consent:")
    assert client.get("/api/v1/referrals", headers=operator).json()["referrals"] == []
    # Asked again on a call: yes. The referral shares the agreed fields only.
    again = client.post(
        f"/api/v1/tickets/{ticket.reference}/consents",
        headers=operator,
        json={"purpose": "share_with_partner", "given": True, "source": "sms"},
    )
    assert again.status_code == 201
    consent = again.json()["consents"][0]
    assert consent["source"] == "operator" and consent["recorded_by"] == "operator-user"
    made = client.post(
        f"/api/v1/tickets/{ticket.reference}/referrals",
        headers=operator,
        json={"service_id": service_id},
    )
    assert made.status_code == 201, made.text
    body = made.json()
    assert body["shared_fields"] == ["category", "phone"] and body["status"] == "sent"
    assert "/partner/referral?token=" in body["partner_link"]
    assert (
        client.get(f"/api/v1/referrals/{body['id']}", headers=operator).json()["ticket"]
        == ticket.reference
    )
    # Everything is in the OpenAPI document.
    paths = client.get("/api/openapi.json", headers=operator).json()["paths"]
    for path in (
        "/api/v1/partners",
        "/api/v1/partners/{organisation_id}",
        "/api/v1/partners/{organisation_id}/services",
        "/api/v1/partner-services/{service_id}",
        "/api/v1/tickets/{reference}/consents",
        "/api/v1/tickets/{reference}/referral-options",
        "/api/v1/tickets/{reference}/referrals",
        "/api/v1/referrals",
        "/api/v1/referrals/{referral_id}",
    ):
        assert path in paths, path


def test_erasure_removes_what_was_shared(
    world: World, browser_client: Callable[[], Any], db: Session
) -> None:
    from models.contacts import Contact
    from tickets.erasure import erase_contact

    organisation = _org(db, "Solidarités", ["category", "summary", "phone"])
    service = _service(db, organisation, "health", ["ML05"], "Eau")
    ticket = _health_ticket(db)
    _consent(db, ticket, True)
    referral = _refer(db, ticket, service, world["operator"].user_id)
    partner = browser_client()
    assert PHONE in partner.get(_partner_path(referral)).text
    contact = db.get(Contact, ticket.contact_id)
    counts = erase_contact(db, contact, actor_label="test")
    db.commit()
    assert counts["referrals"] == 1
    page = partner.get(_partner_path(referral)).text
    assert PHONE not in page and "eau potable" not in page
    assert "Rien d'autre n'est partagé" in html.unescape(page)


def test_no_to_call_backs_means_no_call_back_is_offered(
    world: World, browser_client: Callable[[], Any], db: Session
) -> None:
    from models.enums import MessageDirection
    from models.messages import Call

    ticket = _health_ticket(db)
    other = _health_ticket(db, phone="+22376777666")
    for t in (ticket, other):
        db.add(
            Call(
                contact_id=t.contact_id,
                ticket_id=t.id,
                direction=MessageDirection.INBOUND,
                status="callback_requested",
            )
        )
    db.commit()
    client, csrf = _operator(browser_client)
    page = client.get("/calls").text
    assert page.count('href="/calls?callback=') == 2
    said_no = _post(
        client,
        f"/tickets/{ticket.reference}/consent",
        csrf,
        {"purpose": "call_back", "given": "no"},
    )
    assert said_no.status_code == 200
    page = client.get("/calls").text
    assert page.count('href="/calls?callback=') == 1  # only the other person's
    assert "La personne a refusé d'être rappelée : ne pas appeler" in _words(page)
