"""The console's pages: login, queue, ticket work. Other pages live in pages_*.py; this module
assembles them into one router."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from urllib.parse import urlparse

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import RedirectResponse, Response
from sqlalchemy import and_, delete, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session
from starlette.datastructures import ImmutableMultiDict

from core.sanitize import is_id
from models.audit import record_audit
from models.base import utcnow
from models.contacts import Contact, Household
from models.enums import (
    Language,
    PlaceKind,
    TicketCategory,
    TicketKind,
    TicketPriority,
    TicketStatus,
    UserRole,
)
from models.places import Place
from models.teams import Team, TeamMember
from models.tickets import Incident, Ticket, TicketEvent, TicketViewer
from models.users import User
from ops_console import actions, auth
from ops_console.canned import canned_replies, macro_by_key, macros, reply_in
from ops_console.forms import (
    DEFAULT_VIEW_SORT,
    default_view_filters,
    filter_query,
    form_text,
    is_default_view,
    parse_filters,
    parse_qs_pairs,
    parse_sort,
)
from ops_console.i18n import CONSOLE_LANGUAGES, N_
from ops_console.pages_queue import latest_ticket_id, remember_checked_session, saved_views_of
from ops_console.permissions import Capability, Viewer, is_protection, is_psea
from ops_console.queries import (
    DEFAULT_SORT,
    FilterError,
    count_matching,
    hidden_protection_total,
    next_due,
    place_choices,
    queue_page,
    sla_state,
)
from ops_console.serializers import TicketLoader
from ops_console.web import (
    LANGUAGE_COOKIE,
    AnonPage,
    AnonPostPage,
    Page,
    PageCtx,
    PostPage,
    is_htmx,
    redirect,
    render,
)
from tickets.conversation import ticket_conversation
from tickets.notifications import STATUS_NOTIFICATIONS, held_for_safety
from tickets.references import normalize_reference
from tickets.workflow import awaiting_approval_of

router = APIRouter(include_in_schema=False)


def _client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _safe_next(target: str | None) -> str:
    """Only local paths: an attacker's link must not bounce a fresh login to their site."""
    if not target or not target.startswith("/") or target.startswith("//"):
        return "/queue"
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc:
        return "/queue"
    return target


# --- login -------------------------------------------------------------------------------


@router.get("/")
def home(page: AnonPage) -> Response:
    return redirect("/queue" if page.viewer else "/login")


@router.get("/login")
def login_form(page: AnonPage, next: str | None = None) -> Response:
    if page.viewer is not None:
        return redirect(_safe_next(next))
    return render(page, "login.html", {"next": _safe_next(next), "error": None, "username": ""})


_LOGIN_ERRORS = {
    "invalid": N_("Wrong username or password."),
    "backoff": N_(
        "Too many failed attempts for this account from this address: "
        "wait a few minutes and try again."
    ),
    "throttled": N_("Too many failed attempts from this address: try again later."),
}


@router.post("/login")
async def login(request: Request, page: AnonPostPage) -> Response:
    form = await request.form()
    username = form_text(form, "username", 80)
    password = form.get("password")
    target = _safe_next(form_text(form, "next", 500))
    if not isinstance(password, str) or not username or not password:
        return render(
            page,
            "login.html",
            {"next": target, "error": _LOGIN_ERRORS["invalid"], "username": username},
            status_code=400,
        )
    session = page.session
    try:
        user = auth.authenticate(
            session, username=username, password=password, address=_client_address(request)
        )
    except auth.LoginRefused as refused:
        session.commit()  # the failure counters
        return render(
            page,
            "login.html",
            {"next": target, "error": _LOGIN_ERRORS[refused.reason], "username": username},
            status_code=429 if refused.reason != "invalid" else 401,
        )
    token = auth.open_session(session, user)
    record_audit(session, action="user.login", actor_label=user.username, actor_user_id=user.id)
    session.commit()
    response = redirect(target)
    response.set_cookie(
        auth.SESSION_COOKIE,
        token,
        max_age=int(auth.SESSION_LIFETIME.total_seconds()),
        httponly=True,
        samesite="lax",
        secure=auth.cookie_secure(),
    )
    response.delete_cookie(auth.CSRF_SEED_COOKIE)
    return response


@router.post("/logout")
def logout(request: Request, page: PostPage) -> Response:
    auth.close_session(page.session, request.cookies.get(auth.SESSION_COOKIE))
    viewer = page.user_viewer
    record_audit(
        page.session,
        action="user.logout",
        actor_label=viewer.user.username,
        actor_user_id=viewer.user.id,
    )
    page.session.commit()
    response = redirect("/login")
    response.delete_cookie(auth.SESSION_COOKIE)
    return response


