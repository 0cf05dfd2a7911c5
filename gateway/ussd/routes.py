"""USSD webhooks: Africa's Talking and a generic, field-mapped aggregator.

    POST /webhooks/africastalking/ussd          form: sessionId, serviceCode, phoneNumber,
                                                      networkCode, text
    POST /webhooks/http/{channel_id}/ussd       form or JSON, field names from the channel's
                                                config["ussd_fields"]

Both answer ``text/plain`` ``CON …`` / ``END …``. Only a request that cannot be a USSD hop at
all gets an HTTP error: missing fields (400, naming them), a wrong shared secret (403), an
unknown channel (404), an oversized body (413). Everything else, however odd, gets a screen.

Authentication (``gateway.channels.auth``, shared with the SMS webhooks). The menu shows a
caller's open requests and can erase their contact, so every hop must prove it comes from the
channel's aggregator: the channel's secret (``Channel.credentials["ussd_secret"]``, presented
as an ``X-Deme-Token`` header or ``?token=…`` in the registered callback URL; constant time)
and/or its IP allow-list (``Channel.config["ussd_allow_ips"]``). A channel with neither is
refused (403), never open. A channel answers only on the endpoint of its own type: an Africa's
Talking USSD channel on ``/webhooks/africastalking/ussd``, a generic aggregator's (``http``) on
``/webhooks/http/{id}/ussd``; anything else is an unknown channel. ``networkCode`` is accepted
but not required: nothing uses it, and refusing a hop for it would drop a real caller.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl

from fastapi import APIRouter, Request
from fastapi.responses import PlainTextResponse, Response
from starlette.background import BackgroundTask

from core.sanitize import repair_text
from gateway.channels.auth import CallerCheck, CallerRefused, authenticate_ussd, is_ussd_channel
from gateway.dbwork import in_lookup_thread
from gateway.ussd.service import Hop, HopAnswer, TextMode, default_service
from models.enums import ChannelType

log = logging.getLogger(__name__)

router = APIRouter(tags=["ussd"])

MAX_BODY_BYTES = 16 * 1024
CHANNEL_CACHE_SECONDS = 30.0
AT_FIELDS = {
    "session_id": "sessionId",
    "phone": "phoneNumber",
    "service_code": "serviceCode",
    "text": "text",
}
AT_REQUIRED = ("session_id", "phone", "service_code", "text")
GENERIC_DEFAULT_FIELDS = {
    "session_id": "session_id",
    "phone": "msisdn",
    "service_code": "service_code",
    "text": "ussd_string",
}
# Some aggregators leave out an empty text or the service code; these two must be there.
GENERIC_REQUIRED = ("session_id", "phone")
TEXT_PLAIN = "text/plain; charset=utf-8"


@dataclass(frozen=True, slots=True)
class UssdChannel:
    id: int
    caller: CallerCheck
    fields: dict[str, str] = field(default_factory=dict)
    text_mode: TextMode = TextMode.PATH


class _HttpError(Exception):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


# -- channels ---------------------------------------------------------------------------------


def _to_ussd_channel(row: Any) -> UssdChannel:
    credentials: dict[str, Any] = row.credentials or {}
    config: dict[str, Any] = row.config or {}
    fields = dict(GENERIC_DEFAULT_FIELDS)
    mapping = config.get("ussd_fields")
    if isinstance(mapping, dict):
        fields.update({str(k): str(v) for k, v in mapping.items() if k in GENERIC_DEFAULT_FIELDS})
    try:
        mode = TextMode(str(config.get("ussd_text_mode") or TextMode.PATH.value))
    except ValueError:
        mode = TextMode.PATH
    return UssdChannel(row.id, CallerCheck.of(credentials, config), fields, mode)


def _normalise_code(code: str | None) -> str:
    return (code or "").strip().replace(" ", "")


def _service_code_of(row: Any) -> str:
    # ``deme seed`` writes ``ussd_code`` (from DEME_AFRICASTALKING_USSD_CODE).
    config: dict[str, Any] = row.config or {}
    return _normalise_code(config.get("ussd_service_code") or config.get("ussd_code"))


def _load_africastalking_channel(service_code: str) -> UssdChannel | None:
    """The Africa's Talking USSD channel serving ``service_code``: the one whose service code
    matches, else one without a code. Nothing is provisioned on the fly: a channel (and its
    secret) comes from ``deme seed`` or an administrator."""
    from sqlalchemy import select

    from core.db import get_sessionmaker
    from models.channels import Channel

    with get_sessionmaker()() as session:
        rows = [
            row
            for row in session.scalars(
                select(Channel)
                .where(Channel.type == ChannelType.AFRICASTALKING, Channel.active.is_(True))
                .order_by(Channel.id)
            )
            if is_ussd_channel(row.type, row.config, row.credentials)
        ]
        wanted = _normalise_code(service_code)
        chosen = next((r for r in rows if _service_code_of(r) == wanted), None) or next(
            (r for r in rows if not _service_code_of(r)), None
        )
        return _to_ussd_channel(chosen) if chosen is not None else None


def _load_channel(channel_id: int) -> UssdChannel | None:
    from core.db import get_sessionmaker
    from models.channels import Channel

    with get_sessionmaker()() as session:
        row = session.get(Channel, channel_id)
        if row is None or not row.active or row.type != ChannelType.HTTP:
            return None  # a Twilio or Africa's Talking channel is no generic USSD endpoint
        if not is_ussd_channel(row.type, row.config, row.credentials):
            return None
        return _to_ussd_channel(row)


class ChannelCache:
    """Channels change rarely; looking them up (and decrypting their credentials) on every hop
    would be most of a hop's cost. Entries live ``CHANNEL_CACHE_SECONDS``."""

    def __init__(self, ttl: float = CHANNEL_CACHE_SECONDS, max_entries: int = 256) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self._entries: dict[str, tuple[float, UssdChannel | None]] = {}
        self._lock = threading.Lock()

    async def get(self, key: str, loader: Any, *args: Any) -> UssdChannel | None:
        now = time.monotonic()
        entry = self._entries.get(key)
        if entry is not None and entry[0] > now:
            return entry[1]
        value: UssdChannel | None = await in_lookup_thread(loader, *args)
        with self._lock:
            if len(self._entries) >= self.max_entries:
                self._entries.clear()  # garbage keys (random service codes) cannot grow it
            self._entries[key] = (now + self.ttl, value)
        return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


