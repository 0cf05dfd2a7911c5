"""Twilio: verify and normalise webhooks (SMS, status, voice), and send through the SDK.

The signature is checked with the SDK's ``RequestValidator`` over the *public* URL
(``DEME_PUBLIC_URL`` + path + query: behind a proxy ``request.url`` is not what Twilio
signed) and over every received field, since Twilio adds fields without notice.
The channel is the active Twilio channel whose ``credentials.account_sid`` is the request's
AccountSid (and, when one account has several numbers, whose address is the request's
number). Each channel's validator is built once, with its decrypted auth token.
"""

from __future__ import annotations

import logging
import os
import threading
from datetime import datetime, timedelta
from typing import Any

from starlette.requests import Request
from twilio.request_validator import RequestValidator

from core.logging import security_log
from core.phones import InvalidPhoneNumber, normalize_phone
from core.sanitize import parse_id
from core.settings import get_settings
from gateway.channels import ChannelInfo, find_channel
from gateway.errors import Forbidden, MissingFields, UnknownChannel, WebhookError
from gateway.inbound import InboundSms
from gateway.sending import Delivery, SendFailure, classify_transport_error
from gateway.status import TWILIO_STATUS, StatusUpdate
from gateway.webhook_io import FormFields, sanitize_text
from models.enums import ChannelType

log = logging.getLogger(__name__)

TWIML_EMPTY = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'
TWIML_REJECT_BUSY = (
    b'<?xml version="1.0" encoding="UTF-8"?><Response><Reject reason="busy"/></Response>'
)
SEND_TIMEOUT_SECONDS = 15.0
# A concatenated SMS has at most 255 parts (one-byte counter in the UDH); more is nonsense.
MAX_SEGMENTS = 255

# Twilio error codes. 21610: the recipient replied STOP to this number (Twilio blocks it).
OPTED_OUT_CODES = frozenset({21610})
PERMANENT_CODES = frozenset({21211, 21612, 21614, 21408, 21606, 21608, 21617, 21610})
THROTTLED_CODES = frozenset({20429, 14107, 30022})


def send_timeout(channel: ChannelInfo) -> float:
    """Read timeout of a provider call (``config.timeout_seconds``); past it the outcome is
    ambiguous (UNKNOWN), so it stays well above the provider's normal answer time."""
    try:
        return float(channel.config.get("timeout_seconds", SEND_TIMEOUT_SECONDS))
    except (TypeError, ValueError):
        return SEND_TIMEOUT_SECONDS


def public_url(request: Request) -> str:
    url = get_settings().public_url + request.url.path
    query = request.url.query
    return f"{url}?{query}" if query else url


def _numbers(values: dict[str, str], *names: str) -> set[str]:
    return {values[n] for n in names if values.get(n)}


def channel_for(fields: FormFields, *our_number_fields: str) -> ChannelInfo:
    account_sid = fields.values.get("AccountSid")
    if not account_sid:
        raise MissingFields(["AccountSid"])
    ours = _numbers(fields.values, *our_number_fields)
    candidates = find_channel(
        lambda c: c.credentials.get("account_sid") == account_sid, ChannelType.TWILIO
    )
    if not candidates:
        raise UnknownChannel("no active Twilio channel for this AccountSid")
    if len(candidates) == 1:
        return candidates[0]
    by_number = [c for c in candidates if c.address and c.address in ours]
    if by_number:
        return by_number[0]
    service = fields.values.get("MessagingServiceSid")
    by_service = [
        c for c in candidates if service and c.config.get("messaging_service_sid") == service
    ]
    if by_service:
        return by_service[0]
    raise UnknownChannel("no active Twilio channel for this number")


def _validator(channel: ChannelInfo) -> RequestValidator:
    validator = channel.extras.get("validator")
    if validator is None:
        token = channel.credential("auth_token")
        if not token:
            raise UnknownChannel("Twilio channel has no auth_token")
        validator = channel.extras["validator"] = RequestValidator(token)
    return validator


def verify(request: Request, fields: FormFields, channel: ChannelInfo) -> None:
    signature = request.headers.get("x-twilio-signature")
    validator = _validator(channel)
    url = public_url(request)
    ok = False
    if signature:
        # One HMAC for the common case; the SDK's validate() (which also tries the URL with
        # and without the default port) only when that first guess fails.
        ok = validator.compute_signature(url, fields) == signature or validator.validate(
            url, fields, signature
        )
    if not ok:
        security_log().warning(
            "rejected webhook: bad Twilio signature channel=%s path=%s client=%s",
            channel.id,
            request.url.path,
            request.client.host if request.client else "-",
        )
        raise Forbidden()


def parse_sms(fields: FormFields, channel: ChannelInfo) -> InboundSms:
    values = fields.values
    missing = [n for n in ("MessageSid", "From") if not values.get(n)]
    if missing:
        raise MissingFields(missing)
    try:
        sender = normalize_phone(values["From"])
    except InvalidPhoneNumber:
        raise WebhookError("From is not a valid phone number") from None
    text, sanitized = sanitize_text(
        values.get("Body", ""), invalid_utf8=fields.invalid_utf8, repaired="Body" in fields.repaired
    )
    segments = values.get("NumSegments")
    return InboundSms(
        channel_id=channel.id,
        provider_id=values["MessageSid"][:80],
        sender=sender,
        text=text,
        sanitized=sanitized,
        segments=parse_id(segments, maximum=MAX_SEGMENTS),
    )