@router.post("/language")
async def set_language(request: Request, page: AnonPostPage) -> Response:
    form = await request.form()
    language = form_text(form, "language", 4)
    if language not in CONSOLE_LANGUAGES:
        raise HTTPException(422)
    if page.viewer is not None:
        page.viewer.user.language = Language(language)
        page.session.commit()
    back = _safe_next(form_text(form, "next", 500))
    response = redirect(back if page.viewer else "/login")
    response.set_cookie(
        LANGUAGE_COOKIE, language, max_age=365 * 86400, samesite="lax", secure=auth.cookie_secure()
    )
    return response


# --- queue -------------------------------------------------------------------------------


def _queue_choices(page: Page) -> dict[str, Any]:
    session = page.session
    viewer = page.user_viewer
    teams = list(session.scalars(select(Team).order_by(Team.name)))
    if viewer.role == UserRole.TEAM_MEMBER:
        teams = [t for t in teams if t.id in viewer.team_ids]
    users = list(
        session.scalars(
            select(User)
            .where(User.active.is_(True), User.role != UserRole.SERVICE)
            .order_by(User.display_name)
        )
    )
    places = place_choices(session, (PlaceKind.REGION, PlaceKind.CERCLE))
    categories = [
        c for c in TicketCategory if c != TicketCategory.PROTECTION or viewer.sees_sensitive
    ]
    return {
        "teams": teams,
        "users": users,
        "places": places,
        "categories": categories,
        "kinds": visible_kinds(viewer),
    }


def visible_kinds(viewer: Viewer) -> list[TicketKind]:
    """The kinds a viewer may filter or choose (PSEA only for those who see PSEA cases)."""
    return [k for k in TicketKind if k != TicketKind.PSEA or viewer.sees_psea]


# The filter each problem is about, named as on the form.
_FILTER_LABELS = {
    "phone": N_("Sender's phone"),
    "place": N_("Region / cercle"),
    "assignee": N_("Assignee"),
    "team": N_("Team"),
    "sla": N_("SLA"),
    "status": N_("Status"),
    "category": N_("Category"),
    "priority": N_("Priority"),
    "source": N_("Channel"),
    "sort": N_("Order"),
    "from": N_("From"),
    "to": N_("To"),
}
_FILTER_PROBLEMS = {
    "phone": N_("Not a phone number: type it like 76 12 34 56 or +223 76 12 34 56."),
}


@router.post("/queue")
async def queue_search(request: Request, page: PostPage) -> Response:
    """The filter form is posted, so a typed phone number never appears in a URL: the answer
    is a redirect to the queue whose URL carries an opaque ``phone_token`` instead (htmx
    follows it and pushes that URL)."""
    page.require(Capability.TICKETS_READ)
    form = await request.form()
    query = filter_query(form)
    return RedirectResponse("/queue" + ("?" + query if query else ""), status_code=303)


