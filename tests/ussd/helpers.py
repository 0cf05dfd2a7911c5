"""Helpers for the USSD tests: a simulated caller and the screen checks every answer must pass."""

from __future__ import annotations

import itertools
import uuid
from typing import Any, Protocol

SCREEN_LIMIT = 160

# GSM 03.38 basic table, written out here independently of gateway.ussd.text so that a
# mistake in the application's table cannot hide a bad screen. The escape table ([]{}|~^\€)
# is excluded on purpose: the menu must not need it.
GSM7_BASIC = frozenset(
    "@£$¥èéùìòÇ\nØø\rÅåΔ_ΦΓΛΩΠΨΣΘΞÆæßÉ !\"#¤%&'()*+,-./0123456789:;<=>?"
    "¡ABCDEFGHIJKLMNOPQRSTUVWXYZÄÖÑÜ§¿abcdefghijklmnopqrstuvwxyzäöñüà"
)


def gsm7_problems(text: str) -> list[str]:
    """Characters of ``text`` outside the GSM-7 basic table (also cross-checked against the
    gateway's own encoder when it is there)."""
    bad = sorted({ch for ch in text if ch not in GSM7_BASIC})
    try:
        from gateway.gsm7 import measure
    except ImportError:  # the SMS gateway's module is optional for these tests
        return bad
    info = measure(text)
    if info.encoding.value != "gsm7" or info.units != len(text):
        bad.append(f"<gateway.gsm7 says {info.encoding.value}, {info.units} septets>")
    return bad


def check_screen(text: str) -> str:
    assert text.startswith(("CON ", "END ")), repr(text)
    assert len(text) <= SCREEN_LIMIT, f"{len(text)} characters: {text!r}"
    assert not gsm7_problems(text), f"not GSM-7 {gsm7_problems(text)}: {text!r}"
    return text


def check_response(response: Any) -> str:
    assert response.status_code == 200, (response.status_code, response.text)
    assert response.headers["content-type"].startswith("text/plain"), response.headers
    return check_screen(response.text)


# The secret of the test channels (``at_channel``): every hop must prove its aggregator.
USSD_TEST_TOKEN = "ussd-test-token"

_numbers = itertools.count(100000)


def new_phone_number() -> str:
    """A distinct valid Malian mobile number (Orange range) per call."""
    return f"+22376{next(_numbers) % 1000000:06d}"


class Http(Protocol):
    def post(self, url: str, **kwargs: Any) -> Any: ...


class Phone:
    """A caller on a basic phone, talking to the app through an aggregator like Africa's
    Talking: each hop sends the whole ``*``-joined path typed so far in this session."""

    def __init__(
        self,
        http: Http,
        number: str | None = None,
        *,
        url: str = "/webhooks/africastalking/ussd",
        service_code: str = "*384*123#",
        token: str | None = USSD_TEST_TOKEN,
    ) -> None:
        self.http = http
        self.headers = {"X-Deme-Token": token} if token else {}
        self.number = number or new_phone_number()
        self.url = url
        self.service_code = service_code
        self.session_id = ""
        self.path: list[str] = []
        self.screens: list[str] = []

    @property
    def screen(self) -> str:
        return self.screens[-1]

    def _post(self, text: str) -> str:
        response = self.http.post(
            self.url,
            data={
                "sessionId": self.session_id,
                "serviceCode": self.service_code,
                "phoneNumber": self.number,
                "networkCode": "61001",
                "text": text,
            },
            headers=self.headers,
        )
        screen = check_response(response)
        self.screens.append(screen)
        return screen

    def dial(self, shortcut: str = "") -> str:
        """A new session (the operator gives a new session id each time)."""
        self.session_id = "ATUid_" + uuid.uuid4().hex
        self.path = [shortcut] if shortcut else []
        return self._post(shortcut)

    def send(self, text: str) -> str:
        self.path.append(text)
        return self._post("*".join(self.path))

    def retry(self) -> str:
        """The aggregator re-sends the last hop (a timeout on its side)."""
        return self._post("*".join(self.path))

    def walk(self, *inputs: str) -> str:
        for text in inputs:
            self.send(text)
        return self.screen
