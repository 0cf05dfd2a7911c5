"""The FastAPI application: health endpoints, metrics, and the routers of each package."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI, HTTPException, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.crypto import validate_pii_key
from core.edge import TextGuardMiddleware
from core.http_limits import BodyLimitMiddleware
from core.logging import access_log, configure_logging, redact_query
from core.settings import Environment, Settings, get_settings
from deme.health import readiness

_ACCESS = access_log()
REQUESTS = Counter("deme_http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "deme_http_request_seconds",
    "HTTP request latency",
    ["route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)

# Outbound sends of unknown outcome (gateway.delivery), read from the database at scrape time.
UNKNOWN_SENDS = Gauge(
    "deme_outbound_unknown", "Outbound SMS of unknown outcome, not resolved nor resent"
)
UNKNOWN_SHARE = Gauge(
    "deme_outbound_unknown_share",
    "Share of the sends of the last DEME_UNKNOWN_SEND_WINDOW_MINUTES that ended unknown",
)
UNKNOWN_ALERT = Gauge(
    "deme_outbound_unknown_alert", "1 when that share passes DEME_UNKNOWN_SEND_ALERT_SHARE"
)
# Per-channel circuit breakers (gateway.breaker) and the sends waiting in the database.
BREAKER_OPEN = Gauge(
    "deme_channel_breaker_open",
    "1 while the channel's circuit breaker holds its sends (open or half-open)",
    ["channel"],
)
BREAKER_FAILURES = Gauge(
    "deme_channel_breaker_failures", "Consecutive transient provider failures", ["channel"]
)
BREAKER_OPENED = Gauge(
    "deme_channel_breaker_opened", "Times the channel's breaker opened", ["channel"]
)
OUTBOUND_WAITING = Gauge(
    "deme_outbound_waiting", "Outbound SMS waiting in the database for a retry or a breaker"
)


def _update_delivery_gauges() -> None:
    from core.db import TRANSIENT_ERRORS, get_sessionmaker
    from gateway.delivery import unknown_stats

    try:
        with get_sessionmaker()() as session:
            stats = unknown_stats(session)
    except TRANSIENT_ERRORS:  # database down: /readyz says so; keep the last values
        return
    UNKNOWN_SENDS.set(stats.open_unknown)
    UNKNOWN_SHARE.set(stats.share)
    UNKNOWN_ALERT.set(1 if stats.alerting else 0)
    _update_breaker_gauges()


def _update_breaker_gauges() -> None:
    from sqlalchemy import func, select

    from core.db import TRANSIENT_ERRORS, get_sessionmaker
    from gateway.breaker import states
    from models.enums import MessageDirection, MessageStatus
    from models.messages import Message

    try:
        with get_sessionmaker()() as session:
            breakers = states(session)
            waiting = session.scalar(
                select(func.count())
                .select_from(Message)
                .where(
                    Message.direction == MessageDirection.OUTBOUND,
                    Message.status == MessageStatus.QUEUED,
                )
            )
    except TRANSIENT_ERRORS:
        return
    for breaker in breakers:
        channel = str(breaker.channel_id)
        BREAKER_OPEN.labels(channel).set(0 if breaker.state == "closed" else 1)
        BREAKER_FAILURES.labels(channel).set(breaker.failures)
        BREAKER_OPENED.labels(channel).set(breaker.times_opened)
    OUTBOUND_WAITING.set(int(waiting or 0))


class MetricsMiddleware:
    """Request count and latency per route, and the access log, as a plain ASGI middleware.

    The access log line carries the method, the path, the query string redacted by
    ``core.logging.redact_query`` (allow-listed parameters only: never a phone number, a
    search text or a secret), the status and the duration; uvicorn's own access log is off.

    Starlette's ``@app.middleware("http")`` (BaseHTTPMiddleware) costs about 0.35 ms of CPU
    per request (task group, memory streams): on the inbound SMS webhook, benchmarked at
    ≥1,000 msg/s on two cores, that was as much as the gateway's own work.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status = 500

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            # The router stored the matched route in the (shared) scope.
            path = getattr(scope.get("route"), "path", "unmatched")
            elapsed = time.perf_counter() - started
            LATENCY.labels(path).observe(elapsed)
            REQUESTS.labels(scope["method"], path, str(status)).inc()
            if _ACCESS.isEnabledFor(logging.INFO):
                query = scope.get("query_string", b"").decode("latin-1")
                _ACCESS.info(
                    "%s %s%s status=%s ms=%.1f",
                    scope["method"],
                    scope.get("path", ""),
                    "?" + redact_query(query) if query else "",
                    status,
                    elapsed * 1000,
                )


class UnsafeConfiguration(RuntimeError):
    """Production must not start like this (the message names what to fix)."""