@router.get("/queue")
def queue(request: Request, page: PageCtx, cursor: str | None = None) -> Response:
    viewer = page.require(Capability.TICKETS_READ)
    if "phone" in request.query_params:
        # An old bookmark or a hand-made URL: swap the number for a token at once.
        query = filter_query(request.query_params)
        return RedirectResponse("/queue" + ("?" + query if query else ""), status_code=303)
    remember_checked_session(request)  # its live indicator may then ask cheaply
    default_view = is_default_view(request.query_params)
    errors: dict[str, str]
    if default_view:
        # A shift starts from what needs an answer first: open, mine or nobody's, by the
        # first-response due time.
        filters, errors = default_view_filters(), {}
        sort = DEFAULT_VIEW_SORT
    else:
        filters, errors = parse_filters(request.query_params)
        sort = parse_sort(request.query_params, DEFAULT_SORT, errors)
    session = page.session
    tickets: list[Ticket] = []
    next_cursor: str | None = None
    total: int | None = None
    try:
        # Run even when the form already found a problem: every unusable filter (a place
        # code no longer known, a number that is no number) is reported at once.
        result = queue_page(session, filters, viewer, cursor=cursor, sort=sort)
    except FilterError as exc:
        for field in exc.problems:
            if field != "cursor":
                errors[field] = _FILTER_PROBLEMS.get(field, N_("Unknown value."))
        result = None
        if set(exc.problems) == {"cursor"} and not errors:
            result = queue_page(session, filters, viewer, cursor=None, sort=sort)  # stale link
    if result is not None and not errors:
        tickets, next_cursor = result.tickets, result.next_cursor
        if cursor is None:
            total = count_matching(session, filters, viewer)
    # An unusable filter is said above the list, which then stays empty: showing every
    # ticket as if the filter had applied would mislead (the phone typed matched "all").
    loader = TicketLoader(session).load(tickets)
    query = (
        filter_query({"status": "open", "assignee": "mine_or_none", "sort": sort})
        if default_view
        else filter_query(request.query_params)
    )
    context = {
        "tickets": tickets,
        "loader": loader,
        "sla_state": sla_state,
        "next_due": next_due,
        "now": utcnow(),
        "next_cursor": next_cursor,
        "filter_labels": _FILTER_LABELS,
        "filters": filters,
        "params": request.query_params,
        "errors": errors,
        "query": query,
        "sort": sort,
        "sort_query": filter_query(parse_qs_pairs(query), drop=("sort", "cursor")),
        "total": total,
        "default_view": default_view,
        "saved_views": saved_views_of(session, viewer),
        # Closing a protection or PSEA case waits for a lead's approval: those who may see
        # such cases get a tab listing the ones awaiting theirs (the default view, mine and
        # unassigned, would hide a case assigned to a colleague).
        "awaiting_total": (
            len(awaiting_approval_of(session, viewer.user.id, viewer.ticket_clause()))
            if viewer.sees_sensitive
            else None
        ),
        "newest_id": latest_ticket_id(session),
        "hidden_total": hidden_protection_total(session, viewer),
        "first_page": cursor is None,
        **_queue_choices(page),
    }
    # htmx names the element it will swap: the filters replace #results, "older tickets"
    # replaces its own row (#more) with the next rows.
    target = request.headers.get("hx-target") if is_htmx(request) else None
    block = {"results": "results", "more": "rows"}.get(target or "")
    return render(page, "queue.html", context, block=block)


@router.get("/bot-status")
def bot_status(page: PageCtx) -> Response:
    """The "bot still loading" banner, polled by htmx every 5 s while it is shown: the same
    banner while Rasa loads, nothing (htmx removes it) once Rasa answers."""
    return render(page, "base.html", block="bot_status")


# --- ticket ------------------------------------------------------------------------------


def _load_ticket(page: Page, reference: str) -> tuple[Viewer, Ticket]:
    viewer = page.require(Capability.TICKETS_READ)
    normalized = normalize_reference(reference)
    ticket = (
        None
        if normalized is None
        else page.session.scalar(select(Ticket).where(Ticket.reference == normalized))
    )
    if ticket is None or not viewer.may_see(ticket):
        raise HTTPException(404)
    return viewer, ticket


