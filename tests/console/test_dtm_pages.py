"""Displacement tracking in the console (issue 16): the registry in words and by hierarchy,
merging duplicates, the enumerators' flow form, flows per week and arrivals, and the
DTM-shaped CSV export (p-codes, HXL row, small cells suppressed, BOM)."""

from __future__ import annotations

import csv
import html
import io
from datetime import date, timedelta
from typing import Any

from sqlalchemy import select

from tests.console.conftest import World, login


def _household(db: Any, phone: str, *, place: str, origin: str | None, size: int) -> int:
    from tickets.contacts import get_or_create_contact
    from tickets.intake import register_household

    household = register_household(
        db,
        contact=get_or_create_contact(db, phone),
        size=size,
        place_code=place,
        origin_code=origin,
        displaced_since=date(2026, 10, 3),
    )
    db.commit()
    return int(household.id)


def _text(response: Any) -> str:
    return html.unescape(response.text)


def test_registry_shows_origins_in_words_and_places_by_hierarchy(
    browser_client: Any, world: World, db: Any
) -> None:
    _household(db, "+22376200001", place="ML0501002", origin="ML1801", size=6)
    _household(db, "+22376200002", place="ML0501002", origin=None, size=3)
    client = browser_client()
    login(client, world["operator"].username)
    page = _text(client.get("/registry"))
    assert "Mopti › Sévaré" in page  # region › … › site, each name once
    assert "Douentza" in page and "origine non indiquée" in page
    assert "inconnu" not in page and "unknown" not in page
    assert "2 ménages" in page and "9 personnes" in page
    # Operators see the registry but not the merge form.
    assert "Fusionner des ménages en double" not in page


def test_a_supervisor_merges_duplicates_from_the_registry(
    browser_client: Any, world: World, db: Any
) -> None:
    from models.audit import AuditLog
    from models.contacts import Household

    kept = _household(db, "+22376200011", place="ML0701", origin="ML0702", size=5)
    duplicate = _household(db, "+22376200012", place="ML0701", origin="ML0702", size=5)
    operator = browser_client()
    csrf = login(operator, world["operator"].username)
    refused = operator.post(
        "/registry/merge", data={"csrf_token": csrf, "duplicate": duplicate, "into": kept}
    )
    assert refused.status_code == 403

    client = browser_client()
    csrf = login(client, world["supervisor"].username)
    page = _text(client.get("/registry"))
    assert "2 ménages" in page and "Fusionner des ménages en double" in page
    wrong = client.post(
        "/registry/merge", data={"csrf_token": csrf, "duplicate": duplicate, "into": "99999"}
    )
    assert wrong.status_code == 422
    assert "Aucun ménage ne porte ce numéro." in _text(wrong)
    itself = client.post(
        "/registry/merge", data={"csrf_token": csrf, "duplicate": kept, "into": kept}
    )
    assert "Un ménage ne peut pas être fusionné avec lui-même." in _text(itself)
    merged = client.post(
        "/registry/merge", data={"csrf_token": csrf, "duplicate": duplicate, "into": kept}
    )
    assert merged.status_code == 200  # followed the redirect
    page = _text(merged)
    assert f"Le ménage {duplicate} a été fusionné." in page
    assert "1 ménage" in page and "5 personnes" in page
    db.expire_all()
    assert db.get(Household, duplicate).merged_into_id == kept
    line = db.scalar(select(AuditLog).where(AuditLog.action == "household.merged"))
    assert line is not None and line.details["into"] == kept
    audit = _text(client.get("/admin/audit"))
    assert "household.merged" in audit


def _flow_form(csrf: str, **changes: Any) -> dict[str, Any]:
    form = {
        "csrf_token": csrf,
        "date": (date.today() - timedelta(days=1)).isoformat(),
        "point_place": "sevare",
        "point_name": "Gare routière",
        "origin": "Douentza",
        "destination": "ML00",
        "people": "42",
        "status": "displaced",
        "reason": "conflict",
    }
    form.update(changes)
    return form


