"""Every console route × every role: 401/303 without login, 403 for a role that never may,
404 for a record the role must not know exists. A new route fails
``test_every_route_is_in_the_table`` until it is added here."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

import pytest

from tests.console.conftest import World, csrf_of, login, new_ticket

HUMANS = ("admin", "supervisor", "operator", "protection_officer", "team_member")
HOTLINE = ("admin", "supervisor", "operator", "protection_officer")
EXPORTERS = ("admin", "supervisor", "protection_officer")
ADMIN = ("admin",)
AUDITORS = ("admin", "supervisor")
CANNED_MANAGERS = ("admin", "supervisor")
BOT_AND_ADMIN = ("admin", "service")
API_CREATORS = (*HOTLINE, "service")
EVERYONE = (*HUMANS, "service")
PROTECTION = ("protection_officer",)
DELIVERY = ("admin", "supervisor", "protection_officer")

# (method, path template, allowed roles, what a refused role gets)
PAGE_ROUTES: list[tuple[str, str, tuple[str, ...], int]] = [
    ("GET", "/", HUMANS, 403),
    ("GET", "/login", HUMANS, 403),
    ("POST", "/login", HUMANS, 403),
    ("POST", "/logout", HUMANS, 403),
    ("POST", "/language", HUMANS, 403),
    ("GET", "/queue", HUMANS, 403),
    ("POST", "/queue", HUMANS, 403),
    ("GET", "/queue/live", HUMANS, 403),
    ("POST", "/queue/views", HUMANS, 403),
    ("POST", "/queue/views/999999/delete", HUMANS, 403),
    ("POST", "/queue/bulk", HUMANS, 403),
    ("POST", "/queue/bulk/apply", HUMANS, 403),
    ("GET", "/tickets/{health}/messages/999999/delivery", HUMANS, 404),
    ("GET", "/tickets/{protection}/messages/999999/delivery", PROTECTION, 404),
    ("GET", "/tickets/{health}", HUMANS, 404),
    ("GET", "/tickets/{wash}", HOTLINE, 404),
    ("GET", "/tickets/{protection}", PROTECTION, 404),
    ("POST", "/tickets/{health}/work", HUMANS, 404),
    ("POST", "/tickets/{protection}/work", PROTECTION, 404),
    ("POST", "/tickets/{health}/note", HUMANS, 404),
    ("POST", "/tickets/{protection}/note", PROTECTION, 404),
    ("POST", "/tickets/{health}/reply", HUMANS, 404),
    ("POST", "/tickets/{wash}/reply", HOTLINE, 404),
    ("POST", "/tickets/{health}/merge", HOTLINE, 403),
    ("POST", "/tickets/{protection}/merge", PROTECTION, 404),
    ("POST", "/tickets/{health}/incident", HUMANS, 404),
    ("POST", "/tickets/{health}/details", HUMANS, 404),
    ("POST", "/tickets/{protection}/details", PROTECTION, 404),
    ("POST", "/tickets/{health}/presence", HUMANS, 404),
    ("POST", "/tickets/{protection}/presence", PROTECTION, 404),
    ("POST", "/tickets/{health}/sms-preview", HUMANS, 404),
    ("POST", "/tickets/{protection}/sms-preview", PROTECTION, 404),
    ("POST", "/tickets/{health}/reveal", HUMANS, 404),
    ("POST", "/tickets/{health}/macro", HUMANS, 404),
    ("POST", "/tickets/{protection}/macro", PROTECTION, 404),
    ("POST", "/tickets/{health}/macro/apply", HUMANS, 404),
    ("POST", "/tickets/{protection}/macro/apply", PROTECTION, 404),
    ("POST", "/tickets/{protection}/reveal", PROTECTION, 404),
    ("GET", "/bot-status", HUMANS, 403),
    ("GET", "/calls", HOTLINE, 403),
    ("POST", "/calls", HOTLINE, 403),
    ("POST", "/calls/999999/done", HOTLINE, 403),
    ("GET", "/simulator", HOTLINE, 403),
    ("POST", "/simulator/sms", HOTLINE, 403),
    ("POST", "/simulator/thread", HOTLINE, 403),
    ("POST", "/simulator/ussd", HOTLINE, 403),
    ("GET", "/dashboard", HOTLINE, 403),
    ("GET", "/registry", HOTLINE, 403),
    ("POST", "/registry/merge", AUDITORS, 403),
    ("GET", "/flows", HOTLINE, 403),
    ("POST", "/flows", HOTLINE, 403),
    ("POST", "/flows/enumerators", AUDITORS, 403),
    ("GET", "/exports", EXPORTERS, 403),
    ("GET", "/exports/queue.csv", EXPORTERS, 403),
    ("GET", "/exports/queue.xlsx", EXPORTERS, 403),
    ("GET", "/exports/aggregate.hxl.csv", EXPORTERS, 403),
    ("GET", "/exports/flows.csv", EXPORTERS, 403),
    ("GET", "/admin", ADMIN, 403),
    ("GET", "/admin/users", ADMIN, 403),
    ("GET", "/admin/teams", ADMIN, 403),
    ("GET", "/admin/routing", ADMIN, 403),
    ("GET", "/admin/sla", ADMIN, 403),
    ("GET", "/admin/alerts", ADMIN, 403),
    ("GET", "/admin/channels", ADMIN, 403),
    ("GET", "/admin/canned", CANNED_MANAGERS, 403),
    ("GET", "/admin/macros", CANNED_MANAGERS, 403),
    ("GET", "/admin/audit", AUDITORS, 403),
    ("GET", "/delivery-unknown", DELIVERY, 403),
    ("POST", "/delivery-unknown/999999/resend", DELIVERY, 403),
    ("POST", "/admin/users", ADMIN, 403),
    ("POST", "/admin/users/999999", ADMIN, 403),
    ("POST", "/admin/tokens", ADMIN, 403),
    ("POST", "/admin/tokens/999999/revoke", ADMIN, 403),
    ("POST", "/admin/teams", ADMIN, 403),
    ("POST", "/admin/teams/999999/members", ADMIN, 403),
    ("POST", "/admin/routing", ADMIN, 403),
    ("POST", "/admin/routing/999999/toggle", ADMIN, 403),
    ("POST", "/admin/sla", ADMIN, 403),
    ("POST", "/admin/alerts", ADMIN, 403),
    ("POST", "/admin/alerts/999999/toggle", ADMIN, 403),
    ("POST", "/admin/channels", ADMIN, 403),
    ("POST", "/admin/channels/999999/toggle", ADMIN, 403),
    ("GET", "/directory", HUMANS, 403),
    ("POST", "/directory/organisations", AUDITORS, 403),
    ("GET", "/directory/organisations/999999", AUDITORS, 403),
    ("POST", "/directory/organisations/999999", AUDITORS, 403),
    ("POST", "/directory/services", AUDITORS, 403),
    ("GET", "/directory/services/999999", AUDITORS, 403),
    ("POST", "/directory/services/999999", AUDITORS, 403),
    ("GET", "/referrals", HUMANS, 403),
    ("POST", "/tickets/{health}/consent", HUMANS, 404),
    ("POST", "/tickets/{protection}/consent", PROTECTION, 404),
    ("POST", "/tickets/{health}/refer", HUMANS, 404),
    ("POST", "/tickets/{protection}/refer", PROTECTION, 404),
    # The partner page: no account opens it, only a signed link (tests/console/test_referrals.py).
    ("GET", "/partner/referral", (), 403),
    ("POST", "/partner/referral", (), 403),
    ("GET", "/broadcasts", AUDITORS, 403),
    ("GET", "/broadcasts/new", AUDITORS, 403),
    ("POST", "/broadcasts/new", AUDITORS, 403),
    ("GET", "/broadcasts/999999", AUDITORS, 403),
    ("POST", "/broadcasts/999999/{action}", AUDITORS, 403),
    ("POST", "/admin/canned", CANNED_MANAGERS, 403),
    ("POST", "/admin/macros", CANNED_MANAGERS, 403),
]

API_ROUTES: list[tuple[str, str, tuple[str, ...], int]] = [
    ("GET", "/api/v1/tickets", EVERYONE, 403),
    ("POST", "/api/v1/tickets/search", EVERYONE, 403),
    ("POST", "/api/v1/tickets", API_CREATORS, 403),
    ("GET", "/api/v1/tickets/{health}", EVERYONE, 404),
    ("GET", "/api/v1/tickets/{protection}", PROTECTION, 404),
    # The bot completes only the tickets it created: any other reference is a 404 for it.
    ("PATCH", "/api/v1/tickets/{health}", HUMANS, 404),
    ("PATCH", "/api/v1/tickets/{protection}", PROTECTION, 404),
    ("PATCH", "/api/v1/tickets/{bot_protection}", (*PROTECTION, "service"), 404),
    ("GET", "/api/v1/tickets/{health}/messages", HUMANS, 403),
    # The bot never reads conversations: 403 whatever the reference (it reveals nothing).
    ("GET", "/api/v1/tickets/{protection}/messages", PROTECTION, 404),
    ("GET", "/api/v1/contacts/{sender}/tickets", EVERYONE, 403),
    ("GET", "/api/v1/contacts/{sender}/messages", HUMANS, 403),
    ("POST", "/api/v1/contacts/{sender}/opt-out", BOT_AND_ADMIN, 403),
    ("POST", "/api/v1/contacts/{fresh_sender}/erase", BOT_AND_ADMIN, 403),
    ("POST", "/api/v1/households", API_CREATORS, 403),
    ("GET", "/api/v1/households", API_CREATORS, 403),
    ("POST", "/api/v1/households/search", API_CREATORS, 403),
    # The bot moves its sender's household only (below); people correct any by its number.
    ("PATCH", "/api/v1/households/{household}", HOTLINE, 403),
    ("PATCH", "/api/v1/contacts/{sender}/household", API_CREATORS, 403),
    ("POST", "/api/v1/households/{duplicate}/merge", AUDITORS, 403),
    ("GET", "/api/v1/flows", API_CREATORS, 403),
    ("POST", "/api/v1/flows", API_CREATORS, 403),
    ("GET", "/api/v1/places", EVERYONE, 403),
    ("GET", "/api/v1/places/resolve", EVERYONE, 403),
    ("GET", "/api/v1/places/{code}", EVERYONE, 403),
    ("GET", "/api/v1/partners", HUMANS, 403),
    ("POST", "/api/v1/partners", AUDITORS, 403),
    ("PUT", "/api/v1/partners/{partner}", AUDITORS, 403),
    ("POST", "/api/v1/partners/{partner}/services", AUDITORS, 403),
    ("PUT", "/api/v1/partner-services/{partner_service}", AUDITORS, 403),
    ("GET", "/api/v1/tickets/{health}/consents", HUMANS, 403),
    # The bot records consent on the tickets it created only: another reference is a 404.
    ("POST", "/api/v1/tickets/{health}/consents", HUMANS, 404),
    ("POST", "/api/v1/tickets/{bot_protection}/consents", (*PROTECTION, "service"), 404),
    ("GET", "/api/v1/tickets/{health}/referral-options", HUMANS, 403),
    ("POST", "/api/v1/tickets/{health}/referrals", HUMANS, 403),
    ("GET", "/api/v1/referrals", HUMANS, 403),
    ("GET", "/api/v1/referrals/{referral}", HUMANS, 403),
    ("GET", "/api/v1/broadcasts", AUDITORS, 403),
    ("POST", "/api/v1/broadcasts/preview", AUDITORS, 403),
    ("POST", "/api/v1/broadcasts", AUDITORS, 403),
    # An unknown broadcast: 404 for those who may see broadcasts, 403 for everyone else.
    ("GET", "/api/v1/broadcasts/999999", AUDITORS, 403),
    ("POST", "/api/v1/broadcasts/999999/send", AUDITORS, 403),
    ("POST", "/api/v1/broadcasts/999999/cancel", AUDITORS, 403),
    ("POST", "/api/v1/broadcasts/999999/test", AUDITORS, 403),
]


def _collect_routes() -> set[tuple[str, str]]:
    from fastapi.routing import APIRoute

    from ops_console.routes import router

    found: set[tuple[str, str]] = set()

    def walk(current: Any, prefix: str) -> None:
        for route in current.routes:
            if hasattr(route, "original_router"):
                walk(route.original_router, prefix + (route.include_context.prefix or ""))
            elif isinstance(route, APIRoute):
                for method in route.methods:
                    found.add((method, prefix + route.path))

    walk(router, "")
    return found


def _template(path: str) -> str:
    import re

    path = re.sub(r"\{(health|wash|protection|bot_protection)\}", "{reference}", path)
    path = path.replace("{fresh_sender}", "{sender}")
    path = re.sub(r"\{(household|duplicate)\}", "{household_id}", path)
    path = re.sub(r"\{(partner|partner_service|referral)\}", "{id}", path)
    path = path.replace("/999999", "/{id}")
    return path


ID_PARAMS = (
    "call_id|user_id|token_id|team_id|rule_id|channel_id|message_id|view_id"
    "|organisation_id|service_id|referral_id|broadcast_id"
)


def test_every_route_is_in_the_table() -> None:
    import re

    tabled = {(m, _template(p)) for m, p, _a, _r in PAGE_ROUTES + API_ROUTES}
    actual = {(m, re.sub(rf"\{{({ID_PARAMS})\}}", "{id}", p)) for m, p in _collect_routes()}
    actual = {(m, "/admin/users" if p == "/admin/{section}" else p) for m, p in actual}
    missing = actual - tabled
    assert not missing, f"routes missing from the role table: {sorted(missing)}"


def _setup(db: Any, world: World) -> dict[str, str]:
    from tickets.contacts import get_or_create_contact

    health = new_ticket(db, category="health", phone="+22376111111")
    wash = new_ticket(db, category="wash", phone="+22376222222")
    protection = new_ticket(db, category="protection", phone="+22376333333", sensitive=True)
    bot_protection = new_ticket(
        db,
        category="protection",
        phone="+22376333334",
        sensitive=True,
        actor_label="bot",
        actor_user_id=world["service"].user_id,
    )
    from models.contacts import Contact

    sender = db.get(Contact, health.contact_id).public_id
    fresh = get_or_create_contact(db, "+22376444444").public_id
    from tickets.intake import register_household

    households = [
        register_household(
            db, contact=get_or_create_contact(db, phone), size=3, place_code="ML07"
        ).id
        for phone in ("+22376444445", "+22376444446")
    ]
    from models.enums import ConsentPurpose, ConsentSource
    from tickets import referrals as rules

    partner = rules.save_organisation(
        db,
        None,
        rules.OrganisationInput(name="Partner", referral_method="link", shared_fields=["category"]),
        actor_label="test",
        actor_user_id=None,
    )
    service = rules.save_service(
        db,
        None,
        rules.ServiceInput(
            organisation_id=partner.id, name="Clinic", category="health", place_codes=["ML"]
        ),
        actor_label="test",
        actor_user_id=None,
    )
    assert health.contact_id is not None
    rules.record_consent(
        db,
        contact_id=health.contact_id,
        purpose=ConsentPurpose.SHARE_WITH_PARTNER,
        given=True,
        source=ConsentSource.SMS,
        actor_label="bot",
        ticket=health,
    )
    referral = rules.create_referral(
        db, health, service, rules.Referrer(world["supervisor"].user_id, "test")
    )
    db.commit()
    return {
        "partner": str(partner.id),
        "partner_service": str(service.id),
        "referral": str(referral.id),
        "health": health.reference,
        "wash": wash.reference,
        "protection": protection.reference,
        "bot_protection": bot_protection.reference,
        "sender": sender,
        "fresh_sender": fresh,
        "household": str(households[0]),
        "duplicate": str(households[1]),
        "code": "ML07",
        "action": "cancel",
    }


def _fill(path: str, values: dict[str, str]) -> str:
    for key, value in values.items():
        path = path.replace("{" + key + "}", value)
    return path


_API_BODIES: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/api/v1/tickets"): {"phone": "+22376555555", "category": "health"},
    ("PATCH", "/api/v1/tickets/{health}"): {"note": "vu"},
    ("POST", "/api/v1/tickets/search"): {"phone": "+22376111111"},
    ("PATCH", "/api/v1/tickets/{protection}"): {"household_size": 2},
    ("PATCH", "/api/v1/tickets/{bot_protection}"): {"household_size": 2},
    ("POST", "/api/v1/households"): {"sender": "{sender}", "size": 4, "place": "Gao"},
    ("POST", "/api/v1/households/search"): {"phone": "+22376444445"},
    ("PATCH", "/api/v1/households/{household}"): {"size": 4},
    ("PATCH", "/api/v1/contacts/{sender}/household"): {"place": "Mopti"},
    ("POST", "/api/v1/households/{duplicate}/merge"): {"into": "{household}"},
    ("POST", "/api/v1/partners"): {"name": "Another partner", "referral_method": "link"},
    ("PUT", "/api/v1/partners/{partner}"): {
        "name": "Partner",
        "referral_method": "link",
        "shared_fields": ["category", "place"],
    },
    ("POST", "/api/v1/partners/{partner}/services"): {
        "name": "Mobile clinic",
        "category": "health",
        "places": ["Gao"],
    },
    ("PUT", "/api/v1/partner-services/{partner_service}"): {
        "name": "Clinic",
        "category": "health",
        "places": ["ML"],
    },
    ("POST", "/api/v1/tickets/{health}/consents"): {"purpose": "call_back", "given": True},
    ("POST", "/api/v1/tickets/{bot_protection}/consents"): {
        "purpose": "share_with_partner",
        "given": False,
        "source": "sms",
    },
    ("POST", "/api/v1/tickets/{health}/referrals"): {"service_id": "{partner_service}"},
    ("POST", "/api/v1/broadcasts/preview"): {
        "selection": {"languages": ["fr"]},
        "texts": {"fr": "Distribution demain"},
    },
    ("POST", "/api/v1/broadcasts"): {
        "name": "Distribution",
        "selection": {"languages": ["fr"]},
        "texts": {"fr": "Distribution demain"},
    },
    ("POST", "/api/v1/broadcasts/999999/send"): {},
    ("POST", "/api/v1/broadcasts/999999/test"): {"phone": "+22376555000"},
    ("POST", "/api/v1/flows"): {
        "date": (date.today() - timedelta(days=1)).isoformat(),
        "point_place": "Gao",
        "point_name": "gare routière",
        "destination": "Bamako",
        "people": 12,
        "reason": "conflict",
        "status": "displaced",
    },
}


@pytest.mark.parametrize("role", [None, *HUMANS, "service"])
def test_api_routes_by_role(role: str | None, client: Any, world: World, db: Any) -> None:
    values = _setup(db, world)
    for method, path, allowed, refused in API_ROUTES:
        if path.endswith("/erase"):
            from tickets.contacts import get_or_create_contact

            values["fresh_sender"] = get_or_create_contact(
                db, f"+2237650{len(values):04d}"
            ).public_id
            db.commit()
            values[f"x{len(values)}"] = ""
        url = _fill(path, values)
        body = _API_BODIES.get((method, path))
        if body is not None:
            body = {k: _fill(v, values) if isinstance(v, str) else v for k, v in body.items()}
        params = {"q": "gao"} if path.endswith("/resolve") else None
        headers = world[role].headers if role else {}
        response = client.request(method, url, headers=headers, json=body, params=params)
        if role is None:
            expected = {401}
        elif role in allowed:
            expected = {404} if "999999" in path else {200, 201, 202}
        elif role == "service" and path.endswith("/messages"):
            expected = {403}
        else:
            expected = {refused}
        assert response.status_code in expected, (role, method, url, response.text[:300])


@pytest.mark.parametrize("role", [None, *HUMANS])
def test_page_routes_by_role(role: str | None, browser_client: Any, world: World, db: Any) -> None:
    values = _setup(db, world)
    client = browser_client()
    csrf = login(client, world[role].username) if role else csrf_of(client.get("/login").text)
    for method, path, allowed, refused in PAGE_ROUTES:
        if path in ("/login", "/logout", "/language") and method == "POST":
            continue  # covered by the auth tests (they change the session itself)
        url = _fill(path, values)
        data = {"csrf_token": csrf} if method == "POST" else None
        response = client.request(method, url, data=data, follow_redirects=False)
        if path.startswith("/partner/"):
            # No signed link: refused for everyone, signed in or not (no login redirect).
            assert response.status_code == 403, (role, method, url, response.status_code)
            continue
        if role is None:
            if path in ("/", "/login"):
                assert response.status_code in (200, 303)
                continue
            if method == "POST":
                # Anonymous posts fail the CSRF check (no session) or are sent to login.
                assert response.status_code in (303, 403), (method, url, response.status_code)
            else:
                assert response.status_code == 303, (method, url, response.status_code)
                assert response.headers["location"].startswith("/login")
            continue
        if role in allowed:
            ok = response.status_code not in (401, 403) and response.status_code < 500
            if "999999" in path:
                ok = response.status_code == 404
            assert ok, (role, method, url, response.status_code, response.text[:300])
        else:
            assert response.status_code == refused, (role, method, url, response.status_code)


def test_posts_without_csrf_are_refused(browser_client: Any, world: World, db: Any) -> None:
    values = _setup(db, world)
    client = browser_client()
    login(client, world["admin"].username)
    for method, path, _allowed, _refused in PAGE_ROUTES:
        if method != "POST" or path == "/login":
            continue
        response = client.post(_fill(path, values), data={"csrf_token": "0" * 64})
        assert response.status_code == 403, (path, response.status_code)
