"""A generic HTTP aggregator channel (Orange Mali / Moov Africa Malitel via local aggregators).

Everything provider-specific is configuration on the ``Channel`` row::

    config = {
      "inbound": {"from": "msisdn", "text": "message", "id": "message_id"},  # field names
      "status": {"id": "message_id", "status": "status", "error": "error_code"},
      "status_map": {"DELIVRD": "delivered", "UNDELIV": "undelivered", ...},  # → ours
      "secret_header": "X-Deme-Secret",     # or "secret_param": "token" (query string)
      "send": {
        "url": "https://aggregator/api/sms", "format": "form" | "json",
        "fields": {"to": "msisdn", "text": "message", "from": "sender", "callback": "dlr"},
        "id_field": "message_id",          # where the answer carries the provider id
        "static": {"service": "deme"},     # fixed fields added to every request
        "api_key_header": "Authorization", # header that carries credentials.api_key
      },
    }
    credentials = {"secret": "...", "api_key": "..."}

Inbound authentication is the shared ``credentials.secret``, presented in the configured
header (default ``X-Deme-Secret``) or query parameter, compared in constant time. Bodies may
be form-encoded or JSON.
"""

from __future__ import annotations

import hmac
from typing import Any

import httpx
from starlette.requests import Request

from core.logging import security_log
from core.phones import InvalidPhoneNumber, normalize_phone
from gateway.channels import ChannelInfo, find_channel
from gateway.channels.twilio import send_timeout
from gateway.errors import Forbidden, MissingFields, UnknownChannel, WebhookError
from gateway.inbound import InboundSms
from gateway.sending import Delivery, SendFailure, classify_transport_error
from gateway.status import StatusUpdate
from gateway.webhook_io import FormFields, sanitize_text
from models.enums import ChannelType, MessageStatus

DEFAULT_INBOUND = {"from": "from", "text": "text", "id": "id"}
DEFAULT_STATUS = {"id": "id", "status": "status", "error": "error"}


def channel_for(channel_id: int) -> ChannelInfo:
    found = find_channel(lambda c: c.id == channel_id, ChannelType.HTTP)
    if not found:
        raise UnknownChannel()
    return found[0]


def verify(request: Request, channel: ChannelInfo) -> None:
    expected = channel.credential("secret")
    param = channel.config.get("secret_param")
    header = str(channel.config.get("secret_header") or "X-Deme-Secret")
    presented = request.query_params.get(str(param)) if param else request.headers.get(header)
    if not (expected and presented and hmac.compare_digest(presented.encode(), expected.encode())):
        security_log().warning(
            "rejected webhook: bad shared secret channel=%s path=%s client=%s",
            channel.id,
            request.url.path,
            request.client.host if request.client else "-",
        )
        raise Forbidden()


def _mapping(channel: ChannelInfo, key: str, default: dict[str, str]) -> dict[str, str]:
    configured = channel.config.get(key) or {}
    return {**default, **{str(k): str(v) for k, v in dict(configured).items()}}


def parse_sms(fields: FormFields, channel: ChannelInfo) -> InboundSms:
    names = _mapping(channel, "inbound", DEFAULT_INBOUND)
    values = fields.values
    missing = [names[k] for k in ("from", "id") if not values.get(names[k])]
    if names["text"] not in values:
        missing.append(names["text"])
    if missing:
        raise MissingFields(missing)
    try:
        sender = normalize_phone(values[names["from"]])
    except InvalidPhoneNumber:
        raise WebhookError(f"{names['from']} is not a valid phone number") from None
    text, sanitized = sanitize_text(
        values[names["text"]],
        invalid_utf8=fields.invalid_utf8,
        repaired=names["text"] in fields.repaired,
    )
    return InboundSms(
        channel_id=channel.id,
        provider_id=values[names["id"]][:80],
        sender=sender,
        text=text,
        sanitized=sanitized,
    )


def parse_status(fields: FormFields, channel: ChannelInfo) -> StatusUpdate:
    names = _mapping(channel, "status", DEFAULT_STATUS)
    values = fields.values
    missing = [names[k] for k in ("id", "status") if not values.get(names[k])]
    if missing:
        raise MissingFields(missing)
    raw = values[names["status"]].strip()
    status_map = {
        str(k).lower(): str(v) for k, v in dict(channel.config.get("status_map") or {}).items()
    }
    mapped = status_map.get(raw.lower(), raw.lower())
    try:
        status: MessageStatus | None = MessageStatus(mapped)
    except ValueError:
        status = None
    return StatusUpdate(
        channel_id=channel.id,
        provider_id=values[names["id"]][:80],
        status=status,
        error_code=values.get(names["error"]) or None,
        raw_status=raw,
    )


def send(channel: ChannelInfo, *, to: str, body: str, status_callback: str | None) -> Delivery:
    spec: dict[str, Any] = dict(channel.config.get("send") or {})
    url = spec.get("url")
    if not url:
        raise SendFailure.permanent("config", "http channel has no send.url")
    names = {"to": "to", "text": "text", "from": "from", "callback": "callback"}
    names.update({str(k): str(v) for k, v in dict(spec.get("fields") or {}).items()})
    payload: dict[str, Any] = dict(spec.get("static") or {})
    payload[names["to"]] = to
    payload[names["text"]] = body
    if channel.address:
        payload[names["from"]] = channel.address
    if status_callback:
        payload[names["callback"]] = status_callback
    headers: dict[str, str] = {}
    api_key = channel.credential("api_key")
    if api_key:
        headers[str(spec.get("api_key_header") or "Authorization")] = api_key
    try:
        timeout = httpx.Timeout(send_timeout(channel), connect=5.0)
        with httpx.Client(timeout=timeout) as client:
            if spec.get("format") == "json":
                response = client.post(str(url), json=payload, headers=headers)
            else:
                response = client.post(str(url), data=payload, headers=headers)
    except Exception as exc:
        raise classify_transport_error(exc) from exc
    if response.status_code == 429:
        raise SendFailure.retry("429", response.text[:300])
    if response.status_code >= 500:
        raise SendFailure.ambiguous(str(response.status_code), response.text[:300])
    if response.status_code >= 400:
        raise SendFailure.permanent(str(response.status_code), response.text[:300])
    id_field = str(spec.get("id_field") or "id")
    provider_id: str | None = None
    try:
        answer = response.json()
        if isinstance(answer, dict) and answer.get(id_field) is not None:
            provider_id = str(answer[id_field])
    except ValueError:
        provider_id = None
    # A 2xx without an id is still accepted; delivery reports just cannot be matched.
    return Delivery(
        provider_id=provider_id[:80] if provider_id else None, status=MessageStatus.SENT
    )
