"""Surges: same category and cercle/site within the window → one incident, one alert per
team channel with a running count, and closing it can tell every sender."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select
from ticket_helpers import WebhookReceiver, World, add_channel, commit, reachable_contact

from models.alerts import Alert
from models.enums import AlertKind, IncidentStatus, MessageDirection, TicketCategory
from models.messages import Message
from models.tickets import Incident, Ticket, TicketEvent
from support import wait_until
from tickets import alerts
from tickets.i18n import translate
from tickets.intake import create_ticket
from tickets.surges import close_incident, grouping_place_id

C = TicketCategory
T0 = datetime(2026, 3, 2, 8, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


def _report(db: Any, *, place: str = "SITE-ANS-1", at: datetime, **kwargs: Any) -> Ticket:
    kwargs.setdefault("category", C.WASH)
    kwargs.setdefault("description", "pas d'eau au forage")
    return create_ticket(db, source="sms", place_code=place, now=at, **kwargs)


def _alerts(db: Any, reason: str) -> list[Alert]:
    db.expire_all()
    return list(db.scalars(select(Alert).where(Alert.reason == reason).order_by(Alert.id)))


def test_grouping_place_is_the_nearest_site_or_cercle(db: Any, world: World) -> None:
    site, cercle = world.place("SITE-ANS-1"), world.place("ML0702")
    assert grouping_place_id(db, site.id) == site.id
    assert grouping_place_id(db, world.place("ML070201").id) == cercle.id
    assert grouping_place_id(db, cercle.id) == cercle.id
    assert grouping_place_id(db, world.place("ML07").id) is None
    assert grouping_place_id(db, None) is None


def test_reports_become_one_incident_with_one_alert_and_a_running_count(
    db: Any, world: World
) -> None:
    channel = add_channel(db, world.teams["general"], AlertKind.WEBHOOK, url="http://x/h")
    first = _report(db, at=T0)
    second = _report(db, at=T0 + 2 * HOUR)
    assert first.incident_id is None and second.incident_id is None
    assert len(_alerts(db, "new_ticket")) == 2

    third = _report(db, at=T0 + 5 * HOUR)
    incident = db.get(Incident, third.incident_id)
    assert incident is not None and incident.report_count == 3
    assert incident.place_id == world.place("SITE-ANS-1").id
    assert incident.opened_at == T0 and incident.team_id == world.teams["general"].id
    assert {first.incident_id, second.incident_id} == {incident.id}
    # the third report is part of the surge: no separate alert for it
    assert len(_alerts(db, "new_ticket")) == 2
    (surge,) = _alerts(db, "surge")
    assert surge.alert_channel_id == channel.id and surge.incident_id == incident.id
    assert "3 demandes" in surge.body and incident.reference in surge.subject

    for hours in (6, 20, 40):  # the window slides with each report
        _report(db, at=T0 + hours * HOUR)
    db.refresh(incident)
    assert incident.report_count == 6
    (surge,) = _alerts(db, "surge")
    assert "6 demandes" in surge.body
    assert len(_alerts(db, "new_ticket")) == 2
    linked = db.scalar(
        select(func.count(TicketEvent.id)).where(TicketEvent.kind == "incident_linked")
    )
    assert linked == 6


def test_other_places_categories_and_old_reports_are_not_grouped(db: Any, world: World) -> None:
    _report(db, at=T0)
    _report(db, at=T0 + HOUR)
    _report(db, at=T0 + HOUR, place="ML070201")  # the cercle, not the site
    _report(db, at=T0 + HOUR, category=C.HEALTH)
    _report(db, at=T0 + HOUR, place="ML07")  # region only: too vague
    _report(db, at=T0 + 26 * HOUR)  # the first two are out of its 24 h window
    _report(db, at=T0 + 27 * HOUR)
    assert db.scalar(select(func.count(Incident.id))) == 0
    _report(db, at=T0 + 28 * HOUR)
    incident = db.scalar(select(Incident))
    assert incident is not None and incident.report_count == 3
    assert incident.opened_at == T0 + 26 * HOUR


def test_a_cercle_groups_its_communes_but_not_the_sites_below_them(db: Any, world: World) -> None:
    # SITE-ANS-1 lies in the commune ML070201, which lies in the cercle ML0702.
    _report(db, at=T0, place="SITE-ANS-1")
    _report(db, at=T0 + HOUR, place="SITE-ANS-1")
    _report(db, at=T0 + HOUR, place="ML070201")
    _report(db, at=T0 + 2 * HOUR, place="ML0702")
    assert db.scalar(select(func.count(Incident.id))) == 0  # two at the site, two in the cercle

    third = _report(db, at=T0 + 3 * HOUR, place="ML070201")
    incident = db.get(Incident, third.incident_id)
    assert incident is not None and incident.report_count == 3
    assert incident.place_id == world.place("ML0702").id
    site_reports = db.scalars(
        select(Ticket).where(Ticket.place_id == world.place("SITE-ANS-1").id)
    ).all()
    assert [t.incident_id for t in site_reports] == [None, None]


def test_urgent_reports_are_never_folded_into_a_count(db: Any, world: World) -> None:
    add_channel(db, world.teams["general"], AlertKind.WEBHOOK, url="http://x/h")
    for hours in range(3):
        _report(db, at=T0 + hours * HOUR)
    urgent = _report(db, at=T0 + 4 * HOUR, description="un enfant inconscient au forage")
    assert urgent.incident_id is not None
    assert urgent.id in {a.ticket_id for a in _alerts(db, "new_ticket")}


def test_a_pending_surge_alert_goes_out_with_the_latest_count(
    db: Any, world: World, webhook: WebhookReceiver
) -> None:
    add_channel(db, world.teams["general"], AlertKind.WEBHOOK, url=webhook.url)
    for hours in range(4):
        _report(db, at=T0 + hours * HOUR)
    db.commit()
    (surge,) = _alerts(db, "surge")
    alerts.deliver_alert(surge.id)
    (payload,) = [json.loads(r["body"]) for r in webhook.requests if b'"surge"' in r["body"]]
    assert payload["incident"] is not None and "4 demandes" in payload["text"]
    assert "Site Wabaria" in payload["text"]


def test_a_protection_surge_alert_carries_no_place(db: Any, world: World) -> None:
    add_channel(db, world.teams["protection"], AlertKind.WEBHOOK, url="http://x/h")
    for hours in range(3):
        _report(db, at=T0 + hours * HOUR, category=C.PROTECTION, description="menaces")
    (surge,) = _alerts(db, "surge")
    text = surge.subject + surge.body
    assert "3 signalements" in text
    for word in ("Wabaria", "Ansongo", "Gao", "menaces", "protection"):
        assert word.lower() not in text.lower()


def test_closing_an_incident_notifies_each_sender_once(
    db: Any, world: World, celery_worker: Any
) -> None:
    alice = reachable_contact(db, "+22376000001")
    bob = reachable_contact(db, "+22376000002", language="en")
    _report(db, at=T0, contact=alice)
    _report(db, at=T0 + HOUR, contact=alice)
    bobs = _report(db, at=T0 + 2 * HOUR, contact=bob)
    incident = db.get(Incident, bobs.incident_id)
    assert incident is not None
    assert close_incident(db, incident, actor_label="sup", notify_senders=True)
    assert not close_incident(db, incident, actor_label="sup", notify_senders=True)
    commit(db)
    assert incident.status == IncidentStatus.CLOSED

    def sent() -> list[tuple[int | None, str | None]]:
        db.expire_all()
        rows = db.execute(
            select(Message.contact_id, Message.body).where(
                Message.direction == MessageDirection.OUTBOUND
            )
        ).all()
        return [(r[0], r[1]) for r in rows]

    wait_until(lambda: len(sent()) == 2, timeout=30)
    bodies = dict(sent())
    assert bodies[bob.id] == translate("sender.incident_closed", "en", reference=bobs.reference)
    assert bodies[alice.id] is not None and "Deme:" in bodies[alice.id]
