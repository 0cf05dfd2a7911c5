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
from models.enums import TicketCategory, TicketKind, TicketPriority, TicketSource, TicketStatus
from ops_console.i18n import N_
from ops_console.queries import SLA_STATES, TicketFilter

E = TypeVar("E", bound=StrEnum)

FILTER_KEYS = (
    "status",
    "category",
    "kind",
    "priority",
    "source",
    "place",
    "team",
    "assignee",
    "sla",
    "awaiting",
    "from",
    "to",
    "q",
    "phone_token",
    "sort",
    "view",  # "custom": the person chose these filters (no filter at all means "all")
)

# The sender's-phone filter never travels in a URL (access logs, proxies, browser history):
# the form is posted, and the URL carries an opaque token instead — the typed text sealed by
# core.crypto.seal (Fernet, randomised: two searches for one number do not look alike; its
# own key, so it cannot decrypt stored numbers; valid as long as a console session).
PHONE_TOKEN = "phone_token"
_PHONE_TOKEN_PURPOSE = "console-phone-filter"
_PHONE_TOKEN_MAX_AGE = 12 * 3600


def phone_token(text: str) -> str:
    from core.crypto import seal

    return seal(text, _PHONE_TOKEN_PURPOSE)


def _phone_from_token(raw: str | None, errors: dict[str, str]) -> str | None:
    if not raw:
        return None
    from core.crypto import DecryptionError, unseal

    try:
        text = unseal(raw[:500], _PHONE_TOKEN_PURPOSE, max_age_seconds=_PHONE_TOKEN_MAX_AGE)
    except DecryptionError:
        errors["phone"] = N_("Unknown value.")
        return None
    return text.strip()[:40] or None


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


def parse_filters(
    params: QueryParams | ImmutableMultiDict[str, str],
) -> tuple[TicketFilter, dict[str, str]]:
    errors: dict[str, str] = {}
    # "open" is one choice of the status list: any of the open statuses (the default view).
    statuses = [value for value in params.getlist("status") if value != "open"]
    filters = TicketFilter(
        statuses=_enum_list(
            ImmutableMultiDict([("status", value) for value in statuses]),
            "status",
            TicketStatus,
            errors,
        ),
        open_only="open" in params.getlist("status"),
        categories=_enum_list(params, "category", TicketCategory, errors),
        kinds=_enum_list(params, "kind", TicketKind, errors),
        priorities=_enum_list(params, "priority", TicketPriority, errors),
        sources=_enum_list(params, "source", TicketSource, errors),
        created_from=_date(params.get("from"), "from", errors),
        created_to=_date(params.get("to"), "to", errors),
        q=(params.get("q") or "").strip()[:100] or None,
        phone=_phone_from_token(params.get(PHONE_TOKEN), errors),
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
        if assignee in ("me", "none", "mine_or_none") or is_id(assignee):
            filters.assignee = assignee
        else:
            errors["assignee"] = N_("Unknown value.")
    awaiting = params.get("awaiting") or ""
    if awaiting:
        if awaiting == "me":
            filters.awaiting = awaiting
        else:
            errors["awaiting"] = N_("Unknown value.")
    sla = params.get("sla") or ""
    if sla:
        if sla in SLA_STATES:
            filters.sla = sla
        else:
            errors["sla"] = N_("Unknown value.")
    return filters, errors


def is_default_view(params: QueryParams | ImmutableMultiDict[str, str]) -> bool:
    """No filter, no sort, no "custom" marker: the queue a shift starts from."""
    return not any(params.get(key) for key in FILTER_KEYS)


def default_view_filters() -> TicketFilter:
    """The default view: open tickets that are the viewer's own or nobody's yet."""
    return TicketFilter(open_only=True, assignee="mine_or_none")


DEFAULT_VIEW_SORT = "due"


def parse_sort(
    params: QueryParams | ImmutableMultiDict[str, str], default: str, errors: dict[str, str]
) -> str:
    from ops_console.queries import SORTS

    value = params.get("sort") or default
    if value not in SORTS:
        errors["sort"] = N_("Unknown value.")
        return default
    return value


def filter_query(
    params: Mapping[str, str] | QueryParams | ImmutableMultiDict[str, object],
    *,
    drop: tuple[str, ...] = (),
) -> str:
    """The filter part of a query string (to carry filters into exports and 'next page').

    A typed phone number (a posted form, an old bookmark) becomes a ``phone_token``."""
    from urllib.parse import urlencode

    pairs: list[tuple[str, str]] = []
    items = (
        params.multi_items()
        if isinstance(params, QueryParams | ImmutableMultiDict)
        else list(params.items())
    )
    for key, value in items:
        if not isinstance(value, str) or not value or key in drop:
            continue
        if key == "phone":
            if value.strip() and PHONE_TOKEN not in drop:
                pairs.append((PHONE_TOKEN, phone_token(value.strip()[:40])))
        elif key in FILTER_KEYS:
            pairs.append((key, value))
    return urlencode(pairs)


def parse_qs_pairs(query: str) -> ImmutableMultiDict[str, str]:
    """A query string this module wrote, read back (to derive links from it)."""
    from urllib.parse import parse_qsl

    return ImmutableMultiDict(parse_qsl(query, keep_blank_values=False))


def form_text(form: ImmutableMultiDict[str, object], key: str, limit: int = 5000) -> str:
    value = form.get(key)
    return value.strip()[:limit] if isinstance(value, str) else ""


def form_password(form: ImmutableMultiDict[str, object], key: str = "password") -> str:
    """A password exactly as typed: never stripped, never truncated (too long is refused by
    ``auth.check_password_rules`` with a message)."""
    value = form.get(key)
    return value if isinstance(value, str) else ""
