"""Reading provider requests: size limit, form/JSON parsing, text sanitising.

Bodies are read by hand rather than through Starlette's form parser: the size limit must be
enforced while reading (a lying or absent Content-Length must not let 1 GB in), parsing a
small urlencoded body with ``parse_qsl`` is several times cheaper on the hot path, and
invalid UTF-8 must be repaired and flagged instead of answered with a 400.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl

from starlette.requests import Request

from core.sanitize import repair_text
from gateway.errors import BodyTooLarge, WebhookError

MAX_BODY_BYTES = 64 * 1024


@dataclass(slots=True)
class FormFields:
    """The received fields, as pairs (a name may repeat) and as a first-value dict."""

    pairs: list[tuple[str, str]]
    values: dict[str, str]
    # The raw body was not valid UTF-8; bad bytes became U+FFFD.
    invalid_utf8: bool = False
    # Names whose value held NUL or a lone surrogate: ``values`` has it repaired (``pairs``
    # keeps what was received, which is what a provider signed).
    repaired: frozenset[str] = frozenset()

    def getall(self, name: str) -> list[str]:
        # twilio's RequestValidator.get_values() calls getall() on multi-dicts, so a name
        # sent twice is signed with both of its values, as Twilio signs it.
        return [value for key, value in self.pairs if key == name]

    def __iter__(self) -> Any:
        return iter(self.values)

    def __contains__(self, name: object) -> bool:
        return name in self.values

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise BodyTooLarge(limit)
        except ValueError:
            raise WebhookError("invalid Content-Length header") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge(limit)
        chunks.append(chunk)
    return b"".join(chunks)


def parse_form(body: bytes) -> FormFields:
    """Parse ``application/x-www-form-urlencoded``; invalid UTF-8 is replaced, not refused."""
    invalid = False
    try:
        text = body.decode("ascii")  # urlencoded bodies are ASCII; the common case is free
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="replace")
        invalid = "\ufffd" in text
    try:
        pairs = parse_qsl(text, keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        # Percent-encoded bytes that are not UTF-8 ("%FF"): replace and remember.
        pairs = parse_qsl(text, keep_blank_values=True, errors="replace")
        invalid = True
    values: dict[str, str] = {}
    for key, value in pairs:
        values.setdefault(key, value)
    return _repaired(FormFields(pairs, values, invalid))


def _repaired(fields: FormFields) -> FormFields:
    """Repair every value once, here, so no provider id or status reaches the database
    with a NUL or a lone surrogate in it."""
    repaired: set[str] = set()
    values: dict[str, str] = {}
    for key, value in fields.values.items():
        clean_key, key_changed = repair_text(key)
        clean, changed = repair_text(value)
        values[clean_key] = clean
        if changed or key_changed:
            repaired.add(clean_key)
    if repaired:
        fields.values = values
        fields.repaired = frozenset(repaired)
    return fields


def parse_json_object(body: bytes) -> FormFields:
    invalid = False
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError:
        text = body.decode("utf-8", errors="replace")
        invalid = True
    try:
        data = json.loads(text)
    except ValueError:
        raise WebhookError("body is not valid JSON") from None
    if not isinstance(data, dict):
        raise WebhookError("JSON body must be an object")
    values: dict[str, str] = {}
    for key, value in data.items():
        if value is None:
            continue
        # Scalars keep their JSON spelling (ids sent as numbers) so a mapping reads text.
        values[str(key)] = value if isinstance(value, str) else json.dumps(value)
    fields = _repaired(FormFields([], values, invalid))
    fields.pairs = list(fields.values.items())
    return fields


def parse_body(body: bytes, content_type: str | None) -> FormFields:
    if content_type and "json" in content_type.lower():
        return parse_json_object(body)
    return parse_form(body)


def sanitize_text(
    text: str, *, invalid_utf8: bool = False, repaired: bool = False
) -> tuple[str, bool]:
    """Remove what PostgreSQL text cannot hold (NUL) and flag replaced invalid UTF-8.

    Everything else (emoji, Arabic, Tifinagh, 1,600 characters) is kept exactly.
    Lone surrogates (from broken UTF-16 in JSON) cannot be stored as UTF-8 either.
    """
    changed = repaired or (invalid_utf8 and "\ufffd" in text)
    text, fixed = repair_text(text)
    return text, changed or fixed


def require(fields: FormFields, names: tuple[str, ...]) -> None:
    from gateway.errors import MissingFields

    missing = [name for name in names if not fields.values.get(name)]
    if missing:
        raise MissingFields(missing)