def test_an_enumerator_records_flows_and_sees_them_per_week(
    browser_client: Any, world: World, db: Any
) -> None:
    client = browser_client()
    csrf = login(client, world["operator"].username)
    recorded = client.post("/flows", data=_flow_form(csrf))
    assert recorded.status_code == 200, recorded.text[:500]
    page = _text(recorded)
    assert "Le flux a été enregistré." in page
    assert "Gare routière (Mopti › Sévaré)" in page
    assert "déplacés" in page and "conflit, insécurité" in page
    client.post("/flows", data=_flow_form(csrf, people="8", status="returning", reason="family"))
    page = _text(client.get("/flows"))
    # One origin → destination line per week: 42 + 8 people, two records.
    week = date.today() - timedelta(days=1)
    monday = week - timedelta(days=week.weekday())
    assert (
        f"<td>{monday.isoformat()}</td><td>Douentza</td><td>Bamako</td><td>50</td><td>2</td>"
        in (page.replace("\n", ""))
    )
    assert "Bamako</td><td>50</td>" in page  # arrivals by place
    # The chart: a bar per status of that week, its count in words on hover.
    assert f"{monday.isoformat()} · déplacés: 42" in page
    assert f"{monday.isoformat()} · de retour: 8" in page
    assert "Télécharger les flux" not in page  # operators do not export

    refused = client.post(
        "/flows",
        data=_flow_form(
            csrf,
            date=(date.today() + timedelta(days=9)).isoformat(),
            point_name="",
            destination="Douentza",
            people="beaucoup",
            status="",
        ),
    )
    assert refused.status_code == 422
    page = _text(refused)
    assert "Rien n'a été enregistré : corrigez les champs signalés ci-dessous." in page
    for words in (
        "Un nombre de personnes entre 1 et 100 000.",
        "Nommez le point d'entrée ou de transit.",
        "Choisissez : déplacés, de retour ou en transit.",
    ):
        assert words in page, words
    assert 'value="beaucoup"' in refused.text  # what was typed stays in its box
    wrong_day = client.post(
        "/flows",
        data=_flow_form(csrf, date=(date.today() + timedelta(days=9)).isoformat(), origin="ML00"),
    )
    page = _text(wrong_day)
    assert "Indiquez le jour du comptage, pas dans le futur." in page
    assert "Choisissez où ils vont (pas d'où ils viennent)." in page
    team_member = browser_client()
    login(team_member, world["team_member"].username)
    assert team_member.get("/flows").status_code == 403


def test_the_dtm_export_has_pcodes_hxl_tags_and_suppressed_small_cells(
    browser_client: Any, world: World, db: Any
) -> None:
    client = browser_client()
    csrf = login(client, world["supervisor"].username)
    client.post("/flows", data=_flow_form(csrf, people="37", origin="ML1801"))  # the cercle
    client.post(
        "/flows",
        data=_flow_form(csrf, people="3", origin="Ansongo", destination="Gao", status="in_transit"),
    )
    response = client.get("/exports/flows.csv")
    assert response.status_code == 200
    assert response.content.startswith("\ufeff".encode())
    rows = list(csv.reader(io.StringIO(response.content.decode("utf-8-sig"))))
    header, tags, *data = rows
    assert header[0] == "Week start" and tags[0] == "#date+start"
    assert "#affected+ind" in tags and "#adm1+dest+code" in tags and "#meta+suppressed" in tags
    by_tag = [dict(zip(tags, row, strict=True)) for row in data]
    big = next(r for r in by_tag if r["#status"] == "displaced")
    assert big["#affected+ind"] == "37" and big["#meta+suppressed"] == ""
    assert big["#adm1+code"] == "ML05" and big["#adm2+code"] == "ML0501"
    assert big["#adm1+origin+code"] == "ML18" and big["#adm2+origin+code"] == "ML1801"
    assert big["#adm1+dest+code"] == "ML00" and big["#adm1+dest+name"] == "Bamako"
    assert big["#loc+name"] == "Gare routière" and big["#description+reason"] == "conflict"
    start = date.fromisoformat(big["#date+start"])
    assert start.weekday() == 0 and big["#date+end"] == (start + timedelta(days=6)).isoformat()
    small = next(r for r in by_tag if r["#status"] == "in_transit")
    assert small["#affected+ind"] == "" and small["#indicator+records+num"] == ""
    assert small["#meta+suppressed"] == "1"
    assert small["#adm1+origin+code"] == "ML07" and small["#adm2+origin+code"] == "ML0702"
    operator = browser_client()
    login(operator, world["operator"].username)
    assert operator.get("/exports/flows.csv").status_code == 403


def test_the_flow_pages_speak_english_too(browser_client: Any, world: World) -> None:
    client = browser_client()
    csrf = login(client, world["operator"].username)
    client.post("/language", data={"csrf_token": csrf, "language": "en", "next": "/flows"})
    page = _text(client.get("/flows"))
    assert "Record a flow" in page and "Entry or transit point" in page
    assert "conflict, insecurity" in page and "in transit" in page
    assert "Suivi des flux" not in page
