"""The fuzz tests count every request they make and every 5xx; the summary prints both."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

TALLY: Counter[str] = Counter()


def record(status_code: int) -> None:
    TALLY["requests"] += 1
    if status_code >= 500:
        TALLY["5xx"] += 1


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if TALLY["requests"]:
        terminalreporter.write_line(
            f"fuzz: {TALLY['requests']} requests tried, {TALLY['5xx']} answered 5xx"
        )


@pytest.fixture(scope="session")
def fuzz_tally() -> Counter[str]:
    return TALLY


# The console's and the gateway's fixtures (users of every role, channels, fake provider).
from tests.console.conftest import browser_client, world  # noqa: E402, F401
from tests.gateway.conftest import (  # noqa: E402, F401
    _fresh_channel_cache,
    at_channel,
    fake,
    fake_provider,
    http_channel,
    twilio_channel,
)
