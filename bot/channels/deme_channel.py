"""Rasa input channel used by the Deme platform's worker.

POST /webhooks/deme/webhook
  headers: X-Deme-Secret: <DEME_BOT_SHARED_SECRET>
  body:    {"sender": "<opaque id>", "message": "<text>",
            "metadata": {"channel": "sms", "language": "fr"|null, "message_id": 123}}
  200 ->   {"messages": [{"text": "..."}]}   (answered synchronously)

Channel webhooks are not covered by Rasa's --auth-token, so the channel checks a shared secret
itself (constant-time). The text is normalised with bot/normalize.py, exactly as the training
data, which also removes a leading "/" (Rasa would parse "/intent{...}" as an injected intent).
The original text travels in metadata["raw_text"] so that tickets keep the sender's words.

Proactive messages (POST /conversations/{id}/trigger_intent?output_channel=deme) use a
collecting output channel: the bot's messages come back in that API response and the worker
sends them, so the bot never needs provider credentials.
"""

from __future__ import annotations

import hmac
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

from rasa.core.channels.channel import CollectingOutputChannel, InputChannel, UserMessage
from sanic import Blueprint, response
from sanic.request import Request
from sanic.response import HTTPResponse

from . import action_validation

try:
    from bot.normalize import normalize
except ImportError:  # bot/ is the working directory when rasa runs
    from normalize import normalize

logger = logging.getLogger(__name__)

# Rasa loads this module for every server that takes Deme traffic: the place to make its
# action-answer validation cheap (see action_validation).
action_validation.install()

SECRET_HEADER = "X-Deme-Secret"
SECRET_ENV = "DEME_BOT_SHARED_SECRET"
MAX_MESSAGE_CHARS = 2000


def prepare_text(text: str) -> str:
    """What Rasa sees: normalised, never starting with '/'."""
    return normalize(text).lstrip("/").strip()


class DemeInput(InputChannel):
    @classmethod
    def name(cls) -> str:
        return "deme"

    @classmethod
    def from_credentials(cls, credentials: dict[str, Any] | None) -> DemeInput:
        credentials = credentials or {}
        return cls(secret=credentials.get("secret"))

    def __init__(self, secret: str | None = None) -> None:
        # credentials.yml may pass a secret; the environment wins so it never has to be in a file
        self._secret = os.environ.get(SECRET_ENV) or secret or ""

    def _authorised(self, request: Request) -> bool:
        supplied = request.headers.get(SECRET_HEADER, "")
        if not self._secret:
            logger.error("%s is not set: refusing every request on the deme channel", SECRET_ENV)
            return False
        return hmac.compare_digest(supplied.encode("utf-8"), self._secret.encode("utf-8"))

    def get_output_channel(self) -> CollectingOutputChannel:
        return CollectingOutputChannel()

    def blueprint(self, on_new_message: Callable[[UserMessage], Awaitable[Any]]) -> Blueprint:
        webhook = Blueprint("deme_webhook", __name__)

        @webhook.route("/", methods=["GET"])
        async def health(_: Request) -> HTTPResponse:
            return response.json({"status": "ok"})

        @webhook.route("/webhook", methods=["POST"])
        async def receive(request: Request) -> HTTPResponse:
            if not self._authorised(request):
                return response.json({"detail": "unauthorised"}, status=401)
            body = request.json if isinstance(request.json, dict) else None
            if body is None:
                return response.json({"detail": "JSON object expected"}, status=400)
            sender = body.get("sender")
            message = body.get("message")
            metadata = body.get("metadata") or {}
            if not isinstance(sender, str) or not sender or not isinstance(message, str):
                return response.json({"detail": "sender and message are required"}, status=400)
            if not isinstance(metadata, dict):
                return response.json({"detail": "metadata must be an object"}, status=400)
            text = prepare_text(message[:MAX_MESSAGE_CHARS])
            if not text:
                return response.json({"messages": []})
            metadata = {**metadata, "raw_text": message[:MAX_MESSAGE_CHARS]}
            collector = CollectingOutputChannel()
            await on_new_message(
                UserMessage(
                    text,
                    collector,
                    sender,
                    input_channel=self.name(),
                    metadata=metadata,
                )
            )
            messages = [{"text": m["text"]} for m in collector.messages if m.get("text")]
            return response.json({"messages": messages})

        return webhook
