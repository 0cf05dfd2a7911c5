"""The per-process configuration cache (models.config_cache): routing rules, SLA targets and
place codes are read once, and an edit committed anywhere is seen by the next ticket — in
this process, and in every other one (they compare the version token in Redis)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from typing import Any

import redis
from sqlalchemy import event, select
from ticket_helpers import World, add_rule, commit, reachable_contact

from models import config_cache
from models.enums import TicketCategory, TicketSource
from models.routing import RoutingRule, SlaTarget
from models.tickets import Ticket
from tickets.intake import create_ticket


@contextmanager
def counting(db: Any) -> Iterator[list[str]]:
    statements: list[str] = []
    engine = db.get_bind()

    def on_execute(*args: Any) -> None:
        statements.append(" ".join(str(args[2]).split()))

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def _wash_report(db: Any, place_code: str = "ML0701") -> Ticket:
    contact = reachable_contact(db, language="fr")
    ticket = create_ticket(
        db,
        category=TicketCategory.WASH,
        source=TicketSource.SMS,
        contact=contact,
        place_code=place_code,
        description="pas d'eau au site",
    )
    commit(db)
    return ticket


def _reads(statements: list[str], table: str) -> bool:
    return any(f"FROM {table} " in s or s.endswith(f"FROM {table}") for s in statements)


def test_a_second_ticket_reads_no_rule_target_or_place_code_again(db: Any, world: World) -> None:
    commit(db)
    config_cache.clear()
    with counting(db) as first:
        _wash_report(db)
    with counting(db) as second:
        _wash_report(db)
    for table in ("routing_rules", "sla_targets"):
        assert _reads(first, table), (table, first)
        assert not _reads(second, table), (table, second)
    assert any("places.code" in s for s in first)
    assert not any("places.code" in s for s in second)
    assert len(second) < len(first)


def test_a_rule_added_after_the_cache_filled_routes_the_next_ticket(db: Any, world: World) -> None:
    commit(db)
    config_cache.clear()
    before = _wash_report(db)
    assert before.team_id == world.teams["general"].id  # no WASH rule yet: the default team
    add_rule(db, "WASH Gao", world.teams["health"], category=TicketCategory.WASH)
    commit(db)
    after = _wash_report(db)
    assert after.team_id == world.teams["health"].id


def test_a_target_changed_in_the_same_transaction_is_read_fresh(db: Any, world: World) -> None:
    commit(db)
    config_cache.clear()
    first = _wash_report(db)  # fills the cache with the default target of its priority
    db.add(
        SlaTarget(
            category=TicketCategory.WASH,
            priority=first.priority,
            first_response_minutes=7,
            resolution_minutes=70,
        )
    )
    ticket = _wash_report(db)  # not committed yet when read: this transaction's own write
    assert ticket.priority == first.priority
    assert ticket.first_response_due_at == ticket.created_at + timedelta(minutes=7)
    assert first.first_response_due_at != first.created_at + timedelta(minutes=7)


def test_another_process_s_edit_is_seen_through_the_redis_token(db: Any, world: World) -> None:
    """Another process's commit replaces the token; this process then drops its entries."""
    commit(db)
    config_cache.clear()
    client = redis.Redis.from_url(os.environ["DEME_REDIS_URL"])
    _wash_report(db)
    token = client.get(config_cache.TOKEN_KEY)
    assert token is not None
    # A rule committed behind this process's back (another process's write, on a connection
    # of its own, minus the token change that process's session makes on commit).
    with db.get_bind().connect() as other:
        other.execute(
            RoutingRule.__table__.insert().values(
                name="WASH Gao",
                team_id=world.teams["health"].id,
                category=TicketCategory.WASH,
                active=True,
            )
        )
        other.commit()
    stale = _wash_report(db)
    assert stale.team_id == world.teams["general"].id  # the cache does not see raw SQL...
    client.set(config_cache.TOKEN_KEY, "another-process-committed")
    fresh = _wash_report(db)
    assert fresh.team_id == world.teams["health"].id  # ...the token tells it
    assert db.scalar(select(RoutingRule.id).where(RoutingRule.name == "WASH Gao")) is not None


def test_a_committed_edit_replaces_the_token(db: Any, world: World) -> None:
    commit(db)
    client = redis.Redis.from_url(os.environ["DEME_REDIS_URL"])
    _wash_report(db)
    token = client.get(config_cache.TOKEN_KEY)
    add_rule(db, "WASH Gao", world.teams["health"], category=TicketCategory.WASH)
    assert client.get(config_cache.TOKEN_KEY) == token  # not before the commit
    commit(db)
    assert client.get(config_cache.TOKEN_KEY) != token
