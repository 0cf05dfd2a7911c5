"""The console's and the gateway's fixtures (users of every role, channels, fake provider)."""

from tests.console.conftest import browser_client, world  # noqa: F401
from tests.gateway.conftest import (  # noqa: F401
    _fresh_channel_cache,
    at_channel,
    fake,
    fake_provider,
    http_channel,
    twilio_channel,
)