def _ticket_context(page: Page, ticket: Ticket, **extra: Any) -> dict[str, Any]:
    session = page.session
    viewer = page.user_viewer
    loader = TicketLoader(session).load([ticket])
    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    household = session.get(Household, ticket.household_id) if ticket.household_id else None
    events = list(
        session.scalars(
            select(TicketEvent)
            .where(TicketEvent.ticket_id == ticket.id)
            .order_by(TicketEvent.created_at, TicketEvent.id)
        )
    )
    conversation = ticket_conversation(
        session, ticket, message_clause=viewer.message_clause(), events=events
    )
    actor_ids = {e.actor_user_id for e in events if e.actor_user_id}
    actor_ids |= {entry.actor_user_id for entry in conversation if entry.actor_user_id}
    actor_ids |= {  # the timeline names who a ticket was assigned to
        e.data["new"] for e in events if e.kind == "assigned" and isinstance(e.data.get("new"), int)
    }
    alert_teams = {
        team.id: team
        for team in session.scalars(
            select(Team).where(
                Team.id.in_({e.item.team_id for e in conversation if e.kind == "alert"})
            )
        )
    }
    actors = {u.id: u for u in session.scalars(select(User).where(User.id.in_(actor_ids)))}
    teams = list(session.scalars(select(Team).order_by(Team.name)))
    if is_psea(ticket):
        teams = [t for t in teams if t.handles_psea]
    elif is_protection(ticket):
        teams = [t for t in teams if t.handles_protection]
    else:
        teams = [t for t in teams if not t.handles_psea]
    assignable = select(User).where(User.active.is_(True), User.role != UserRole.SERVICE)
    if is_psea(ticket):
        # Only the members of the PSEA team it is routed to (tickets.psea).
        psea_members = select(TeamMember.user_id).where(TeamMember.team_id == ticket.team_id)
        assignable = assignable.where(User.id.in_(psea_members))
    elif is_protection(ticket):
        assignable = assignable.where(User.role == UserRole.PROTECTION_OFFICER)
    if viewer.role == UserRole.TEAM_MEMBER:
        members = select(TeamMember.user_id).where(TeamMember.team_id.in_(viewer.team_ids))
        assignable = assignable.where(User.id.in_(members))
    users = list(session.scalars(assignable.order_by(User.display_name)))
    categories = [
        c for c in TicketCategory if c != TicketCategory.PROTECTION or viewer.sees_sensitive
    ]
    from tickets.workflow import closure_approvers, pending_closure

    pending = pending_closure(session, ticket)
    incidents = list(
        session.scalars(
            select(Incident)
            .where(actions.linkable_incidents_clause(ticket))
            .order_by(Incident.last_report_at.desc())
            .limit(20)
        )
    )
    from ops_console.pages_referrals import ticket_referral_context

    household_place = loader.place(household.current_place_id) if household is not None else None
    household_origin = loader.place(household.origin_place_id) if household is not None else None
    return {
        "ticket": ticket,
        "loader": loader,
        "out": loader.ticket_out(ticket),
        "contact": contact,
        "household": household,
        "household_place": household_place,
        "household_origin": household_origin,
        "conversation": conversation,
        "alert_teams": alert_teams,
        "events": events,
        "actors": actors,
        "teams": teams,
        "users": users,
        "categories": categories,
        "incidents": incidents,
        "place_options": (
            place_choices(session, tuple(PlaceKind))
            if viewer.can(Capability.TICKETS_UPDATE)
            else []
        ),
        "canned": canned_replies(),
        "macros": macros(),
        "macro_plan": extra.pop("macro_plan", None),
        "reply_languages": [language.value for language in Language],
        # Canned replies in the person's language when it is known, else in every language.
        "canned_languages": (
            [ticket.language.value]
            if ticket.language is not None
            else [language.value for language in Language]
        ),
        "protection": is_protection(ticket),
        "psea": is_psea(ticket),
        # Every kind, PSEA included: anyone who reads a report may recognise PSEA and hand
        # it to the focal points (it then leaves their sight); re-classifying a PSEA case is
        # the focal points' (ops_console.actions.change_kind).
        "kinds": list(TicketKind),
        "closure_pending": pending,
        "closure_requested": (
            TicketStatus(str(pending.data.get("requested")))
            if pending is not None and pending.data.get("requested")
            else None
        ),
        "may_approve_closure": pending is not None
        and pending.actor_user_id != viewer.user.id
        and viewer.user.id in closure_approvers(session, ticket),
        "sms_held": held_for_safety(ticket),
        "notifying_statuses": [s.value for s in STATUS_NOTIFICATIONS],
        "errors": extra.pop("errors", {}),
        "changes": extra.pop("changes", []),
        "others": [],
        "presence_every": PRESENCE_EVERY,
        "seen_event": max((e.id for e in events), default=0),
        # What was typed, back in its box when the form was refused (nothing typed is lost).
        "drafts": extra.pop("drafts", {}),
        "notice": extra.pop("notice", None),
        **ticket_referral_context(session, ticket, viewer),
        **extra,
    }


@router.get("/tickets/{reference}")
def ticket_page(reference: str, page: PageCtx) -> Response:
    _viewer, ticket = _load_ticket(page, reference)
    return render(page, "ticket.html", _ticket_context(page, ticket))


def _after_action(
    page: Page,
    ticket: Ticket,
    errors: dict[str, str],
    notice: str | None,
    *,
    drafts: dict[str, str] | None = None,
    status_code: int = 422,
    **extra: Any,
) -> Response:
    """Commit on success, roll back everything on error (nothing half-saved), re-render."""
    if errors:
        page.session.rollback()
        page.session.refresh(ticket)
        status = status_code
    else:
        drafts = None
        page.session.commit()
        from models.outbox_relay import publish_committed

        publish_committed(page.session)
        status = 200
    context = _ticket_context(
        page,
        ticket,
        errors=errors,
        notice=None if errors else notice,
        drafts=drafts or {},
        **extra,
    )
    if is_htmx(page.request):
        return render(page, "ticket.html", context, block="main", status_code=status)
    return render(page, "ticket.html", context, status_code=status)


