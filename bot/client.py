"""Talks to the Rasa server through the Deme custom channel (platform side, Python 3.11).

The sender id is the contact's opaque public id, never a phone number. Every call has an
explicit timeout; anything but a well-formed answer raises ``BotUnavailable`` so the caller
can fall back to the keyword classifier.
"""

from __future__ import annotations

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
            response = httpx.put(
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
            response = httpx.post(
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
