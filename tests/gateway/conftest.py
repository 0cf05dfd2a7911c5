"""Fixtures of the gateway tests: the fake provider, channels pointing at it, contacts."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy.orm import Session

from tests.gateway.fake_provider import FakeProvider
from tests.gateway.gateway_helpers import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER

AT_SECRET = "at-webhook-secret-0123456789"
HTTP_SECRET = "http-shared-secret-0123456789"


@pytest.fixture(autouse=True)
def _fresh_channel_cache() -> Iterator[None]:
    """Tables are truncated (ids restart) between tests: cached channels must not leak."""
    from gateway.channels import invalidate_channel_cache

    invalidate_channel_cache()
    yield
    invalidate_channel_cache()


@pytest.fixture(scope="session")
def fake_provider() -> Iterator[FakeProvider]:
    fake = FakeProvider().start()
    yield fake
    fake.stop()


@pytest.fixture()
def fake(fake_provider: FakeProvider) -> Iterator[FakeProvider]:
    fake_provider.reset()
    yield fake_provider
    fake_provider.reset()


def _channel(db: Session, **values: Any) -> Any:
    from gateway.channels import invalidate_channel_cache
    from models import Channel

    channel = Channel(**values)
    db.add(channel)
    db.commit()
    invalidate_channel_cache()
    return channel


@pytest.fixture()
def twilio_channel(db: Session, fake: FakeProvider) -> Any:
    from models import ChannelType

    return _channel(
        db,
        name="twilio-test",
        type=ChannelType.TWILIO,
        address=OUR_NUMBER,
        credentials={"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN},
        config={"api_base_url": fake.url, "max_per_second": 50},
    )


@pytest.fixture()
def at_channel(db: Session, fake: FakeProvider) -> Any:
    from models import ChannelType

    return _channel(
        db,
        name="at-test",
        type=ChannelType.AFRICASTALKING,
        address="36665",
        credentials={"username": "deme", "api_key": "at-key", "webhook_secret": AT_SECRET},
        config={"api_base_url": fake.url},
    )


@pytest.fixture()
def http_channel(db: Session, fake: FakeProvider) -> Any:
    from models import ChannelType

    return _channel(
        db,
        name="aggregator-test",
        type=ChannelType.HTTP,
        address="36000",
        credentials={"secret": HTTP_SECRET, "api_key": "agg-key"},
        config={
            "inbound": {"from": "msisdn", "text": "message", "id": "msg_id"},
            "status": {"id": "msg_id", "status": "state", "error": "err"},
            "status_map": {"DELIVRD": "delivered", "UNDELIV": "undelivered", "ACK": "sent"},
        },
    )