@router.post("/tickets/{reference}/work")
async def ticket_work(request: Request, reference: str, page: PostPage) -> Response:
    """Status, priority, category, team and assignee in one form: saved together or not at all."""
    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.TICKETS_UPDATE):
        raise HTTPException(403)
    form = await request.form()
    session = page.session
    errors: dict[str, str] = {}
    stale = _claim_version(session, ticket, form)
    if stale is not None:
        return _stale_answer(page, ticket, stale)
    # The form says which changes text the person and lets the operator choose; a form
    # without the choice (an older page) keeps the default: the person is told.
    notify = "notify_choice" not in form or form.get("notify_sender") == "1"
    try:
        status = form_text(form, "status", 20)
        if status:
            actions.change_status(
                session,
                ticket,
                viewer,
                TicketStatus(status),
                notify=notify,
                outcome=form_text(form, "outcome", 2000),
            )
        priority = form_text(form, "priority", 20)
        if priority:
            actions.change_priority(session, ticket, viewer, TicketPriority(priority))
        category = form_text(form, "category", 20)
        if category:
            actions.change_category(session, ticket, viewer, TicketCategory(category))
        if "team" in form:
            team_value = form_text(form, "team", 12)
            team = session.get(Team, int(team_value)) if is_id(team_value) else None
            if team_value and team is None:
                errors["team"] = N_("Unknown value.")
            elif viewer.role != UserRole.TEAM_MEMBER:
                actions.change_team(session, ticket, viewer, team)
        if "assignee" in form:
            value = form_text(form, "assignee", 12)
            if value == "me":
                value = str(viewer.user.id)
            assignee = session.get(User, int(value)) if is_id(value) else None
            if value and assignee is None:
                errors["assignee"] = N_("Unknown value.")
            else:
                actions.assign(session, ticket, viewer, assignee, notify=notify)
        kind = form_text(form, "kind", 24)
        if kind:
            # Last: recognising a PSEA case re-routes it to the PSEA focal points.
            actions.change_kind(session, ticket, viewer, TicketKind(kind))
    except ValueError as exc:
        if isinstance(exc, actions.ActionError):
            errors[exc.field] = exc.detail
        else:
            errors["form"] = N_("Unknown value.")
    session.flush()
    if not errors and not viewer.may_see(ticket):
        # Re-classified as PSEA: it is now the PSEA focal points' alone, and this page
        # must not show it any more. Saved; back to the queue.
        session.commit()
        from models.outbox_relay import publish_committed

        publish_committed(session)
        if is_htmx(request):
            return Response(status_code=200, headers={"HX-Redirect": "/queue"})
        return RedirectResponse("/queue", status_code=303)
    return _after_action(page, ticket, errors, N_("Saved."))


# The timeline events of the work fields: what a stale form would undo.
WORK_EVENT_KINDS = (
    "status_changed",
    "priority_changed",
    "category_changed",
    "routed",
    "rerouted",
    "team_changed",
    "assigned",
)


def _stale_answer(page: Page, ticket: Ticket, stale: list[TicketEvent]) -> Response:
    """409: the form was opened on an older version of the ticket; nothing was saved."""
    return _after_action(
        page,
        ticket,
        {
            "form": N_(
                "Someone else changed this ticket after you opened it, so nothing was saved. "
                "Here is what changed; the form now shows the current values: save again if "
                "your change is still needed."
            )
        },
        None,
        status_code=409,
        changes=stale,
    )


def _claim_version(
    session: Session, ticket: Ticket, form: ImmutableMultiDict[str, Any]
) -> list[TicketEvent] | None:
    """Optimistic locking: take the ticket from the version the form was rendered with, in
    one conditional UPDATE (atomic on PostgreSQL and SQLite; it also holds the row until the
    request commits). None when claimed; else the work changes made since the form was
    rendered (the events after the one it had seen), to show what changed."""
    seen = form_text(form, "version", 12)
    if not is_id(seen) and seen != "0":
        return None  # a client without the field (the JSON API has no form): no check
    claimed = session.execute(
        update(Ticket)
        .where(Ticket.id == ticket.id, Ticket.version == int(seen))
        .values(version=Ticket.version + 1)
        .execution_options(synchronize_session=False)
    )
    if claimed.rowcount == 1:  # type: ignore[attr-defined]
        session.expire(ticket, ["version"])
        return None
    session.rollback()
    session.refresh(ticket)
    seen_event = form_text(form, "seen_event", 12)
    return list(
        session.scalars(
            select(TicketEvent)
            .where(
                TicketEvent.ticket_id == ticket.id,
                TicketEvent.id > (int(seen_event) if is_id(seen_event) else 0),
                TicketEvent.kind.in_(WORK_EVENT_KINDS),
            )
            .order_by(TicketEvent.id)
        )
    )


@router.post("/tickets/{reference}/note")
async def ticket_note(request: Request, reference: str, page: PostPage) -> Response:
    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.TICKETS_UPDATE):
        raise HTTPException(403)
    form = await request.form()
    errors: dict[str, str] = {}
    try:
        actions.add_note(page.session, ticket, viewer, form_text(form, "note", 6000))
    except actions.ActionError as exc:
        errors[exc.field] = exc.detail
    return _after_action(
        page, ticket, errors, N_("Note added."), drafts={"note": form_text(form, "note", 6000)}
    )


