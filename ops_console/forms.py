"""Reading the queue's filters and small form values from query strings and posted forms.

Bad values never crash a page: they are collected as (field, message) pairs and shown inline
next to the field, translated, while the rest of the filters still apply.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from enum import StrEnum
from typing import TypeVar

from starlette.datastructures import ImmutableMultiDict, QueryParams

from core.sanitize import is_id
from models.enums import TicketCategory, TicketPriority, TicketSource, TicketStatus
from ops_console.i18n import N_
from ops_console.queries import SLA_STATES, TicketFilter

E = TypeVar("E", bound=StrEnum)

FILTER_KEYS = (
    "status",
    "category",
    "priority",
    "source",
    "place",
    "team",
    "assignee",
    "sla",
    "from",
    "to",
    "q",
    "phone",
)


def _enum_list(
    params: QueryParams | ImmutableMultiDict[str, str],
    key: str,
    enum: type[E],
    errors: dict[str, str],
) -> list[E]:
    values: list[E] = []
    for raw in params.getlist(key):
        if not raw:
            continue
        try:
            values.append(enum(raw))
        except ValueError:
            errors[key] = N_("Unknown value.")
    return values


def _date(raw: str | None, key: str, errors: dict[str, str]) -> date | None:
    if not raw:
        return None
    try:
        return date.fromisoformat(raw)
    except ValueError:
        errors[key] = N_("Use a date like 2025-01-31.")
        return None


def parse_filters(params: QueryParams) -> tuple[TicketFilter, dict[str, str]]:
    errors: dict[str, str] = {}
    filters = TicketFilter(
        statuses=_enum_list(params, "status", TicketStatus, errors),
        categories=_enum_list(params, "category", TicketCategory, errors),
        priorities=_enum_list(params, "priority", TicketPriority, errors),
        sources=_enum_list(params, "source", TicketSource, errors),
        created_from=_date(params.get("from"), "from", errors),
        created_to=_date(params.get("to"), "to", errors),
        q=(params.get("q") or "").strip()[:100] or None,
        phone=(params.get("phone") or "").strip()[:40] or None,
        place=(params.get("place") or "").strip()[:32] or None,
    )
    team = params.get("team") or ""
    if team:
        if is_id(team):
            filters.team_id = int(team)
        else:
            errors["team"] = N_("Unknown value.")
    assignee = params.get("assignee") or ""
    if assignee:
        if assignee in ("me", "none") or is_id(assignee):
            filters.assignee = assignee
        else:
            errors["assignee"] = N_("Unknown value.")
    sla = params.get("sla") or ""
    if sla:
        if sla in SLA_STATES:
            filters.sla = sla
        else:
            errors["sla"] = N_("Unknown value.")
    return filters, errors


def filter_query(params: Mapping[str, str] | QueryParams, *, drop: tuple[str, ...] = ()) -> str:
    """The filter part of a query string (to carry filters into exports and 'next page')."""
    from urllib.parse import urlencode

    pairs: list[tuple[str, str]] = []
    items = params.multi_items() if isinstance(params, QueryParams) else list(params.items())
    for key, value in items:
        if key in FILTER_KEYS and key not in drop and value:
            pairs.append((key, value))
    return urlencode(pairs)


def form_text(form: ImmutableMultiDict[str, object], key: str, limit: int = 5000) -> str:
    value = form.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""
