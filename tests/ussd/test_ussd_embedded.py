"""The embedded default (`make run` with no servers): SQLite and no Redis.

There the menu keeps its state in the database and runs its database work in threads (no
asyncio driver for SQLite), a different path from the PostgreSQL tests around this file.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from ussd.helpers import USSD_TEST_TOKEN, Phone

from models.contacts import Household
from models.enums import TicketCategory, TicketSource
from models.places import Place
from support.embedded import embedded_deployment


@pytest.fixture()
def embedded_client(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    from fastapi.testclient import TestClient

    from core.db import session_scope
    from deme.app import create_app
    from deme.seed import seed_places
    from gateway.ussd.routes import channel_cache
    from models.channels import Channel
    from models.enums import ChannelType

    channel_cache.clear()
    with embedded_deployment(tmp_path, monkeypatch):
        with session_scope() as session:
            seed_places(session, lambda _message: None)
            session.add(
                Channel(
                    name="at-ussd",
                    type=ChannelType.AFRICASTALKING,
                    credentials={"ussd_secret": USSD_TEST_TOKEN},
                    config={"ussd_service_code": "*384*123#"},
                )
            )
        with TestClient(create_app(), base_url="https://deme.test") as client:
            yield client
    channel_cache.clear()


def test_a_help_request_on_sqlite_without_redis_ends_with_its_reference(
    embedded_client: Any,
) -> None:
    from core.db import session_scope
    from models.tickets import Ticket

    phone = Phone(embedded_client)
    phone.dial()
    end = phone.walk("1", "2", "1", "2", "Gao", "1", "5", "1")  # French, health, typed "Gao"
    assert end.startswith("END Demande T-"), end
    with session_scope() as session:
        ticket = session.scalars(select(Ticket)).one()
        assert ticket.reference in end
        assert ticket.category is TicketCategory.HEALTH and ticket.source is TicketSource.USSD
        place = session.get(Place, ticket.place_id)
        assert place is not None and place.name == "Gao"
        household = session.get(Household, ticket.household_id)
        assert household is not None and household.size == 5
