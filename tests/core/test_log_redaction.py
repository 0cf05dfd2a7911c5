"""The second line of defence: whatever a log call carries, phone-number-looking digit runs
and secret values never reach a handler — ours, uvicorn's access format, Celery's task
logger — and tracebacks are scrubbed too; dates, times, ids and references survive."""

from __future__ import annotations

import io
import logging
from collections.abc import Iterator

import pytest

from core.logging import install_redaction, redact_query, scrub


@pytest.fixture()
def captured() -> Iterator[io.StringIO]:
    install_redaction()
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter("%(name)s %(message)s"))
    root = logging.getLogger()
    root.addHandler(handler)
    previous = root.level
    root.setLevel(logging.INFO)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


@pytest.mark.parametrize(
    "phone",
    [
        "+22376000101",
        "22376000101",
        "0022376000101",
        "76000101",
        "76 00 01 01",
        "76-00-01-01",
        "+223 76 00 01 01",
        "76.00.01.01",
    ],
)
def test_phone_numbers_in_every_format_are_scrubbed(captured: io.StringIO, phone: str) -> None:
    logging.getLogger("deme.test").info("sender=%s wrote", phone)
    text = captured.getvalue()
    assert "sender=[phone] wrote" in text, text
    assert "0101" not in text


def test_tracebacks_are_scrubbed(captured: io.StringIO) -> None:
    try:
        raise ValueError("could not parse 'from=+22376000101&secret=s3cr3t-value'")
    except ValueError:
        logging.getLogger("deme.test").exception("webhook failed")
    text = captured.getvalue()
    assert "Traceback" in text and "ValueError" in text
    assert "22376000101" not in text and "s3cr3t-value" not in text


def test_celery_task_logger_and_uvicorn_access_format_are_scrubbed(
    captured: io.StringIO,
) -> None:
    from celery.utils.log import get_task_logger
    from uvicorn.logging import AccessFormatter

    get_task_logger("gateway.tasks").warning("retry for 76 12 34 56 token=abcdef123")
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(AccessFormatter('%(client_addr)s "%(request_line)s" %(status_code)s'))
    access = logging.getLogger("uvicorn.access")
    access.addHandler(handler)
    try:
        access.info(
            '%s - "%s %s HTTP/%s" %d',
            "127.0.0.1:5000",
            "POST",
            "/webhooks/africastalking/sms?secret=topsecret&status=ok",
            "1.1",
            200,
        )
    finally:
        access.removeHandler(handler)
    assert "76 12 34 56" not in captured.getvalue() and "abcdef123" not in captured.getvalue()
    line = stream.getvalue()
    assert "/webhooks/africastalking/sms?secret=…&status=ok" in line, line
    assert "topsecret" not in line


def test_dates_ids_and_references_survive() -> None:
    text = "at 2026-12-01 22:24:45 ticket T-7F3K9Q id=12345 task 3f2a1b4c-1234-5678-9abc-def0"
    assert scrub(text) == text


def test_query_strings_keep_only_allow_listed_values() -> None:
    assert (
        redact_query("phone=%2B22376000101&status=open&q=fievre&secret=x&token=y&place=ML07")
        == "phone=…&status=open&q=…&secret=…&token=…&place=ML07"
    )
