"""PSEA in the tickets domain (issue 15): a report of sexual exploitation or abuse by an aid
worker is always protection, sensitive and urgent; it is routed only to the PSEA focal-point
team (never by the routing rules to a protection or sector team); its alerts, through a real
worker, say nothing but "a new case needs you, log in" (no reference, no place, no words);
its escalations reach the PSEA team's leads only (no supervisor); it is never grouped into a
surge."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import select
from ticket_helpers import (
    SENDER_PHONE,
    SmtpSink,
    WebhookReceiver,
    World,
    add_channel,
    add_member,
    add_user,
    commit,
    reachable_contact,
)

from core.settings import get_settings
from models.alerts import Alert
from models.enums import (
    AlertKind,
    AlertStatus,
    TicketCategory,
    TicketKind,
    TicketPriority,
    UserRole,
)
from models.teams import Team
from support import wait_until
from tickets import sla
from tickets.intake import create_ticket

REPORT = "Le distributeur Adama de l'ONG demande du sexe contre les kits a Wabaria"


def _psea_team(db: Any, world: World) -> tuple[Team, Any, Any]:
    team = Team(slug="psea", name="Points focaux PSEA", handles_psea=True)
    db.add(team)
    db.flush()
    lead = add_user(db, "psea-lead", UserRole.TEAM_MEMBER, email="amina@deme.test")
    member = add_user(db, "psea-member", UserRole.TEAM_MEMBER, email="fatou@deme.test")
    add_member(db, team, lead, lead=True)
    add_member(db, team, member)
    return team, lead, member


def _psea_ticket(db: Any, **extra: Any) -> Any:
    return create_ticket(
        db,
        category=extra.pop("category", TicketCategory.WASH),
        kind=TicketKind.PSEA,
        source="sms",
        description=REPORT,
        place_code="SITE-ANS-1",
        sensitive=False,
        **extra,
    )


def test_a_psea_report_is_protection_sensitive_urgent_whatever_the_creator_sent(
    db: Any, world: World
) -> None:
    team, _lead, _member = _psea_team(db, world)
    ticket = _psea_ticket(db)
    commit(db)
    assert ticket.kind == TicketKind.PSEA
    assert ticket.category == TicketCategory.PROTECTION
    assert ticket.sensitive is True
    assert ticket.priority == TicketPriority.URGENT
    assert ticket.search_index is None  # no searchable trace of its words
    # Routed to the focal points, not by the "Protection Gao" rule to the protection team.
    assert ticket.team_id == team.id
    assert ticket.incident_id is None


def test_without_a_psea_team_it_waits_unrouted_never_with_protection(
    db: Any, world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    ticket = _psea_ticket(db)
    commit(db)
    assert ticket.team_id is None
    assert ticket.team_id != world.teams["protection"].id
    # Only when an administrator shares PSEA cases with protection do the rules route it.
    monkeypatch.setenv("DEME_PSEA_SHARE_WITH_PROTECTION", "true")
    get_settings.cache_clear()
    try:
        shared = _psea_ticket(db, message_id=None)
        commit(db)
        assert shared.team_id == world.teams["protection"].id
    finally:
        monkeypatch.delenv("DEME_PSEA_SHARE_WITH_PROTECTION")
        get_settings.cache_clear()


def test_psea_reports_are_never_grouped_into_a_surge(db: Any, world: World) -> None:
    _psea_team(db, world)
    tickets = [_psea_ticket(db) for _ in range(get_settings().surge_threshold + 2)]
    commit(db)
    assert all(t.incident_id is None for t in tickets)


def test_psea_alerts_and_escalations_say_only_log_in(
    db: Any, world: World, smtp: SmtpSink, webhook: WebhookReceiver, celery_worker: Any
) -> None:
    team, _lead, _member = _psea_team(db, world)
    add_channel(db, team, AlertKind.WEBHOOK, url=webhook.url)
    add_channel(db, team, AlertKind.EMAIL, email="focal-team@deme.test")
    # The protection team has channels too: none of them may hear of the case.
    add_channel(db, world.teams["protection"], AlertKind.EMAIL, email="protection@deme.test")
    contact = reachable_contact(db, SENDER_PHONE, language="fr")
    t0 = datetime.now(UTC)
    ticket = _psea_ticket(db, contact=contact, now=t0)
    commit(db)
    sla.escalate(db, ticket, deadline="first_response", now=t0 + timedelta(days=2))
    commit(db)

    def delivered() -> bool:
        db.expire_all()
        rows = db.scalars(select(Alert).where(Alert.ticket_id == ticket.id)).all()
        return len(rows) == 5 and all(a.status == AlertStatus.DELIVERED for a in rows)

    # new + escalation on 2 channels, and the escalation to the PSEA lead only (not the
    # supervisor, not the member who is no lead, not the protection lead).
    wait_until(delivered, timeout=60)
    wait_until(lambda: len(smtp.messages) == 3, timeout=20)
    wait_until(lambda: len(webhook.requests) == 2, timeout=20)
    recipients = sorted(r for m in smtp.messages for r in m["to"])
    assert recipients == ["amina@deme.test", "focal-team@deme.test", "focal-team@deme.test"]

    left = [r["body"].decode() for r in webhook.requests] + smtp.decoded()
    left += [a.subject + a.body for a in db.scalars(select(Alert))]
    forbidden = [ticket.reference, "Adama", "ONG", "sexe", "kit", "Wabaria", "Ansongo", "Gao"]
    forbidden += ["protection", "PSEA", "urgent", "distribut", SENDER_PHONE, "22376"]
    for text in left:
        for word in forbidden:
            assert word.lower() not in text.lower(), (word, text)
        assert "Connectez-vous" in text or "besoin de vous" in text or "attend" in text
    for request in webhook.requests:
        payload = json.loads(request["body"])
        assert payload["reference"] is None
    assert "un nouveau cas a besoin de vous" in " ".join(smtp.decoded()).lower()
