"""Dashboard, displacement registry and exports: aggregate views, all under the viewer's
visibility rules (protection tickets never counted for those who cannot see them)."""

from __future__ import annotations

import csv
import io
import json
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import lru_cache
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from sqlalchemy import and_, func, not_, select
from sqlalchemy.orm import Session

from core.sanitize import spreadsheet_cell
from core.sqldialect import utc_day
from core.textfold import fold
from models.audit import record_audit
from models.base import utcnow
from models.contacts import Household
from models.enums import PlaceKind, TicketCategory, TicketKind
from models.places import Place
from models.tickets import Ticket
from ops_console.forms import filter_query, parse_filters
from ops_console.permissions import Capability, Viewer, psea_clause
from ops_console.queries import (
    OPEN_STATUSES,
    FilterError,
    filter_conditions,
    hidden_protection_total,
    psea_admin_totals,
    queue_statement,
    real_households_clause,
    real_tickets_clause,
    region_of_places,
    sla_clause,
    sla_state,
)
from ops_console.serializers import TicketLoader
from ops_console.web import PageCtx, render

router = APIRouter(include_in_schema=False)

MAP_FILE = Path(__file__).resolve().parent / "data" / "mali_regions.json"
SUPPRESS_BELOW = 5
EXPORT_ROW_LIMIT = 100_000


# --- map -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MapShape:
    code: str
    points: str  # SVG polygon points
    label_x: float
    label_y: float


@lru_cache(maxsize=1)
def _map_data() -> tuple[tuple[MapShape, ...], dict[str, str]]:
    raw = json.loads(MAP_FILE.read_text(encoding="utf-8"))
    shapes = []
    for code, ring in raw["regions"].items():
        # Equirectangular: x from longitude, y from latitude (north up), 30 px per degree.
        xy = [((lon + 12.5) * 30, (25.3 - lat) * 30) for lon, lat in ring]
        points = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
        cx = sum(x for x, _ in xy) / len(xy)
        cy = sum(y for _, y in xy) / len(xy)
        shapes.append(MapShape(code, points, round(cx, 1), round(cy, 1)))
    return tuple(shapes), dict(raw.get("fold", {}))


def map_shading(
    open_by_region: dict[str, int], names: dict[str, str] | None = None
) -> list[dict[str, Any]]:
    """One item per outline: its region's name, its count (the regions created in 2023
    folded into the one they came from, each named in ``parts`` with its own count, so the
    map's numbers add up to the table's rows) and its shade."""
    shapes, fold = _map_data()
    names = names or {}
    totals: dict[str, int] = defaultdict(int)
    parts: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for code, count in open_by_region.items():
        if not code:
            continue  # no place yet: on no outline (the legend says how many)
        shape_code = fold.get(code, code)
        totals[shape_code] += count
        if count:
            parts[shape_code].append((names.get(code, code), count))
    peak = max(totals.values(), default=0)
    result = []
    for shape in shapes:
        count = totals.get(shape.code, 0)
        # Five steps of one hue: readable in grey print and for colour-blind readers.
        step = 0 if peak == 0 or count == 0 else 1 + min(4, int(4 * count / peak))
        result.append(
            {
                "shape": shape,
                "name": names.get(shape.code, shape.code),
                "count": count,
                "step": step,
                "parts": sorted(parts.get(shape.code, []), key=lambda part: part[0]),
            }
        )
    return result


def map_legend(shading: list[dict[str, Any]]) -> list[dict[str, int]]:
    """The shades in use and the counts each stands for (from the regions shown)."""
    steps: dict[int, list[int]] = defaultdict(list)
    for item in shading:
        steps[item["step"]].append(item["count"])
    return [
        {"step": step, "low": min(counts), "high": max(counts)}
        for step, counts in sorted(steps.items())
    ]


# --- dashboard -------------------------------------------------------------------------------


