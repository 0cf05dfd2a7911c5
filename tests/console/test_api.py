"""/api/v1 through the real app and PostgreSQL: the bot's contract, filters, role rules."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import select

from tests.console.conftest import World, new_ticket


def _contact_id(db: Any, phone: str = "+22376123456") -> str:
    from tickets.contacts import get_or_create_contact

    contact = get_or_create_contact(db, phone)
    db.commit()
    return contact.public_id


def test_requires_a_valid_bearer_token(client: Any, world: World) -> None:
    response = client.get("/api/v1/tickets")
    assert response.status_code == 401
    assert "bearer" in response.json()["detail"]
    response = client.get("/api/v1/tickets", headers={"Authorization": "Bearer nope"})
    assert response.status_code == 401
    assert response.json() == {"detail": "invalid, expired or revoked token"}


def test_bot_creates_a_ticket_with_the_contract_shape(client: Any, world: World, db: Any) -> None:
    sender = _contact_id(db)
    response = client.post(
        "/api/v1/tickets",
        headers=world["service"].headers,
        json={
            "sender": sender,
            "category": "wash",
            "description": "Le forage est en panne depuis 3 jours",
            "place": "sevare",
            "household_size": 7,
            "language": "fr",
            "sensitive": False,
            "callback_ok": True,
        },
    )
    assert response.status_code == 201, response.text
    body = response.json()
    assert set(body) == {"reference", "status", "category", "kind", "place", "household_size"}
    assert body["kind"] == "need"
    assert body["reference"].startswith("T-")
    assert body["category"] == "wash"
    assert body["place"]["name"].startswith("S")  # Sévaré, resolved by the gazetteer
    assert body["household_size"] == 7


def test_unresolvable_place_is_kept_for_review_not_lost(client: Any, world: World, db: Any) -> None:
    sender = _contact_id(db)
    response = client.post(
        "/api/v1/tickets",
        headers=world["service"].headers,
        json={"sender": sender, "category": "health", "place": "xqzwv kkk"},
    )
    assert response.status_code == 201
    assert response.json()["place"] is None
    from models.tickets import Ticket

    ticket = db.scalar(select(Ticket).where(Ticket.reference == response.json()["reference"]))
    assert ticket.needs_review is True


@pytest.mark.parametrize(
    "entity,message,code",
    [
        ("coura", "ji saniyalen te yen medina coura, denmisenw bana", "ML0002002"),
        ("commune", "nous sommes arrives a commune 4 hier, 10 personnes", "ML0004"),
        ("koura", "the water pump is broken in Bamako Koura, we are 13", "ML0003001"),
    ],
)
def test_a_partial_place_from_the_bot_is_found_in_the_whole_message(
    client: Any, world: World, db: Any, entity: str, message: str, code: str
) -> None:
    sender = _contact_id(db)
    headers = world["service"].headers
    response = client.post(
        "/api/v1/tickets",
        headers=headers,
        json={"sender": sender, "category": "wash", "place": entity, "description": message},
    )
    assert response.status_code == 201, response.text
    assert response.json()["place"]["code"] == code
    from models.tickets import Ticket

    ticket = db.scalar(select(Ticket).where(Ticket.reference == response.json()["reference"]))
    assert ticket.needs_review is False
    # The form's answer is resolved the same way when it is a whole sentence.
    resolved = client.get("/api/v1/places/resolve", params={"q": message}, headers=headers)
    assert resolved.json()["match"]["code"] == code


def test_validation_errors_name_the_field(client: Any, world: World, db: Any) -> None:
    sender = _contact_id(db)
    response = client.post(
        "/api/v1/tickets",
        headers=world["service"].headers,
        json={"sender": sender, "category": "weather", "household_size": "many"},
    )
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    assert "category" in detail and "household_size" in detail
    response = client.post(
        "/api/v1/tickets",
        headers=world["service"].headers,
        json={"sender": "c_unknown", "category": "health"},
    )
    assert response.status_code == 404
    assert response.json() == {"detail": "unknown sender 'c_unknown'"}


def test_bot_patch_and_contact_endpoints(client: Any, world: World, db: Any) -> None:
    sender = _contact_id(db)
    headers = world["service"].headers
    created = client.post(
        "/api/v1/tickets", headers=headers, json={"sender": sender, "category": "shelter_nfi"}
    ).json()
    reference = created["reference"]
    response = client.patch(
        f"/api/v1/tickets/{reference}",
        headers=headers,
        json={"place": "Gao", "household_size": 5, "callback_ok": False, "note": "tente"},
    )
    assert response.status_code == 200, response.text
    assert response.json()["place"]["code"] == "ML07"
    assert response.json()["household_size"] == 5
    # The bot may not work the ticket like an operator.
    response = client.patch(
        f"/api/v1/tickets/{reference}", headers=headers, json={"status": "closed"}
    )
    assert response.status_code == 403
    assert "status" in response.json()["detail"]
    listed = client.get(f"/api/v1/contacts/{sender}/tickets", headers=headers).json()
    assert [t["reference"] for t in listed["tickets"]] == [reference]
    assert set(listed["tickets"][0]) == {"reference", "category", "status", "updated_at"}
    assert client.post(f"/api/v1/contacts/{sender}/opt-out", headers=headers).json() == {"ok": True}
    response = client.post(f"/api/v1/contacts/{sender}/erase", headers=headers)
    assert response.status_code == 202
    assert response.json() == {"ok": True}


def test_bot_status_list_reports_a_sensitive_case_as_protection(
    client: Any, world: World, db: Any
) -> None:
    """What the bot turns into the sender's status SMS never names a sensitive case's
    category (a health ticket flagged sensitive, a PSEA report): it is "protection", which the
    bot words neutrally."""
    sender = _contact_id(db)
    headers = world["service"].headers
    ordinary = client.post(
        "/api/v1/tickets", headers=headers, json={"sender": sender, "category": "wash"}
    ).json()["reference"]
    sensitive = client.post(
        "/api/v1/tickets",
        headers=headers,
        json={"sender": sender, "category": "health", "sensitive": True},
    )
    assert sensitive.status_code == 201, sensitive.text
    listed = client.get(f"/api/v1/contacts/{sender}/tickets", headers=headers).json()
    categories = {t["reference"]: t["category"] for t in listed["tickets"]}
    assert categories == {ordinary: "wash", sensitive.json()["reference"]: "protection"}


def test_households_and_places(client: Any, world: World, db: Any) -> None:
    sender = _contact_id(db)
    headers = world["service"].headers
    response = client.post(
        "/api/v1/households",
        headers=headers,
        json={
            "sender": sender,
            "size": 6,
            "place": "Mopti",
            "origin": "Tombouctou",
            "language": "fr",
        },
    )
    assert response.status_code == 201, response.text
    assert response.json()["size"] == 6
    assert response.json()["origin"]["code"] == "ML06"
    resolved = client.get("/api/v1/places/resolve", params={"q": "tbk"}, headers=headers).json()
    assert resolved["match"]["code"] == "ML06"
    assert 0 < resolved["match"]["confidence"] <= 1
    assert client.get("/api/v1/places/resolve", params={"q": "zzzzzz"}, headers=headers).json() == {
        "match": None
    }
    listed = client.get("/api/v1/households", headers=world["operator"].headers).json()
    assert listed["total_people"] == 6
    regions = client.get(
        "/api/v1/places", params={"kind": "region"}, headers=world["operator"].headers
    ).json()
    assert len(regions) == 20
    assert client.get("/api/v1/places/ML07", headers=headers).json()["name"] == "Gao"
    assert client.get("/api/v1/places/NOPE", headers=headers).status_code == 404


def test_ticket_list_filters_and_keyset_pages(client: Any, world: World, db: Any) -> None:
    for index in range(7):
        new_ticket(
            db, category="health", phone=f"+2237612345{index}", description=f"fièvre {index}"
        )
    new_ticket(db, category="wash", phone="+22366000001", description="forage cassé")
    headers = world["operator"].headers
    page = client.get("/api/v1/tickets", params={"limit": 3}, headers=headers).json()
    assert len(page["tickets"]) == 3 and page["next_cursor"]
    seen = [t["reference"] for t in page["tickets"]]
    while page["next_cursor"]:
        page = client.get(
            "/api/v1/tickets", params={"limit": 3, "cursor": page["next_cursor"]}, headers=headers
        ).json()
        seen += [t["reference"] for t in page["tickets"]]
    assert len(seen) == len(set(seen)) == 8
    wash = client.get("/api/v1/tickets", params={"category": "wash"}, headers=headers).json()
    assert [t["category"] for t in wash["tickets"]] == ["wash"]
    by_phone = client.post(
        "/api/v1/tickets/search", json={"phone": "66 00 00 01"}, headers=headers
    ).json()
    assert [t["description"] for t in by_phone["tickets"]] == ["forage cassé"]
    assert by_phone["tickets"][0]["contact"]["phone_masked"].endswith("01")
    assert "66000001" not in str(by_phone)
    by_text = client.get("/api/v1/tickets", params={"q": "fièvre 3"}, headers=headers).json()
    assert len(by_text["tickets"]) == 1
    ref = by_text["tickets"][0]["reference"]
    by_ref = client.get("/api/v1/tickets", params={"q": ref.lower()}, headers=headers).json()
    assert [t["reference"] for t in by_ref["tickets"]] == [ref]
    in_gao = client.get("/api/v1/tickets", params={"place": "ML07"}, headers=headers).json()
    assert len(in_gao["tickets"]) == 8
    bad = client.post("/api/v1/tickets/search", json={"phone": "abc"}, headers=headers)
    assert bad.status_code == 422 and bad.json()["detail"].startswith("phone:")
    assert "abc" not in bad.json()["detail"]  # input is never echoed (it reaches logs)
    both = client.post(
        "/api/v1/tickets/search",
        json={"phone": "66 00 00 01", "category": ["wash"]},
        headers=headers,
    ).json()
    assert [t["description"] for t in both["tickets"]] == ["forage cassé"]
    assert (
        client.get("/api/v1/tickets", params={"cursor": "xx"}, headers=headers).status_code == 422
    )


def test_phone_in_the_ticket_list_url_is_refused_pointing_to_the_post(
    client: Any, world: World, db: Any
) -> None:
    new_ticket(db, category="wash", phone="+22366000001", description="forage cassé")
    headers = world["operator"].headers
    response = client.get("/api/v1/tickets", params={"phone": "66000001"}, headers=headers)
    assert response.status_code == 400
    detail = response.json()["detail"]
    assert "/api/v1/tickets/search" in detail and "66000001" not in detail
    found = client.post(
        "/api/v1/tickets/search", json={"phone": "+223 66 00 00 01"}, headers=headers
    )
    assert found.status_code == 200
    assert [t["description"] for t in found.json()["tickets"]] == ["forage cassé"]
    unknown = client.post("/api/v1/tickets/search", json={"colour": "red"}, headers=headers)
    assert unknown.status_code == 422  # a misspelt filter is named, not silently ignored


def test_operator_works_a_ticket_through_patch(client: Any, world: World, db: Any) -> None:
    ticket = new_ticket(db, category="health")
    headers = world["operator"].headers
    response = client.patch(
        f"/api/v1/tickets/{ticket.reference}",
        headers=headers,
        json={"status": "in_progress", "priority": "urgent", "assignee": "operator-user"},
    )
    assert response.status_code == 200, response.text
    full = client.get(f"/api/v1/tickets/{ticket.reference}", headers=headers).json()
    assert full["status"] == "in_progress"
    assert full["priority"] == "urgent"
    assert full["assignee"]["username"] == "operator-user"
    bad = client.patch(
        f"/api/v1/tickets/{ticket.reference}", headers=headers, json={"team": "nope"}
    )
    assert bad.status_code == 422 and "team" in bad.json()["detail"]


def test_protection_tickets_are_invisible_except_to_protection_officers(
    client: Any, world: World, db: Any
) -> None:
    secret = new_ticket(db, category="protection", description="violence", sensitive=True)
    visible = new_ticket(db, category="health", phone="+22376000002")
    for role in ("admin", "supervisor", "operator", "service"):
        headers = world[role].headers
        listed = client.get("/api/v1/tickets", headers=headers).json()["tickets"]
        assert secret.reference not in {t["reference"] for t in listed}, role
        response = client.get(f"/api/v1/tickets/{secret.reference}", headers=headers)
        assert response.status_code == 404, role
        assert response.json() == {"detail": f"no ticket {secret.reference!r}"}
        messages = client.get(f"/api/v1/tickets/{secret.reference}/messages", headers=headers)
        assert messages.status_code in (403, 404), role
    officer = world["protection_officer"].headers
    listed = client.get("/api/v1/tickets", headers=officer).json()["tickets"]
    assert {secret.reference, visible.reference} <= {t["reference"] for t in listed}
    assert client.get(f"/api/v1/tickets/{secret.reference}", headers=officer).status_code == 200
    # The bot may still complete the protection report it created — only that one.
    service = world["service"].headers
    own = client.post(
        "/api/v1/tickets",
        headers=service,
        json={"phone": "+22376000009", "category": "protection", "sensitive": True},
    ).json()["reference"]
    response = client.patch(f"/api/v1/tickets/{own}", headers=service, json={"household_size": 3})
    assert response.status_code == 200
    response = client.patch(
        f"/api/v1/tickets/{secret.reference}", headers=service, json={"household_size": 3}
    )
    assert response.status_code == 404


def test_team_members_see_only_their_teams_tickets(client: Any, world: World, db: Any) -> None:
    health = new_ticket(db, category="health")
    wash = new_ticket(db, category="wash", phone="+22376000003")
    headers = world["team_member"].headers
    listed = client.get("/api/v1/tickets", headers=headers).json()["tickets"]
    assert [t["reference"] for t in listed] == [health.reference]
    assert client.get(f"/api/v1/tickets/{wash.reference}", headers=headers).status_code == 404
    response = client.patch(
        f"/api/v1/tickets/{wash.reference}", headers=headers, json={"note": "x"}
    )
    assert response.status_code == 404


def test_messages_by_ticket_and_contact(client: Any, world: World, db: Any) -> None:
    from models.enums import MessageDirection, MessageStatus
    from models.messages import Message

    ticket = new_ticket(db, category="health")
    db.add(
        Message(
            channel_id=world.simulator_channel_id,
            contact_id=ticket.contact_id,
            ticket_id=ticket.id,
            direction=MessageDirection.INBOUND,
            provider_id="m1",
            body="<script>alert(1)</script>",
            status=MessageStatus.HANDLED,
        )
    )
    db.commit()
    headers = world["operator"].headers
    by_ticket = client.get(f"/api/v1/tickets/{ticket.reference}/messages", headers=headers).json()
    assert by_ticket["messages"][0]["body"] == "<script>alert(1)</script>"
    from models.contacts import Contact

    sender = db.get(Contact, ticket.contact_id).public_id
    by_contact = client.get(f"/api/v1/contacts/{sender}/messages", headers=headers).json()
    assert by_contact["messages"][0]["ticket"] == ticket.reference
    # The bot has no business reading conversations.
    assert (
        client.get(
            f"/api/v1/contacts/{sender}/messages", headers=world["service"].headers
        ).status_code
        == 403
    )


def test_revoked_token_stops_working(client: Any, world: World, db: Any) -> None:
    from models.users import ApiToken
    from ops_console.auth import revoke_api_token

    token = db.scalar(select(ApiToken).where(ApiToken.user_id == world["operator"].user_id))
    revoke_api_token(db, token, actor_label="test", actor_user_id=None)
    db.commit()
    assert client.get("/api/v1/tickets", headers=world["operator"].headers).status_code == 401


def test_openapi_documents_the_api(client: Any) -> None:
    schema = client.get("/api/openapi.json").json()
    assert "/api/v1/tickets" in schema["paths"]
    assert "/api/v1/places/resolve" in schema["paths"]
    assert not any(path.startswith("/queue") for path in schema["paths"])