@router.post("/tickets/{reference}/reply")
async def ticket_reply(request: Request, reference: str, page: PostPage) -> Response:
    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.TICKETS_REPLY):
        raise HTTPException(403)
    form = await request.form()
    errors: dict[str, str] = {}
    body = form_text(form, "body", 2000)
    try:
        actions.reply_by_sms(page.session, ticket, viewer, body)
    except actions.ActionError as exc:
        errors[exc.field] = exc.detail
    return _after_action(
        page, ticket, errors, N_("Reply queued for sending."), drafts={"body": body}
    )


# --- macros: a reply + a status + a note in one step, after a confirmation -----------------


def _macro_plan(page: Page, ticket: Ticket, key: str) -> dict[str, Any] | None:
    """What applying macro ``key`` to ``ticket`` would do, as the confirmation shows it and
    the apply step does it (None: no such macro)."""
    macro = macro_by_key(key)
    if macro is None:
        return None
    language = ticket.language.value if ticket.language is not None else None
    text, used = reply_in(macro, language, ticket.reference)
    status = TicketStatus(macro["status"]) if macro["status"] else None
    if status == ticket.status:
        status = None  # nothing to change (and nothing to say about it)
    from tickets.workflow import CLOSING_STATUSES, needs_closure_approval

    sent, too_long = _as_sent(page.session, ticket, text) if text else ("", False)
    return {
        "macro": macro,
        "text": text,
        "sent": sent,  # what the phone receives (letters it may not show replaced)
        "too_long": too_long,
        "language": used,
        "language_known": language is not None,
        "status": status,
        "closure": status in CLOSING_STATUSES and needs_closure_approval(ticket),
        "note": macro["note"],
    }


@router.post("/tickets/{reference}/macro")
async def ticket_macro(request: Request, reference: str, page: PostPage) -> Response:
    """The confirmation of a macro: the SMS it sends (in the person's language), the status
    and the note, before anything happens."""
    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.TICKETS_UPDATE):
        raise HTTPException(403)
    form = await request.form()
    plan = _macro_plan(page, ticket, form_text(form, "macro", 40))
    if plan is None:
        return _after_action(page, ticket, {"macro": N_("Choose a macro from the list.")}, None)
    context = _ticket_context(page, ticket, macro_plan=plan)
    block = "main" if is_htmx(request) else None
    return render(page, "ticket.html", context, block=block)


@router.post("/tickets/{reference}/macro/apply")
async def ticket_macro_apply(request: Request, reference: str, page: PostPage) -> Response:
    """Apply a confirmed macro: all of it or nothing (one transaction), from the version the
    confirmation showed (a change since is refused like a stale work form). The status change
    sends no SMS of its own: the macro's reply is the message to the person."""
    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.TICKETS_UPDATE):
        raise HTTPException(403)
    form = await request.form()
    session = page.session
    plan = _macro_plan(page, ticket, form_text(form, "macro", 40))
    if plan is None:
        return _after_action(page, ticket, {"macro": N_("Choose a macro from the list.")}, None)
    if plan["text"] and not viewer.can(Capability.TICKETS_REPLY):
        raise HTTPException(403)
    stale = _claim_version(session, ticket, form)
    if stale is not None:
        return _stale_answer(page, ticket, stale)
    errors: dict[str, str] = {}
    try:
        if plan["text"]:
            actions.reply_by_sms(session, ticket, viewer, plan["text"])
        if plan["status"] is not None:
            actions.change_status(session, ticket, viewer, plan["status"], notify=False)
        if plan["note"]:
            actions.add_note(session, ticket, viewer, plan["note"])
    except actions.ActionError as exc:
        errors["macro"] = exc.detail
    if not errors:
        record_audit(
            session,
            action="ticket.macro_applied",
            actor_label=viewer.user.username,
            actor_user_id=viewer.user.id,
            object_type="ticket",
            object_id=ticket.id,
            ticket_id=ticket.id,
            macro=plan["macro"]["key"],
            replied=bool(plan["text"]),
            status=plan["status"].value if plan["status"] is not None else None,
            noted=bool(plan["note"]),
        )
    return _after_action(page, ticket, errors, N_("Macro applied."))


