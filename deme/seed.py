"""``deme seed``: gazetteer, demo teams and routing rules, channels from settings, first admin.

Idempotent: running it again updates what it created and adds what is missing; it never
deletes operators' own changes (extra teams, rules, users).
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from core.settings import Settings
from models.channels import Channel
from models.enums import ChannelType, PlaceKind, TicketCategory, UserRole
from models.places import Place, PlaceAlias
from models.routing import RoutingRule
from models.teams import Team
from models.users import User

DEMO_SEED_FILE = Path(__file__).resolve().parent / "data" / "demo_seed.yml"

Progress = Callable[[str], None]


@dataclass
class SeedReport:
    places: int = 0
    aliases: int = 0
    teams_created: int = 0
    rules_created: int = 0
    channels: list[str] = field(default_factory=list)
    admin_password: str | None = None
    # (channel name, secret) of USSD secrets created by this run: shown once, never logged.
    new_ussd_secrets: list[tuple[str, str]] = field(default_factory=list)


def seed_places(session: Session, progress: Progress) -> tuple[int, int]:
    from tickets.gazetteer import load_place_records, normalize_place_text

    records = load_place_records()
    existing = {place.code: place for place in session.scalars(select(Place))}
    for index, record in enumerate(records, start=1):
        place = existing.get(record.code)
        if place is None:
            place = Place(code=record.code)
            session.add(place)
            existing[record.code] = place
        place.name = record.name
        place.kind = PlaceKind(record.kind.value)
        place.iso_code = record.iso_code
        place.latitude = record.latitude
        place.longitude = record.longitude
        if index % 100 == 0:
            progress(f"  places: {index}/{len(records)}")
    session.flush()
    alias_count = 0
    for record in records:
        place = existing[record.code]
        place.parent_id = existing[record.parent_code].id if record.parent_code else None
        place.former_parent_id = (
            existing[record.former_parent_code].id if record.former_parent_code else None
        )
        session.execute(delete(PlaceAlias).where(PlaceAlias.place_id == place.id))
        seen: set[str] = set()
        for alias in (record.name, *record.aliases):
            normalized = normalize_place_text(alias)
            if normalized and normalized not in seen:
                seen.add(normalized)
                session.add(PlaceAlias(place_id=place.id, alias=alias, normalized=normalized))
        alias_count += len(seen)
    session.flush()
    progress(f"  places: {len(records)} places, {alias_count} spellings")
    return len(records), alias_count


def _resolve_place_code(session: Session, text: str) -> int:
    from tickets.gazetteer import Gazetteer

    match = Gazetteer.default().resolve(text)
    if match is None:
        raise ValueError(f"demo seed: place {text!r} is not in the gazetteer")
    place_id = session.scalar(select(Place.id).where(Place.code == match.place.code))
    if place_id is None:
        raise ValueError(f"demo seed: place {match.place.code} not loaded")
    return place_id


def _ensure_team_lead(session: Session, team: Team, username: str) -> None:
    """The team's lead: a team member with no password (nobody can log in as them until an
    administrator sets one), member and lead of ``team``. An existing user is left as is."""
    from models.teams import TeamMember

    user = session.scalar(select(User).where(User.username == username))
    if user is None:
        user = User(
            username=username,
            display_name=username.replace("_", " ").capitalize(),
            role=UserRole.TEAM_MEMBER,
            password_hash=None,
        )
        session.add(user)
        session.flush()
    member = session.scalar(
        select(TeamMember).where(TeamMember.team_id == team.id, TeamMember.user_id == user.id)
    )
    if member is None:
        session.add(TeamMember(team_id=team.id, user_id=user.id, is_lead=True))
    if team.lead_user_id is None:
        team.lead_user_id = user.id
    session.flush()


def seed_teams_and_rules(session: Session, progress: Progress) -> tuple[int, int]:
    data: dict[str, Any] = yaml.safe_load(DEMO_SEED_FILE.read_text(encoding="utf-8"))
    teams = {team.slug: team for team in session.scalars(select(Team))}
    created_teams = 0
    for spec in data["teams"]:
        if spec["slug"] in teams:
            continue
        team = Team(
            slug=spec["slug"],
            name=spec["name"],
            description=spec.get("description"),
            is_default=bool(spec.get("is_default", False)),
            handles_protection=bool(spec.get("handles_protection", False)),
            handles_psea=bool(spec.get("handles_psea", False)),
        )
        session.add(team)
        teams[team.slug] = team
        created_teams += 1
    session.flush()
    for spec in data["teams"]:
        if spec.get("lead"):
            _ensure_team_lead(session, teams[spec["slug"]], str(spec["lead"]))
    existing_rules = set(session.scalars(select(RoutingRule.name)))
    created_rules = 0
    for spec in data["routing_rules"]:
        if spec["name"] in existing_rules:
            continue
        session.add(
            RoutingRule(
                name=spec["name"],
                category=TicketCategory(spec["category"]) if spec.get("category") else None,
                place_id=_resolve_place_code(session, spec["place"]) if spec.get("place") else None,
                team_id=teams[spec["team"]].id,
            )
        )
        created_rules += 1
    session.flush()
    progress(f"  teams: {created_teams} created; routing rules: {created_rules} created")
    return created_teams, created_rules


def _upsert_channel(
    session: Session,
    *,
    name: str,
    type_: ChannelType,
    address: str | None,
    credentials: dict[str, Any] | None,
    config: dict[str, Any],
) -> None:
    channel = session.scalar(select(Channel).where(Channel.name == name))
    if channel is None:
        channel = Channel(name=name, type=type_)
        session.add(channel)
    channel.address = address
    channel.credentials = credentials
    channel.config = {**(channel.config or {}), **config}
    channel.active = True


def seed_channels(
    session: Session, settings: Settings, progress: Progress, report: SeedReport | None = None
) -> list[str]:
    """Turn provider credentials found in the settings into channels (and the simulator), and
    give every USSD channel that cannot authenticate its caller a secret."""
    from gateway.channels import ensure_settings_channels

    channels = ensure_settings_channels(session, settings)
    for channel in channels:
        if channel.type == ChannelType.AFRICASTALKING and settings.africastalking_ussd_code:
            # The USSD menu answers only its own service code on this channel.
            channel.config = {**channel.config, "ussd_code": settings.africastalking_ussd_code}
            if settings.africastalking_ussd_secret is not None:
                set_ussd_secret(channel, settings.africastalking_ussd_secret.get_secret_value())
    session.flush()
    created = ensure_ussd_secrets(session)
    if report is not None:
        report.new_ussd_secrets.extend(created)
    names = [channel.name for channel in channels]
    _upsert_channel(
        session,
        name="simulator",
        type_=ChannelType.SIMULATOR,
        address="SIM",
        credentials=None,
        config={},
    )
    names.append("simulator")
    session.flush()
    progress(f"  channels: {', '.join(names)}")
    return names


def set_ussd_secret(channel: Channel, secret: str) -> None:
    from gateway.channels.auth import USSD_SECRET

    channel.credentials = {**(channel.credentials or {}), USSD_SECRET: secret}


def ensure_ussd_secrets(session: Session) -> list[tuple[str, str]]:
    """A generated secret for every active USSD channel with neither a secret nor an IP
    allow-list; returns (name, secret) of those created, for the caller to show once."""
    from gateway.channels.auth import CallerCheck, is_ussd_channel

    created: list[tuple[str, str]] = []
    for channel in session.scalars(
        select(Channel).where(Channel.active.is_(True)).order_by(Channel.id)
    ):
        if not is_ussd_channel(channel.type, channel.config, channel.credentials):
            continue
        if CallerCheck.of(channel.credentials, channel.config).configured:
            continue
        secret = secrets.token_urlsafe(24)
        set_ussd_secret(channel, secret)
        created.append((channel.name, secret))
    session.flush()
    return created


def ensure_first_admin(session: Session, progress: Progress) -> str | None:
    """Create user ``admin`` with a generated password if no admin exists; return it."""
    has_admin = session.scalar(select(User.id).where(User.role == UserRole.ADMIN).limit(1))
    if has_admin is not None:
        return None
    from ops_console.auth import hash_password

    password = secrets.token_urlsafe(12)
    session.add(
        User(
            username="admin",
            display_name="Administrateur",
            role=UserRole.ADMIN,
            password_hash=hash_password(password),
        )
    )
    session.flush()
    progress("  first admin: user 'admin' created")
    return password


def run_seed(
    session: Session, settings: Settings, progress: Progress, *, demo: bool = True
) -> SeedReport:
    report = SeedReport()
    progress("Seeding the gazetteer…")
    report.places, report.aliases = seed_places(session, progress)
    if demo:
        progress("Seeding demo teams and routing rules…")
        report.teams_created, report.rules_created = seed_teams_and_rules(session, progress)
    progress("Seeding channels from settings…")
    report.channels = seed_channels(session, settings, progress, report)
    report.admin_password = ensure_first_admin(session, progress)
    return report
