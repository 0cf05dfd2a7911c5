"""What a provider call can end in, and which failures are safe to retry.

The rule that keeps a message from going out twice: retry only when the provider certainly
did not accept it — it said "slow down" (HTTP 429, Twilio 20429), or the connection was never
established. Anything after the request may have reached the provider (read timeout, reset,
5xx) is *ambiguous*: recorded as UNKNOWN and never resent automatically.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from models.enums import MessageStatus


class FailureKind(StrEnum):
    RETRY = "retry"  # certainly not sent: try again later
    AMBIGUOUS = "ambiguous"  # may have been sent: UNKNOWN, never resent
    PERMANENT = "permanent"  # will never work: FAILED at once
    OPTED_OUT = "opted_out"  # permanent, and the contact is marked opted out


@dataclass(frozen=True, slots=True)
class Delivery:
    provider_id: str | None
    status: MessageStatus | None = None  # what the provider said at once (queued, sent...)


class SendFailure(Exception):
    def __init__(self, kind: FailureKind, code: str, message: str) -> None:
        super().__init__(f"{kind}: {code} {message}")
        self.kind = kind
        self.code = code
        self.message = message

    @classmethod
    def retry(cls, code: str, message: str) -> SendFailure:
        return cls(FailureKind.RETRY, code, message)

    @classmethod
    def ambiguous(cls, code: str, message: str) -> SendFailure:
        return cls(FailureKind.AMBIGUOUS, code, message)

    @classmethod
    def permanent(cls, code: str, message: str) -> SendFailure:
        return cls(FailureKind.PERMANENT, code, message)

    @classmethod
    def opted_out(cls, code: str, message: str) -> SendFailure:
        return cls(FailureKind.OPTED_OUT, code, message)


def _chain(exc: BaseException) -> list[BaseException]:
    seen: list[BaseException] = []
    todo: list[BaseException] = [exc]
    while todo:
        current = todo.pop()
        if current in seen:
            continue
        seen.append(current)
        todo.extend(a for a in current.args if isinstance(a, BaseException))
        for attr in ("reason", "__cause__", "__context__"):
            nested = getattr(current, attr, None)
            if isinstance(nested, BaseException):
                todo.append(nested)
    return seen


def never_reached(exc: BaseException) -> bool:
    """True when the exception proves no byte of the request reached the provider:
    connection refused, DNS failure, or a *connect* timeout (requests/urllib3, httpx)."""
    import httpx

    for item in _chain(exc):
        if isinstance(item, httpx.ConnectError | httpx.ConnectTimeout):
            return True
        name = type(item).__name__
        if name in ("NewConnectionError", "ConnectTimeoutError", "NameResolutionError"):
            return True
        if isinstance(item, ConnectionRefusedError):
            return True
    return False


def classify_transport_error(exc: BaseException) -> SendFailure:
    if isinstance(exc, SendFailure):
        return exc
    label = type(exc).__name__
    if never_reached(exc):
        return SendFailure.retry("connect", f"{label}: provider not reached")
    return SendFailure.ambiguous("transport", f"{label}: request may have reached the provider")
