"""Displacement tracking's aggregate views: the registry by place (in words, by hierarchy),
flows per week (origin → destination), arrivals by place, and the DTM-shaped export.

Simulator households and movements are left out everywhere (field data only). The same SQL
runs on SQLite and PostgreSQL: weekly buckets come from ``core.sqldialect.week_start``.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, timedelta
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.sqldialect import week_start
from models.base import utcnow
from models.contacts import Household
from models.enums import HouseholdStatus, MovementStatus, PlaceKind
from models.movements import Movement
from models.places import Place
from ops_console.queries import real_households_clause
from tickets.households import active_households_clause

SUPPRESS_BELOW = 5
WEEKS_SHOWN = 12


def _as_date(value: date | str) -> date:
    return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])


@dataclass(frozen=True)
class AdminLevels:
    """A place's administrative parents: region (adm1), cercle or Bamako commune (adm2),
    commune (adm3) and the place itself."""

    adm1: Place | None
    adm2: Place | None
    adm3: Place | None
    place: Place


class PlaceTree:
    """Every place, loaded once (they number in the hundreds): parents walked in Python."""

    def __init__(self, session: Session) -> None:
        self.places = {place.id: place for place in session.scalars(select(Place))}

    def chain(self, place_id: int | None) -> list[Place]:
        """From the region down to the place (the country left out)."""
        chain: list[Place] = []
        current = self.places.get(place_id) if place_id else None
        while current is not None and len(chain) < 10:
            if current.kind != PlaceKind.COUNTRY:
                chain.append(current)
            current = self.places.get(current.parent_id) if current.parent_id else None
        return list(reversed(chain))

    def levels(self, place_id: int | None) -> AdminLevels | None:
        chain = self.chain(place_id)
        if not chain:
            return None
        adm1 = chain[0] if chain[0].kind == PlaceKind.REGION else None
        adm2 = chain[1] if len(chain) > 1 else None
        adm3 = next(
            (p for p in chain[2:] if p.kind == PlaceKind.COMMUNE),
            None,
        )
        return AdminLevels(adm1, adm2, adm3, chain[-1])

    def path(self, place_id: int | None) -> str:
        """ "Mopti › Mopti › Mopti › Sévaré": names from the region down, each said once
        when a place has the name of its parent (Gao region › Gao cercle → "Gao")."""
        names: list[str] = []
        for place in self.chain(place_id):
            if not names or names[-1] != place.name:
                names.append(place.name)
        return " › ".join(names)

    def region(self, place_id: int | None) -> Place | None:
        chain = self.chain(place_id)
        return chain[0] if chain else None


# --- registry ---------------------------------------------------------------------------------


def registry_data(session: Session) -> dict[str, Any]:
    tree = PlaceTree(session)
    counted = (real_households_clause(), active_households_clause())
    by_place = session.execute(
        select(
            Household.current_place_id,
            func.count(),
            func.coalesce(func.sum(Household.size), 0),
        )
        .where(*counted)
        .group_by(Household.current_place_id)
    ).all()
    rows = [
        {
            "path": tree.path(place_id),
            "kind": tree.places[place_id].kind.value if place_id in tree.places else "",
            "households": households,
            "people": int(people),
        }
        for place_id, households, people in by_place
    ]
    rows.sort(key=lambda r: (r["path"] == "", r["path"]))
    origins_raw = session.execute(
        select(
            Household.origin_place_id,
            Household.current_place_id,
            func.count(),
            func.coalesce(func.sum(Household.size), 0),
        )
        .where(*counted)
        .group_by(Household.origin_place_id, Household.current_place_id)
    ).all()
    origins: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for origin_id, current_id, households, people in origins_raw:
        current = tree.region(current_id)
        key = (tree.path(origin_id), current.name if current else "")
        origins[key][0] += households
        origins[key][1] += int(people)
    by_status: dict[HouseholdStatus | None, Any] = dict(
        session.execute(
            select(Household.status, func.coalesce(func.sum(Household.size), 0))
            .where(*counted)
            .group_by(Household.status)
        )
        .tuples()
        .all()
    )
    recent = list(
        session.scalars(select(Household).where(*counted).order_by(Household.id.desc()).limit(50))
    )
    return {
        "rows": rows,
        "origins": sorted(origins.items(), key=lambda item: (-item[1][1], item[0])),
        "statuses": [(status.value, int(by_status.get(status, 0))) for status in HouseholdStatus]
        + [("", int(by_status.get(None, 0)))],
        "recent": [
            {
                "id": h.id,
                "size": h.size,
                "place": tree.path(h.current_place_id),
                "origin": tree.path(h.origin_place_id),
                "status": h.status.value if h.status else "",
                "displaced_since": h.displaced_since,
            }
            for h in recent
        ],
        "total_households": sum(r["households"] for r in rows),
        "total_people": sum(r["people"] for r in rows),
    }


# --- flows ------------------------------------------------------------------------------------


def _weeks(today: date, count: int = WEEKS_SHOWN) -> list[date]:
    monday = today - timedelta(days=today.weekday())
    return [monday - timedelta(weeks=n) for n in range(count - 1, -1, -1)]


def flow_rows(session: Session, since: date) -> list[tuple[date, int | None, int, str, int, int]]:
    """(week, origin id, destination id, status, people, records) of field movements since
    ``since``: flows counted at monitoring points and households' own moves."""
    week = week_start(Movement.observed_on)
    statement = (
        select(
            week,
            Movement.origin_place_id,
            Movement.destination_place_id,
            Movement.status,
            func.sum(Movement.people),
            func.count(),
        )
        .where(Movement.is_test.is_(False), Movement.observed_on >= since)
        .group_by(week, Movement.origin_place_id, Movement.destination_place_id, Movement.status)
    )
    return [
        (_as_date(w), origin, destination, MovementStatus(status).value, int(people), int(n))
        for w, origin, destination, status, people, n in session.execute(statement)
    ]


