"""How many SQL statements intake costs: counted, never timed (timings are noise on a shared
machine; a statement more is a round trip more on every ticket).

``record_ticket`` is what a USSD caller waits for on the final hop; its budget is a handful
of statements. ``create_ticket`` (record + process) is measured too, so the report shows what
moved to the worker. Run with ``-s`` to see the figures.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import pytest
from sqlalchemy import event
from ticket_helpers import World, add_channel, commit, reachable_contact

from models.contacts import Contact
from models.enums import AlertKind, TicketCategory, TicketSource
from models.tickets import Ticket
from tickets.intake import create_ticket, record_ticket

# What the USSD final hop may spend on recording a ticket (BEGIN/COMMIT not included): a
# help request takes 8 — place id, household look-up and update, SAVEPOINT, ticket INSERT,
# RELEASE, "created" event, outbox row.
RECORD_BUDGET = 8


@contextmanager
def counting(db: Any) -> Iterator[list[str]]:
    """Every statement the session's connection sends (cursor executions: SAVEPOINTs too)."""
    statements: list[str] = []
    engine = db.get_bind()

    def on_execute(*args: Any) -> None:
        statements.append(" ".join(str(args[2]).split())[:90])

    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


Intake = Callable[..., Ticket]
SCENARIOS: dict[str, dict[str, Any]] = {
    # What a USSD help request records: a place, a household size, no words.
    "ussd-help": {
        "category": TicketCategory.HEALTH,
        "source": TicketSource.USSD,
        "place_code": "ML0702",
        "household_size": 6,
        "language": "fr",
    },
    # The discreet protection path: no place, no words, a callback wish.
    "ussd-protection": {
        "category": TicketCategory.PROTECTION,
        "source": TicketSource.USSD,
        "sensitive": True,
        "callback_ok": True,
        "callback_time": "morning",
    },
    # An SMS report through the bot, with its words.
    "sms-with-words": {
        "category": TicketCategory.WASH,
        "source": TicketSource.SMS,
        "place_code": "ML0701",
        "description": "pas d'eau depuis trois jours au site",
    },
}


def measure(db: Any, world: World, intake: Intake, scenario: str) -> list[str]:
    for team in world.teams.values():
        add_channel(db, team, AlertKind.WEBHOOK, url=f"http://127.0.0.1:9/{team.slug}")
    # A USSD caller's language is on the contact since the first hop of their first walk.
    contact = reachable_contact(db, language="fr")
    # The caller wrote before: a household exists (the usual case for a USSD help request).
    create_ticket(
        db, category=TicketCategory.SHELTER_NFI, source="ussd", contact=contact, household_size=4
    )
    commit(db)
    # As in a request or a task: a fresh session, nothing loaded yet but the caller's contact.
    db.expunge_all()
    contact = db.get(Contact, contact.id)
    with counting(db) as statements:
        intake(db, contact=contact, **SCENARIOS[scenario])
        db.flush()
    commit(db)
    return statements


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_record_ticket_stays_within_a_handful_of_statements(
    db: Any, world: World, scenario: str
) -> None:
    statements = measure(db, world, record_ticket, scenario)
    print(f"\nrecord_ticket[{scenario}]: {len(statements)} statements")
    for statement in statements:
        print("   ", statement)
    assert len(statements) <= RECORD_BUDGET, statements
    # Nothing of the process step: no routing, SLA, surge lock or alert.
    for table in ("routing_rules", "routing_decisions", "sla_targets", "incidents", "alert"):
        assert not any(table in s for s in statements), (table, statements)


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_create_ticket_statements_are_reported(db: Any, world: World, scenario: str) -> None:
    statements = measure(db, world, create_ticket, scenario)
    print(f"\ncreate_ticket[{scenario}]: {len(statements)} statements")
    for statement in statements:
        print("   ", statement)
    assert len(statements) > RECORD_BUDGET, "routing, SLA, surges, alerts: the worker's share"
