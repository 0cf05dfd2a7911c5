"""Broadcasts through /api/v1 on the real database (both deployments): who is reached (opt-outs,
erased and flood-limited contacts never; protection selections refused), per-language text,
preview counts and parts, supervisors only, audit, resume after a crash without duplicates,
scheduling and replies tied to the broadcast."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from gateway import broadcasts as bc
from gateway.gsm7 import measure
from models.audit import AuditLog
from models.base import utcnow
from models.broadcasts import Broadcast, BroadcastRecipient
from models.contacts import Contact
from models.enums import Language, MessageDirection, MessageStatus
from models.messages import Message
from tests.console.conftest import World, new_ticket
from tickets.contacts import get_or_create_contact

TEXTS = {
    "fr": "Distribution de kits d'hygiène demain à 9h au site.",
    "en": "Hygiene kit distribution tomorrow at 9am at the site.",
    "bm": "Sini, sanuya minanw bɛna tila site la sɔgɔma 9h.",
}


def _contact(session: Session, phone: str, language: str | None) -> Contact:
    contact = get_or_create_contact(session, phone)
    contact.language = Language(language) if language else None
    session.flush()
    return contact


@pytest.fixture()
def people(db: Session, world: World) -> dict[str, Contact]:
    found = {
        "fr": _contact(db, "+22376000001", "fr"),
        "en": _contact(db, "+22376000002", "en"),
        "bm": _contact(db, "+22376000003", "bm"),
        "opted_out": _contact(db, "+22376000004", "fr"),
        "erased": _contact(db, "+22376000005", "fr"),
        "flooding": _contact(db, "+22376000006", "fr"),
    }
    found["opted_out"].opted_out_at = utcnow()
    erased = found["erased"]
    erased.erased_at, erased.phone, erased.phone_hash = utcnow(), None, None
    db.add(
        Message(
            channel_id=world.simulator_channel_id,
            contact_id=found["flooding"].id,
            direction=MessageDirection.INBOUND,
            body="x",
            status=MessageStatus.IGNORED,
            flood_limited=True,
        )
    )
    db.commit()
    return found


def _body(**selection: Any) -> dict[str, Any]:
    return {"selection": selection, "texts": TEXTS}


def _bodies(session: Session) -> dict[int | None, list[str]]:
    found: dict[int | None, list[str]] = {}
    for m in session.scalars(select(Message).where(Message.direction == MessageDirection.OUTBOUND)):
        found.setdefault(m.contact_id, []).append(m.body or "")
    return found


def _send_all(session: Session, broadcast_id: int) -> None:
    channels = set(
        session.scalars(
            select(BroadcastRecipient.channel_id).where(
                BroadcastRecipient.broadcast_id == broadcast_id
            )
        )
    )
    for channel_id in channels:
        while bc.send_batch(broadcast_id, int(channel_id or 0), 7):
            pass


def test_opt_outs_erased_and_flood_limited_are_never_sent_and_each_gets_their_language(
    client: Any, world: World, people: dict[str, Contact], db: Session
) -> None:
    sup = world["supervisor"]
    preview = client.post(
        "/api/v1/broadcasts/preview", json=_body(languages=["fr", "en", "bm"]), headers=sup.headers
    )
    assert preview.status_code == 200, preview.text
    data = preview.json()
    assert data["recipients"] == 3
    assert data["skipped"] == {"erased": 1, "opted_out": 1, "flood_limited": 1}
    assert data["by_language"] == {"fr": 1, "en": 1, "bm": 1}

    created = client.post(
        "/api/v1/broadcasts",
        json={"name": "Kits", **_body(languages=["fr", "en", "bm"])},
        headers=sup.headers,
    )
    assert created.status_code == 201, created.text
    broadcast_id = created.json()["id"]
    assert created.json()["status"] == "draft"
    sent = client.post(f"/api/v1/broadcasts/{broadcast_id}/send", json={}, headers=sup.headers)
    assert sent.json()["status"] == "sending"
    _send_all(db, broadcast_id)

    db.expire_all()
    bodies = _bodies(db)
    assert set(bodies) == {people["fr"].id, people["en"].id, people["bm"].id}
    assert bodies[people["en"].id] == [TEXTS["en"]]
    assert bodies[people["fr"].id] == [TEXTS["fr"]]
    # Bambara's ɛ and ɔ are not GSM-7: the channel transliterates them, as for any SMS.
    assert bodies[people["bm"].id][0].startswith("Sini, sanuya minanw bena tila")
    detail = client.get(f"/api/v1/broadcasts/{broadcast_id}", headers=sup.headers).json()
    assert detail["progress"]["sent"] == 3
    assert detail["progress"]["skipped"] == 3
    assert detail["delivery"] == {"pending": 3}


def test_a_contact_opting_out_after_preparation_is_skipped(
    client: Any, world: World, people: dict[str, Contact], db: Session
) -> None:
    sup = world["supervisor"]
    created = client.post(
        "/api/v1/broadcasts", json={"name": "x", **_body(languages=["fr"])}, headers=sup.headers
    ).json()
    contact = db.get(Contact, people["fr"].id)
    assert contact is not None
    contact.opted_out_at = utcnow()
    db.commit()
    client.post(f"/api/v1/broadcasts/{created['id']}/send", json={}, headers=sup.headers)
    _send_all(db, created["id"])
    db.expire_all()
    assert _bodies(db) == {}
    detail = client.get(f"/api/v1/broadcasts/{created['id']}", headers=sup.headers).json()
    assert detail["progress"]["skipped"] == 4


@pytest.mark.parametrize(
    "selection",
    [{"ticket_category": "protection"}, {"ticket_kind": "psea"}],
)
def test_a_selection_built_on_protection_or_psea_cases_is_refused(
    client: Any, world: World, selection: dict[str, str]
) -> None:
    for path in ("/api/v1/broadcasts/preview", "/api/v1/broadcasts"):
        response = client.post(
            path,
            json={"name": "x", **_body(**selection)} if path.endswith("s") else _body(**selection),
            headers=world["admin"].headers,
        )
        assert response.status_code == 422
        assert "protection or PSEA" in response.json()["detail"]


def test_selection_by_ticket_status_never_counts_a_sensitive_case(
    client: Any, world: World, db: Session
) -> None:
    new_ticket(db, phone="+22376000010", category="health")
    new_ticket(db, phone="+22376000011", category="health", sensitive=True)
    preview = client.post(
        "/api/v1/broadcasts/preview",
        json=_body(ticket_category="health"),
        headers=world["supervisor"].headers,
    ).json()
    assert preview["recipients"] == 1


def test_by_place_includes_the_places_under_it(client: Any, world: World, db: Session) -> None:
    new_ticket(db, phone="+22376000020", place_code="ML07")  # Gao region
    new_ticket(db, phone="+22376000021", place_code="ML01")  # Kayes: elsewhere
    from tickets.gazetteer import Gazetteer

    commune = next(r for r in Gazetteer.default().descendants("ML07") if r.kind.value == "commune")
    new_ticket(db, phone="+22376000022", place_code=commune.code)
    preview = client.post(
        "/api/v1/broadcasts/preview", json=_body(place="ML07"), headers=world["supervisor"].headers
    ).json()
    assert preview["recipients"] == 2


@pytest.mark.parametrize("role", ["operator", "team_member", "protection_officer", "service"])
def test_only_supervisors_and_admins_may_broadcast(client: Any, world: World, role: str) -> None:
    response = client.post(
        "/api/v1/broadcasts/preview", json=_body(languages=["fr"]), headers=world[role].headers
    )
    assert response.status_code == 403
    assert "only a supervisor or an administrator" in response.json()["detail"]
    listed = client.get("/api/v1/broadcasts", headers=world[role].headers)
    assert listed.status_code == 403


def test_preview_counts_parts_gsm7_and_ucs2_and_cost(
    client: Any, world: World, db: Session
) -> None:
    from models.channels import Channel
    from models.enums import ChannelType

    channel = db.scalar(select(Channel).where(Channel.type == ChannelType.HTTP))
    assert channel is not None
    channel.config = {"cost_per_part": 25, "transliterate": False}
    for n in range(4):
        _contact(db, f"+2237600003{n}", "fr" if n < 3 else "bm")
    db.commit()
    fr = "A" * 200  # GSM-7: 2 parts of 153
    bm = "ɛ" * 100  # UCS-2 (not transliterated on this channel): 2 parts of 67
    assert measure(fr).segments == 2 and measure(bm).encoding.value == "ucs2"
    preview = client.post(
        "/api/v1/broadcasts/preview",
        json={"selection": {"languages": ["fr", "bm"]}, "texts": {"fr": fr, "bm": bm}},
        headers=world["supervisor"].headers,
    ).json()
    assert preview["recipients"] == 4
    assert preview["texts"]["fr"] == {"encoding": "gsm7", "parts": 2}
    assert preview["texts"]["bm"] == {"encoding": "ucs2", "parts": 2}
    assert preview["parts_total"] == 8
    assert preview["channels"] == [
        {"channel": channel.name, "recipients": 4, "parts": 8, "cost": 200.0}
    ]
    assert preview["cost_total"] == 200.0


def test_uploaded_list_normalises_numbers_and_names_invalid_lines(
    client: Any, world: World, db: Session
) -> None:
    _contact(db, "+22376000040", "en")
    db.commit()
    csv_text = "phone\n76 00 00 40\n+223 76 00 00 41\nnot-a-number\n\n76000040\n"
    preview = client.post(
        "/api/v1/broadcasts/preview",
        json={"selection": {"phones_csv": csv_text}, "texts": TEXTS},
        headers=world["supervisor"].headers,
    ).json()
    assert preview["recipients"] == 2
    assert preview["new_numbers"] == 1
    assert preview["invalid_lines"] == ["line 4: 'not-a-number' is not a phone number"]
    empty = client.post(
        "/api/v1/broadcasts/preview",
        json={"selection": {"phones_csv": "abc\nxyz\n"}, "texts": TEXTS},
        headers=world["supervisor"].headers,
    )
    assert empty.status_code == 422
    assert "no valid phone number" in empty.json()["detail"]


def test_resume_after_a_crash_mid_batch_sends_nobody_twice(
    client: Any, world: World, db: Session, monkeypatch: pytest.MonkeyPatch
) -> None:
    for n in range(25):
        _contact(db, f"+223760001{n:02d}", "fr")
    db.commit()
    sup = world["supervisor"]
    created = client.post(
        "/api/v1/broadcasts", json={"name": "x", **_body(languages=["fr"])}, headers=sup.headers
    ).json()
    client.post(f"/api/v1/broadcasts/{created['id']}/send", json={}, headers=sup.headers)
    real = bc.queue_sms
    calls = {"n": 0}

    def dies_in_the_second_batch(*args: Any, **kwargs: Any) -> Any:
        calls["n"] += 1
        if calls["n"] == 14:
            raise SystemExit("worker killed")
        return real(*args, **kwargs)

    monkeypatch.setattr(bc, "queue_sms", dies_in_the_second_batch)
    channel_id = db.scalar(
        select(BroadcastRecipient.channel_id).where(
            BroadcastRecipient.broadcast_id == created["id"]
        )
    )
    assert bc.send_batch(created["id"], int(channel_id or 0), 10) == 10  # first batch commits
    with pytest.raises(SystemExit):
        bc.send_batch(created["id"], int(channel_id or 0), 10)  # dies mid-way: rolled back
    monkeypatch.setattr(bc, "queue_sms", real)
    _send_all(db, created["id"])
    db.expire_all()
    per_contact = db.execute(
        select(Message.contact_id, func.count())
        .where(Message.direction == MessageDirection.OUTBOUND)
        .group_by(Message.contact_id)
    ).all()
    assert len(per_contact) == 25
    assert max(n for _c, n in per_contact) == 1
    detail = client.get(f"/api/v1/broadcasts/{created['id']}", headers=sup.headers).json()
    assert detail["progress"]["sent"] == 25 and detail["progress"]["queued"] == 0


def test_tick_paces_to_the_channel_rate_and_finishes(
    client: Any, world: World, db: Session
) -> None:
    from models.channels import Channel
    from models.enums import ChannelType

    channel = db.scalar(select(Channel).where(Channel.type == ChannelType.HTTP))
    assert channel is not None
    channel.config = {"broadcast_per_second": 2}  # × the 2 s tick: 4 per tick
    for n in range(9):
        _contact(db, f"+223760002{n:02d}", "fr")
    db.commit()
    sup = world["supervisor"]
    created = client.post(
        "/api/v1/broadcasts", json={"name": "x", **_body(languages=["fr"])}, headers=sup.headers
    ).json()
    later = utcnow() + timedelta(hours=1)
    scheduled = client.post(
        f"/api/v1/broadcasts/{created['id']}/send",
        json={"scheduled_at": later.isoformat()},
        headers=sup.headers,
    ).json()
    assert scheduled["status"] == "scheduled"
    assert bc.broadcast_tick() == 0  # not due yet
    assert bc.broadcast_tick(now=later + timedelta(seconds=1)) == 4
    assert bc.broadcast_tick() == 0  # 4 still waiting to be sent on the channel: no more
    db.execute(
        Message.__table__.update().values(status=MessageStatus.SENT)  # the outbound worker
    )
    db.commit()
    assert bc.broadcast_tick() == 4
    db.execute(Message.__table__.update().values(status=MessageStatus.SENT))
    db.commit()
    assert bc.broadcast_tick() == 1
    bc.broadcast_tick()
    db.expire_all()
    broadcast = db.get(Broadcast, created["id"])
    assert broadcast is not None and broadcast.status.value == "done"


def test_replies_are_tied_and_every_action_is_audited(
    client: Any, world: World, people: dict[str, Contact], db: Session
) -> None:
    sup = world["supervisor"]
    created = client.post(
        "/api/v1/broadcasts", json={"name": "x", **_body(languages=["en"])}, headers=sup.headers
    ).json()
    client.post(f"/api/v1/broadcasts/{created['id']}/send", json={}, headers=sup.headers)
    _send_all(db, created["id"])
    db.add(
        Message(
            channel_id=world.simulator_channel_id,
            contact_id=people["en"].id,
            direction=MessageDirection.INBOUND,
            body="thanks, where exactly?",
            status=MessageStatus.HANDLED,
            created_at=utcnow() + timedelta(minutes=5),
        )
    )
    for outside in (timedelta(hours=-1), timedelta(days=10)):  # before it, or days later
        db.add(
            Message(
                channel_id=world.simulator_channel_id,
                contact_id=people["en"].id,
                direction=MessageDirection.INBOUND,
                body="unrelated",
                status=MessageStatus.HANDLED,
                created_at=utcnow() + outside,
            )
        )
    db.commit()
    test = client.post(
        f"/api/v1/broadcasts/{created['id']}/test",
        json={"phone": "76 99 99 99", "language": "en"},
        headers=sup.headers,
    )
    assert test.status_code == 200, test.text
    bad = client.post(
        f"/api/v1/broadcasts/{created['id']}/test", json={"phone": "hello"}, headers=sup.headers
    )
    assert bad.status_code == 422 and "not a phone number" in bad.json()["detail"]
    detail = client.get(f"/api/v1/broadcasts/{created['id']}", headers=sup.headers).json()
    assert detail["replies"] == 1
    again = client.post(f"/api/v1/broadcasts/{created['id']}/send", json={}, headers=sup.headers)
    assert again.status_code == 409 and "only a draft" in again.json()["detail"]
    actions = list(
        db.scalars(
            select(AuditLog.action).where(AuditLog.object_type == "broadcast").order_by(AuditLog.id)
        )
    )
    assert actions == ["broadcast.created", "broadcast.sent", "broadcast.test_sent"]


def test_the_broadcast_endpoints_are_documented(client: Any) -> None:
    paths = client.get("/api/openapi.json").json()["paths"]
    for path in (
        "/api/v1/broadcasts",
        "/api/v1/broadcasts/preview",
        "/api/v1/broadcasts/{broadcast_id}/send",
        "/api/v1/broadcasts/{broadcast_id}/test",
    ):
        assert path in paths
