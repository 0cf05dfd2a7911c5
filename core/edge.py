"""The one guard in front of the API and the console: text that cannot be stored is refused.

NUL (PostgreSQL ``text`` cannot hold it) and lone surrogates (UTF-8 cannot encode them) in a
query parameter, a posted form or a JSON body answer ``400`` naming the field, before any
handler runs. Provider webhooks (``/webhooks/``) are not refused: a sender's SMS must not be
lost, so ``gateway.webhook_io`` repairs their values instead. A plain ASGI middleware (not
``BaseHTTPMiddleware``): it costs nothing on requests with nothing to check.
"""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.sanitize import bad_fields

# Bodies above this are not inspected here (the handlers' own limits apply).
MAX_CHECKED_BODY = 1024 * 1024
UNGUARDED_PREFIXES = ("/webhooks/",)


def _json_fields(value: Any, prefix: str = "") -> list[tuple[str, object]]:
    items: list[tuple[str, object]] = []
    if isinstance(value, dict):
        for key, inner in value.items():
            name = f"{prefix}.{key}" if prefix else str(key)
            items.append((name, None))
            items.extend(_json_fields(inner, name))
    elif isinstance(value, list):
        for index, inner in enumerate(value):
            items.extend(_json_fields(inner, f"{prefix}[{index}]"))
    else:
        items.append((prefix or "body", value))
    return items


def bad_body_fields(body: bytes, content_type: str) -> list[str]:
    if "json" in content_type:
        try:
            doc = json.loads(body)
        except (ValueError, RecursionError):
            return []  # not JSON: FastAPI answers 422 itself
        return bad_fields(_json_fields(doc))
    text = body.decode("utf-8", errors="replace")
    return bad_fields(parse_qsl(text, keep_blank_values=True))


class TextGuardMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"].startswith(UNGUARDED_PREFIXES):
            # Webhooks repair their own values (gateway.webhook_io); a path with NUL in it
            # matches no webhook route (404).
            await self.app(scope, receive, send)
            return
        query = scope.get("query_string", b"").decode("latin-1")
        bad = bad_fields([("path", scope["path"])])
        if "%" in query:
            bad += bad_fields(parse_qsl(query, keep_blank_values=True))
        content_type = ""
        for name, value in scope.get("headers", []):
            if name == b"content-type":
                content_type = value.decode("latin-1").lower()
        checked = "json" in content_type or "x-www-form-urlencoded" in content_type
        if bad or not checked or scope["method"] in ("GET", "HEAD", "OPTIONS"):
            if bad:
                await _refuse(send, bad)
                return
            await self.app(scope, receive, send)
            return
        messages: list[Message] = []
        size = 0
        more = True
        while more:
            message = await receive()
            messages.append(message)
            size += len(message.get("body", b""))
            more = message["type"] == "http.request" and message.get("more_body", False)
            if size > MAX_CHECKED_BODY:
                break
        if not more:
            body = b"".join(m.get("body", b"") for m in messages)
            bad = bad_body_fields(body, content_type)
            if bad:
                await _refuse(send, bad)
                return

        async def replay() -> Message:
            if messages:
                return messages.pop(0)
            return await receive()

        await self.app(scope, replay, send)


async def _refuse(send: Send, fields: list[str]) -> None:
    detail = "invalid characters (NUL or lone surrogate) in: " + ", ".join(fields[:20])
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 400,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
