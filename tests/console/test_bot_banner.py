"""The console says when the bot is still loading (issue 12, "First start").

Rasa opens its port only once its model is loaded, so "loading" is, for the console, a Rasa
URL where nothing answers yet: here a free port nobody listens on, exactly what the console
sees during the minute after `deme run` starts. The other half (a real Rasa becoming ready
and the banner going away in the open page) is tests/e2e/test_bot_loading_banner.py.
"""

from __future__ import annotations

import socket
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from core.bot_status import forget_bot_status
from core.settings import get_settings
from tests.console.conftest import World, csrf_of, login

FR = "Le bot est encore en cours de chargement"
EN = "The bot is still loading"


def _closed_port_url() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture()
def bot_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[str], None]]:
    def use(bot: str) -> None:
        monkeypatch.setenv("DEME_BOT", bot)
        monkeypatch.setenv("DEME_RASA_URL", _closed_port_url())
        get_settings.cache_clear()
        forget_bot_status()

    yield use
    get_settings.cache_clear()
    forget_bot_status()


def test_banner_while_rasa_is_not_answering_in_both_console_languages(
    world: World, browser_client: Callable[[], Any], bot_env: Callable[[str], None]
) -> None:
    bot_env("rasa")
    client = browser_client()
    assert FR not in client.get("/login").text  # nobody signed in: nothing said
    csrf = login(client, "operator-user")
    queue = client.get("/queue")
    assert queue.status_code == 200
    assert FR in queue.text and 'id="bot-status"' in queue.text
    assert 'hx-get="/bot-status"' in queue.text  # the page asks again by itself
    assert FR in client.get("/bot-status").text

    client.post("/language", data={"language": "en", "next": "/queue", "csrf_token": csrf})
    english = client.get("/queue").text
    assert EN in english and FR not in english
    assert csrf_of(english)


def test_no_banner_with_the_fallback_bot(
    world: World, browser_client: Callable[[], Any], bot_env: Callable[[str], None]
) -> None:
    bot_env("fallback")
    client = browser_client()
    login(client, "operator-user")
    assert 'id="bot-status"' not in client.get("/queue").text
    poll = client.get("/bot-status")
    assert poll.status_code == 200 and 'id="bot-status"' not in poll.text


def test_bot_status_needs_a_signed_in_user(
    world: World, browser_client: Callable[[], Any], bot_env: Callable[[str], None]
) -> None:
    bot_env("rasa")
    response = browser_client().get("/bot-status", follow_redirects=False)
    assert response.status_code == 303 and "/login" in response.headers["location"]
