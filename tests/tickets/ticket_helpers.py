"""Helpers for the tickets tests: a place tree and teams, a recording SMTP server and webhook
receiver, committing like a request does. (Not named ``helpers``: another test package has
a module of that name and both live on sys.path.)"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from models.alerts import AlertChannel
from models.channels import Channel
from models.contacts import Contact
from models.enums import (
    AlertKind,
    ChannelType,
    MessageDirection,
    MessageStatus,
    PlaceKind,
    TicketCategory,
    TicketPriority,
    UserRole,
)
from models.messages import Message
from models.outbox_relay import publish_committed
from models.places import Place
from models.routing import RoutingRule
from models.teams import Team, TeamMember
from models.users import User
from tickets.contacts import get_or_create_contact

SENDER_PHONE = "+22376123456"


def commit(session: Session) -> None:
    """What a request or task does at its end: commit, then publish the outbox."""
    session.commit()
    publish_committed(session)


@dataclass
class World:
    places: dict[str, Place]
    teams: dict[str, Team]
    users: dict[str, User]
    rules: dict[str, RoutingRule] = field(default_factory=dict)

    def place(self, code: str) -> Place:
        return self.places[code]


def _place(session: Session, code: str, name: str, kind: PlaceKind, parent: Place | None) -> Place:
    place = Place(code=code, name=name, kind=kind, parent_id=parent.id if parent else None)
    session.add(place)
    session.flush()
    return place


def add_user(session: Session, username: str, role: UserRole, *, email: str | None = None) -> User:
    user = User(username=username, display_name=username.title(), role=role, email=email)
    session.add(user)
    session.flush()
    return user


def add_member(session: Session, team: Team, user: User, *, lead: bool = False) -> None:
    session.add(TeamMember(team_id=team.id, user_id=user.id, is_lead=lead))
    session.flush()


def add_rule(
    session: Session,
    name: str,
    team: Team,
    *,
    category: TicketCategory | None = None,
    place: Place | None = None,
    min_priority: TicketPriority | None = None,
) -> RoutingRule:
    rule = RoutingRule(
        name=name,
        team_id=team.id,
        category=category,
        place_id=place.id if place else None,
        min_priority=min_priority,
    )
    session.add(rule)
    session.flush()
    return rule


def add_channel(session: Session, team: Team, kind: AlertKind, **target: Any) -> AlertChannel:
    channel = AlertChannel(team_id=team.id, kind=kind, name=f"{team.slug}-{kind}", target=target)
    session.add(channel)
    session.flush()
    return channel


def build_world(session: Session) -> World:
    ml = _place(session, "ML", "Mali", PlaceKind.COUNTRY, None)
    gao = _place(session, "ML07", "Gao", PlaceKind.REGION, ml)
    ansongo = _place(session, "ML0702", "Ansongo", PlaceKind.CERCLE, gao)
    ansongo_commune = _place(session, "ML070201", "Ansongo commune", PlaceKind.COMMUNE, ansongo)
    site = _place(session, "SITE-ANS-1", "Site Wabaria", PlaceKind.SITE, ansongo_commune)
    gao_cercle = _place(session, "ML0701", "Gao cercle", PlaceKind.CERCLE, gao)
    mopti = _place(session, "ML05", "Mopti", PlaceKind.REGION, ml)
    mopti_cercle = _place(session, "ML0501", "Mopti cercle", PlaceKind.CERCLE, mopti)
    places = {
        p.code: p
        for p in (ml, gao, ansongo, ansongo_commune, site, gao_cercle, mopti, mopti_cercle)
    }
    supervisor = add_user(session, "sup", UserRole.SUPERVISOR, email="sup@deme.test")
    lead = add_user(session, "plead", UserRole.PROTECTION_OFFICER, email="lead@deme.test")
    officer = add_user(session, "officer", UserRole.PROTECTION_OFFICER)
    medic = add_user(session, "medic", UserRole.TEAM_MEMBER)
    general = Team(slug="general", name="Hotline", is_default=True)
    protection = Team(
        slug="protection-gao", name="Protection Gao", handles_protection=True, lead_user_id=lead.id
    )
    health = Team(slug="health-gao", name="Health Gao")
    session.add_all([general, protection, health])
    session.flush()
    add_member(session, protection, lead, lead=True)
    add_member(session, protection, officer)
    add_member(session, health, medic)
    world = World(
        places=places,
        teams={"general": general, "protection": protection, "health": health},
        users={"supervisor": supervisor, "lead": lead, "officer": officer, "medic": medic},
    )
    world.rules["protection"] = add_rule(
        session,
        "Protection Gao",
        protection,
        category=TicketCategory.PROTECTION,
        place=gao,
        min_priority=TicketPriority.HIGH,
    )
    world.rules["health"] = add_rule(
        session, "Health Gao", health, category=TicketCategory.HEALTH, place=gao
    )
    session.flush()
    return world


def reachable_contact(session: Session, phone: str = SENDER_PHONE, language: Any = None) -> Contact:
    """A contact who wrote on the simulator channel, so replies go back there."""
    contact = get_or_create_contact(session, phone, language=language)
    channel = session.scalar(select(Channel).where(Channel.name == "sim"))
    if channel is None:
        channel = Channel(name="sim", type=ChannelType.SIMULATOR, config={})
        session.add(channel)
        session.flush()
    session.add(
        Message(
            channel_id=channel.id,
            contact_id=contact.id,
            direction=MessageDirection.INBOUND,
            body="hello",
            status=MessageStatus.HANDLED,
        )
    )
    session.flush()
    return contact


def outbound_bodies(session: Session) -> list[str]:
    session.expire_all()
    rows = session.scalars(
        select(Message.body).where(Message.direction == MessageDirection.OUTBOUND)
    )
    return [body or "" for body in rows]


def dump_all_tables(session: Session) -> str:
    """Every row of every table as text (what a database dump would reveal)."""
    import models

    chunks: list[str] = []
    for table in models.Base.metadata.sorted_tables:
        for row in session.execute(text(f'SELECT * FROM "{table.name}"')):
            chunks.append(f"{table.name}: {tuple(row)!r}")
    return "\n".join(chunks)


# --- SMTP --------------------------------------------------------------------------------


class SmtpSink:
    """An aiosmtpd server that keeps what it received (envelope and raw content)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.messages: list[dict[str, Any]] = []
        self._controller: Any = None

    def start(self) -> None:
        from aiosmtpd.controller import Controller

        sink = self

        class Handler:
            async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
                content = envelope.content
                raw = content.decode("utf-8", "replace") if isinstance(content, bytes) else content
                sink.messages.append(
                    {"from": envelope.mail_from, "to": list(envelope.rcpt_tos), "raw": raw}
                )
                return "250 OK"

        self._controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()

    def decoded(self) -> list[str]:
        """Subject and body of each message, MIME-decoded."""
        from email import message_from_string
        from email.header import decode_header, make_header

        out = []
        for item in self.messages:
            parsed = message_from_string(item["raw"])
            subject = str(make_header(decode_header(parsed.get("Subject", ""))))
            payload = parsed.get_payload(decode=True)
            body = payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""
            out.append(f"{subject}\n{body}\n{item['raw']}")
        return out


# --- webhooks ------------------------------------------------------------------------------


class WebhookReceiver:
    """A local HTTP server recording each POST; answers with ``statuses`` in turn (then 200)."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.statuses: list[int] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                receiver.requests.append(
                    {"path": self.path, "headers": dict(self.headers.items()), "body": body}
                )
                status = receiver.statuses.pop(0) if receiver.statuses else 200
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def payloads(self) -> list[dict[str, Any]]:
        return [json.loads(r["body"]) for r in self.requests]
