"""Fixtures for the tickets domain: places, teams, a local SMTP server, a webhook receiver.

The SMTP server's address goes into the environment at import time — before the shared Celery
worker starts (tests run after every conftest is imported) — so the worker's settings point
email alerts at it.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator
from typing import Any

import pytest


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


SMTP_PORT = _free_port()
os.environ["DEME_SMTP_HOST"] = "127.0.0.1"
os.environ["DEME_SMTP_PORT"] = str(SMTP_PORT)
os.environ["DEME_SMTP_FROM"] = "alerts@deme.test"
os.environ["DEME_SMTP_STARTTLS"] = "false"
try:  # a module imported during collection may have read the settings already
    from core.settings import get_settings

    get_settings.cache_clear()
except ImportError:  # pragma: no cover
    pass

from ticket_helpers import (  # noqa: E402
    SmtpSink,
    WebhookReceiver,
    World,
    build_world,
)


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[SmtpSink]:
    sink = SmtpSink(port=SMTP_PORT)
    sink.start()
    yield sink
    sink.stop()


@pytest.fixture()
def smtp(smtp_server: SmtpSink) -> SmtpSink:
    smtp_server.messages.clear()
    return smtp_server


@pytest.fixture()
def webhook() -> Iterator[WebhookReceiver]:
    receiver = WebhookReceiver()
    receiver.start()
    yield receiver
    receiver.stop()


@pytest.fixture()
def world(db: Any) -> World:
    """Places (Mali › Gao › Ansongo cercle › Ansongo commune › a site; Mopti), teams, rules."""
    return build_world(db)
