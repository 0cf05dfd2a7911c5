"""The queue's tools around the list (issue 13): saved views per user, bulk actions with a
confirmation step, and the live indicator of new tickets."""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass
from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from starlette.datastructures import ImmutableMultiDict

from core.db import get_engine, get_sessionmaker
from core.sanitize import is_id, parse_id
from models.audit import record_audit
from models.enums import TicketPriority, TicketStatus, UserRole
from models.teams import TeamMember
from models.tickets import Ticket
from models.users import SavedView, User
from ops_console import actions
from ops_console.auth import SESSION_COOKIE
from ops_console.forms import filter_query, form_text, parse_filters, parse_qs_pairs
from ops_console.i18n import N_
from ops_console.permissions import Capability, Viewer
from ops_console.queries import FilterError, count_newer
from ops_console.web import Page, PostPage, current_page, render

router = APIRouter(include_in_schema=False)

MAX_SAVED_VIEWS = 30
MAX_BULK = 100  # one page of the queue, twice over: a bulk action stays reviewable
BULK_ACTIONS = ("assign_me", "assign", "status", "note")


# --- the live indicator ------------------------------------------------------------------


def latest_ticket_id(session: Session) -> int:
    """The newest ticket's id: ``max(id)`` is read off the primary key's index, so asking
    "did anything arrive?" costs the same on ten tickets or a million."""
    return int(session.scalar(select(func.max(Ticket.id))) or 0)


# The idle live check must cost almost nothing (issue 13: <= 5 ms of server CPU per open
# console per minute; a full page request with its session lookup costs ~6 ms here). A
# session fully checked by a page of this process in the last LIVE_TRUST seconds may ask
# "anything new?" without that lookup: the answer to it, "204 nothing", tells nothing.
# Anything else (new tickets to show) goes through the full check again, so a revoked
# session never sees a ticket.
LIVE_TRUST = 60.0
_checked_sessions: dict[str, float] = {}
_LATEST_SQL = select(func.max(Ticket.id))


def _cookie_digest(request: Request) -> str | None:
    raw = request.cookies.get(SESSION_COOKIE)
    return hashlib.sha256(raw.encode()).hexdigest() if raw and len(raw) <= 200 else None


def remember_checked_session(request: Request) -> None:
    """Called once a page has fully checked this request's session."""
    digest = _cookie_digest(request)
    if digest is None:
        return
    now = time.monotonic()
    if len(_checked_sessions) > 2000:  # forget the stale ones, never grow without bound
        for key, seen in list(_checked_sessions.items()):
            if now - seen > LIVE_TRUST:
                del _checked_sessions[key]
    _checked_sessions[digest] = now


def _nothing_new(request: Request, since: int, seen: int) -> bool:
    digest = _cookie_digest(request)
    checked = _checked_sessions.get(digest or "")
    if checked is None or time.monotonic() - checked > LIVE_TRUST:
        return False
    with get_engine().connect() as connection:
        latest = int(connection.scalar(_LATEST_SQL) or 0)
    return latest <= max(since, seen)


def _query_int(request: Request, key: str) -> int:
    value = parse_id(request.query_params.get(key, "0") or "0")
    if value is None:
        raise HTTPException(422, f"{key}: must be a whole number")
    return value


@router.get("/queue/live")
def queue_live(request: Request) -> Response:
    """Polled by the queue every 30 s. ``since``: the newest ticket when the list was shown;
    ``seen``: the newest at the last poll. Nothing arrived since ``seen`` (the usual answer)
    → 204 after one primary-key lookup: htmx leaves the page alone. Otherwise the tickets
    of this view that arrived since ``since``, urgent first (and 204 again when that is
    still the number shown, so a ticket this viewer may not see changes nothing at all)."""
    since, seen, shown = (_query_int(request, key) for key in ("since", "seen", "shown"))
    if _nothing_new(request, since, seen):
        return Response(status_code=204)
    session = get_sessionmaker()()
    try:
        return _live_answer(request, current_page(request, session), since, seen, shown)
    finally:
        session.rollback()
        session.close()


def _live_answer(request: Request, page: Page, since: int, seen: int, shown: int) -> Response:
    viewer = page.require(Capability.TICKETS_READ)
    remember_checked_session(request)
    session = page.session
    latest = latest_ticket_id(session)
    if latest <= max(seen, since):
        return Response(status_code=204)
    params = parse_qs_pairs(filter_query(request.query_params))
    filters, errors = parse_filters(params)
    if errors:
        return Response(status_code=204)
    if not any(params.get(key) for key in ("status", "assignee", "view")):
        from ops_console.forms import default_view_filters

        filters = default_view_filters()
    try:
        newer = count_newer(session, filters, viewer, since)
    except FilterError:
        return Response(status_code=204)
    if newer == shown:
        return Response(status_code=204)
    from ops_console.queries import filter_conditions

    urgent_first = list(
        session.scalars(
            select(Ticket)
            .where(*filter_conditions(session, filters, viewer), Ticket.id > since)
            .order_by((Ticket.priority == TicketPriority.URGENT).desc(), Ticket.id.desc())
            .limit(5)
        )
    )
    return render(
        page,
        "queue.html",
        {
            "newer": newer,
            "newer_tickets": urgent_first,
            "newer_urgent": sum(1 for t in urgent_first if t.priority == TicketPriority.URGENT),
            "newest_id": since,
            "seen_id": latest,
            "query": filter_query(params),
        },
        block="new_indicator",
    )


