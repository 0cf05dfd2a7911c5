"""Errors a webhook answers with a 4xx (never a 500 for bad input)."""

from __future__ import annotations

from collections.abc import Iterable


class WebhookError(Exception):
    """Bad input: answered with ``status_code`` and a short plain ``detail``."""

    status_code = 400

    def __init__(self, detail: str, status_code: int | None = None) -> None:
        super().__init__(detail)
        self.detail = detail
        if status_code is not None:
            self.status_code = status_code


class MissingFields(WebhookError):
    def __init__(self, names: Iterable[str]) -> None:
        super().__init__("missing required fields: " + ", ".join(sorted(names)), 400)


class BodyTooLarge(WebhookError):
    def __init__(self, limit: int) -> None:
        super().__init__(f"request body larger than {limit} bytes", 413)


class UnknownChannel(WebhookError):
    def __init__(self, detail: str = "unknown channel") -> None:
        super().__init__(detail, 404)


class Forbidden(WebhookError):
    """Signature or shared secret wrong. The detail stays vague on purpose."""

    def __init__(self) -> None:
        super().__init__("forbidden", 403)


class DatabaseUnavailable(RuntimeError):
    """The database cannot be reached (the webhook spools instead)."""
