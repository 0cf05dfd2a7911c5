"""core.sqldialect — the one home of SQL that PostgreSQL and SQLite spell differently — on
both databases, whichever deployment the session runs (the PostgreSQL half needs the server
stack's PostgreSQL, so it is skipped on --deployment=embedded)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from core.sqldialect import insert_on_conflict, serialize_on, utc_day, week_start
from models import Channel, ChannelType, Message, MessageDirection, MessageStatus
from models.enums import TicketCategory, TicketSource
from models.tickets import Ticket
from support.db import run_migrations


@pytest.fixture(
    params=[
        pytest.param("postgresql", marks=pytest.mark.server_only(reason="needs PostgreSQL")),
        "sqlite",
    ]
)
def maker(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[sessionmaker[Session]]:
    """Sessions on a migrated database of the given kind."""
    if request.param == "postgresql":
        from core.db import get_sessionmaker

        request.getfixturevalue("db")  # the session's PostgreSQL, emptied afterwards
        yield get_sessionmaker()
        return
    from core.db import make_engine

    url = f"sqlite:///{tmp_path / 'dialect.sqlite3'}"
    run_migrations(url)
    engine = make_engine(url)
    yield sessionmaker(bind=engine, expire_on_commit=False)
    engine.dispose()


def _ticket(reference: str, created_at: datetime) -> Ticket:
    return Ticket(
        reference=reference,
        category=TicketCategory.WASH,
        source=TicketSource.SMS,
        created_at=created_at,
    )


def test_utc_day_groups_by_the_calendar_day(maker: sessionmaker[Session]) -> None:
    with maker() as session:
        session.add_all(
            [
                _ticket("T-AAAA1", datetime(2026, 3, 1, 23, 59, 30, tzinfo=UTC)),
                _ticket("T-AAAA2", datetime(2026, 3, 2, 0, 0, 30, tzinfo=UTC)),
            ]
        )
        session.commit()
        day = utc_day(Ticket.created_at)
        counts = dict(session.execute(select(day, func.count()).group_by(day)).tuples().all())
    # 23:59:30 and 00:00:30 UTC fall on two days, whatever the server's own time zone.
    assert counts == {date(2026, 3, 1): 1, date(2026, 3, 2): 1}, counts


def test_week_start_is_the_monday_of_the_iso_week(maker: sessionmaker[Session]) -> None:
    from models.enums import MovementSource, MovementStatus
    from models.movements import Movement
    from models.places import Place

    with maker() as session:
        place = Place(code="TST01", name="Test", kind="region")
        session.add(place)
        session.flush()
        # Sunday 1 March 2026 closes the week of Monday 23 February; Monday 2 March opens
        # the next one, which Sunday 8 March closes.
        for day in (date(2026, 3, 1), date(2026, 3, 2), date(2026, 3, 8), date(2026, 3, 9)):
            session.add(
                Movement(
                    source=MovementSource.FLOW_MONITORING,
                    observed_on=day,
                    destination_place_id=place.id,
                    people=1,
                    status=MovementStatus.DISPLACED,
                )
            )
        session.commit()
        week = week_start(Movement.observed_on)
        counts = dict(session.execute(select(week, func.count()).group_by(week)).tuples().all())
        session.query(Movement).delete()
        session.delete(place)
        session.commit()
    counts = {
        (d if isinstance(d, date) else date.fromisoformat(str(d))): n for d, n in counts.items()
    }
    assert counts == {date(2026, 2, 23): 1, date(2026, 3, 2): 2, date(2026, 3, 9): 1}, counts


def test_insert_on_conflict_do_nothing_keeps_the_first_row(maker: sessionmaker[Session]) -> None:
    with maker() as session:
        channel = Channel(name="twilio-test", type=ChannelType.TWILIO, config={})
        session.add(channel)
        session.commit()
        ids = []
        for body in ("first", "second"):
            statement = (
                insert_on_conflict(session.get_bind().dialect.name, Message.__table__)
                .values(
                    channel_id=channel.id,
                    direction=MessageDirection.INBOUND,
                    provider_id="SMsame",
                    body=body,
                    status=MessageStatus.RECEIVED,
                    sanitized=False,
                    flood_limited=False,
                    transliterated=False,
                    send_attempts=0,
                )
                .on_conflict_do_nothing(index_elements=["channel_id", "provider_id"])
                .returning(Message.__table__.c.id)
            )
            ids.append(session.execute(statement).scalar())
        session.commit()
        assert ids[0] is not None and ids[1] is None  # the retry inserted nothing
        assert session.scalars(select(Message.body)).all() == ["first"]


def test_insert_on_conflict_refuses_other_databases() -> None:
    with pytest.raises(ValueError, match="PostgreSQL or SQLite"):
        insert_on_conflict("mysql", Message.__table__)


def test_serialize_on_lets_one_check_then_insert_win(maker: sessionmaker[Session]) -> None:
    """Eight transactions each check that no ticket carries a reference and insert one under
    the lock: exactly one inserts, the others see its row (none fails, none duplicates)."""
    barrier = threading.Barrier(8)
    outcomes: list[str] = []
    lock = threading.Lock()

    def attempt() -> None:
        with maker() as session:
            barrier.wait()
            serialize_on(session, "test-key")
            taken = session.scalar(select(Ticket.id).where(Ticket.reference == "T-SHARED"))
            if taken is None:
                session.add(_ticket("T-SHARED", datetime.now(UTC)))
            session.commit()
            with lock:
                outcomes.append("inserted" if taken is None else "saw it")

    _run_together(attempt, 8)
    assert sorted(outcomes) == ["inserted"] + ["saw it"] * 7, outcomes


def test_with_for_update_lets_one_transaction_handle_a_row(maker: sessionmaker[Session]) -> None:
    """Six workers take the same ticket "locked" and handle it if nobody has: one does. (On
    SQLite this is the write lock core.sqldialect takes for FOR UPDATE; SQLAlchemy alone
    drops the clause there and all six would.)"""
    with maker() as session:
        session.add(_ticket("T-LOCK1", datetime.now(UTC)))
        session.commit()
    handled: list[int] = []
    barrier = threading.Barrier(6)

    def worker() -> None:
        with maker() as session:
            barrier.wait()
            ticket = session.scalars(
                select(Ticket).where(Ticket.reference == "T-LOCK1").with_for_update()
            ).one()
            if ticket.description is None:
                time.sleep(0.05)  # the read-to-write window in which a duplicate would slip
                ticket.description = "handled"
                handled.append(1)
            session.commit()

    _run_together(worker, 6)
    assert handled == [1]


def _run_together(target: Callable[[], None], count: int) -> None:
    threads = [threading.Thread(target=target) for _ in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