# --- saved views -------------------------------------------------------------------------


def saved_views_of(session: Session, viewer: Viewer) -> list[SavedView]:
    return list(
        session.scalars(
            select(SavedView).where(SavedView.user_id == viewer.user.id).order_by(SavedView.name)
        )
    )


@router.post("/queue/views")
async def save_view(request: Request, page: PostPage) -> Response:
    """Name the current filters and sort. A name already used by this person is updated."""
    viewer = page.require(Capability.TICKETS_READ)
    form = await request.form()
    name = form_text(form, "name", 80)
    # Only the filter keys survive (filter_query): nothing else can be smuggled into a link.
    query = filter_query(parse_qs_pairs(form_text(form, "query", 2000)), drop=("cursor",))
    session = page.session
    views = saved_views_of(session, viewer)
    error = None
    if not name:
        error = N_("Give the view a name.")
    elif not any(view.name == name for view in views) and len(views) >= MAX_SAVED_VIEWS:
        error = N_("You have 30 saved views: delete one first.")
    if error is not None:
        return render(
            page,
            "queue.html",
            {"saved_views": views, "view_error": error},
            block="saved_views",
            status_code=422,
        )
    existing = next((view for view in views if view.name == name), None)
    if existing is not None:
        existing.query = query
    else:
        session.add(SavedView(user_id=viewer.user.id, name=name, query=query))
    session.commit()
    return render(
        page,
        "queue.html",
        {"saved_views": saved_views_of(session, viewer), "view_error": None},
        block="saved_views",
    )


@router.post("/queue/views/{view_id}/delete")
def delete_view(view_id: int, page: PostPage) -> Response:
    viewer = page.require(Capability.TICKETS_READ)
    session = page.session
    # Someone else's view answers exactly like a view that does not exist.
    deleted = session.execute(
        delete(SavedView).where(SavedView.id == view_id, SavedView.user_id == viewer.user.id)
    )
    if deleted.rowcount == 0:  # type: ignore[attr-defined]
        raise HTTPException(404)
    session.commit()
    return render(
        page,
        "queue.html",
        {"saved_views": saved_views_of(session, viewer), "view_error": None},
        block="saved_views",
    )


# --- bulk actions ------------------------------------------------------------------------


@dataclass
class BulkRequest:
    action: str
    ticket_ids: list[int]
    status: TicketStatus | None = None
    assignee: User | None = None
    note: str = ""
    notify: bool = False
    back: str = ""


def _bulk_request(page: Page, viewer: Viewer, form: ImmutableMultiDict[str, Any]) -> BulkRequest:
    """What was asked, or a 422 page naming the problem."""
    action = form_text(form, "action", 20)
    ids = [
        ticket_id
        for raw in form.getlist("ticket")
        if isinstance(raw, str) and (ticket_id := parse_id(raw)) is not None
    ]
    problems: list[str] = []
    if not ids:
        problems.append(N_("Select at least one ticket."))
    if len(ids) > MAX_BULK:
        problems.append(N_("At most 100 tickets at once."))
    if action not in BULK_ACTIONS:
        problems.append(N_("Choose what to do with the selected tickets."))
    request = BulkRequest(
        action=action,
        ticket_ids=list(dict.fromkeys(ids))[:MAX_BULK],
        notify=form.get("notify_sender") == "1",
        back=filter_query(parse_qs_pairs(form_text(form, "query", 2000))),
    )
    if action == "status":
        try:
            request.status = TicketStatus(form_text(form, "status", 20))
        except ValueError:
            problems.append(N_("Choose the new status."))
    elif action == "assign":
        value = form_text(form, "assignee", 12)
        request.assignee = page.session.get(User, int(value)) if is_id(value) else None
        if request.assignee is None:
            problems.append(N_("Choose the person to assign the tickets to."))
    elif action == "assign_me":
        request.assignee = viewer.user
    elif action == "note":
        request.note = form_text(form, "note", 6000)
        if not request.note:
            problems.append(N_("The note is empty."))
    if problems:
        raise BulkRefused(problems, request)
    return request


class BulkRefused(Exception):
    def __init__(self, problems: list[str], request: BulkRequest) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.request = request


def _visible_tickets(session: Session, viewer: Viewer, ids: list[int]) -> list[Ticket]:
    """The selected tickets this viewer may see, by the same SQL as every list: a protection
    ticket someone cannot see is never loaded, so no bulk action can touch it."""
    if not ids:
        return []
    return list(
        session.scalars(
            select(Ticket)
            .where(Ticket.id.in_(ids), viewer.ticket_clause())
            .order_by(Ticket.created_at.desc(), Ticket.id.desc())
        )
    )


