"""Talks to the Rasa server through the Deme custom channel (platform side, Python 3.11).

The sender id is the contact's opaque public id, never a phone number. Every call has an
explicit timeout; anything but a well-formed answer raises ``BotUnavailable`` so the caller
can fall back to the keyword classifier.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from typing import Any

import httpx

CHANNEL_PATH = "/webhooks/deme/webhook"
SECRET_HEADER = "X-Deme-Secret"


class BotUnavailable(RuntimeError):
    """Rasa could not be reached, was too slow, or answered something unusable."""


def neutralise_command(text: str) -> str:
    """Rasa parses text starting with '/' as an intent with entities: never let users do that."""
    return text.lstrip().lstrip("/").strip() or text.strip()


_pool_guard = threading.Lock()
_pool: tuple[int, httpx.Client] | None = None


def _http() -> httpx.Client:
    """One keep-alive connection pool per process, shared by the worker's threads.

    A new ``httpx`` call per message built a fresh TLS context each time (loading the CA
    bundle), which cost the bot worker more CPU than everything else in a turn. The pool is
    re-created after a fork (Celery's prefork children must not share the parent's sockets).
    """
    global _pool
    pid = os.getpid()
    pool = _pool
    if pool is not None and pool[0] == pid:
        return pool[1]
    with _pool_guard:
        if _pool is None or _pool[0] != pid:
            _pool = (pid, httpx.Client(limits=httpx.Limits(max_keepalive_connections=32)))
        return _pool[1]


@dataclass(frozen=True)
class RasaClient:
    base_url: str
    shared_secret: str
    timeout_seconds: float
    api_token: str | None = None

    def forget(self, sender: str) -> None:
        """Replace the conversation's stored events with none (Rasa's tracker store keeps the
        whole conversation otherwise, even after the platform erased the contact)."""
        try:
            response = _http().put(
                f"{self.base_url}/conversations/{sender}/tracker/events",
                json=[],
                params={"token": self.api_token} if self.api_token else None,
                timeout=httpx.Timeout(self.timeout_seconds, connect=2.0),
            )
        except httpx.HTTPError as exc:
            raise BotUnavailable(f"rasa unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise BotUnavailable(f"rasa answered HTTP {response.status_code} to forget")

    def send(self, *, sender: str, text: str, metadata: dict[str, Any]) -> list[str]:
        payload = {"sender": sender, "message": neutralise_command(text), "metadata": metadata}
        try:
            response = _http().post(
                self.base_url + CHANNEL_PATH,
                json=payload,
                headers={SECRET_HEADER: self.shared_secret},
                timeout=httpx.Timeout(self.timeout_seconds, connect=2.0),
            )
        except httpx.HTTPError as exc:
            raise BotUnavailable(f"rasa unreachable: {type(exc).__name__}") from exc
        if response.status_code != 200:
            raise BotUnavailable(f"rasa answered HTTP {response.status_code}")
        try:
            body = response.json()
            texts = [str(item["text"]) for item in body["messages"] if item.get("text")]
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            raise BotUnavailable("rasa answered an unexpected body") from exc
        if not texts:
            # Every path of the bot answers at least once; Rasa answers an empty list when an
            # action failed (e.g. the action server is down), so this is a failure too.
            raise BotUnavailable("rasa answered no message")
        return texts
