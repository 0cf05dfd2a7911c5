"""Fixtures for the USSD tests (the session's deployment, see tests/conftest.py)."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def _no_hidden_errors(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    """The service turns any exception into a polite END screen (an HTTP error would kill the
    caller's session), which would also hide bugs from the tests: fail on any logged error."""
    yield
    errors = [
        record.getMessage()
        for record in (*caplog.get_records("setup"), *caplog.get_records("call"))
        if record.name.startswith("gateway.ussd") and record.levelno >= logging.ERROR
    ]
    assert not errors, errors


@pytest.fixture(autouse=True)
def _fresh_ussd_state(request: pytest.FixtureRequest) -> Iterator[None]:
    """Channel ids restart with every truncation and callers' walks live in Redis (in the
    database, emptied after each test, on the embedded deployment): neither may leak from one
    test into the next."""
    from gateway.ussd.routes import channel_cache
    from support.environment import EMBEDDED

    channel_cache.clear()
    uses_redis = "redis_client" in request.fixturenames or "client" in request.fixturenames
    if uses_redis and not EMBEDDED:
        _delete_ussd_keys(request.getfixturevalue("redis_client"))
    yield
    channel_cache.clear()


def _delete_ussd_keys(redis_client: Any) -> None:
    keys = list(redis_client.scan_iter(match="deme:ussd:*", count=1000))
    if keys:
        redis_client.delete(*keys)


@pytest.fixture()
def at_channel(client: Any) -> int:
    """An Africa's Talking channel serving *384*123#, with the secret ``USSD_TEST_TOKEN``; the
    test client presents it on every request (as the aggregator's callback URL would)."""
    from ussd.helpers import USSD_TEST_TOKEN

    from core.db import session_scope
    from models.channels import Channel
    from models.enums import ChannelType

    client.headers["X-Deme-Token"] = USSD_TEST_TOKEN
    with session_scope() as session:
        channel = Channel(
            name="at-ussd",
            type=ChannelType.AFRICASTALKING,
            credentials={"ussd_secret": USSD_TEST_TOKEN},
            config={"ussd_service_code": "*384*123#"},
        )
        session.add(channel)
        session.flush()
        return channel.id


@pytest.fixture()
def places_seeded(client: Any) -> None:
    """The gazetteer in the ``places`` table, as ``deme seed`` loads it (intake needs it)."""
    from core.db import session_scope
    from deme.seed import seed_places

    with session_scope() as session:
        seed_places(session, lambda _message: None)


@pytest.fixture()
def ussd_redis(request: pytest.FixtureRequest) -> Any | None:
    """The Redis holding callers' walks on the server stack; None on the embedded deployment,
    where the walk lives in the session's database row only."""
    from support.environment import EMBEDDED

    return None if EMBEDDED else request.getfixturevalue("redis_client")