def _as_date(value: date | datetime | str) -> date:
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def dashboard_data(session: Session, viewer: Viewer) -> dict[str, Any]:
    # PSEA cases are in no aggregate by place, category or day, for anyone (a count by
    # place can point at a person in a small site): one total, for those who see them.
    visible = and_(viewer.ticket_clause(), real_tickets_clause(), not_(psea_clause()))
    now = utcnow()
    by_place = session.execute(
        select(Ticket.place_id, Ticket.category, func.count())
        .where(visible, Ticket.status.in_(OPEN_STATUSES))
        .group_by(Ticket.place_id, Ticket.category)
    ).all()
    regions = region_of_places(session)
    matrix: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    region_names: dict[str, str] = {}
    open_by_region: dict[str, int] = defaultdict(int)
    for place_id, category, count in by_place:
        region = regions.get(place_id) if place_id is not None else None
        code = region.code if region is not None else ""
        region_names[code] = region.name if region is not None else ""
        matrix[code][category.value] += count
        open_by_region[code] += count
    categories = [
        c for c in TicketCategory if c != TicketCategory.PROTECTION or viewer.sees_protection
    ]
    every_region = dict(
        session.execute(select(Place.code, Place.name).where(Place.kind == PlaceKind.REGION))
        .tuples()
        .all()
    )
    shading = map_shading(open_by_region, {**every_region, **region_names})
    rows = sorted(matrix.items(), key=lambda item: (item[0] == "", region_names.get(item[0], "")))
    breaches = session.execute(
        select(Ticket.category, func.count())
        .where(visible, sla_clause("breached", now))
        .group_by(Ticket.category)
    ).all()
    start = (now - timedelta(days=29)).replace(hour=0, minute=0, second=0, microsecond=0)
    day = utc_day(Ticket.created_at)
    trend_rows = session.execute(
        select(day, func.count()).where(visible, Ticket.created_at >= start).group_by(day)
    ).all()
    per_day = {_as_date(d): n for d, n in trend_rows}
    trend = []
    for offset in range(30):
        date_ = (start + timedelta(days=offset)).date()
        trend.append((date_, per_day.get(date_, 0)))
    peak = max((n for _d, n in trend), default=0) or 1
    by_kind = dict(
        session.execute(
            select(Ticket.kind, func.count())
            .where(visible, Ticket.status.in_(OPEN_STATUSES))
            .group_by(Ticket.kind)
        )
        .tuples()
        .all()
    )
    psea_open = None
    if viewer.sees_psea:
        psea_open = int(
            session.scalar(
                select(func.count())
                .select_from(Ticket)
                .where(
                    viewer.psea_ticket_clause(),
                    real_tickets_clause(),
                    Ticket.status.in_(OPEN_STATUSES),
                )
            )
            or 0
        )
    return {
        "kinds": [k for k in TicketKind if k != TicketKind.PSEA],
        "open_by_kind": {k.value: n for k, n in by_kind.items()},
        "psea_open": psea_open,
        "psea_admin": psea_admin_totals(session, viewer),
        "matrix_rows": rows,
        "region_names": region_names,
        "categories": categories,
        "breaches": {c.value: n for c, n in breaches},
        "breach_total": sum(n for _c, n in breaches),
        "trend": trend,
        "trend_peak": peak,
        "open_total": sum(open_by_region.values()),
        "map": shading,
        "map_legend": map_legend(shading),
        # The legend's regions in reading order (accents folded: Ségou before Sikasso).
        "map_rows": sorted((i for i in shading if i["count"]), key=lambda i: fold(i["name"])),
        "unplaced_total": open_by_region.get("", 0),
        "hidden_total": hidden_protection_total(session, viewer),
    }


@router.get("/dashboard")
def dashboard(page: PageCtx) -> Response:
    viewer = page.require(Capability.DASHBOARD)
    return render(page, "dashboard.html", dashboard_data(page.session, viewer))


# --- exports -------------------------------------------------------------------------------


@router.get("/exports")
def exports_page(request: Request, page: PageCtx) -> Response:
    page.require(Capability.EXPORT)
    return render(page, "exports.html", {"query": filter_query(request.query_params)})


EXPORT_COLUMNS = (
    "reference",
    "created_at",
    "status",
    "kind",
    "category",
    "priority",
    "source",
    "region",
    "place",
    "team",
    "assignee",
    "sla_state",
    "phone_masked",
    "summary",
)


def _export_rows(session: Session, request: Request, viewer: Viewer) -> Iterator[list[str]]:
    filters, _errors = parse_filters(request.query_params)
    regions = region_of_places(session)
    statement = (
        queue_statement(session, filters, viewer)
        # PSEA cases never leave in a file, whoever downloads it: a spreadsheet is copied,
        # mailed and forgotten (issue 15).
        .where(real_tickets_clause(), not_(psea_clause()))
        .limit(EXPORT_ROW_LIMIT)
    )
    batch: list[Ticket] = []

    def flush() -> Iterator[list[str]]:
        loader = TicketLoader(session).load(batch)
        for ticket in batch:
            out = loader.ticket_out(ticket)
            region = regions.get(ticket.place_id) if ticket.place_id else None
            yield [
                spreadsheet_cell(value)
                for value in (
                    out.reference,
                    out.created_at.astimezone(UTC).strftime("%Y-%m-%d %H:%M"),
                    out.status.value,
                    out.kind.value,
                    out.category.value,
                    out.priority.value,
                    out.source.value,
                    region.name if region else "",
                    out.place.name if out.place else "",
                    out.team.name if out.team else "",
                    out.assignee.username if out.assignee else "",
                    sla_state(ticket) or "",
                    out.contact.phone_masked if out.contact else "",
                    out.summary or "",
                )
            ]

    for ticket in session.scalars(statement.execution_options(yield_per=1000)):
        batch.append(ticket)
        if len(batch) >= 1000:
            yield from flush()
            batch = []
    if batch:
        yield from flush()


