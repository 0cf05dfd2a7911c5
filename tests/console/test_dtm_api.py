"""Displacement tracking through /api/v1 (issue 16): the household registry's filters (sender,
phone, as for tickets), origin/status/phones, moves told by the person, merging duplicates,
and flow monitoring's records with their validation."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from tests.console.conftest import World


def _sender(db: Any, phone: str) -> str:
    from tickets.contacts import get_or_create_contact

    contact = get_or_create_contact(db, phone)
    db.commit()
    return contact.public_id


def _register(client: Any, world: World, sender: str, **extra: Any) -> dict[str, Any]:
    body = {"sender": sender, "size": 5, "place": "Mopti", **extra}
    response = client.post("/api/v1/households", headers=world["service"].headers, json=body)
    assert response.status_code == 201, response.text
    return dict(response.json())


def test_households_are_filtered_by_sender_and_phone_like_tickets(
    client: Any, world: World, db: Any
) -> None:
    first = _sender(db, "+22376100001")
    second = _sender(db, "+22376100002")
    _register(client, world, first, origin="Tombouctou", status="displaced")
    _register(client, world, second, size=3, place="Gao")
    headers = world["operator"].headers

    everyone = client.get("/api/v1/households", headers=headers).json()
    assert everyone["total_people"] == 8 and len(everyone["households"]) == 2
    mine = client.get("/api/v1/households", params={"sender": first}, headers=headers).json()
    assert [h["sender"] for h in mine["households"]] == [first]
    assert mine["total_people"] == 5
    assert mine["households"][0]["origin"] == {"code": "ML06", "name": "Tombouctou"}
    assert mine["households"][0]["status"] == "displaced"

    # The number, typed as people type it, only in a body (as for /tickets/search).
    found = client.post(
        "/api/v1/households/search", json={"phone": "76 10 00 02"}, headers=headers
    ).json()
    assert [h["sender"] for h in found["households"]] == [second]
    nobody = client.post(
        "/api/v1/households/search", json={"phone": "+22376999999"}, headers=headers
    ).json()
    assert nobody == {"households": [], "total_people": 0}
    in_url = client.get("/api/v1/households", params={"phone": "+22376100002"}, headers=headers)
    assert in_url.status_code == 400
    assert "/api/v1/households/search" in in_url.json()["detail"]

    bad = client.post(
        "/api/v1/households/search",
        json={"phone": "abc", "sender": "+22376100001"},
        headers=headers,
    )
    assert bad.status_code == 422
    assert "phone:" in bad.json()["detail"] and "sender: not a sender id" in bad.json()["detail"]
    bad_place = client.get("/api/v1/households", params={"place": "NOPE"}, headers=headers)
    assert bad_place.status_code == 422
    assert bad_place.json()["detail"] == "place: unknown place code 'NOPE'"
    unknown = client.get("/api/v1/households", params={"sender": "c_unknown"}, headers=headers)
    assert unknown.json() == {"households": [], "total_people": 0}

    # /tickets takes the same sender filter.
    tickets = client.get("/api/v1/tickets", params={"sender": "76100001"}, headers=headers)
    assert tickets.status_code == 422
    assert tickets.json()["detail"].startswith("sender: not a sender id")


def test_further_phones_reach_the_household(client: Any, world: World, db: Any) -> None:
    sender = _sender(db, "+22376100011")
    household = _register(client, world, sender, phones=["66 10 00 12", "+22390100013"])
    assert household["sender"] == sender
    assert len(household["phones"]) == 3 and household["phones"][0] == sender
    headers = world["operator"].headers
    by_second = client.post(
        "/api/v1/households/search", json={"phone": "+22366100012"}, headers=headers
    ).json()
    assert [h["id"] for h in by_second["households"]] == [household["id"]]
    refused = client.post(
        "/api/v1/households",
        headers=world["service"].headers,
        json={"sender": sender, "size": 5, "place": "Mopti", "phones": ["12"]},
    )
    assert refused.status_code == 422 and refused.json()["detail"].startswith("phones[0]:")
    # Staff add a phone later; the service token may not edit households by id.
    added = client.patch(
        f"/api/v1/households/{household['id']}",
        json={"add_phones": ["+22376100014"], "status": "returnee"},
        headers=headers,
    )
    assert added.status_code == 200, added.text
    assert len(added.json()["phones"]) == 4 and added.json()["status"] == "returnee"
    by_bot = client.patch(
        f"/api/v1/households/{household['id']}", json={"size": 2}, headers=world["service"].headers
    )
    assert by_bot.status_code == 403
    empty = client.patch(f"/api/v1/households/{household['id']}", json={}, headers=headers)
    assert empty.status_code == 422 and empty.json()["detail"].startswith("empty update")
    # A phone of the household registering again updates the same household.
    other_phone = _sender(db, "+22366100012")
    again = _register(client, world, other_phone, size=6)
    assert again["id"] == household["id"] and again["size"] == 6


def test_the_person_reports_a_move_recorded_as_a_movement(
    client: Any, world: World, db: Any
) -> None:
    sender = _sender(db, "+22376100021")
    _register(client, world, sender, size=4, place="Gao", origin="Ménaka")
    bot = world["service"].headers
    moved = client.patch(
        f"/api/v1/contacts/{sender}/household", json={"place": "sevare"}, headers=bot
    )
    assert moved.status_code == 200, moved.text
    assert moved.json()["place"]["name"] == "Sévaré"
    assert moved.json()["origin"]["name"] == "Ménaka"  # where they fled from does not change
    flows = client.get(
        "/api/v1/flows", params={"source": "household"}, headers=world["operator"].headers
    ).json()
    assert flows["total_people"] == 4
    (movement,) = flows["flows"]
    assert movement["origin"]["code"] == "ML07" and movement["destination"]["name"] == "Sévaré"
    assert movement["status"] == "displaced" and movement["date"] == date.today().isoformat()

    home = client.patch(
        f"/api/v1/contacts/{sender}/household",
        json={"place": "Gao", "status": "returnee"},
        headers=bot,
    )
    assert home.json()["status"] == "returnee"
    statuses = [
        f["status"]
        for f in client.get("/api/v1/flows", headers=world["operator"].headers).json()["flows"]
    ]
    assert statuses == ["returning", "displaced"]

    same = client.patch(f"/api/v1/contacts/{sender}/household", json={"place": "Gao"}, headers=bot)
    assert same.status_code == 422 and "already registered there" in same.json()["detail"]
    nowhere = client.patch(
        f"/api/v1/contacts/{sender}/household", json={"place": "zzzzqq"}, headers=bot
    )
    assert nowhere.status_code == 422 and nowhere.json()["detail"].startswith("place:")
    stranger = _sender(db, "+22376100022")
    none = client.patch(
        f"/api/v1/contacts/{stranger}/household", json={"place": "Gao"}, headers=bot
    )
    assert none.status_code == 404


def test_a_supervisor_merges_duplicates_with_an_audit_line(
    client: Any, world: World, db: Any
) -> None:
    from models.audit import AuditLog

    first = _sender(db, "+22376100031")
    second = _sender(db, "+22376100032")
    kept = _register(client, world, first, size=6, place="Gao")
    duplicate = _register(client, world, second, size=6, place="Gao", origin="Ansongo")
    url = f"/api/v1/households/{duplicate['id']}/merge"
    refused = client.post(url, json={"into": kept["id"]}, headers=world["operator"].headers)
    assert refused.status_code == 403
    merged = client.post(url, json={"into": kept["id"]}, headers=world["supervisor"].headers)
    assert merged.status_code == 200, merged.text
    body = merged.json()
    assert body["id"] == kept["id"] and set(body["phones"]) == {first, second}
    assert body["origin"]["name"] == "Ansongo"  # filled from the duplicate
    headers = world["operator"].headers
    listed = client.get("/api/v1/households", headers=headers).json()
    assert [h["id"] for h in listed["households"]] == [kept["id"]]
    assert listed["total_people"] == 6
    by_second = client.get("/api/v1/households", params={"sender": second}, headers=headers)
    assert [h["id"] for h in by_second.json()["households"]] == [kept["id"]]
    line = db.scalar(select(AuditLog).where(AuditLog.action == "household.merged"))
    assert line is not None and line.object_id == str(duplicate["id"])
    assert line.details["into"] == kept["id"] and line.actor_label == "supervisor-user"
    again = client.post(url, json={"into": kept["id"]}, headers=world["supervisor"].headers)
    assert again.status_code == 422 and "already merged" in again.json()["detail"]
    itself = client.post(
        f"/api/v1/households/{kept['id']}/merge",
        json={"into": kept["id"]},
        headers=world["supervisor"].headers,
    )
    assert itself.status_code == 422 and "into itself" in itself.json()["detail"]
    # The person of the merged duplicate registering again updates the household kept.
    again_registered = _register(client, world, second, size=7, place="Gao")
    assert again_registered["id"] == kept["id"]


def test_flows_are_recorded_and_every_problem_named(client: Any, world: World) -> None:
    headers = world["operator"].headers
    flow = {
        "date": (date.today() - timedelta(days=2)).isoformat(),
        "point_place": "sevare",
        "point_name": "Gare routière de Sévaré",
        "origin": "Douentza",
        "destination": "Bamako",
        "people": 37,
        "reason": "conflict",
        "status": "displaced",
    }
    created = client.post("/api/v1/flows", json=flow, headers=headers)
    assert created.status_code == 201, created.text
    assert created.json()["point"]["name"] == "Sévaré"
    assert created.json()["origin"]["code"] == "ML18"
    assert created.json()["source"] == "flow_monitoring"
    assert created.json()["channel"] == "api"
    bad = client.post(
        "/api/v1/flows",
        json={
            **flow,
            "date": (date.today() + timedelta(days=5)).isoformat(),
            "origin": "Bamako",
            "point_place": "zzzzqq",
        },
        headers=headers,
    )
    assert bad.status_code == 422
    assert bad.json()["detail"] == "point_place: no place matches 'zzzzqq'"
    future = client.post(
        "/api/v1/flows",
        json={**flow, "date": (date.today() + timedelta(days=5)).isoformat(), "origin": "Bamako"},
        headers=headers,
    )
    assert future.status_code == 422
    assert future.json()["detail"] == (
        "date: is in the future; destination: is the same place as the origin"
    )
    for field, value, words in (
        ("people", 0, "people: Input should be greater than or equal to 1"),
        ("status", "fleeing", "status: Input should be 'displaced', 'returning' or 'in_transit'"),
        ("point_name", "", "point_name: String should have at least 1 character"),
    ):
        response = client.post("/api/v1/flows", json={**flow, field: value}, headers=headers)
        assert response.status_code == 422 and response.json()["detail"] == words, response.text
    refused = client.post("/api/v1/flows", json=flow, headers=world["team_member"].headers)
    assert refused.status_code == 403
    listed = client.get("/api/v1/flows", params={"destination": "ML00"}, headers=headers).json()
    assert listed["total_people"] == 37 and len(listed["flows"]) == 1
    wrong = client.get("/api/v1/flows", params={"destination": "NOPE"}, headers=headers)
    assert wrong.status_code == 422 and wrong.json()["detail"].startswith("destination:")


def test_flows_and_households_are_in_the_openapi_document(client: Any, world: World) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    assert {"get", "post"} <= set(paths["/api/v1/flows"])
    assert "post" in paths["/api/v1/households/search"]
    assert "patch" in paths["/api/v1/contacts/{sender}/household"]
    assert "post" in paths["/api/v1/households/{household_id}/merge"]
    parameters = {p["name"] for p in paths["/api/v1/households"]["get"]["parameters"]}
    assert "sender" in parameters and "phone" not in parameters
