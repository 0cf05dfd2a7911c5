"""Fixtures for end-to-end tests: gazetteer in the database, a Twilio channel pointing at
the local fake provider (the real Twilio SDK sends to it)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.gateway.fake_provider import FakeProvider
from tests.gateway.gateway_helpers import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER


@pytest.fixture(scope="session")
def e2e_provider() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


@pytest.fixture()
def provider(e2e_provider: FakeProvider) -> Iterator[FakeProvider]:
    e2e_provider.reset()
    yield e2e_provider
    e2e_provider.reset()


@pytest.fixture()
def platform(db: Session, provider: FakeProvider) -> Any:
    """Places and teams seeded, one Twilio channel on the fake provider."""
    from deme.seed import seed_places, seed_teams_and_rules
    from gateway.channels import invalidate_channel_cache
    from models import Channel, ChannelType

    seed_places(db, lambda _line: None)
    seed_teams_and_rules(db, lambda _line: None)
    channel = Channel(
        name="twilio-e2e",
        type=ChannelType.TWILIO,
        address=OUR_NUMBER,
        credentials={"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN},
        config={"api_base_url": provider.url, "max_per_second": 50},
    )
    db.add(channel)
    db.commit()
    invalidate_channel_cache()
    yield channel
    invalidate_channel_cache()