def _audit_export(page: PageCtx, kind: str) -> None:
    viewer = page.user_viewer
    record_audit(
        page.session,
        action="export.downloaded",
        actor_label=viewer.user.username,
        actor_user_id=viewer.user.id,
        kind=kind,
    )
    page.session.commit()


def _validate_filters(request: Request, page: PageCtx, viewer: Viewer) -> None:
    filters, problems = parse_filters(request.query_params)  # dates, sealed phone, ids
    try:
        filter_conditions(page.session, filters, viewer)
    except FilterError as exc:
        problems = {**problems, **exc.problems}
    if problems:
        # An export of a silently wider selection than asked for would be worse than none.
        from fastapi import HTTPException

        raise HTTPException(422, str(FilterError.several(problems)))


def _stamp() -> str:
    return utcnow().strftime("%Y%m%d-%H%M")


@router.get("/exports/queue.csv")
def export_csv(request: Request, page: PageCtx) -> Response:
    viewer = page.require(Capability.EXPORT)
    _validate_filters(request, page, viewer)
    _audit_export(page, "queue.csv")

    # Built in memory (capped at EXPORT_ROW_LIMIT rows): streaming from a request-scoped
    # session would outlive the session's dependency.
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(EXPORT_COLUMNS)
    writer.writerows(_export_rows(page.session, request, viewer))
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="deme-queue-{_stamp()}.csv"'},
    )


@router.get("/exports/queue.xlsx")
def export_xlsx(request: Request, page: PageCtx) -> Response:
    viewer = page.require(Capability.EXPORT)
    _validate_filters(request, page, viewer)
    from openpyxl import Workbook

    workbook = Workbook(write_only=True)
    sheet = workbook.create_sheet("tickets")
    sheet.append(list(EXPORT_COLUMNS))
    for row in _export_rows(page.session, request, viewer):
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    _audit_export(page, "queue.xlsx")
    return Response(
        buffer.getvalue(),
        media_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        headers={"Content-Disposition": f'attachment; filename="deme-queue-{_stamp()}.xlsx"'},
    )


def _suppress(count: int) -> str:
    """Small counts can identify people in a small place: published as "<5"."""
    return f"<{SUPPRESS_BELOW}" if 0 < count < SUPPRESS_BELOW else str(count)


def hxl_aggregate(session: Session, viewer: Viewer) -> list[list[str]]:
    regions = region_of_places(session)
    visible = and_(viewer.ticket_clause(), real_tickets_clause(), not_(psea_clause()))
    totals = session.execute(
        select(
            Ticket.place_id,
            Ticket.category,
            func.count(),
            func.count().filter(Ticket.status.in_(OPEN_STATUSES)),
        )
        .where(visible)
        .group_by(Ticket.place_id, Ticket.category)
    ).all()
    grouped: dict[tuple[str, str, str, str], list[int]] = defaultdict(lambda: [0, 0])
    for place_id, category, count, open_count in totals:
        region = regions.get(place_id) if place_id is not None else None
        key = (
            region.name if region else "",
            (region.iso_code or region.code) if region else "",
            category.value,
            "",
        )
        grouped[key][0] += count
        grouped[key][1] += open_count
    households = session.execute(
        select(
            Household.current_place_id,
            func.count(),
            func.coalesce(func.sum(Household.size), 0),
        )
        .where(real_households_clause(), Household.merged_into_id.is_(None))
        .group_by(Household.current_place_id)
    ).all()
    displaced: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0, 0])
    for place_id, count, people in households:
        region = regions.get(place_id) if place_id is not None else None
        key2 = (region.name if region else "", (region.iso_code or region.code) if region else "")
        displaced[key2][0] += count
        displaced[key2][1] += int(people)
    rows = [
        ["Region", "Region code", "Sector", "Reports", "Open reports", "Households", "People"],
        [
            "#adm1+name",
            "#adm1+code",
            "#sector",
            "#indicator+reports+num",
            "#indicator+reports+open+num",
            "#affected+hh",
            "#affected+ind",
        ],
    ]
    for (region_name, region_code, sector, _), (count, open_count) in sorted(grouped.items()):
        rows.append(
            [region_name, region_code, sector, _suppress(count), _suppress(open_count), "", ""]
        )
    for (region_name, region_code), (count, people) in sorted(displaced.items()):
        rows.append(
            [region_name, region_code, "displacement", "", "", _suppress(count), _suppress(people)]
        )
    return rows


@router.get("/exports/aggregate.hxl.csv")
def export_hxl(page: PageCtx) -> Response:
    viewer = page.require(Capability.EXPORT)
    rows = hxl_aggregate(page.session, viewer)
    _audit_export(page, "aggregate.hxl.csv")
    buffer = io.StringIO()
    csv.writer(buffer).writerows(rows)
    return Response(
        buffer.getvalue(),
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="deme-hxl-{_stamp()}.csv"'},
    )
