"""Administration: users and API tokens, teams and members, routing rules, SLA targets, alert
channels, provider channels, canned replies and macros, and the audit log. Admins only
(supervisors may read the audit log and manage canned replies and macros). Every change is
audited with ids, never personal data."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Request
from fastapi.responses import Response
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from core.sanitize import is_id
from models.alerts import AlertChannel
from models.audit import AuditLog, record_audit
from models.channels import Channel
from models.enums import (
    AlertKind,
    ChannelType,
    Language,
    TicketCategory,
    TicketPriority,
    TicketStatus,
    UserRole,
)
from models.places import Place
from models.routing import RoutingRule, SlaTarget
from models.teams import Team, TeamMember
from models.users import ApiToken, User
from ops_console import auth
from ops_console.canned import (
    LANGUAGES,
    CannedReply,
    Macro,
    canned_replies,
    macros,
    save_canned_replies,
    save_macros,
)
from ops_console.deps import PathId
from ops_console.forms import form_password, form_text
from ops_console.i18n import N_
from ops_console.permissions import Capability
from ops_console.web import Page, PageCtx, PostPage, redirect, render

router = APIRouter(prefix="/admin", include_in_schema=False)

SECTIONS = (
    "users",
    "teams",
    "routing",
    "sla",
    "alerts",
    "channels",
    "canned",
    "macros",
    "audit",
)
# The sections a role other than admin may open, and the capability each needs.
SECTION_CAPABILITY = {
    "canned": Capability.CANNED_MANAGE,
    "macros": Capability.CANNED_MANAGE,
    "audit": Capability.AUDIT_LOG,
}
# A macro may move a ticket to these statuses (awaiting approval is never chosen directly).
MACRO_STATUSES = tuple(s for s in TicketStatus if s != TicketStatus.AWAITING_APPROVAL)


def _audit(page: Page, action: str, object_type: str, object_id: object, **details: Any) -> None:
    viewer = page.user_viewer
    record_audit(
        page.session,
        action=action,
        actor_label=viewer.user.username,
        actor_user_id=viewer.user.id,
        object_type=object_type,
        object_id=object_id,
        **details,
    )


def _section_context(page: Page, section: str) -> dict[str, Any]:
    session = page.session
    viewer = page.user_viewer
    context: dict[str, Any] = {
        "section": section,
        "sections": [
            s
            for s in SECTIONS
            if viewer.can(Capability.ADMIN)
            or viewer.can(SECTION_CAPABILITY.get(s, Capability.ADMIN))
        ],
        "errors": {},
    }
    if section == "users":
        users = list(session.scalars(select(User).order_by(User.username)))
        memberships: dict[int, list[int]] = {}
        for member in session.scalars(select(TeamMember)):
            memberships.setdefault(member.user_id, []).append(member.team_id)
        tokens = list(
            session.scalars(
                select(ApiToken)
                .where(ApiToken.name != auth.SESSION_TOKEN_NAME)
                .order_by(ApiToken.created_at.desc())
            )
        )
        context.update(
            users=users,
            memberships=memberships,
            tokens=tokens,
            teams=list(session.scalars(select(Team).order_by(Team.name))),
            roles=list(UserRole),
            languages=[language.value for language in Language],
        )
    elif section == "teams":
        teams = list(session.scalars(select(Team).order_by(Team.name)))
        members: dict[int, list[User]] = {}
        by_id = {u.id: u for u in session.scalars(select(User))}
        for member in session.scalars(select(TeamMember)):
            if member.user_id in by_id:
                members.setdefault(member.team_id, []).append(by_id[member.user_id])
        context.update(teams=teams, members=members, users=list(by_id.values()))
    elif section == "routing":
        context.update(
            rules=list(session.scalars(select(RoutingRule).order_by(RoutingRule.id))),
            teams={t.id: t for t in session.scalars(select(Team))},
            places={p.id: p for p in session.scalars(select(Place))},
            categories=list(TicketCategory),
            priorities=list(TicketPriority),
        )
    elif section == "sla":
        context.update(
            targets=list(
                session.scalars(select(SlaTarget).order_by(SlaTarget.category, SlaTarget.priority))
            ),
            categories=list(TicketCategory),
            priorities=list(TicketPriority),
        )
    elif section == "alerts":
        context.update(
            alert_channels=list(session.scalars(select(AlertChannel).order_by(AlertChannel.id))),
            teams={t.id: t for t in session.scalars(select(Team))},
            kinds=list(AlertKind),
        )
    elif section == "channels":
        context.update(
            channels=list(session.scalars(select(Channel).order_by(Channel.id))),
            types=list(ChannelType),
        )
    elif section == "canned":
        context.update(canned=canned_replies(), canned_languages=LANGUAGES)
    elif section == "macros":
        context.update(macros=macros(), canned_languages=LANGUAGES, macro_statuses=MACRO_STATUSES)
    elif section == "audit":
        context.update(
            entries=page.user_viewer.without_legacy_references(
                session,
                list(
                    session.scalars(
                        select(AuditLog)
                        .where(page.user_viewer.audit_clause())
                        .order_by(AuditLog.id.desc())
                        .limit(200)
                    )
                ),
            )
        )
    return context


def _admin(page: Page) -> None:
    page.require(Capability.ADMIN)


@router.get("")
def admin_home(page: PageCtx) -> Response:
    _admin(page)
    return redirect("/admin/users")


@router.get("/{section}")
def admin_section(section: str, page: PageCtx) -> Response:
    if section not in SECTIONS:
        raise HTTPException(404)
    page.require(SECTION_CAPABILITY.get(section, Capability.ADMIN))
    return render(page, "admin.html", _section_context(page, section))


def _fail(page: Page, section: str, errors: dict[str, str]) -> Response:
    page.session.rollback()
    context = _section_context(page, section)
    context["errors"] = errors
    return render(page, "admin.html", context, status_code=422)


def _done(page: Page, section: str) -> Response:
    page.session.commit()
    return redirect(f"/admin/{section}", page.request)


# --- users and tokens ------------------------------------------------------------------------


@router.post("/users")
async def create_user(request: Request, page: PostPage) -> Response:
    _admin(page)
    form = await request.form()
    username = form_text(form, "username", 80)
    role_value = form_text(form, "role", 24)
    password = form_password(form)
    errors: dict[str, str] = {}
    import re

    if not re.fullmatch(r"[A-Za-z0-9._-]{2,80}", username):
        errors["username"] = N_("2 to 80 letters, digits, dots, dashes or underscores.")
    try:
        role = UserRole(role_value)
    except ValueError:
        errors["role"] = N_("Unknown value.")
        role = UserRole.OPERATOR
    if role != UserRole.SERVICE:
        try:
            auth.check_password_rules(password, username=username)
        except auth.WeakPassword as weak:
            errors["password"] = weak.message
    if errors:
        return _fail(page, "users", errors)
    viewer = page.user_viewer
    try:
        user = auth.create_user(
            page.session,
            username=username,
            role=role,
            password=password if role != UserRole.SERVICE else None,
            display_name=form_text(form, "display_name", 120) or None,
            language=Language(form_text(form, "language", 4) or "fr"),
            actor_label=viewer.user.username,
            actor_user_id=viewer.user.id,
        )
    except ValueError:
        return _fail(page, "users", {"username": N_("This username is taken.")})
    team_id = form_text(form, "team", 12)
    if is_id(team_id) and page.session.get(Team, int(team_id)) is not None:
        page.session.add(TeamMember(team_id=int(team_id), user_id=user.id))
    return _done(page, "users")


@router.post("/users/{user_id}")
async def update_user(user_id: PathId, request: Request, page: PostPage) -> Response:
    _admin(page)
    user = page.session.get(User, user_id)
    if user is None:
        raise HTTPException(404)
    form = await request.form()
    viewer = page.user_viewer
    changes: list[str] = []
    role_value = form_text(form, "role", 24)
    if role_value:
        try:
            role = UserRole(role_value)
        except ValueError:
            return _fail(page, "users", {"role": N_("Unknown value.")})
        if user.id == viewer.user.id and role != UserRole.ADMIN:
            return _fail(page, "users", {"role": N_("You cannot remove your own admin role.")})
        if role != user.role:
            user.role = role
            changes.append("role")
            auth.revoke_sessions(page.session, user)  # new rights apply from the next login
    active = form.get("active")
    if active is not None:
        wanted = active == "1"
        if user.id == viewer.user.id and not wanted:
            return _fail(page, "users", {"active": N_("You cannot deactivate yourself.")})
        if wanted != user.active:
            user.active = wanted
            changes.append("active")
            if not wanted:
                auth.revoke_sessions(page.session, user)
    password = form_password(form)
    if password:
        try:
            auth.set_password(
                page.session,
                user,
                password,
                actor_label=viewer.user.username,
                actor_user_id=viewer.user.id,
            )
        except auth.WeakPassword as weak:
            return _fail(page, "users", {"password": weak.message})
    if form.get("unlock") == "1" and auth.clear_backoff(page.session, user.username):
        changes.append("unlocked")
    if changes:
        _audit(page, "user.updated", "user", user.id, fields=changes)
    return _done(page, "users")


@router.post("/tokens")
async def issue_token(request: Request, page: PostPage) -> Response:
    """A bearer token for a (service) user, shown once on the page that answers."""
    _admin(page)
    form = await request.form()
    user_id = form_text(form, "user_id", 12)
    name = form_text(form, "name", 80) or "console"
    user = page.session.get(User, int(user_id)) if is_id(user_id) else None
    if user is None or not user.active:
        return _fail(page, "users", {"token": N_("Unknown value.")})
    try:
        token = auth.issue_api_token(page.session, user, name)
    except ValueError:
        return _fail(page, "users", {"token": N_("This name is reserved.")})
    _audit(page, "api_token.issued", "user", user.id, name=name)
    page.session.commit()
    context = _section_context(page, "users")
    context["new_token"] = token
    return render(page, "admin.html", context)


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: PathId, page: PostPage) -> Response:
    _admin(page)
    token = page.session.get(ApiToken, token_id)
    if token is None or token.name == auth.SESSION_TOKEN_NAME:
        raise HTTPException(404)
    viewer = page.user_viewer
    auth.revoke_api_token(
        page.session, token, actor_label=viewer.user.username, actor_user_id=viewer.user.id
    )
    return _done(page, "users")


# --- teams -----------------------------------------------------------------------------------


@router.post("/teams")
async def save_team(request: Request, page: PostPage) -> Response:
    _admin(page)
    form = await request.form()
    team_id = form_text(form, "team_id", 12)
    slug = form_text(form, "slug", 40).lower()
    name = form_text(form, "name", 120)
    import re

    if not re.fullmatch(r"[a-z0-9-]{2,40}", slug):
        return _fail(page, "teams", {"slug": N_("2 to 40 lowercase letters, digits or dashes.")})
    if not name:
        return _fail(page, "teams", {"name": N_("Required.")})
    team = page.session.get(Team, int(team_id)) if is_id(team_id) else None
    if team is None:
        team = Team(slug=slug, name=name)
        page.session.add(team)
    team.slug = slug
    team.name = name
    team.description = form_text(form, "description", 2000) or None
    team.handles_protection = form.get("handles_protection") == "1"
    # Its members, and only they, see PSEA cases (ops_console.permissions): audited below.
    team.handles_psea = form.get("handles_psea") == "1"
    team.is_default = form.get("is_default") == "1"
    team.auto_assign = form.get("auto_assign") == "1"
    try:
        page.session.flush()
    except IntegrityError:
        return _fail(page, "teams", {"slug": N_("This slug is taken.")})
    _audit(page, "team.saved", "team", team.id)
    return _done(page, "teams")


@router.post("/teams/{team_id}/members")
async def team_members(team_id: PathId, request: Request, page: PostPage) -> Response:
    _admin(page)
    team = page.session.get(Team, team_id)
    if team is None:
        raise HTTPException(404)
    form = await request.form()
    add = form_text(form, "add", 12)
    remove = form_text(form, "remove", 12)
    if is_id(add) and page.session.get(User, int(add)) is not None:
        exists = page.session.scalar(
            select(TeamMember).where(TeamMember.team_id == team_id, TeamMember.user_id == int(add))
        )
        if exists is None:
            page.session.add(TeamMember(team_id=team_id, user_id=int(add)))
            _audit(page, "team.member_added", "team", team_id, user_id=int(add))
    if is_id(remove):
        member = page.session.scalar(
            select(TeamMember).where(
                TeamMember.team_id == team_id, TeamMember.user_id == int(remove)
            )
        )
        if member is not None:
            page.session.delete(member)
            _audit(page, "team.member_removed", "team", team_id, user_id=int(remove))
    return _done(page, "teams")


# --- routing rules and SLA targets -------------------------------------------------------------


@router.post("/routing")
async def save_rule(request: Request, page: PostPage) -> Response:
    _admin(page)
    form = await request.form()
    errors: dict[str, str] = {}
    name = form_text(form, "name", 120)
    if not name:
        errors["name"] = N_("Required.")
    team_id = form_text(form, "team", 12)
    team = page.session.get(Team, int(team_id)) if is_id(team_id) else None
    if team is None:
        errors["team"] = N_("Choose a team.")
    category = form_text(form, "category", 24) or None
    priority = form_text(form, "min_priority", 24) or None
    place_code = form_text(form, "place", 32) or None
    place = None
    if place_code:
        place = page.session.scalar(select(Place).where(Place.code == place_code))
        if place is None:
            errors["place"] = N_("Unknown value.")
    try:
        category_value = TicketCategory(category) if category else None
        priority_value = TicketPriority(priority) if priority else None
    except ValueError:
        errors["category"] = N_("Unknown value.")
        category_value = priority_value = None
    if errors or team is None:
        return _fail(page, "routing", errors)
    rule = RoutingRule(
        name=name,
        category=category_value,
        min_priority=priority_value,
        place_id=place.id if place else None,
        team_id=team.id,
    )
    page.session.add(rule)
    page.session.flush()
    _audit(page, "routing_rule.created", "routing_rule", rule.id)
    return _done(page, "routing")


@router.post("/routing/{rule_id}/toggle")
def toggle_rule(rule_id: PathId, page: PostPage) -> Response:
    _admin(page)
    rule = page.session.get(RoutingRule, rule_id)
    if rule is None:
        raise HTTPException(404)
    rule.active = not rule.active
    _audit(page, "routing_rule.toggled", "routing_rule", rule.id, active=rule.active)
    return _done(page, "routing")


@router.post("/sla")
async def save_sla(request: Request, page: PostPage) -> Response:
    _admin(page)
    form = await request.form()
    try:
        category = TicketCategory(form_text(form, "category", 24))
        priority = TicketPriority(form_text(form, "priority", 24))
    except ValueError:
        return _fail(page, "sla", {"category": N_("Unknown value.")})
    first = form_text(form, "first_response_minutes", 8)
    resolution = form_text(form, "resolution_minutes", 8)
    if not (is_id(first) and is_id(resolution)) or int(first) < 1 or int(resolution) < 1:
        return _fail(page, "sla", {"minutes": N_("Minutes, a whole number above 0.")})
    target = page.session.scalar(
        select(SlaTarget).where(SlaTarget.category == category, SlaTarget.priority == priority)
    )
    if target is None:
        target = SlaTarget(
            category=category,
            priority=priority,
            first_response_minutes=int(first),
            resolution_minutes=int(resolution),
        )
        page.session.add(target)
    target.first_response_minutes = int(first)
    target.resolution_minutes = int(resolution)
    page.session.flush()
    _audit(page, "sla_target.saved", "sla_target", target.id)
    return _done(page, "sla")


# --- alert channels and provider channels ----------------------------------------------------


@router.post("/alerts")
async def save_alert_channel(request: Request, page: PostPage) -> Response:
    _admin(page)
    form = await request.form()
    errors: dict[str, str] = {}
    team_id = form_text(form, "team", 12)
    team = page.session.get(Team, int(team_id)) if is_id(team_id) else None
    if team is None:
        errors["team"] = N_("Choose a team.")
    try:
        kind = AlertKind(form_text(form, "kind", 12))
    except ValueError:
        errors["kind"] = N_("Unknown value.")
        kind = AlertKind.SMS
    target_value = form_text(form, "target", 500)
    target: dict[str, Any] = {}
    if kind == AlertKind.SMS:
        from core.phones import InvalidPhoneNumber, normalize_phone

        try:
            target = {"phone": normalize_phone(target_value)}
        except InvalidPhoneNumber:
            errors["target"] = N_("Not a valid phone number.")
    elif kind == AlertKind.EMAIL:
        if "@" not in target_value or len(target_value) > 254:
            errors["target"] = N_("Not a valid e-mail address.")
        target = {"email": target_value}
    else:
        if not target_value.startswith(("https://", "http://")):
            errors["target"] = N_("A URL starting with https://.")
        target = {"url": target_value, "secret": form_text(form, "secret", 200)}
    name = form_text(form, "name", 120) or kind.value
    if errors or team is None:
        return _fail(page, "alerts", errors)
    channel = AlertChannel(team_id=team.id, kind=kind, name=name, target=target)
    page.session.add(channel)
    page.session.flush()
    _audit(page, "alert_channel.created", "alert_channel", channel.id)
    return _done(page, "alerts")


@router.post("/alerts/{channel_id}/toggle")
def toggle_alert_channel(channel_id: PathId, page: PostPage) -> Response:
    _admin(page)
    channel = page.session.get(AlertChannel, channel_id)
    if channel is None:
        raise HTTPException(404)
    channel.active = not channel.active
    _audit(page, "alert_channel.toggled", "alert_channel", channel.id, active=channel.active)
    return _done(page, "alerts")


@router.post("/channels")
async def save_channel(request: Request, page: PostPage) -> Response:
    """Create a provider channel. Credentials are write-only: stored encrypted, never shown."""
    _admin(page)
    form = await request.form()
    errors: dict[str, str] = {}
    name = form_text(form, "name", 80)
    if not name:
        errors["name"] = N_("Required.")
    try:
        channel_type = ChannelType(form_text(form, "type", 24))
    except ValueError:
        errors["type"] = N_("Unknown value.")
        channel_type = ChannelType.HTTP
    import json

    credentials_raw = form_text(form, "credentials", 4000)
    config_raw = form_text(form, "config", 4000) or "{}"
    credentials = None
    config: dict[str, Any] = {}
    try:
        credentials = json.loads(credentials_raw) if credentials_raw else None
        config = json.loads(config_raw)
        if not isinstance(config, dict) or not (
            credentials is None or isinstance(credentials, dict)
        ):
            raise ValueError("not an object")
    except ValueError:
        errors["config"] = N_('A JSON object, like {"key": "value"}.')
    if errors:
        return _fail(page, "channels", errors)
    channel = Channel(
        name=name,
        type=channel_type,
        address=form_text(form, "address", 40) or None,
        credentials=credentials,
        config=config,
    )
    page.session.add(channel)
    try:
        page.session.flush()
    except IntegrityError:
        return _fail(page, "channels", {"name": N_("This name is taken.")})
    _audit(page, "channel.created", "channel", channel.id)
    return _done(page, "channels")


@router.post("/channels/{channel_id}/toggle")
def toggle_channel(channel_id: PathId, page: PostPage) -> Response:
    _admin(page)
    channel = page.session.get(Channel, channel_id)
    if channel is None:
        raise HTTPException(404)
    channel.active = not channel.active
    _audit(page, "channel.toggled", "channel", channel.id, active=channel.active)
    return _done(page, "channels")


# --- canned replies ------------------------------------------------------------------------


@router.post("/canned")
async def save_canned(request: Request, page: PostPage) -> Response:
    page.require(Capability.CANNED_MANAGE)
    form = await request.form()
    replies: list[CannedReply] = []
    keys = form.getlist("key")
    for index, key in enumerate(keys):
        if not isinstance(key, str) or not key.strip():
            continue

        def value(field: str, position: int = index) -> str:
            values = form.getlist(field)
            item = values[position] if position < len(values) else ""
            return item.strip()[:480] if isinstance(item, str) else ""

        replies.append(
            CannedReply(
                key=key.strip()[:40],
                title=value("title") or key.strip(),
                fr=value("fr"),
                bm=value("bm"),
                en=value("en"),
            )
        )
    if not replies:
        # An empty form is far more likely a mistake than a wish to delete every reply.
        return _fail(page, "canned", {"key": N_("Keep at least one canned reply.")})
    save_canned_replies(replies)
    _audit(page, "canned_replies.saved", "canned_replies", None, count=len(replies))
    return _done(page, "canned")


# --- macros ----------------------------------------------------------------------------------


@router.post("/macros")
async def save_macros_form(request: Request, page: PostPage) -> Response:
    page.require(Capability.CANNED_MANAGE)
    form = await request.form()
    items: list[Macro] = []
    errors: dict[str, str] = {}
    seen: set[str] = set()
    keys = form.getlist("key")
    for index, key in enumerate(keys):
        if not isinstance(key, str) or not key.strip():
            continue  # an empty key deletes the macro (or leaves the "new" card unused)

        def value(field: str, position: int = index, limit: int = 480) -> str:
            values = form.getlist(field)
            item = values[position] if position < len(values) else ""
            return item.strip()[:limit] if isinstance(item, str) else ""

        status = value("status", limit=24)
        if status and status not in {s.value for s in MACRO_STATUSES}:
            errors["status"] = N_("Unknown value.")
            continue
        name = key.strip()[:40]
        if name in seen:
            errors["key"] = N_("Two macros have the same key: keep each key once.")
            continue
        seen.add(name)
        macro = Macro(
            key=name,
            title=value("title") or name,
            fr=value("fr"),
            bm=value("bm"),
            en=value("en"),
            status=status,
            note=value("note", limit=2000),
        )
        if not (macro["fr"] or macro["bm"] or macro["en"] or macro["status"] or macro["note"]):
            errors["key"] = N_("A macro must send a reply, change the status or add a note.")
            continue
        if (macro["bm"] or macro["en"]) and not macro["fr"]:
            # French is the reply used when the person's language has no text.
            errors["fr"] = N_("Write the reply in French too: it is used when a language is empty.")
            continue
        items.append(macro)
    if errors:
        return _fail(page, "macros", errors)
    save_macros(items)
    _audit(page, "macros.saved", "macros", None, count=len(items))
    return _done(page, "macros")