def flows_dashboard(session: Session) -> dict[str, Any]:
    tree = PlaceTree(session)
    weeks = _weeks(utcnow().date())
    raw = flow_rows(session, weeks[0])
    table: dict[tuple[date, str, str], list[int]] = defaultdict(lambda: [0, 0])
    per_week: dict[date, dict[str, int]] = {w: defaultdict(int) for w in weeks}
    arrivals: dict[int, list[int]] = defaultdict(lambda: [0, 0])
    for week, origin_id, destination_id, status, people, records in raw:
        origin = tree.region(origin_id)
        destination = tree.region(destination_id)
        key = (week, origin.name if origin else "", destination.name if destination else "")
        table[key][0] += people
        table[key][1] += records
        if week in per_week:
            per_week[week][status] += people
        arrivals[destination_id][0] += people
        arrivals[destination_id][1] += records
    peak = max((sum(v.values()) for v in per_week.values()), default=0) or 1
    chart = []
    for index, week in enumerate(weeks):
        y = 120.0
        bars = []
        for status in MovementStatus:
            people = per_week[week].get(status.value, 0)
            height = round(people / peak * 110, 1)
            y -= height
            bars.append({"status": status.value, "people": people, "y": round(y, 1), "h": height})
        chart.append({"week": week, "x": index * 50 + 4, "bars": bars})
    return {
        "weeks": weeks,
        "flow_table": sorted(
            table.items(), key=lambda item: (item[0][0], -item[1][0]), reverse=True
        ),
        "chart": chart,
        "arrivals": sorted(
            ((tree.path(place_id), totals) for place_id, totals in arrivals.items()),
            key=lambda item: (-item[1][0], item[0]),
        ),
        "statuses": [s.value for s in MovementStatus],
    }


# --- the DTM-shaped export ------------------------------------------------------------------

DTM_FLOW_HEADERS = (
    (
        "Week start",
        "Week end",
        "Monitoring point",
        "Point admin 1",
        "Point admin 1 p-code",
        "Point admin 2",
        "Point admin 2 p-code",
        "Origin admin 1",
        "Origin admin 1 p-code",
        "Origin admin 2",
        "Origin admin 2 p-code",
        "Destination admin 1",
        "Destination admin 1 p-code",
        "Destination admin 2",
        "Destination admin 2 p-code",
        "Population status",
        "Reason",
        "Individuals",
        "Records",
        "Suppressed (<5)",
    ),
    (
        "#date+start",
        "#date+end",
        "#loc+name",
        "#adm1+name",
        "#adm1+code",
        "#adm2+name",
        "#adm2+code",
        "#adm1+origin+name",
        "#adm1+origin+code",
        "#adm2+origin+name",
        "#adm2+origin+code",
        "#adm1+dest+name",
        "#adm1+dest+code",
        "#adm2+dest+name",
        "#adm2+dest+code",
        "#status",
        "#description+reason",
        "#affected+ind",
        "#indicator+records+num",
        "#meta+suppressed",
    ),
)


def dtm_flow_rows(session: Session) -> list[list[str]]:
    """Flows per week, monitoring point, origin and destination (admin 1 and 2, the project's
    place codes throughout: ``ML05``, ``ML0501``), population status and reason; a count
    under five is left empty and flagged, so a small group cannot be picked out."""
    tree = PlaceTree(session)
    week = week_start(Movement.observed_on)
    statement = (
        select(
            week,
            Movement.point_place_id,
            Movement.point_name,
            Movement.origin_place_id,
            Movement.destination_place_id,
            Movement.status,
            Movement.reason,
            func.sum(Movement.people),
            func.count(),
        )
        .where(Movement.is_test.is_(False))
        .group_by(
            week,
            Movement.point_place_id,
            Movement.point_name,
            Movement.origin_place_id,
            Movement.destination_place_id,
            Movement.status,
            Movement.reason,
        )
    )
    grouped: dict[tuple[str, ...], list[int]] = defaultdict(lambda: [0, 0])
    for (
        monday,
        point_id,
        point_name,
        origin_id,
        destination_id,
        status,
        reason,
        people,
        n,
    ) in session.execute(statement):
        start = _as_date(monday)
        cells: list[str] = [start.isoformat(), (start + timedelta(days=6)).isoformat()]
        cells.append(point_name or "")
        for place_id in (point_id, origin_id, destination_id):
            levels = tree.levels(place_id)
            for place in (levels.adm1, levels.adm2) if levels else (None, None):
                cells += [place.name, place.code] if place else ["", ""]
        cells += [MovementStatus(status).value, reason.value if reason else ""]
        grouped[tuple(cells)][0] += int(people)
        grouped[tuple(cells)][1] += int(n)
    rows: list[list[str]] = []
    for key, (people, records) in sorted(grouped.items()):
        small = people < SUPPRESS_BELOW
        rows.append(
            [
                *key,
                "" if small else str(people),
                "" if small else str(records),
                "1" if small else "",
            ]
        )
    return rows
