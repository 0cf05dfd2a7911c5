"""Small HTTP client for the Deme platform API used by the bot's actions.

The actions never import the platform's models (Rasa 3.6 lives in its own Python 3.10 env):
everything goes through this class. Every call has an explicit timeout; any failure (network,
timeout, 4xx/5xx, bad JSON) raises PlatformError so that the calling action can still answer
the user politely.

The actions share one client and call it from worker threads (``actions.api``): its
``requests.Session`` keeps connections alive, and urllib3's connection pool is thread-safe.
"""

from __future__ import annotations

import os
from typing import Any
from urllib.parse import quote

import requests

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
DEFAULT_TIMEOUT = 5.0


class PlatformError(Exception):
    """The platform could not be reached or refused the request."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class PlatformClient:
    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float = DEFAULT_TIMEOUT,
        session: requests.Session | None = None,
    ) -> None:
        self.base_url = (base_url or os.environ.get("DEME_API_URL") or DEFAULT_BASE_URL).rstrip("/")
        self.token = token if token is not None else os.environ.get("DEME_API_TOKEN", "")
        self.timeout = timeout
        self._session = session or requests.Session()

    # -- transport ------------------------------------------------------------------------------
    def _request(
        self,
        method: str,
        path: str,
        *,
        json: dict[str, Any] | None = None,
        params: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        headers = {"Accept": "application/json"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        try:
            response = self._session.request(
                method,
                f"{self.base_url}{path}",
                json=json,
                params=params,
                headers=headers,
                timeout=(self.timeout, self.timeout),
            )
        except requests.RequestException as exc:
            raise PlatformError(f"{method} {path}: {exc.__class__.__name__}: {exc}") from exc
        if response.status_code >= 400:
            try:
                detail = response.json().get("detail", response.text)
            except ValueError:
                detail = response.text
            raise PlatformError(
                f"{method} {path}: HTTP {response.status_code}: {detail}", response.status_code
            )
        try:
            body = response.json()
        except ValueError as exc:
            raise PlatformError(f"{method} {path}: response is not JSON") from exc
        if not isinstance(body, dict):
            raise PlatformError(f"{method} {path}: unexpected response {body!r}")
        return body

    @staticmethod
    def _sender_path(sender: str) -> str:
        return quote(sender, safe="")

    # -- API ------------------------------------------------------------------------------------
    def create_ticket(
        self,
        *,
        sender: str,
        category: str,
        description: str,
        place: str | None,
        household_size: int | None,
        language: str,
        sensitive: bool,
        callback_ok: bool | None = None,
        message_id: int | None = None,
        kind: str = "need",
    ) -> dict[str, Any]:
        """``message_id``: the platform's inbound message this turn answers — the idempotency
        key, so a turn the platform gave up on (and answered with its fallback) and this
        call never make two tickets of one message. ``kind``: need | complaint |
        positive_feedback | rumour | information_request | psea (``with_kind``)."""
        body: dict[str, Any] = {
            "sender": sender,
            "category": category,
            "description": description,
            "place": place,
            "household_size": household_size,
            "language": language,
            "sensitive": sensitive,
            "callback_ok": callback_ok,
        }
        if message_id is not None:
            body["message_id"] = message_id
        return self._request("POST", "/api/v1/tickets", json=with_kind(body, kind))

    def update_ticket(
        self,
        reference: str,
        *,
        place: str | None = None,
        household_size: int | None = None,
        callback_ok: bool | None = None,
        note: str | None = None,
    ) -> dict[str, Any]:
        body: dict[str, Any] = {}
        if place is not None:
            body["place"] = place
        if household_size is not None:
            body["household_size"] = household_size
        if callback_ok is not None:
            body["callback_ok"] = callback_ok
        if note is not None:
            body["note"] = note
        return self._request("PATCH", f"/api/v1/tickets/{quote(reference, safe='')}", json=body)

    def register_household(
        self,
        *,
        sender: str,
        size: int,
        place: str,
        origin: str | None,
        language: str,
        displaced_since: str | None = None,
    ) -> dict[str, Any]:
        """``origin``: where the household came from, as the sender wrote it;
        ``displaced_since``: ISO date it left, when the message said (sent only then)."""
        body: dict[str, Any] = {
            "sender": sender,
            "size": size,
            "place": place,
            "origin": origin,
            "language": language,
        }
        if displaced_since:
            body["displaced_since"] = displaced_since
        return self._request("POST", "/api/v1/households", json=body)

    def list_tickets(self, sender: str) -> list[dict[str, Any]]:
        body = self._request("GET", f"/api/v1/contacts/{self._sender_path(sender)}/tickets")
        tickets = body.get("tickets", [])
        return tickets if isinstance(tickets, list) else []

    def opt_out(self, sender: str) -> dict[str, Any]:
        return self._request("POST", f"/api/v1/contacts/{self._sender_path(sender)}/opt-out")

    def erase(self, sender: str) -> dict[str, Any]:
        return self._request("POST", f"/api/v1/contacts/{self._sender_path(sender)}/erase")

    def resolve_place(self, text: str) -> dict[str, Any] | None:
        body = self._request("GET", "/api/v1/places/resolve", params={"q": text})
        match = body.get("match")
        return match if isinstance(match, dict) else None


def with_kind(body: dict[str, Any], kind: str) -> dict[str, Any]:
    """The ticket creation body with the report's kind, as the platform's API names it: the
    one place to adapt if that field is named or encoded differently."""
    return {**body, "kind": kind}
