"""Unique constraints hold when many connections insert the same key at once."""

from __future__ import annotations

import threading

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from core.db import get_sessionmaker
from core.sqldialect import insert_on_conflict
from models import Channel, ChannelType, Message, MessageDirection, MessageStatus, Ticket
from models.enums import TicketCategory, TicketSource


def _race(worker_count: int, action: object) -> list[str]:
    barrier = threading.Barrier(worker_count)
    outcomes: list[str] = []
    lock = threading.Lock()

    def run() -> None:
        barrier.wait()
        try:
            action()  # type: ignore[operator]
            outcome = "inserted"
        except IntegrityError:
            outcome = "rejected"
        with lock:
            outcomes.append(outcome)

    threads = [threading.Thread(target=run) for _ in range(worker_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcomes


def test_provider_id_is_unique_per_channel_under_concurrency(db: Session) -> None:
    channel = Channel(name="twilio-test", type=ChannelType.TWILIO, config={})
    other = Channel(name="at-test", type=ChannelType.AFRICASTALKING, config={})
    db.add_all([channel, other])
    db.commit()
    maker = get_sessionmaker()

    def insert_message() -> None:
        with maker() as session:
            session.add(
                Message(
                    channel_id=channel.id,
                    direction=MessageDirection.INBOUND,
                    provider_id="SM" + "a" * 32,
                    body="an mago be ji la",
                    status=MessageStatus.RECEIVED,
                )
            )
            session.commit()

    outcomes = _race(16, insert_message)
    assert outcomes.count("inserted") == 1 and outcomes.count("rejected") == 15
    # The same provider id on another channel is another message.
    db.add(
        Message(
            channel_id=other.id,
            direction=MessageDirection.INBOUND,
            provider_id="SM" + "a" * 32,
            body="x",
            status=MessageStatus.RECEIVED,
        )
    )
    db.commit()
    assert db.scalar(select(func.count()).select_from(Message)) == 2


def test_on_conflict_do_nothing_gives_exactly_one_row(db: Session) -> None:
    channel = Channel(name="twilio-test", type=ChannelType.TWILIO, config={})
    db.add(channel)
    db.commit()
    maker = get_sessionmaker()

    def insert_idempotently() -> None:
        with maker() as session:
            session.execute(
                insert_on_conflict(session.get_bind().dialect.name, Message.__table__)
                .values(
                    channel_id=channel.id,
                    direction=MessageDirection.INBOUND,
                    provider_id="SMdup",
                    body="x",
                    status=MessageStatus.RECEIVED,
                    sanitized=False,
                    flood_limited=False,
                    transliterated=False,
                    send_attempts=0,
                )
                .on_conflict_do_nothing(index_elements=["channel_id", "provider_id"])
            )
            session.commit()

    assert _race(16, insert_idempotently) == ["inserted"] * 16
    assert db.scalar(select(func.count()).select_from(Message)) == 1


def test_ticket_reference_is_unique_under_concurrency(db: Session) -> None:
    maker = get_sessionmaker()

    def insert_ticket() -> None:
        with maker() as session:
            session.add(
                Ticket(
                    reference="T-7K2Q9",
                    category=TicketCategory.WASH,
                    source=TicketSource.SMS,
                )
            )
            session.commit()

    outcomes = _race(12, insert_ticket)
    assert outcomes.count("inserted") == 1
    assert db.scalar(select(func.count()).select_from(Ticket)) == 1