def refuse_unsafe_channels() -> None:
    """Production refuses to start while an active USSD channel cannot authenticate its
    caller: anyone knowing a phone number could read or erase that person's case. A database
    that cannot be reached is not a reason to refuse (the webhooks spool meanwhile)."""
    from sqlalchemy.exc import SQLAlchemyError

    from core.db import get_sessionmaker
    from gateway.channels.auth import unauthenticated_ussd_channels

    try:
        with get_sessionmaker()() as session:
            names = unauthenticated_ussd_channels(session)
    except SQLAlchemyError as exc:
        logging.getLogger(__name__).warning(
            "channel check skipped, database unavailable: %s", type(exc).__name__
        )
        return
    if names:
        raise UnsafeConfiguration(
            "refusing to start: USSD channel(s) "
            + ", ".join(repr(name) for name in names)
            + " have neither a caller secret nor an IP allow-list; "
            "run `deme channel-secret NAME` (or `deme seed`) and register the callback it prints"
        )


@asynccontextmanager
async def _lifespan(_app: FastAPI) -> AsyncIterator[None]:
    if get_settings().env is Environment.PRODUCTION:
        refuse_unsafe_channels()
    from core.db import dispose_async_engine, get_async_engine

    # Build the asyncio engines now (imports, dialect set-up; no connection yet): done by the
    # first webhook instead, it ate most of its 0.8 s database budget on a busy machine.
    get_async_engine()
    get_async_engine(webhook=True)
    yield

    await dispose_async_engine()


def create_app() -> FastAPI:
    settings = get_settings()
    configure_logging()
    validate_pii_key()
    production = settings.env is Environment.PRODUCTION
    app = FastAPI(
        lifespan=_lifespan,
        title="Deme",
        version="0.1.0",
        description="SMS/USSD feedback and hotline platform for humanitarian response.",
        # Public in development; in production only for signed-in staff (below).
        docs_url=None if production else "/api/docs",
        openapi_url=None if production else "/api/openapi.json",
    )

    # Innermost first: the text guard reads bodies the limit has already bounded; added last =
    # outermost, the access log and metrics also see the 413/408 answers.
    app.add_middleware(TextGuardMiddleware)
    app.add_middleware(BodyLimitMiddleware)
    app.add_middleware(MetricsMiddleware)
    if settings.trusted_proxy_list:
        # The one place proxy headers are read (uvicorn runs with proxy headers off): the
        # client address used by login throttling and audit is the TCP peer unless that peer
        # is a configured proxy (DEME_TRUSTED_PROXIES); then it is the first untrusted hop.
        from uvicorn.middleware.proxy_headers import ProxyHeadersMiddleware

        app.add_middleware(ProxyHeadersMiddleware, trusted_hosts=settings.trusted_proxy_list)

    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        """Alive: the process answers."""
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz() -> JSONResponse:
        """Ready: database, broker and bot reachable; names what is not."""
        checks = readiness(settings)
        failing = {name: reason for name, reason in checks.items() if reason}
        body = {
            "status": "ok" if not failing else "unavailable",
            "checks": {name: reason or "ok" for name, reason in checks.items()},
        }
        return JSONResponse(body, status_code=200 if not failing else 503)

    @app.get("/metrics", tags=["health"])
    def metrics(request: Request) -> Response:
        """Prometheus metrics; in production only with ``DEME_METRICS_TOKEN`` or an admin's
        bearer token (they reveal traffic volumes and error rates)."""
        if production:
            _require_metrics_access(request, settings)
        _update_delivery_gauges()
        return Response(generate_latest(), media_type=CONTENT_TYPE_LATEST)

    if production:
        from ops_console.api_docs import install_staff_docs

        install_staff_docs(app)

    for router in _package_routers():
        app.include_router(router)
    from ops_console.routes import install as install_console

    install_console(app)  # /static and the console's error pages
    return app


def _require_metrics_access(request: Request, settings: Settings) -> None:
    import hmac

    from core.db import get_sessionmaker
    from ops_console.auth import user_for_bearer_token
    from ops_console.permissions import Capability, Viewer

    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    token = token.strip()
    if scheme.lower() == "bearer" and token:
        expected = settings.metrics_token.get_secret_value() if settings.metrics_token else ""
        if expected and hmac.compare_digest(token.encode(), expected.encode()):
            return
        with get_sessionmaker()() as session:
            user = user_for_bearer_token(session, token)
            if user is not None and Viewer.load(session, user).can(Capability.ADMIN):
                session.commit()
                return
    raise HTTPException(
        401,
        "metrics need 'Authorization: Bearer <DEME_METRICS_TOKEN or an admin token>'",
        headers={"WWW-Authenticate": "Bearer"},
    )


def _package_routers() -> list[APIRouter]:
    from gateway.routes import router as gateway_router
    from gateway.ussd.routes import router as ussd_router
    from ops_console.routes import router as console_router

    return [gateway_router, ussd_router, console_router]