def parse_status(fields: FormFields, channel: ChannelInfo) -> StatusUpdate:
    values = fields.values
    missing = [n for n in ("MessageSid", "MessageStatus") if not values.get(n)]
    if missing:
        raise MissingFields(missing)
    raw = values["MessageStatus"].strip().lower()
    return StatusUpdate(
        channel_id=channel.id,
        provider_id=values["MessageSid"][:80],
        status=TWILIO_STATUS.get(raw),
        error_code=values.get("ErrorCode") or None,
        error_message=values.get("ErrorMessage") or None,
        raw_status=raw,
    )


_clients = threading.local()


def _proxies(base_url: str) -> dict[str, str]:
    """The environment's proxies for the API's address (``HTTPS_PROXY``, ``NO_PROXY``…)."""
    import requests.utils

    return dict(requests.utils.get_environ_proxies(base_url or "https://api.twilio.com"))


def _read_environment_once(session: Any) -> None:
    """Take the environment's CA bundle now and stop ``requests`` re-reading the environment
    (proxies, ``.netrc``, CA bundle) on every send: that scan of every variable cost ~1 ms
    of CPU per SMS. The proxies are passed to the client once instead (``_proxies``)."""

    bundle = os.environ.get("REQUESTS_CA_BUNDLE") or os.environ.get("CURL_CA_BUNDLE")
    if bundle:
        session.verify = bundle
    session.trust_env = False


def _client(channel: ChannelInfo) -> Any:
    """The Twilio REST client for the channel's credentials, one per thread and credentials.

    A new ``Client`` per send also built a new ``requests.Session``, so every SMS opened a
    new connection (and a TLS handshake against the real API) and re-created the SDK's
    objects. Kept per thread: the SDK client records its last request and response on
    itself. Keyed by everything it is built from, so an edited channel gets a new one."""
    account_sid = channel.credential("account_sid")
    token = channel.credential("auth_token")
    if not account_sid or not token:
        raise SendFailure.permanent("config", "Twilio channel lacks account_sid/auth_token")
    base_url = channel.config.get("api_base_url") or get_settings().twilio_api_base_url
    timeout = send_timeout(channel)
    key = (account_sid, token, str(base_url or ""), timeout)
    cache: dict[tuple[str, str, str, float], Any] = getattr(_clients, "by_key", None) or {}
    _clients.by_key = cache
    client = cache.get(key)
    if client is None:
        from twilio.http.http_client import TwilioHttpClient
        from twilio.rest import Client

        http_client = TwilioHttpClient(timeout=timeout, proxy=_proxies(str(base_url or "")))
        if http_client.session is not None:
            _read_environment_once(http_client.session)
        client = Client(account_sid, token, http_client=http_client)
        if base_url:
            client.api.base_url = str(base_url)
        if len(cache) >= 8:  # credentials rotated many times: start over
            cache.clear()
        cache[key] = client
    return client


def find_sent(
    channel: ChannelInfo, *, to: str, body: str, since: datetime, known: set[str]
) -> Delivery | None:
    """Look up a message whose send ended ambiguously (5xx, timeout): Twilio's Messages list
    filtered by To and a DateSent window from just before our attempt, matched on the body
    (and our number), skipping provider ids we already hold. None when Twilio has no such
    message (yet: a message still queued at Twilio has no DateSent). Raises on API errors."""
    client = _client(channel)
    earliest = since - timedelta(minutes=2)
    records = client.messages.list(to=to, date_sent_after=earliest, limit=50)
    matches = [
        record
        for record in records
        if record.body == body
        and str(record.sid) not in known
        and (channel.config.get("messaging_service_sid") or record.from_ == channel.address)
        and (record.date_created is None or record.date_created >= earliest)
    ]
    if not matches:
        return None
    first = min(matches, key=lambda r: r.date_created or earliest)
    return Delivery(
        provider_id=str(first.sid), status=TWILIO_STATUS.get(str(first.status or "").lower())
    )


def send(channel: ChannelInfo, *, to: str, body: str, status_callback: str | None) -> Delivery:
    """Send one SMS; raises SendFailure classified as retryable / ambiguous / permanent."""
    from twilio.base.exceptions import TwilioRestException

    client = _client(channel)
    kwargs: dict[str, Any] = {"to": to, "body": body}
    if status_callback:
        kwargs["status_callback"] = status_callback
    service = channel.config.get("messaging_service_sid")
    if service:
        kwargs["messaging_service_sid"] = service
    elif channel.address:
        kwargs["from_"] = channel.address
    else:
        raise SendFailure.permanent("config", "Twilio channel has no number (address)")
    try:
        message = client.messages.create(**kwargs)
    except TwilioRestException as exc:
        code = int(exc.code) if exc.code else None
        text = str(exc.msg)[:300]
        if code in OPTED_OUT_CODES:
            raise SendFailure.opted_out(str(code), text) from exc
        if exc.status == 429 or code in THROTTLED_CODES:
            raise SendFailure.retry(str(code or 429), text) from exc
        if exc.status >= 500:
            # The request reached Twilio: it may have been accepted. Never resend blindly.
            raise SendFailure.ambiguous(str(code or exc.status), text) from exc
        if code in PERMANENT_CODES or 400 <= exc.status < 500:
            raise SendFailure.permanent(str(code or exc.status), text) from exc
        raise SendFailure.ambiguous(str(code or exc.status), text) from exc
    except Exception as exc:
        raise classify_transport_error(exc) from exc
    status = TWILIO_STATUS.get(str(message.status or "").lower())
    return Delivery(provider_id=str(message.sid), status=status)