def _bulk_context(page: Page, bulk: BulkRequest, **extra: Any) -> dict[str, Any]:
    from ops_console.serializers import TicketLoader

    tickets = _visible_tickets(page.session, page.user_viewer, bulk.ticket_ids)
    return {
        "bulk": bulk,
        "tickets": tickets,
        "loader": TicketLoader(page.session).load(tickets),
        "missing": len(bulk.ticket_ids) - len(tickets),
        "problems": [],
        "results": None,
        **extra,
    }


def _require_update(page: Page) -> Viewer:
    viewer = page.require(Capability.TICKETS_READ)
    if not viewer.can(Capability.TICKETS_UPDATE):
        raise HTTPException(403)
    return viewer


@router.post("/queue/bulk")
async def bulk_confirm(request: Request, page: PostPage) -> Response:
    """Step one: what will happen to which tickets, and a button to confirm. Nothing changes."""
    viewer = _require_update(page)
    form = await request.form()
    try:
        bulk = _bulk_request(page, viewer, form)
    except BulkRefused as refused:
        context = _bulk_context(page, refused.request, problems=refused.problems)
        return render(page, "queue_bulk.html", context, status_code=422)
    return render(page, "queue_bulk.html", _bulk_context(page, bulk))


@dataclass
class BulkResult:
    ticket: Ticket
    done: bool
    reason: str | None = None  # why nothing changed on this ticket


def _apply_one(
    session: Session, viewer: Viewer, ticket: Ticket, bulk: BulkRequest, seen_version: int
) -> BulkResult:
    """One ticket, in its own savepoint: claimed from the version the person confirmed (the
    same optimistic lock as the ticket page), changed, one audit line. A refusal on one
    ticket leaves the others alone."""
    savepoint = session.begin_nested()
    reason = _change_one(session, viewer, ticket, bulk, seen_version)
    if reason is not None:
        savepoint.rollback()
        session.refresh(ticket)
        return BulkResult(ticket, False, reason)
    savepoint.commit()
    return BulkResult(ticket, True)


def _change_one(
    session: Session, viewer: Viewer, ticket: Ticket, bulk: BulkRequest, seen_version: int
) -> str | None:
    """The change and its audit line; None when done, else why nothing changed."""
    claimed = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.version == seen_version)
        .values(version=Ticket.version + 1)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount != 1:  # type: ignore[attr-defined]
        return N_("Someone else changed it after you confirmed: not changed.")
    session.expire(ticket, ["version"])
    try:
        if bulk.action in ("assign", "assign_me"):
            changed = actions.assign(session, ticket, viewer, bulk.assignee, notify=bulk.notify)
        elif bulk.action == "status" and bulk.status is not None:
            changed = actions.change_status(
                session, ticket, viewer, bulk.status, notify=bulk.notify
            )
        else:
            actions.add_note(session, ticket, viewer, bulk.note)
            changed = True
    except actions.ActionError as exc:
        return exc.detail
    if not changed:
        return N_("Already so: not changed.")
    record_audit(
        session,
        action="ticket.bulk_changed",
        actor_label=viewer.user.username,
        actor_user_id=viewer.user.id,
        object_type="ticket",
        object_id=ticket.id,
        ticket_id=ticket.id,
        change=bulk.action,
        status=bulk.status.value if bulk.status else None,
        assignee_id=bulk.assignee.id if bulk.assignee else None,
    )
    session.flush()
    return None


@router.post("/queue/bulk/apply")
async def bulk_apply(request: Request, page: PostPage) -> Response:
    """Step two, after the confirmation: each ticket changed or said why not."""
    viewer = _require_update(page)
    form = await request.form()
    try:
        bulk = _bulk_request(page, viewer, form)
    except BulkRefused as refused:
        context = _bulk_context(page, refused.request, problems=refused.problems)
        return render(page, "queue_bulk.html", context, status_code=422)
    session = page.session
    if bulk.assignee is not None and viewer.role == UserRole.TEAM_MEMBER:
        # Checked per ticket by actions.assign too; said once here for the whole batch.
        teams = frozenset(
            session.scalars(
                select(TeamMember.team_id).where(TeamMember.user_id == bulk.assignee.id)
            )
        )
        if not viewer.may_assign_to(bulk.assignee, teams):
            context = _bulk_context(
                page, bulk, problems=[N_("You cannot assign tickets to this person.")]
            )
            return render(page, "queue_bulk.html", context, status_code=422)
    results = []
    for ticket in _visible_tickets(session, viewer, bulk.ticket_ids):
        seen = form_text(form, f"version_{ticket.id}", 12)
        results.append(
            # No version (a hand-made form) can never match: refused as stale, never unchecked.
            _apply_one(session, viewer, ticket, bulk, int(seen) if is_id(seen) else -1)
        )
    session.commit()
    from models.outbox_relay import publish_committed

    publish_committed(session)
    context = _bulk_context(page, bulk, results=results)
    context["done"] = sum(1 for result in results if result.done)
    return render(page, "queue_bulk.html", context)
