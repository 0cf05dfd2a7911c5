"""Issue 14: an arrival message ("we came from X, now in Y") registers the household with
its origin and status, so the registry shows real origins, not "unknown"."""

from __future__ import annotations

from sqlalchemy.orm import Session

from tests.console.conftest import World


def _arrive(db: Session, world: World, phone: str, text: str) -> None:
    from conversation.dispatch import handle_with_fallback
    from gateway.inbound import InboundSms, record_inbound
    from models.contacts import Contact
    from models.messages import Message
    from models.outbox_relay import discard_pending

    message_id = record_inbound(InboundSms(world.simulator_channel_id, f"SM{phone}", phone, text))
    message = db.get(Message, message_id)
    assert message is not None and message.contact_id is not None
    contact = db.get(Contact, message.contact_id)
    assert contact is not None
    handle_with_fallback(db, message, contact, text)
    db.commit()
    discard_pending(db)


def test_arrival_messages_record_origin_and_status(db: Session, world: World) -> None:
    from models.enums import HouseholdStatus
    from ops_console.displacement import registry_data

    _arrive(db, world, "+22376300001", "Nous sommes 6, venus de Douentza, maintenant a Sevare")
    _arrive(db, world, "+22376300002", "we came from Gao, now in Mopti, we are 5")
    _arrive(db, world, "+22376300003", "nous sommes rentres a Douentza, 4 personnes")
    recent = {row["size"]: row for row in registry_data(db)["recent"]}
    assert recent[6]["origin"] == "Douentza"
    assert recent[6]["place"].endswith("Sévaré")
    assert recent[6]["status"] == HouseholdStatus.DISPLACED.value
    assert recent[5]["origin"] == "Gao" and recent[5]["place"] == "Mopti"
    assert recent[4]["origin"] == "" and recent[4]["status"] == HouseholdStatus.RETURNEE.value
    origins = dict(registry_data(db)["origins"])
    assert origins[("Douentza", "Mopti")] == [1, 6]