channel_cache = ChannelCache()


# -- requests ---------------------------------------------------------------------------------


async def _read_fields(request: Request) -> dict[str, str]:
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _HttpError(413, "body too large")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _HttpError(413, "body too large")
    text = body.decode("utf-8", errors="replace")
    if "json" in request.headers.get("content-type", ""):
        try:
            doc = json.loads(text) if text.strip() else {}
        except ValueError:
            raise _HttpError(400, "body is not valid JSON") from None
        if not isinstance(doc, dict):
            raise _HttpError(400, "body must be a JSON object")
        pairs = [(str(k), "" if v is None else str(v)) for k, v in doc.items()]
    else:
        pairs = parse_qsl(text, keep_blank_values=True)
    fields: dict[str, str] = {}
    for name, value in pairs:
        # NUL and lone surrogates cannot be stored or encoded: repaired, as for SMS.
        fields.setdefault(repair_text(name)[0], repair_text(value)[0])
    return fields


def _check_caller(request: Request, channel: UssdChannel) -> None:
    try:
        authenticate_ussd(request, channel.caller, channel_id=channel.id)
    except CallerRefused as refused:
        raise _HttpError(refused.status_code, refused.detail) from None


def _hop(
    channel: UssdChannel,
    fields: dict[str, str],
    names: dict[str, str],
    required: tuple[str, ...],
) -> Hop:
    missing = [
        names[name]
        for name in required
        if names[name] not in fields or (name != "text" and not fields[names[name]].strip())
    ]
    if missing:
        raise _HttpError(400, "missing fields: " + ", ".join(missing))
    service_code = fields.get(names["service_code"]) or None
    return Hop(
        channel_id=channel.id,
        session_id=fields[names["session_id"]].strip()[:100],
        phone=fields[names["phone"]][:40],
        service_code=service_code.strip()[:32] if service_code else None,
        text=fields.get(names["text"], "")[:1000],
        text_mode=channel.text_mode,
    )


def _answer(answer: HopAnswer) -> Response:
    # Starlette runs the background task after the response has been sent.
    background = BackgroundTask(answer.run_after_async) if answer.after else None
    return PlainTextResponse(answer.text, media_type=TEXT_PLAIN, background=background)


def _problem(error: _HttpError) -> Response:
    return PlainTextResponse(error.detail, status_code=error.status, media_type=TEXT_PLAIN)


@router.post("/webhooks/africastalking/ussd", response_class=PlainTextResponse)
async def africastalking_ussd(request: Request) -> Response:
    """Africa's Talking USSD callback: one hop of a caller's session."""
    try:
        fields = await _read_fields(request)
        # Field check before the channel look-up: a malformed request costs nothing.
        missing = [AT_FIELDS[n] for n in AT_REQUIRED if AT_FIELDS[n] not in fields]
        if missing:
            raise _HttpError(400, "missing fields: " + ", ".join(missing))
        service_code = _normalise_code(fields.get("serviceCode"))[:32]
        channel = await channel_cache.get(
            "at:" + service_code, _load_africastalking_channel, service_code
        )
        if channel is None:
            log.warning("USSD hop for a service code no Africa's Talking channel serves")
            return PlainTextResponse(
                default_service().engine.end(None, "end.error"), media_type=TEXT_PLAIN
            )
        _check_caller(request, channel)
        hop = _hop(channel, fields, AT_FIELDS, AT_REQUIRED)
    except _HttpError as error:
        return _problem(error)
    return _answer(await default_service().handle_hop(hop))


@router.post("/webhooks/http/{channel_id}/ussd", response_class=PlainTextResponse)
async def generic_ussd(channel_id: int, request: Request) -> Response:
    """A local aggregator's USSD callback, fields named per ``Channel.config["ussd_fields"]``."""
    try:
        channel = None
        if 0 < channel_id < 2**31:  # beyond an INTEGER key: unknown, not a database error
            channel = await channel_cache.get(f"id:{channel_id}", _load_channel, channel_id)
        if channel is None:
            raise _HttpError(404, "unknown channel")
        _check_caller(request, channel)
        fields = await _read_fields(request)
        hop = _hop(channel, fields, channel.fields, GENERIC_REQUIRED)
    except _HttpError as error:
        return _problem(error)
    return _answer(await default_service().handle_hop(hop))