@router.post("/tickets/{reference}/merge")
async def ticket_merge(request: Request, reference: str, page: PostPage) -> Response:
    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.TICKETS_MERGE):
        raise HTTPException(403)
    form = await request.form()
    errors: dict[str, str] = {}
    target_ref = normalize_reference(form_text(form, "target", 20))
    target = (
        page.session.scalar(select(Ticket).where(Ticket.reference == target_ref))
        if target_ref
        else None
    )
    if target is None or not viewer.may_see(target):
        errors["target"] = N_("No ticket with this reference.")
    else:
        try:
            actions.merge_into(page.session, ticket, target, viewer)
        except actions.ActionError as exc:
            errors[exc.field] = exc.detail
    return _after_action(page, ticket, errors, N_("Merged."))


@router.post("/tickets/{reference}/incident")
async def ticket_incident(request: Request, reference: str, page: PostPage) -> Response:
    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.TICKETS_UPDATE):
        raise HTTPException(403)
    form = await request.form()
    errors: dict[str, str] = {}
    value = form_text(form, "incident", 12)
    # Only an incident the form offers: an id typed by hand (another category's, a protection
    # surge for a PSEA case) is answered like one that does not exist.
    incident = (
        page.session.scalar(
            select(Incident).where(
                Incident.id == int(value), actions.linkable_incidents_clause(ticket)
            )
        )
        if is_id(value)
        else None
    )
    if value and incident is None:
        errors["incident"] = N_("Unknown value.")
    else:
        actions.link_incident(page.session, ticket, viewer, incident)
    return _after_action(page, ticket, errors, N_("Saved."))


@router.post("/tickets/{reference}/details")
async def ticket_details(request: Request, reference: str, page: PostPage) -> Response:
    """Correct the place (a code or a name, found by the gazetteer) and the household size:
    through ``tickets.intake.update_ticket`` (timeline event, re-routing while nobody has
    picked the ticket up), and an audit line naming which fields changed."""
    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.TICKETS_UPDATE):
        raise HTTPException(403)
    form = await request.form()
    session = page.session
    errors: dict[str, str] = {}
    place_text = form_text(form, "place", 120)
    size_text = form_text(form, "household_size", 6)
    from ops_console.api import resolve_place_code
    from tickets.intake import update_ticket

    place_code = resolve_place_code(session, place_text) if place_text else None
    if place_text and place_code is None:
        errors["place"] = N_("No place by that name: pick one from the list.")
    size = None
    if size_text:
        if size_text.isascii() and size_text.isdigit() and 1 <= int(size_text) <= 200:
            size = int(size_text)
        else:
            errors["household_size"] = N_("A number between 1 and 200.")
    drafts = {"place": place_text, "household_size": size_text}
    if errors:
        return _after_action(page, ticket, errors, None, drafts=drafts)
    before = {"place": ticket.place_id, "household": ticket.household_id}
    update_ticket(
        session,
        ticket,
        place_code=place_code,
        household_size=size,
        actor_label=viewer.user.username,
        actor_user_id=viewer.user.id,
    )
    fields = [name for name, value in (("place", place_code), ("household_size", size)) if value]
    if fields:
        record_audit(
            session,
            action="ticket.details_corrected",
            actor_label=viewer.user.username,
            actor_user_id=viewer.user.id,
            object_type="ticket",
            object_id=ticket.id,
            ticket_id=ticket.id,
            fields=fields,
            place_changed=ticket.place_id != before["place"],
        )
    return _after_action(page, ticket, errors, N_("Saved."))


def _as_sent(session: Session, ticket: Ticket, text: str) -> tuple[str, bool]:
    """``text`` as the gateway will send it to the ticket's sender (their channel's
    transliteration: gateway.outbound.prepare_body, the one home of that rule), and whether
    it is too long for that channel."""
    from gateway.gsm7 import to_gsm7
    from gateway.outbound import BodyTooLong, NoChannel, pick_channel, prepare_body

    contact = session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    sent, too_long = to_gsm7(text), False
    try:
        if contact is not None and contact.phone:
            sent, _info, _changed = prepare_body(text, pick_channel(session, contact))
    except BodyTooLong:
        too_long = True
    except NoChannel:
        pass
    return sent, too_long


@router.post("/tickets/{reference}/sms-preview")
async def ticket_sms_preview(request: Request, reference: str, page: PostPage) -> Response:
    """The reply exactly as the gateway will send it to this person (the channel they write
    on, its transliteration: gateway.outbound.prepare_body, the one home of that rule) and
    its real part count. The page's own counter is instant; this line is the truth."""
    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.TICKETS_REPLY):
        raise HTTPException(403)
    form = await request.form()
    text = form_text(form, "body", 2000)
    from gateway.gsm7 import measure

    sent, too_long = _as_sent(page.session, ticket, text)
    info = measure(sent)
    return render(
        page,
        "ticket.html",
        {
            "preview": {
                "text": sent,
                "changed": bool(text) and sent != text,
                "segments": info.segments if text else 0,
                "length": info.length,
                "encoding": info.encoding.value,
                "too_long": too_long,
            }
        },
        block="sms_preview",
    )


