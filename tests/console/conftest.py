"""Fixtures for the console and API tests: seeded places/teams/channels, users of every role,
bearer tokens, logged-in TestClients."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy.orm import Session

PASSWORD = "correct-horse-battery"
ROLES = ("admin", "supervisor", "operator", "protection_officer", "team_member", "service")


@dataclass
class Actor:
    username: str
    role: str
    user_id: int
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class World:
    """Seeded reference data and one user per role (team_member is in the health team)."""

    actors: dict[str, Actor]
    teams: dict[str, int]
    simulator_channel_id: int

    def __getitem__(self, role: str) -> Actor:
        return self.actors[role]


def _seed(session: Session) -> tuple[dict[str, int], int]:
    from sqlalchemy import select

    from deme.seed import seed_places, seed_teams_and_rules
    from models.channels import Channel
    from models.enums import ChannelType
    from models.teams import Team

    seed_places(session, lambda _m: None)
    seed_teams_and_rules(session, lambda _m: None)
    channel = session.scalar(select(Channel).where(Channel.type == ChannelType.SIMULATOR))
    if channel is None:
        channel = Channel(name="simulator", type=ChannelType.SIMULATOR, config={})
        session.add(channel)
        session.flush()
    if session.scalar(select(Channel).where(Channel.type == ChannelType.HTTP)) is None:
        # Replies need a real SMS channel (never sent here: no worker runs in these tests).
        session.add(Channel(name="aggregator", type=ChannelType.HTTP, config={}))
        session.flush()
    teams = {team.slug: team.id for team in session.scalars(select(Team))}
    return teams, channel.id


def make_world(session: Session) -> World:
    from core.settings import get_settings
    from models.enums import UserRole
    from models.teams import TeamMember
    from ops_console.auth import create_user, issue_api_token

    # Canned replies edited by an earlier test live in the var dir: start from the defaults.
    (get_settings().var_dir / "canned_replies.json").unlink(missing_ok=True)
    (get_settings().var_dir / "macros.json").unlink(missing_ok=True)
    teams, channel_id = _seed(session)
    actors: dict[str, Actor] = {}
    health_team = next((tid for slug, tid in teams.items() if "health" in slug), None)
    protection_team = next((tid for slug, tid in teams.items() if "protection" in slug), None)
    for role in ROLES:
        user = create_user(
            session,
            username=f"{role.replace('_', '-')}-user",
            role=UserRole(role),
            password=None if role == "service" else PASSWORD,
        )
        if role == "team_member" and health_team is not None:
            session.add(TeamMember(team_id=health_team, user_id=user.id))
        if role == "protection_officer" and protection_team is not None:
            session.add(TeamMember(team_id=protection_team, user_id=user.id))
        token = issue_api_token(session, user, "tests")
        actors[role] = Actor(user.username, role, user.id, token)
    session.commit()
    return World(actors=actors, teams=teams, simulator_channel_id=channel_id)


@pytest.fixture()
def world(db: Session) -> World:
    from ops_console.auth import address_throttle

    address_throttle.reset()
    return make_world(db)


CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def csrf_of(html: str) -> str:
    match = CSRF_RE.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def login(client: Any, username: str, password: str = PASSWORD) -> str:
    """Log ``client`` in through the real form; returns the CSRF token of the session."""
    page = client.get("/login")
    response = client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(page.text)},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:500]
    return csrf_of(client.get("/queue").text)


@pytest.fixture()
def browser_client(database: str) -> Iterator[Callable[[], Any]]:
    """A factory of independent TestClients (each with its own cookie jar)."""
    from fastapi.testclient import TestClient

    from deme.app import create_app

    app = create_app()
    clients: list[Any] = []

    def factory() -> Any:
        client = TestClient(app, base_url="https://deme.test")
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


def new_ticket(
    session: Session,
    *,
    category: str = "health",
    phone: str | None = "+22376123456",
    description: str = "Pas d'eau potable au site",
    place_code: str | None = "ML07",
    sensitive: bool | None = None,
    **extra: Any,
) -> Any:
    """A ticket through the real intake (triage, routing, SLA)."""
    from tickets.contacts import get_or_create_contact
    from tickets.intake import create_ticket

    contact = get_or_create_contact(session, phone) if phone else None
    ticket = create_ticket(
        session,
        category=category,
        source=extra.pop("source", "sms"),
        contact=contact,
        description=description,
        place_code=place_code,
        sensitive=sensitive,
        **extra,
    )
    session.commit()
    return ticket
