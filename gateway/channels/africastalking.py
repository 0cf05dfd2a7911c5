"""Africa's Talking: verify and normalise SMS and delivery callbacks, send through the SDK.

Africa's Talking does not sign its callbacks. Each AT channel therefore has a random shared
secret (``credentials.webhook_secret``) that is part of the callback URL registered in the AT
dashboard — ``https://HOST/webhooks/africastalking/sms?secret=...`` — or, behind a proxy
that can add headers, sent as ``X-Deme-Secret``. The secret identifies the channel (AT's
delivery reports carry no account field); it is compared in constant time against every
active AT channel. With no AT channel configured the endpoints answer 404.
"""

from __future__ import annotations

import hmac
from typing import Any

from starlette.requests import Request

from core.logging import security_log
from core.phones import InvalidPhoneNumber, normalize_phone
from core.settings import get_settings
from gateway.channels import ChannelInfo, find_channel
from gateway.channels.twilio import send_timeout
from gateway.errors import Forbidden, MissingFields, UnknownChannel, WebhookError
from gateway.inbound import InboundSms
from gateway.sending import Delivery, SendFailure, classify_transport_error
from gateway.status import AFRICASTALKING_STATUS, StatusUpdate
from gateway.webhook_io import FormFields, sanitize_text
from models.enums import ChannelType, MessageStatus

# Per-recipient status codes of POST /version1/messaging.
ACCEPTED_CODES = frozenset({100, 101, 102})
OPTED_OUT_CODES = frozenset({406})  # UserInBlacklist
PERMANENT_CODES = frozenset({401, 402, 403, 404, 405, 407, 409, 500, 501, 502})


def channel_for(request: Request) -> ChannelInfo:
    presented = request.query_params.get("secret") or request.headers.get("x-deme-secret")
    channels = find_channel(lambda c: True, ChannelType.AFRICASTALKING)
    if not channels:
        raise UnknownChannel("no active Africa's Talking channel")
    if presented:
        for channel in channels:
            expected = channel.credential("webhook_secret")
            if expected and hmac.compare_digest(presented.encode(), expected.encode()):
                return channel
    security_log().warning(
        "rejected webhook: bad Africa's Talking secret path=%s client=%s",
        request.url.path,
        request.client.host if request.client else "-",
    )
    raise Forbidden()


def parse_sms(fields: FormFields, channel: ChannelInfo) -> InboundSms:
    values = fields.values
    missing = [n for n in ("from", "id") if not values.get(n)]
    if "text" not in values:
        missing.append("text")
    if missing:
        raise MissingFields(missing)
    try:
        sender = normalize_phone(values["from"])
    except InvalidPhoneNumber:
        raise WebhookError("from is not a valid phone number") from None
    text, sanitized = sanitize_text(
        values["text"], invalid_utf8=fields.invalid_utf8, repaired="text" in fields.repaired
    )
    return InboundSms(
        channel_id=channel.id,
        provider_id=values["id"][:80],
        sender=sender,
        text=text,
        sanitized=sanitized,
    )


def parse_status(fields: FormFields, channel: ChannelInfo) -> StatusUpdate:
    values = fields.values
    missing = [n for n in ("id", "status") if not values.get(n)]
    if missing:
        raise MissingFields(missing)
    raw = values["status"].strip().lower()
    return StatusUpdate(
        channel_id=channel.id,
        provider_id=values["id"][:80],
        status=AFRICASTALKING_STATUS.get(raw),
        error_code=values.get("failureReason") or None,
        raw_status=raw,
    )


def _service(channel: ChannelInfo) -> Any:
    """The SDK's SMS service, remembering the HTTP status of the last response.

    The SDK raises ``AfricasTalkingException(response.text)`` for every non-2xx answer,
    dropping the status code we need to tell throttling (429, safe to retry) from a server
    error (ambiguous). Its POST helper is a name-mangled static method; overriding it keeps
    the SDK's own request building while letting us see the response.
    """
    import requests
    from africastalking.SMS import SMSService

    username = channel.credential("username")
    api_key = channel.credential("api_key")
    if not username or not api_key:
        raise SendFailure.permanent("config", "Africa's Talking channel lacks username/api_key")

    class StatusKeepingSMS(SMSService):  # type: ignore[misc]
        last_status: int | None = None

    def post(
        url: str, headers: Any, data: Any, params: Any, callback: Any = None, timeout: Any = None
    ) -> Any:
        response = requests.post(
            url=url, headers=headers, params=params, data=data, timeout=(3.05, read_timeout)
        )
        StatusKeepingSMS.last_status = response.status_code
        return response

    read_timeout = send_timeout(channel)
    StatusKeepingSMS._Service__make_post_request = staticmethod(post)
    service = StatusKeepingSMS(username, api_key)
    base_url = channel.config.get("api_base_url") or get_settings().africastalking_api_base_url
    if base_url:
        service._baseUrl = str(base_url).rstrip("/") + "/version1"
    return service


def send(channel: ChannelInfo, *, to: str, body: str, status_callback: str | None) -> Delivery:
    """Send one SMS. Delivery reports go to the URL registered in the AT dashboard
    (AT has no per-message callback URL), so ``status_callback`` is unused here."""
    from africastalking.Service import AfricasTalkingException

    service = _service(channel)
    sender_id = channel.config.get("sender_id") or channel.address
    try:
        reply = service.send(body, [to], sender_id=sender_id or None)
    except AfricasTalkingException as exc:
        status = type(service).last_status or 0
        text = str(exc)[:300]
        if status == 429:
            raise SendFailure.retry("429", text) from exc
        if status >= 500:
            raise SendFailure.ambiguous(str(status), text) from exc
        raise SendFailure.permanent(str(status or "error"), text) from exc
    except ValueError as exc:  # the SDK's own phone validation
        raise SendFailure.permanent("invalid_number", str(exc)[:300]) from exc
    except Exception as exc:
        raise classify_transport_error(exc) from exc
    try:
        recipient = reply["SMSMessageData"]["Recipients"][0]
        code = int(recipient.get("statusCode", 0))
        provider_id = str(recipient.get("messageId") or "")
        label = str(recipient.get("status", ""))
    except (KeyError, IndexError, TypeError, ValueError):
        raise SendFailure.ambiguous("response", "unreadable Africa's Talking answer") from None
    if code in ACCEPTED_CODES and provider_id and provider_id != "None":
        sent = MessageStatus.SENT if code == 101 else MessageStatus.QUEUED
        return Delivery(provider_id=provider_id[:80], status=sent)
    if code in OPTED_OUT_CODES:
        raise SendFailure.opted_out(str(code), label)
    if code in PERMANENT_CODES:
        raise SendFailure.permanent(str(code), label)
    raise SendFailure.ambiguous(str(code), label)
