"""Logging set-up: one line per event, key=value pairs, never a phone number or a body.

Two lines of defence:

1. Code never logs personal data: the access log (``core.http_limits.AccessLogMiddleware``)
   writes the path and only allow-listed query parameters (:func:`redact_query`), phone
   searches are posted, not put in URLs, and exception messages do not echo input.
2. Every log record of the process — ours, uvicorn's, Celery's, a library's — is scrubbed
   when it is created (:func:`install_redaction`, a log-record factory, so no handler can be
   forgotten): phone-number-looking digit runs (E.164, ``223…``, Malian 8-digit local
   numbers, with spaces, dots or dashes) and ``secret=``/``token=``-style values are replaced,
   in the message and in the rendered traceback.
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any
from urllib.parse import parse_qsl, quote

from core.settings import get_settings

SECURITY_LOGGER = "deme.security"
ACCESS_LOGGER = "deme.access"

PHONE_MARK = "[phone]"
REDACTED = "…"

# Query parameters whose values are harmless (filter enums, ids, pagination). Everything
# else — phone, q, secret, token, next, and any name not listed — is logged as "name=…".
SAFE_QUERY_PARAMS = frozenset(
    {
        "status",
        "category",
        "priority",
        "source",
        "place",
        "team",
        "assignee",
        "sla",
        "from",
        "to",
        "created_from",
        "created_to",
        "cursor",
        "since",
        "limit",
        "format",
        "kind",
        "lang",
        "language",
        "page",
    }
)

# 8 to 15 digits, optionally with a leading "+" or "00" and single spaces, dots or dashes
# between digits, not glued to letters, digits or dashes (references, UUIDs are not touched).
_PHONE_RE = re.compile(r"(?<![\w+\-])(?:\+|00)?\d(?:[ .\-]?\d){7,14}(?![\w\-])")
# A date (2026-12-01, 01.12.2026) has the shape of a dashed 8-digit run: keep it.
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}|\d{2}\.\d{2}\.\d{4}")
_SECRET_RE = re.compile(
    r"(?i)\b(secret|token|api_?key|password|passwd|auth_token|signature)"
    r"(['\"]?\s*[=:]\s*['\"]?)([^\s&'\",;)]+)"
)


def _phone_replacement(match: re.Match[str]) -> str:
    text = match.group(0)
    if _DATE_RE.search(text):
        return text
    return PHONE_MARK


def scrub(text: str) -> str:
    """``text`` with phone-number-looking digit runs and secret values replaced."""
    if not text:
        return text
    text = _SECRET_RE.sub(lambda m: m.group(1) + m.group(2) + REDACTED, text)
    return _PHONE_RE.sub(_phone_replacement, text)


def redact_query(query_string: str) -> str:
    """A query string fit for a log: allow-listed parameters keep their (scrubbed) value,
    every other parameter is kept by name only, its value replaced by ``…``."""
    if not query_string:
        return ""
    parts: list[str] = []
    for name, value in parse_qsl(query_string, keep_blank_values=True):
        safe_name = quote(name[:40], safe="_-.")
        if name in SAFE_QUERY_PARAMS:
            parts.append(f"{safe_name}={quote(scrub(value[:80]), safe='_-.:,')}")
        else:
            parts.append(f"{safe_name}={REDACTED}")
    return "&".join(parts)


def _scrub_record(record: logging.LogRecord) -> None:
    if record.name == "uvicorn.access" and isinstance(record.args, tuple) and len(record.args) == 5:
        # uvicorn's own access log, should anyone turn it on: same redaction as ours.
        client, method, full_path, version, status = record.args
        path, _, query = str(full_path).partition("?")
        redacted = scrub(path) + ("?" + redact_query(query) if query else "")
        record.args = (client, method, redacted, version, status)
        return
    try:
        message = record.getMessage()
    except Exception:  # a broken format string: log what is certain, not the arguments
        message = str(record.msg)
    record.msg = scrub(message)
    record.args = None
    if record.exc_info and not record.exc_text:
        # Formatters reuse exc_text when it is set: the traceback is scrubbed once, here.
        record.exc_text = scrub(logging.Formatter().formatException(record.exc_info))
    if record.stack_info:
        record.stack_info = scrub(record.stack_info)


_REDACTION_INSTALLED = False


def install_redaction() -> None:
    """Scrub every log record of this process at creation (idempotent)."""
    global _REDACTION_INSTALLED
    if _REDACTION_INSTALLED:
        return
    previous = logging.getLogRecordFactory()

    def factory(*args: Any, **kwargs: Any) -> logging.LogRecord:
        record = previous(*args, **kwargs)
        _scrub_record(record)
        return record

    logging.setLogRecordFactory(factory)
    _REDACTION_INSTALLED = True


def configure_logging() -> None:
    install_redaction()
    root = logging.getLogger()
    if getattr(root, "_deme_configured", False):
        return
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    root.addHandler(handler)
    root.setLevel(get_settings().log_level)
    root._deme_configured = True  # type: ignore[attr-defined]


def security_log() -> logging.Logger:
    return logging.getLogger(SECURITY_LOGGER)


def access_log() -> logging.Logger:
    return logging.getLogger(ACCESS_LOGGER)
