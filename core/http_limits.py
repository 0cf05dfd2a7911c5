"""Resource limits of the web server: request body size and read time, slow headers.

``BodyLimitMiddleware`` is the outermost part of the application that sees a request body:
it reads the whole body *before* any route, authentication or parser runs, so

- a declared ``Content-Length`` above the limit is answered ``413`` without reading a byte;
- a chunked (or lying) body is counted while it streams in and cut off at the limit (``413``);
- a body that trickles in slower than ``DEME_BODY_TIMEOUT_SECONDS`` gets ``408``;

and each of these answers closes the connection. Routes then read the buffered body as usual
(the gateway's own, tighter limits still apply).

Slow *headers* never reach the application: ``uvicorn_options`` (the one place where the
server is configured, used by ``deme web``, ``deme run``, the Dockerfile and compose) selects
protocol classes that close a connection whose request line and headers are not complete
``DEME_HEADER_TIMEOUT_SECONDS`` after it opened (or after the previous response), or whose
request line and headers exceed 16 KiB.
"""

from __future__ import annotations

import asyncio
import json
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.settings import Settings, get_settings

# Request line + headers; h11 answers 400 past it, httptools would buffer without limit.
MAX_HEAD_BYTES = 16 * 1024
# Requests that carry no body by nature: nothing to read, nothing to bound.
_BODYLESS_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "DELETE"})


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(
        self, app: ASGIApp, *, max_bytes: int | None = None, timeout: float | None = None
    ) -> None:
        settings = get_settings()
        self.app = app
        self.max_bytes = max_bytes if max_bytes is not None else settings.max_body_bytes
        self.timeout = timeout if timeout is not None else settings.body_timeout_seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared: int | None = None
        chunked = False
        for name, value in scope["headers"]:
            if name == b"content-length":
                try:
                    declared = int(value)
                except ValueError:
                    await _refuse(send, 400, "invalid Content-Length header")
                    return
            elif name == b"transfer-encoding":
                chunked = True
        if declared is not None and declared > self.max_bytes:
            await _refuse(send, 413, f"request body larger than {self.max_bytes} bytes")
            return
        if not chunked and not declared and scope["method"] in _BODYLESS_METHODS:
            await self.app(scope, receive, send)
            return
        chunks: list[bytes] = []
        size = 0
        try:
            async with asyncio.timeout(self.timeout):
                while True:
                    message = await receive()
                    if message["type"] == "http.disconnect":
                        return  # the client went away: nobody to answer
                    chunk = message.get("body", b"")
                    size += len(chunk)
                    if size > self.max_bytes:
                        await _refuse(send, 413, f"request body larger than {self.max_bytes} bytes")
                        return
                    chunks.append(chunk)
                    if not message.get("more_body", False):
                        break
        except TimeoutError:
            await _refuse(send, 408, f"request body not received within {self.timeout:g} seconds")
            return
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # http.disconnect, for whoever listens for it

        await self.app(scope, replay, send)


class _HeaderTimeout:
    """Mixin for uvicorn's protocols: close a connection whose next request's headers are not
    complete within ``DEME_HEADER_TIMEOUT_SECONDS`` (slowloris). ``self.cycle`` is the
    request being served; a new one appears as soon as a request's headers are parsed."""

    transport: asyncio.Transport
    cycle: Any
    loop: asyncio.AbstractEventLoop
    _deme_timer: asyncio.TimerHandle | None = None
    _deme_cycle: Any = None
    _deme_head_bytes = 0

    def _deme_arm(self) -> None:
        if self._deme_timer is not None:
            self._deme_timer.cancel()
        self._deme_cycle = self.cycle
        self._deme_head_bytes = 0
        self._deme_timer = self.loop.call_later(
            get_settings().header_timeout_seconds, self._deme_expire
        )

    def _deme_count(self, size: int) -> None:
        """After the parser saw ``size`` more bytes: if the request head is still not
        complete past MAX_HEAD_BYTES, close (httptools buffers any amount of headers)."""
        if self.cycle is self._deme_cycle:
            self._deme_head_bytes += size
            if self._deme_head_bytes > MAX_HEAD_BYTES and not self.transport.is_closing():
                self.transport.close()

    def _deme_expire(self) -> None:
        self._deme_timer = None
        if self.cycle is self._deme_cycle and not self.transport.is_closing():
            self.transport.close()

    # The protocol's own hooks, extended (the mixin comes first in the MRO, so ``super()`` is
    # uvicorn's H11Protocol or HttpToolsProtocol).
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)  # type: ignore[misc]
        self._deme_arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)  # type: ignore[misc]
        self._deme_count(len(data))

    def on_response_complete(self) -> None:
        super().on_response_complete()  # type: ignore[misc]
        self._deme_arm()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._deme_timer is not None:
            self._deme_timer.cancel()
        super().connection_lost(exc)  # type: ignore[misc]


class TimedH11Protocol(_HeaderTimeout, H11Protocol):
    pass


class TimedHttpToolsProtocol(_HeaderTimeout, HttpToolsProtocol):
    pass


def _http_protocol() -> str:
    try:
        import httptools  # noqa: F401
    except ImportError:
        return "core.http_limits:TimedH11Protocol"
    return "core.http_limits:TimedHttpToolsProtocol"


def uvicorn_options(settings: Settings | None = None) -> dict[str, Any]:
    """Keyword arguments of ``uvicorn.run`` for the web app: the one place for them."""
    settings = settings or get_settings()
    return {
        "host": settings.host,
        "port": settings.port,
        # X-Forwarded-* are read by the app, only from DEME_TRUSTED_PROXIES (deme.app).
        "proxy_headers": False,
        "log_level": settings.log_level.lower(),
        # Our own access log (deme.app) redacts query strings; uvicorn's would not.
        "access_log": False,
        "timeout_keep_alive": 5,  # seconds an idle keep-alive connection stays open
        "h11_max_incomplete_event_size": MAX_HEAD_BYTES,
        "http": _http_protocol(),
    }
