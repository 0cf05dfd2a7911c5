"""A broadcast end to end through the real worker and beat (both deployments): beat's tick
hands the recipients to the outbound path at the channel's rate, the outbound worker sends
them to the (fake) provider, each person once, in their language."""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from gateway import broadcasts as bc
from models.broadcasts import Broadcast, BroadcastStatus
from models.enums import Language, MessageStatus
from models.messages import Message
from support import wait_until
from tests.gateway import fake_provider as fp
from tickets.contacts import get_or_create_contact


def test_beat_and_the_worker_send_each_recipient_once_in_their_language(
    celery_worker: Any, beat: Any, db: Session, twilio_channel: Any, fake: fp.FakeProvider
) -> None:
    twilio_channel.config = {**twilio_channel.config, "broadcast_per_second": 3}
    languages = ["fr", "en", "bm"] * 4
    for n, language in enumerate(languages):
        contact = get_or_create_contact(db, f"+22376007{n:03d}")
        contact.language = Language(language)
    db.commit()
    texts = bc.clean_texts({"fr": "Réunion demain.", "en": "Meeting tomorrow.", "bm": "Sini ye."})
    broadcast = bc.prepare(
        db, bc.Selection(languages=tuple(bc.LANGUAGES)), texts, name="w", created_by_id=None
    )
    bc.start(db, broadcast)
    db.commit()
    broadcast_id = broadcast.id

    def all_sent() -> bool:
        db.expire_all()
        statuses = db.scalars(select(Message.status)).all()
        return len(statuses) == 12 and all(s == MessageStatus.SENT for s in statuses)

    wait_until(all_sent, timeout=90)
    sent = fake.sent("twilio")
    assert len(sent) == 12
    assert max(Counter(r.form["To"] for r in sent).values()) == 1
    assert Counter(r.form["Body"] for r in sent) == {
        "Réunion demain.": 4,
        "Meeting tomorrow.": 4,
        "Sini ye.": 4,
    }
    wait_until(
        lambda: (
            db.get(Broadcast, broadcast_id, populate_existing=True).status  # type: ignore[union-attr]
            == BroadcastStatus.DONE
        ),
        timeout=30,
    )
