"""The two baselines of bench/gateway_inbound.py, served by uvicorn like the real app.

(a) ``bare_app``: the endpoint answers empty TwiML and does nothing else — the ceiling of
    uvicorn + FastAPI on this machine.
(b) ``minimal_app``: the least an honest webhook must do — verify the Twilio signature, one
    idempotent INSERT (``ON CONFLICT DO NOTHING``, its own transaction), one Redis LPUSH.
    Raw psycopg and redis-py, one connection of each per process, no ORM, no framework
    extras: what the real gateway adds on top of this must be cheap.

Configuration comes from BENCH_DATABASE_URL (libpq form), BENCH_REDIS_URL, BENCH_TOKEN,
BENCH_PUBLIC_URL and BENCH_CHANNEL_ID.
"""

from __future__ import annotations

import hmac
import os
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from urllib.parse import parse_qsl

from fastapi import FastAPI, Request, Response
from twilio.request_validator import RequestValidator

TWIML = b'<?xml version="1.0" encoding="UTF-8"?><Response/>'

bare_app = FastAPI()


@bare_app.post("/webhooks/twilio/sms")
async def bare() -> Response:
    return Response(TWIML, media_type="application/xml")


minimal_app = FastAPI()


@lru_cache(maxsize=1)
def _connections() -> tuple[Any, Any, RequestValidator]:
    import psycopg
    import redis

    database = psycopg.connect(os.environ["BENCH_DATABASE_URL"], autocommit=True)
    broker = redis.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    return database, broker, RequestValidator(os.environ["BENCH_TOKEN"])


INSERT = (
    "INSERT INTO messages (channel_id, direction, provider_id, body, status, sanitized, "
    "flood_limited, transliterated, send_attempts, created_at, status_updated_at) "
    "VALUES (%s, 'in', %s, %s, 'received', false, false, false, 0, %s, %s) "
    "ON CONFLICT (channel_id, provider_id) DO NOTHING RETURNING id"
)


@minimal_app.post("/webhooks/twilio/sms")
async def minimal(request: Request) -> Response:
    database, broker, validator = _connections()
    body = await request.body()
    params = dict(parse_qsl(body.decode("utf-8"), keep_blank_values=True))
    url = os.environ["BENCH_PUBLIC_URL"] + request.url.path
    expected = validator.compute_signature(url, params)
    if not hmac.compare_digest(expected, request.headers.get("x-twilio-signature", "")):
        return Response(status_code=403)
    now = datetime.now(UTC)
    row = database.execute(
        INSERT,
        (int(os.environ["BENCH_CHANNEL_ID"]), params["MessageSid"], params["Body"], now, now),
    ).fetchone()
    if row is not None:
        broker.lpush("bench:minimal", row[0])
    return Response(TWIML, media_type="application/xml")
