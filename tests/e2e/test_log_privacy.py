"""Do no harm in the logs: a full run — SMS through Twilio and Africa's Talking webhooks, the
real Celery worker, the bot fallback, replies through the provider, console searches by phone,
the phone simulator, the API — and then every line written by the web server (``deme web``,
as deployed) and by the worker is searched for the phone numbers in every format people
write them, for the message bodies and for the channel secrets. One hit fails the test."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from sqlalchemy.orm import Session

from support import wait_until
from support.webserver import DemeWeb
from tests.e2e.helpers import post_sms, replies_to, ticket_for
from tests.gateway.fake_provider import FakeProvider
from tests.gateway.gateway_helpers import AUTH_TOKEN, PUBLIC_URL

SENDER = "+22376000191"
AT_SENDER = "+22366000192"
SIM_SENDER = "+22300000193"  # the simulator speaks only from the test range
SMS_BODY = "pa d'eau a sevare, le forage du quartier Bougoufie est casse, ns sommes 6"
AT_BODY = "manque de moustiquaires a Gao pour la famille Traorewa, nous sommes 5"
SIM_BODY = "malade depuis hier au site Kalabancoro Diarrawa, nous sommes 3"
AT_SECRET = "at-log-secret-7c41b2e9d0"
CSRF_RE = re.compile(r'name="csrf_token" value="([0-9a-f]+)"')


def _phone_forms(e164: str) -> list[str]:
    national = e164.removeprefix("+223")
    spaced = " ".join(national[i : i + 2] for i in range(0, 8, 2))
    return [e164, e164[1:], "00" + e164[1:], national, spaced, "+223 " + spaced]


def _forbidden() -> list[str]:
    words: list[str] = []
    for phone in (SENDER, AT_SENDER, SIM_SENDER):
        words += _phone_forms(phone)
    for body in (SMS_BODY, AT_BODY, SIM_BODY):
        words += [body, body[:24]]
    words += ["Bougoufie", "Traorewa", "Diarrawa", AT_SECRET, AUTH_TOKEN]
    return words


class Browser:
    """An httpx client that keeps the session cookies itself: the app marks them Secure
    (its public URL is https) while the test talks plain HTTP to 127.0.0.1."""

    def __init__(self, base_url: str) -> None:
        self.http = httpx.Client(base_url=base_url, timeout=15)
        self.cookies: dict[str, str] = {}

    def request(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        for _hop in range(5):
            cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
            response = self.http.request(
                method, url, headers={**kwargs.pop("headers", {}), "Cookie": cookie}, **kwargs
            )
            for name, value in response.cookies.items():
                self.cookies[name] = value
            if response.status_code not in (302, 303):
                return response
            method, url, kwargs = "GET", response.headers["location"], {}
        raise AssertionError("too many redirects")

    def csrf(self, path: str) -> str:
        match = CSRF_RE.search(self.request("GET", path).text)
        assert match, path
        return match.group(1)


@pytest.fixture()
def web(database: str) -> Iterator[DemeWeb]:
    server = DemeWeb(env={"DEME_PUBLIC_URL": PUBLIC_URL})
    yield server
    server.stop()


def test_no_phone_number_body_or_secret_in_any_log_line(
    celery_worker: Any, db: Session, platform: Any, provider: FakeProvider, web: DemeWeb
) -> None:
    from models import Channel, ChannelType
    from tests.console.conftest import PASSWORD, make_world

    world = make_world(db)
    db.add(
        Channel(
            name="at-logs",
            type=ChannelType.AFRICASTALKING,
            address="36665",
            credentials={"username": "deme", "api_key": "at-key", "webhook_secret": AT_SECRET},
            config={"api_base_url": provider.url},
        )
    )
    db.commit()

    # 1. SMS through the Twilio webhook, the worker, the classifier, the reply.
    post_sms(None, SENDER, SMS_BODY, base_url=web.url)
    wait_until(lambda: ticket_for(db, SENDER) is not None, timeout=30)
    wait_until(lambda: replies_to(provider, SENDER) != [], timeout=30)

    # 2. Africa's Talking, with its secret in the callback URL.
    at = httpx.post(
        f"{web.url}/webhooks/africastalking/sms?secret={AT_SECRET}",
        data={"from": AT_SENDER, "to": "36665", "text": AT_BODY, "id": "ATXlog1", "linkId": "L"},
        timeout=10,
    )
    assert at.status_code == 200, at.text
    wait_until(lambda: ticket_for(db, AT_SENDER) is not None, timeout=30)

    # 3. The console: queue search by phone (posted, then an old-style URL), the simulator.
    browser = Browser(web.url)
    page = browser.request("GET", "/login")
    csrf = CSRF_RE.search(page.text)
    assert csrf
    logged_in = browser.request(
        "POST",
        "/login",
        data={"username": "supervisor-user", "password": PASSWORD, "csrf_token": csrf.group(1)},
    )
    assert logged_in.status_code == 200
    csrf_token = browser.csrf("/queue")
    ticket = ticket_for(db, SENDER)
    assert ticket is not None
    found = browser.request(
        "POST", "/queue", data={"csrf_token": csrf_token, "phone": "76 00 01 91"}
    )
    assert found.status_code == 200 and ticket.reference in found.text
    assert "phone_token=" in str(found.url) and "76000191" not in str(found.url)
    old_url = browser.request("GET", "/queue?phone=%2B22376000191")
    assert old_url.status_code == 200 and ticket.reference in old_url.text
    assert "22376000191" not in str(old_url.url)
    sim = browser.request(
        "POST",
        "/simulator/sms",
        data={"csrf_token": csrf_token, "phone": SIM_SENDER, "text": SIM_BODY},
    )
    assert sim.status_code == 200, sim.text[:300]
    thread = browser.request(
        "POST", "/simulator/thread", data={"csrf_token": csrf_token, "phone": SIM_SENDER}
    )
    assert thread.status_code == 200 and "Diarrawa" in thread.text
    wait_until(lambda: ticket_for(db, SIM_SENDER) is not None, timeout=30)

    # 4. The API: a phone in the URL is refused; the posted search finds the ticket.
    api = {"Authorization": f"Bearer {world['supervisor'].token}"}
    refused = httpx.get(
        f"{web.url}/api/v1/tickets", params={"phone": "22376000191"}, headers=api, timeout=10
    )
    assert refused.status_code == 400
    searched = httpx.post(
        f"{web.url}/api/v1/tickets/search", json={"phone": "76000191"}, headers=api, timeout=10
    )
    assert [t["reference"] for t in searched.json()["tickets"]] == [ticket.reference]
    invalid = httpx.post(
        f"{web.url}/api/v1/tickets",
        json={"phone": "7600019x", "category": "health", "description": SIM_BODY},
        headers=api,
        timeout=10,
    )
    assert invalid.status_code == 422 and "7600019x" not in invalid.text

    web.stop()  # everything flushed
    logs = {"web": web.log(), "worker": celery_worker.log()}
    hits = [
        (name, word, line)
        for name, text in logs.items()
        for line in text.splitlines()
        for word in _forbidden()
        if word in line
    ]
    assert not hits, "\n".join(f"[{n}] {w!r} in: {line[:300]}" for n, w, line in hits[:20])
    # And the logs are there (the test can fail): access lines of what was just done.
    assert "POST /queue status=303" in logs["web"], logs["web"][-3000:]
    assert "/webhooks/africastalking/sms?secret=… status=200" in logs["web"]
    assert "GET /queue?phone=… status=303" in logs["web"]
    assert "process_inbound" in logs["worker"]
