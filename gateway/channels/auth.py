"""Who may call a webhook: the one home of the inbound checks shared by the SMS and USSD routes.

Twilio signs its callbacks (``gateway.channels.twilio``); the other providers cannot, so a
channel proves its caller with one or both of:

- a **shared secret** the provider presents — in a header where it can add one, else in the
  callback URL registered in its console (Africa's Talking can only call a URL) — compared in
  constant time;
- an **IP allow-list** (``config["ussd_allow_ips"]``: addresses or CIDR networks), checked
  against the peer address the app sees (proxy headers count only from trusted proxies).

A USSD channel with neither is refused, never open: the menu shows a caller's open requests
and can erase their contact, so an unauthenticated hop would let anyone who knows a phone
number read or erase someone's case. ``deme seed`` gives every USSD channel a secret, and
production refuses to start while an active USSD channel has no way to authenticate.
"""

from __future__ import annotations

import hmac
import ipaddress
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from starlette.requests import Request

from core.logging import security_log
from gateway.errors import WebhookError

USSD_SECRET = "ussd_secret"  # Channel.credentials key
USSD_ALLOW_IPS = "ussd_allow_ips"  # Channel.config key
USSD_TOKEN_HEADER = "x-deme-token"
USSD_TOKEN_PARAM = "token"

IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


class CallerRefused(WebhookError):
    """403 whose detail says what the caller (an integrator setting it up) must fix."""

    def __init__(self, detail: str) -> None:
        super().__init__(detail, 403)


def secret_matches(presented: str | None, expected: str | None) -> bool:
    """Constant-time comparison; nothing matches an unset secret."""
    if not presented or not expected:
        return False
    return hmac.compare_digest(presented.encode("utf-8"), expected.encode("utf-8"))


def client_address(request: Request) -> str:
    return request.client.host if request.client else "-"


def reject(request: Request, reason: str, *, channel_id: int | None = None) -> None:
    """Record a refused webhook on the security log (path and peer only: never the secret,
    a phone number or a body)."""
    security_log().warning(
        "rejected webhook: %s channel=%s path=%s client=%s",
        reason,
        channel_id if channel_id is not None else "-",
        request.url.path,
        client_address(request),
    )


def parse_allow_list(value: Any) -> tuple[IpNetwork, ...]:
    """``config["ussd_allow_ips"]`` as networks; a malformed entry raises ``ValueError`` naming
    it (an allow-list silently shorter than configured would refuse a real aggregator)."""
    if value is None or value == "":
        return ()
    items: Iterable[Any] = value.split(",") if isinstance(value, str) else value
    networks: list[IpNetwork] = []
    for item in items:
        text = str(item).strip()
        if not text:
            continue
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"not an IP address or network: {text!r}") from None
    return tuple(networks)


def address_allowed(address: str, networks: tuple[IpNetwork, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip.version == net.version and ip in net for net in networks)


@dataclass(frozen=True, slots=True)
class CallerCheck:
    """How one channel's USSD caller proves itself."""

    secret: str | None
    allow: tuple[IpNetwork, ...] = ()

    @property
    def configured(self) -> bool:
        return bool(self.secret) or bool(self.allow)

    @classmethod
    def of(
        cls, credentials: Mapping[str, Any] | None, config: Mapping[str, Any] | None
    ) -> CallerCheck:
        """From a channel's credentials and config. A malformed allow-list counts as none
        configured (the channel is refused, and ``unauthenticated_ussd_channels`` says why)."""
        secret = (credentials or {}).get(USSD_SECRET)
        try:
            allow = parse_allow_list((config or {}).get(USSD_ALLOW_IPS))
        except ValueError:
            allow = ()
        return cls(str(secret) if secret else None, allow)


def authenticate_ussd(request: Request, check: CallerCheck, *, channel_id: int) -> None:
    """Raise ``CallerRefused`` unless the caller presents the channel's secret (header
    ``X-Deme-Token`` or ``?token=``) and/or comes from its allow-list — each check that is
    configured must pass."""
    if not check.configured:
        reject(request, "USSD channel without secret or allow-list", channel_id=channel_id)
        raise CallerRefused(
            "this USSD channel has no caller authentication configured "
            "(a secret or an IP allow-list): see `deme channel-secret`"
        )
    if check.allow and not address_allowed(client_address(request), check.allow):
        reject(request, "USSD caller outside the allow-list", channel_id=channel_id)
        raise CallerRefused("caller address not allowed for this channel")
    if check.secret:
        presented = request.headers.get(USSD_TOKEN_HEADER) or request.query_params.get(
            USSD_TOKEN_PARAM
        )
        if not secret_matches(presented, check.secret):
            reject(request, "bad USSD token", channel_id=channel_id)
            raise CallerRefused("invalid or missing token")


USSD_CHANNEL_TYPES = frozenset({"africastalking", "http"})


def is_ussd_channel(
    channel_type: str, config: Mapping[str, Any] | None, credentials: Mapping[str, Any] | None
) -> bool:
    """A channel that serves the USSD menu: an Africa's Talking or generic aggregator channel
    with any USSD setting (service code, field mapping, text mode, secret or allow-list)."""
    if str(channel_type) not in USSD_CHANNEL_TYPES:
        return False
    if any(str(key).startswith("ussd") for key in (config or {})):
        return True
    return bool((credentials or {}).get(USSD_SECRET))


def unauthenticated_ussd_channels(session: Any) -> list[str]:
    """Names of active USSD channels that could not authenticate a caller (production refuses
    to start with any)."""
    from sqlalchemy import select

    from models.channels import Channel

    names: list[str] = []
    for row in session.scalars(
        select(Channel).where(Channel.active.is_(True)).order_by(Channel.id)
    ):
        if (
            is_ussd_channel(row.type, row.config, row.credentials)
            and not CallerCheck.of(row.credentials, row.config).configured
        ):
            names.append(row.name)
    return names
