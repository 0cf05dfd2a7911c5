"""A session cut by the operator can be continued by dialling again within ten minutes — with
the state in Redis (the normal case) and in the database (the embedded default)."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select
from ussd.helpers import Phone

from core.db import session_scope
from gateway.ussd.service import UssdService, default_service
from gateway.ussd.store import RESUME_WINDOW_SECONDS, DatabaseStore, RedisStore
from models.enums import TicketCategory
from models.places import Place
from models.tickets import Ticket
from models.ussd import UssdSession


class Clock:
    def __init__(self) -> None:
        self.now = 1_900_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(params=["redis", "database"])
def store_kind(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    kind = str(request.param)
    if kind == "database":
        monkeypatch.setattr(default_service(), "store", DatabaseStore())
    else:
        assert isinstance(default_service().store, RedisStore)
    return kind


@pytest.fixture()
def clock(monkeypatch: pytest.MonkeyPatch) -> Iterator[Clock]:
    fake = Clock()
    service: UssdService = default_service()
    monkeypatch.setattr(service, "clock", fake)
    yield fake


def dropped_at_size(client: Any) -> Phone:
    phone = Phone(client)
    phone.dial()
    phone.walk("1", "2", "3", "2", "Bourem", "1")  # French, help, shelter, typed place, yes
    assert phone.screen.startswith("CON Combien de personnes")
    return phone  # ... and the operator cuts the session here


def test_resume_within_the_window_continues_where_it_stopped(
    client: Any, at_channel: int, places_seeded: None, store_kind: str, clock: Clock
) -> None:
    phone = dropped_at_size(client)
    clock.now += RESUME_WINDOW_SECONDS - 30
    assert phone.dial() == "CON Vous aviez commencé une demande.\n1 Continuer\n2 Recommencer"
    assert phone.send("1").startswith("CON Combien de personnes")
    assert phone.send("0").startswith("CON Bourem (Gao), c'est bien cela?")  # history kept
    phone.walk("1", "6")
    end = phone.send("1")
    reference = re.search(r"T-[0-9A-Z]{5}", end)
    assert reference, end
    with session_scope() as session:
        ticket = session.scalar(select(Ticket).where(Ticket.reference == reference.group(0)))
        assert ticket is not None and ticket.category is TicketCategory.SHELTER_NFI
        assert session.get(Place, ticket.place_id).code == "ML0703"
        if store_kind == "database":
            rows = session.scalars(select(UssdSession).order_by(UssdSession.id)).all()
            assert [r.completed for r in rows] == [False, True]
    # Once finished, nothing is left to resume.
    assert phone.dial().startswith("CON Deme - OIM")


def test_start_again_goes_to_the_main_menu(
    client: Any, at_channel: int, places_seeded: None, store_kind: str, clock: Clock
) -> None:
    phone = dropped_at_size(client)
    clock.now += 60
    phone.dial()
    assert phone.send("7").startswith("CON Choix invalide\nVous aviez commencé")
    assert phone.send("2").startswith("CON Deme - OIM")


def test_no_resume_after_the_window(
    client: Any, at_channel: int, places_seeded: None, store_kind: str, clock: Clock
) -> None:
    phone = dropped_at_size(client)
    clock.now += RESUME_WINDOW_SECONDS + 1
    assert phone.dial().startswith("CON Deme - OIM")


def test_nothing_to_resume_from_the_main_menu(
    client: Any, at_channel: int, places_seeded: None, store_kind: str, clock: Clock
) -> None:
    phone = Phone(client)
    phone.dial()
    phone.send("3")  # picks English and stops at the main menu
    clock.now += 30
    assert phone.dial().startswith("CON Deme - IOM")


def test_resume_is_keyed_on_the_caller_not_the_session(
    client: Any, at_channel: int, places_seeded: None, store_kind: str, clock: Clock
) -> None:
    first = dropped_at_size(client)
    other = Phone(client)
    assert other.dial().startswith("CON Langue")  # another caller sees nothing of it
    again = Phone(client, first.number, service_code=first.service_code)
    assert again.dial().startswith("CON Vous aviez commencé")


@pytest.mark.server_only(reason="inspects the TTL of the USSD state's Redis key")
def test_redis_state_expires_with_the_window(
    client: Any, at_channel: int, places_seeded: None, redis_client: Any
) -> None:
    dropped_at_size(client)
    keys = list(redis_client.scan_iter(match="deme:ussd:*"))
    assert len(keys) == 1
    assert RESUME_WINDOW_SECONDS - 5 <= redis_client.ttl(keys[0]) <= RESUME_WINDOW_SECONDS
    # The key is the keyed hash of the number: no phone number is stored in Redis.
    value = redis_client.get(keys[0]).decode()
    assert "+223" not in value and "+223" not in keys[0].decode()
