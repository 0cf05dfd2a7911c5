"""Provider webhooks (mounted by deme.app). Paths are registered in providers' consoles:
keep them stable (gateway/README.md lists them).

Each handler: read (≤64 KiB) → find the channel → verify → normalise → record idempotently
→ commit → publish → answer at once. The channel comes from an in-memory cache, on the event
loop; only a reload (every 30 s, or after a miss) is a query, run in a thread. Recording runs
on the event loop through psycopg's asyncio driver on PostgreSQL (``gateway.dbwork``; in a
thread on SQLite): a thread hop per request cost more CPU than the INSERT itself (two GIL
hand-offs per round trip, bench/gateway_inbound.py). All database work of a request is given
``DB_BUDGET_SECONDS``: a database that is frozen rather than refusing (a stalled disk, a hung
failover) would otherwise hold every request. When the budget runs out the request is
spooled exactly as if the connection had been refused; the cancelled round trip's connection
is discarded (a thread, on SQLite, ends on its own within the busy timeout), and if the
message was stored after all, the replay's idempotent recording makes it one message. Bad
input is a 4xx (``WebhookError``), never a 500; an unreachable database makes the request
go to the disk spool and still answers success.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable
from typing import TypeVar

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from sqlalchemy.exc import InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from core.phones import InvalidPhoneNumber, normalize_phone
from core.sanitize import parse_id
from gateway import spool
from gateway.calls import InboundCall, record_call_in
from gateway.channels import (
    ChannelCacheStale,
    ChannelInfo,
    cache_only,
    have_snapshot,
    lookup_on_loop,
    twilio,
)
from gateway.channels import africastalking as at
from gateway.channels import http_generic as http
from gateway.dbwork import in_session, within
from gateway.errors import DatabaseUnavailable, MissingFields, WebhookError
from gateway.inbound import InboundSms, publish_inbound, record_inbound_async
from gateway.status import StatusUpdate, apply_status_update_in
from gateway.webhook_io import FormFields, parse_body, parse_form, read_body

log = logging.getLogger(__name__)

router = APIRouter(prefix="/webhooks", tags=["webhooks"])

DB_DOWN_ERRORS = (
    OperationalError,
    InterfaceError,
    PoolTimeout,
    DatabaseUnavailable,
    TimeoutError,
)
XML = "application/xml"

# Time a webhook waits on the database before spooling; with the spool write (a few ms) the
# provider has its answer within a second.
DB_BUDGET_SECONDS = 0.8
# The first channel load of a process, within the providers' own timeouts (Twilio: 15 s).
COLD_LOOKUP_SECONDS = 5.0

T = TypeVar("T")


async def _lookup(lookup: Callable[[], T]) -> T:
    """A channel lookup (+ verification), from the cache on the loop; a reload within the
    budget."""
    try:
        return cache_only(lookup)  # the common case: no task, no await
    except ChannelCacheStale:
        # Nothing cached yet (a cold start): without channels the answer could only be a
        # 503, so the first load may take longer than the spool's budget on a busy machine.
        budget = DB_BUDGET_SECONDS if have_snapshot() else COLD_LOOKUP_SECONDS
        return await within(budget, lookup_on_loop(lookup))


class _DatabaseBreaker:
    """After a database failure, spool directly for a second instead of waiting on a
    connect timeout per request (the webhook must answer within the provider's timeout)."""

    pause_seconds = 1.0

    def __init__(self) -> None:
        self.open_until = 0.0

    def down(self) -> bool:
        return time.monotonic() < self.open_until

    def trip(self) -> None:
        self.open_until = time.monotonic() + self.pause_seconds


db_breaker = _DatabaseBreaker()


def _error_response(exc: WebhookError) -> Response:
    return PlainTextResponse(exc.detail, status_code=exc.status_code)


def _publish_late(message_id: int | None) -> None:
    """A recording that finished after its webhook spooled the message: publish what it
    stored (the spool's replay will find a duplicate and publish nothing)."""
    if message_id is not None:
        publish_inbound(message_id)


async def _accept_sms(sms: InboundSms) -> str:
    """Record and publish; spool when the database is down or slow. Returns what happened."""
    if not db_breaker.down():
        try:
            message_id = await within(
                DB_BUDGET_SECONDS, record_inbound_async(sms), late=_publish_late
            )
        except DB_DOWN_ERRORS as exc:
            db_breaker.trip()
            log.warning("database unavailable, spooling inbound SMS: %s", type(exc).__name__)
        else:
            if message_id is None:
                return "duplicate"
            # One LPUSH on the loop (redis-py, 1 s socket timeouts, then the broker breaker
            # skips publishing and the relay publishes later).
            publish_inbound(message_id)
            return "stored"
    spool.write(spool.KIND_SMS, sms.to_json())
    return "spooled"


async def _accept_status(update: StatusUpdate) -> None:
    if not db_breaker.down():
        try:
            await within(DB_BUDGET_SECONDS, in_session(apply_status_update_in, update))
            return
        except DB_DOWN_ERRORS as exc:
            db_breaker.trip()
            log.warning("database unavailable, spooling status: %s", type(exc).__name__)
    spool.write(spool.KIND_STATUS, update.to_json())


async def _guarded(handler: Callable[[], Awaitable[Response]]) -> Response:
    try:
        return await handler()
    except WebhookError as exc:
        return _error_response(exc)
    except DB_DOWN_ERRORS:
        # Nothing cached to verify with (cold start while the database is down): the
        # provider retries later, which is better than accepting unverified traffic.
        return PlainTextResponse("temporarily unavailable", status_code=503)


# --- Twilio -------------------------------------------------------------------------------


async def _twilio_fields(request: Request, *our_numbers: str) -> tuple[FormFields, ChannelInfo]:
    fields = parse_form(await read_body(request))

    def lookup() -> ChannelInfo:
        channel = twilio.channel_for(fields, *our_numbers)
        twilio.verify(request, fields, channel)
        return channel

    return fields, await _lookup(lookup)


@router.post("/twilio/sms")
async def twilio_sms(request: Request) -> Response:
    async def handle() -> Response:
        fields, channel = await _twilio_fields(request, "To")
        await _accept_sms(twilio.parse_sms(fields, channel))
        return Response(twilio.TWIML_EMPTY, media_type=XML)

    return await _guarded(handle)


@router.post("/twilio/status")
async def twilio_status(request: Request) -> Response:
    async def handle() -> Response:
        fields, channel = await _twilio_fields(request, "From", "To")
        await _accept_status(twilio.parse_status(fields, channel))
        return Response(status_code=204)

    return await _guarded(handle)


@router.post("/twilio/voice")
async def twilio_voice(request: Request) -> Response:
    async def handle() -> Response:
        fields, channel = await _twilio_fields(request, "To", "Called")
        call_sid = fields.values.get("CallSid")
        if not call_sid:
            raise MissingFields(["CallSid"])
        try:
            caller: str | None = normalize_phone(fields.values.get("From", ""))
        except InvalidPhoneNumber:
            caller = None  # withheld or not a phone number: the call is still logged
        call = InboundCall(channel.id, call_sid[:80], caller)
        try:
            if db_breaker.down():
                raise DatabaseUnavailable("breaker open")
            await within(DB_BUDGET_SECONDS, in_session(record_call_in, call))
        except DB_DOWN_ERRORS:
            db_breaker.trip()
            spool.write(spool.KIND_CALL, call.to_json())
        # Rejecting "busy" ends the call unanswered: the caller is not charged.
        return Response(twilio.TWIML_REJECT_BUSY, media_type=XML)

    return await _guarded(handle)


# --- Africa's Talking ------------------------------------------------------------------------


@router.post("/africastalking/sms")
async def africastalking_sms(request: Request) -> Response:
    async def handle() -> Response:
        body = await read_body(request)
        channel = await _lookup(lambda: at.channel_for(request))
        fields = parse_body(body, request.headers.get("content-type"))
        await _accept_sms(at.parse_sms(fields, channel))
        return PlainTextResponse("OK")

    return await _guarded(handle)


@router.post("/africastalking/delivery")
async def africastalking_delivery(request: Request) -> Response:
    async def handle() -> Response:
        body = await read_body(request)
        channel = await _lookup(lambda: at.channel_for(request))
        fields = parse_body(body, request.headers.get("content-type"))
        await _accept_status(at.parse_status(fields, channel))
        return PlainTextResponse("OK")

    return await _guarded(handle)


# --- generic HTTP aggregator ---------------------------------------------------------------


def _channel_id(text: str) -> int:
    """ASCII digits within the id column's range, else the channel is unknown (404)."""
    value = parse_id(text)
    if value is None:
        raise WebhookError("unknown channel", 404)
    return value


@router.post("/http/{channel_id}/receive")
async def http_receive(channel_id: str, request: Request) -> Response:
    async def handle() -> Response:
        body = await read_body(request)
        number = _channel_id(channel_id)
        channel = await _lookup(lambda: http.channel_for(number))
        http.verify(request, channel)
        fields = parse_body(body, request.headers.get("content-type"))
        outcome = await _accept_sms(http.parse_sms(fields, channel))
        return PlainTextResponse(outcome)

    return await _guarded(handle)


@router.post("/http/{channel_id}/status")
async def http_status(channel_id: str, request: Request) -> Response:
    async def handle() -> Response:
        body = await read_body(request)
        number = _channel_id(channel_id)
        channel = await _lookup(lambda: http.channel_for(number))
        http.verify(request, channel)
        fields = parse_body(body, request.headers.get("content-type"))
        await _accept_status(http.parse_status(fields, channel))
        return PlainTextResponse("OK")

    return await _guarded(handle)
