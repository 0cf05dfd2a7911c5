"""Test fixtures for the bot's actions: a tiny platform API played by http.server."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

BOT_DIR = Path(__file__).resolve().parent.parent
for path in (str(BOT_DIR.parent), str(BOT_DIR), str(BOT_DIR / "tests")):
    if path not in sys.path:
        sys.path.insert(0, path)

from fake_platform import FakePlatform, start_in_thread  # noqa: E402


@pytest.fixture()
def platform(monkeypatch: pytest.MonkeyPatch):
    fake = FakePlatform()
    server = start_in_thread(fake)
    monkeypatch.setenv("DEME_API_URL", f"http://127.0.0.1:{server.server_address[1]}")
    monkeypatch.setenv("DEME_API_TOKEN", "test-service-token")
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