# Presence: the ticket page says it is open every PRESENCE_EVERY seconds; someone not heard
# from for PRESENCE_FRESH is gone (a closed tab, a lost connection).
PRESENCE_EVERY = 15
PRESENCE_FRESH = timedelta(seconds=45)


@router.post("/tickets/{reference}/presence")
def ticket_presence(reference: str, page: PostPage) -> Response:
    """ "I have this ticket open": refresh this person's row, answer who else has it open.
    One UPDATE (an INSERT the first time) and one small SELECT on the primary key: the same
    SQL on SQLite and PostgreSQL, no Redis needed."""
    viewer, ticket = _load_ticket(page, reference)
    session = page.session
    now = utcnow()
    refreshed = session.execute(
        update(TicketViewer)
        .where(TicketViewer.ticket_id == ticket.id, TicketViewer.user_id == viewer.user.id)
        .values(seen_at=now)
        .execution_options(synchronize_session=False)
    )
    if refreshed.rowcount == 0:  # type: ignore[attr-defined]
        try:
            with session.begin_nested():
                session.add(TicketViewer(ticket_id=ticket.id, user_id=viewer.user.id, seen_at=now))
        except IntegrityError:
            pass  # the same person's other tab inserted it a moment ago
    session.execute(
        delete(TicketViewer).where(
            TicketViewer.ticket_id == ticket.id, TicketViewer.seen_at < now - 10 * PRESENCE_FRESH
        )
    )
    session.commit()
    others = list(
        session.scalars(
            select(User)
            .join(TicketViewer, TicketViewer.user_id == User.id)
            .where(
                TicketViewer.ticket_id == ticket.id,
                TicketViewer.user_id != viewer.user.id,
                TicketViewer.seen_at >= now - PRESENCE_FRESH,
            )
            .order_by(User.display_name)
        )
    )
    return render(
        page,
        "ticket.html",
        {"ticket": ticket, "others": others, "presence_every": PRESENCE_EVERY},
        block="presence",
    )


@router.get("/tickets/{reference}/messages/{message_id}/delivery")
def ticket_message_delivery(reference: str, message_id: int, page: PageCtx) -> Response:
    """One outbound SMS's delivery status, polled by the ticket page while it may change:
    one lookup by primary key, filtered like the conversation (the ticket, the viewer)."""
    from models.enums import MessageDirection
    from models.messages import Message

    viewer, ticket = _load_ticket(page, reference)
    message = page.session.scalar(
        select(Message).where(
            Message.id == message_id,
            # The conversation shows the sender's messages, linked to the ticket or not yet.
            or_(
                Message.ticket_id == ticket.id,
                and_(Message.ticket_id.is_(None), Message.contact_id == ticket.contact_id),
            ),
            Message.direction == MessageDirection.OUTBOUND,
            viewer.message_clause(),
        )
    )
    if message is None:
        raise HTTPException(404)
    return render(page, "_delivery.html", {"item": message, "reference": ticket.reference})


@router.post("/tickets/{reference}/reveal")
def ticket_reveal(reference: str, page: PostPage) -> Response:
    """Show the clear number (to call back): an audited action, answered as a fragment."""
    viewer, ticket = _load_ticket(page, reference)
    if not viewer.can(Capability.PHONE_REVEAL):
        raise HTTPException(403)
    contact = page.session.get(Contact, ticket.contact_id) if ticket.contact_id else None
    if contact is None or contact.phone is None:
        raise HTTPException(404)
    phone = actions.reveal_phone(page.session, contact, viewer, ticket=ticket)
    page.session.commit()
    return render(page, "ticket.html", {"phone": phone}, block="revealed_phone")


def _register_subrouters() -> None:
    from ops_console import (
        pages_admin,
        pages_broadcasts,
        pages_calls,
        pages_delivery,
        pages_displacement,
        pages_queue,
        pages_referrals,
        pages_reports,
    )

    router.include_router(pages_queue.router)
    router.include_router(pages_calls.router)
    router.include_router(pages_displacement.router)
    router.include_router(pages_delivery.router)
    router.include_router(pages_broadcasts.router)
    router.include_router(pages_reports.router)
    router.include_router(pages_admin.router)
    router.include_router(pages_referrals.router)


_register_subrouters()

__all__ = ["Place", "router"]
