"""Many callers at once against the real server: every walk ends with its own data."""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from sqlalchemy import select
from ussd.helpers import Phone

from core.crypto import lookup_hash
from core.db import session_scope
from core.phones import normalize_phone
from models.contacts import Contact, Household
from models.places import Place
from models.tickets import Ticket
from tests.gateway.gateway_helpers import UvicornServer

CALLERS = 60
PLACES = [("Sevare", "ML0501002"), ("tbk", "ML06"), ("commune 6", "ML0006"), ("Kati", "ML0202")]


@pytest.fixture()
def server(client: Any, at_channel: int, places_seeded: None) -> Iterator[UvicornServer]:
    running = UvicornServer(workers=1)
    try:
        yield running
    finally:
        running.stop()


def test_parallel_callers_never_see_each_others_walks(server: UvicornServer) -> None:
    start = threading.Barrier(CALLERS)

    def caller(index: int) -> tuple[str, str, int, str | None]:
        typed, _code = PLACES[index % len(PLACES)]
        size = index % 99 + 1
        with httpx.Client(base_url=server.url, timeout=10) as http:
            phone = Phone(http)
            start.wait(timeout=30)  # everyone dials at the same moment
            phone.dial()
            # Half drop mid-walk and resume; the others walk straight through.
            phone.walk("3", "2", str(index % 3 + 1), "2", typed, "1")
            if index % 2:
                assert phone.dial().startswith("CON You had started a request")
                phone.send("1")
            phone.walk(str(size))
            end = phone.send("1")
            found = re.search(r"T-[0-9A-Z]{5}", end)
            return phone.number, typed, size, found.group(0) if found else end

    with ThreadPoolExecutor(max_workers=CALLERS) as pool:
        results = list(pool.map(caller, range(CALLERS)))

    expected_place = dict(PLACES)
    with session_scope() as session:
        assert len(session.scalars(select(Ticket)).all()) == CALLERS
        for number, typed, size, reference in results:
            assert reference is not None and reference.startswith("T-"), reference
            ticket = session.scalar(select(Ticket).where(Ticket.reference == reference))
            assert ticket is not None
            contact = session.get(Contact, ticket.contact_id)
            assert contact is not None
            assert contact.phone_hash == lookup_hash(normalize_phone(number))
            assert session.get(Place, ticket.place_id).code == expected_place[typed]
            assert session.get(Household, ticket.household_id).size == size
