"""Flow monitoring by SMS (issue 16): only a registered enumerator's phone is heard; a
malformed count is answered with every problem in the sender's language; a valid one is
recorded as that enumerator's and counted in the week's table. On both deployments."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway.i18n import translate
from models import Contact, Message, MessageDirection, MessageStatus
from models.base import utcnow
from models.enums import MovementChannel, MovementReason, MovementStatus
from models.movements import Movement
from models.places import Place
from tests.console.conftest import World

ENUMERATOR_PHONE = "+22376200001"
STRANGER_PHONE = "+22376200002"


def _enumerator(db: Session, world: World, phone: str = ENUMERATOR_PHONE) -> Contact:
    from models.users import User
    from tickets.contacts import get_or_create_contact
    from tickets.flows import register_enumerator_phone

    contact = get_or_create_contact(db, phone)
    user = db.get(User, world["operator"].user_id)
    assert user is not None
    register_enumerator_phone(db, user, contact)
    db.commit()
    return contact


def _text(db: Session, world: World, body: str, phone: str = ENUMERATOR_PHONE) -> tuple[str, str]:
    """Send ``body`` from ``phone``; (outcome, the SMS answered)."""
    from gateway.inbound import InboundSms, record_inbound
    from gateway.tasks import handle_inbound
    from models.outbox_relay import discard_pending

    sid = f"SMflow{utcnow().timestamp()}"
    message_id = record_inbound(InboundSms(world.simulator_channel_id, sid, phone, body))
    assert message_id is not None
    outcome = handle_inbound(db, message_id)
    db.commit()
    discard_pending(db)
    db.expire_all()
    inbound = db.get(Message, message_id)
    assert inbound is not None and inbound.status == MessageStatus.HANDLED
    replies = list(
        db.scalars(
            select(Message)
            .where(
                Message.direction == MessageDirection.OUTBOUND,
                Message.contact_id == inbound.contact_id,
            )
            .order_by(Message.id.desc())
        )
    )
    assert replies, "every FLOW SMS is answered"
    return outcome, replies[0].body or ""


def _code(db: Session, place_id: int | None) -> str | None:
    place = db.get(Place, place_id) if place_id else None
    return place.code if place else None


def test_a_flow_sms_from_an_unregistered_phone_is_refused(db: Session, world: World) -> None:
    from tickets.contacts import get_or_create_contact

    stranger = get_or_create_contact(db, STRANGER_PHONE)
    stranger.language = None
    db.commit()
    outcome, reply = _text(db, world, "FLUX Sogoniko Gao Bamako 12 conflit D", STRANGER_PHONE)
    assert outcome == "flow-refused"
    assert reply == translate("flow.not_enumerator", "fr")
    assert "pas enregistre" in reply
    assert db.scalar(select(Movement.id)) is None
    # An English keyword is refused in English.
    outcome, reply = _text(db, world, "flow Sogoniko Gao Bamako 12 conflict D", STRANGER_PHONE)
    assert reply == translate("flow.not_enumerator", "en")
    assert db.scalar(select(Movement.id)) is None


def test_a_malformed_flow_sms_is_answered_with_every_problem(db: Session, world: World) -> None:
    _enumerator(db, world)
    outcome, reply = _text(db, world, "FLUX Sogoniko Gao Bamako douze guerre")
    assert outcome == "flow-invalid"
    assert reply.startswith("Deme: flux NON enregistre.")
    assert translate("flow.problem.people", "fr") in reply
    assert translate("flow.problem.status", "fr") in reply
    assert "FLUX point origine destination nombre raison type" in reply

    outcome, reply = _text(db, world, "FLUX Xyzzyville / Gao / Bamako / 12 / conflit / D")
    assert outcome == "flow-invalid"
    assert f"{translate('flow.problem.point', 'fr')} (Xyzzyville)" in reply

    outcome, reply = _text(db, world, "FLUX Sogoniko Gao Gao 12 conflit D")
    assert translate("flow.problem.same_place", "fr") in reply

    # Everything wrong, in characters GSM-7 cannot carry, on a channel that allows 3 SMS
    # parts: still one clear answer, the typed words left out to fit.
    from models.channels import Channel

    channel = db.get(Channel, world.simulator_channel_id)
    assert channel is not None
    channel.config = {**(channel.config or {}), "max_segments": 3}
    db.commit()
    outcome, reply = _text(db, world, "FLUX 🚌🚌🚌 / ⵜⵉⵏⴱⵓⴽⵜⵓ / جاو / ١٢٣ / ؟ / ؟ " + "x" * 60)
    assert outcome == "flow-invalid"
    assert reply.startswith("Deme: flux NON enregistre.")
    assert translate("flow.problem.reason", "fr") in reply
    assert translate("flow.problem.point", "fr") in reply
    assert "🚌" not in reply
    assert db.scalar(select(Movement.id)) is None


def test_the_answer_is_in_the_enumerators_language(db: Session, world: World) -> None:
    from models.enums import Language
    from models.users import User

    user = db.get(User, world["operator"].user_id)
    assert user is not None
    user.language = Language.BAMBARA
    db.commit()
    _enumerator(db, world)
    outcome, reply = _text(db, world, "FLOW Sogoniko Gao Bamako 12 kele")
    assert outcome == "flow-invalid"
    assert reply.startswith("Deme: a MA seben.")
    assert translate("flow.problem.status", "bm") in reply


def test_a_valid_flow_sms_is_recorded_and_counted_in_its_week(db: Session, world: World) -> None:
    from ops_console.displacement import flows_dashboard

    contact = _enumerator(db, world)
    yesterday = utcnow().date() - timedelta(days=1)
    outcome, reply = _text(db, world, "flux gare sevare douentza commune 6 25 famille retour hier")
    assert outcome == "flow-recorded", reply
    movement = db.scalar(select(Movement))
    assert movement is not None
    assert reply == translate(
        "flow.recorded",
        "fr",
        id=movement.id,
        people=25,
        origin="Douentza",
        destination="Commune VI",
        point="Gare routière de Sévaré",
        date=yesterday.strftime("%d/%m/%Y"),
    )
    assert movement.observed_on == yesterday
    assert movement.people == 25
    assert movement.reason == MovementReason.FAMILY
    assert movement.status == MovementStatus.RETURNING
    assert movement.point_name == "Gare routière de Sévaré"
    assert _code(db, movement.point_place_id) == "ML0501002"
    assert _code(db, movement.origin_place_id) == "ML18"
    assert _code(db, movement.destination_place_id) == "ML0006"
    assert movement.channel == MovementChannel.SMS
    assert movement.recorded_by_user_id == world["operator"].user_id
    assert movement.enumerator_contact_id == contact.id

    _text(db, world, "FLOW BKO1 / - / Commune 6 / 5 / economic / transit / yesterday")
    week = yesterday - timedelta(days=yesterday.weekday())
    table = dict(flows_dashboard(db)["flow_table"])
    assert table[(week, "Douentza", "Bamako")] == [25, 1]
    assert table[(week, "", "Bamako")] == [5, 1]


def test_a_supervisor_registers_and_stops_an_enumerator_phone(
    browser_client: Any, world: World, db: Session
) -> None:
    import html

    from models.audit import AuditLog
    from tests.console.conftest import csrf_of, login

    client = browser_client()
    login(client, world["operator"].username)
    page = html.unescape(client.get("/flows").text)
    assert "FLUX point origine destination nombre raison type" in page
    assert "Gare routière de Sogoniko" in page
    assert "Téléphones des enquêteurs" not in page  # operators do not manage phones

    client = browser_client()
    login(client, world["supervisor"].username)
    csrf = csrf_of(client.get("/flows").text)
    refused = client.post(
        "/flows/enumerators",
        data={"csrf_token": csrf, "username": "nobody", "phone": "12"},
    )
    assert refused.status_code == 422
    text = html.unescape(refused.text)
    assert "Aucun compte actif de ce nom ne peut enregistrer des flux." in text
    assert "Ce n'est pas un numéro de téléphone" in text

    done = client.post(
        "/flows/enumerators",
        data={
            "csrf_token": csrf,
            "username": world["operator"].username,
            "phone": "76 20 00 01",
        },
    )
    assert done.status_code == 200 and "/flows" in str(done.url)
    page = html.unescape(done.text)
    assert "Ce téléphone peut maintenant envoyer des comptages par SMS." in page
    assert "+223 •• •• •• 01" in page and "76200001" not in page
    outcome, _reply = _text(db, world, "FLUX Sogoniko Gao Bamako 12 conflit D")
    assert outcome == "flow-recorded"
    page = html.unescape(client.get("/flows").text)
    assert "comptage au point de suivi · SMS" in page

    audit = db.scalar(select(AuditLog).where(AuditLog.action == "enumerator_phone.registered"))
    assert audit is not None and "76200001" not in str(audit.details)

    from models.contacts import Contact
    from tickets.contacts import find_contact_by_phone

    contact = find_contact_by_phone(db, ENUMERATOR_PHONE)
    assert isinstance(contact, Contact)
    stopped = client.post(
        "/flows/enumerators", data={"csrf_token": csrf, "remove": contact.public_id}
    )
    assert "Ce téléphone ne peut plus envoyer de comptages par SMS." in html.unescape(stopped.text)
    outcome, _reply = _text(db, world, "FLUX Sogoniko Gao Bamako 12 conflit D")
    assert outcome == "flow-refused"


def test_a_person_whose_message_starts_with_flux_is_heard_by_the_bot(
    db: Session, world: World
) -> None:
    from gateway.inbound import InboundSms, record_inbound
    from gateway.tasks import handle_inbound
    from models.outbox_relay import discard_pending

    text = "Flux de deplaces vers Gao, nous avons besoin d'eau"
    message_id = record_inbound(
        InboundSms(world.simulator_channel_id, "SMflux", STRANGER_PHONE, text)
    )
    assert message_id is not None
    assert handle_inbound(db, message_id) == "handed-off"
    db.commit()
    discard_pending(db)


def test_every_configured_point_is_in_a_known_place(db: Session, world: World) -> None:
    from tickets.flows import find_flow_point, flow_points
    from tickets.gazetteer import Gazetteer

    points = flow_points()
    assert {p.code[:3] for p in points} == {"BKO", "MPT", "TBK", "GAO"}
    for point in points:
        assert point.place_code in Gazetteer.default(), point
        assert db.scalar(select(Place.id).where(Place.code == point.place_code)) is not None
        assert find_flow_point(point.code.lower()) == point
        for alias in point.aliases:
            assert find_flow_point(alias) == point
