"""Benchmark: Rasa NLU parse latency and end-to-end SMS latency (webhook → reply at the provider).

    .venv/bin/python bench/bot_latency.py [--rate 20] [--seconds 40] [--parse-count 300]

Needs PostgreSQL on 127.0.0.1:5432 (user postgres, like the tests), Redis on 127.0.0.1:6379 and
the bot's environment and model (bot/scripts/ensure_env.sh, train_if_changed.sh: cached under
~/.cache/deme; run.sh reuses them). Only 127.0.0.1 is targeted. The script creates its own
database (``deme_bench_bot``, dropped at the end) and uses its own Redis database (7, flushed
before and after), seeds places, teams, a Twilio channel pointing at the local fake provider
(tests/gateway/fake_provider.py) and a service user with an API token, then starts the platform
(uvicorn, 2 workers), the bot (bot/scripts/run.sh: Rasa + action server) and a Celery worker
(4 processes, DEME_BOT=rasa) — the docker-compose shape.

1. NLU: ``POST /model/parse`` one at a time over a few hundred generated fr/bm/en messages
   (templates + gazetteer names, normalised like the deme channel does), interleaved with Rasa's
   trivial ``GET /`` as the baseline (same server, same HTTP path, no NLU); then the same
   parses 8 in flight for the NLU throughput of one Rasa process. Then the pieces of a turn
   alone: the API calls the actions make (one at a time), and whole Rasa turns posted to the
   deme channel as the worker does (one at a time, then 8 in flight: turns/s of the bot).
2. End to end, open loop: signed Twilio webhooks at a steady rate (one new sender per message, so
   conversations never interleave), each timed from just before the POST to the moment the fake
   provider records the first SMS to that number. Run with DEME_BOT=rasa, then again with only
   the worker restarted as DEME_BOT=fallback (keyword classifier, no Rasa) as the baseline.
   Reported: p50/p95/p99/max, messages without a reply within 30 s, tickets created by the
   fallback during the Rasa run (its "created" event has actor "fallback"; also flagged
   needs_review — which the API also sets for bot tickets whose place it could not resolve,
   reported separately), a per-stage breakdown (database timestamps and, for a sample of the
   conversations Rasa finished, the tracker's event timestamps) and CPU used per component.

Every phase is bounded: about 3–4 minutes in all (Rasa loads its model in 30–70 s); each e2e
run stops waiting 30 s after its last message. Logs: var/bench-bot/.
Prints Markdown tables.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import datetime as dt
import itertools
import os
import platform
import random
import signal
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]

PG_ADMIN = os.environ.get(
    "BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
# Overridable so two engineers' runs on one machine do not drop each other's database.
DB_NAME = os.environ.get("BENCH_BOT_DB", "deme_bench_bot")
REDIS_BASE = os.environ.get("BENCH_REDIS_BASE", "redis://127.0.0.1:6379")
SHARED_SECRET = "bench-bot-shared-secret-0123456789"
VAR_DIR = ROOT / "var" / "bench-bot"
REPLY_DEADLINE = 30.0  # a message without a reply this long after it was sent counts as lost
KEEP_ENV = {"DEME_CACHE_DIR", "DEME_BOT_MODEL"}  # bot cache settings a developer may have set


# --- message generation (templates + the gazetteer; never the bot's training/held-out data) --

TEMPLATES: dict[str, list[str]] = {
    "fr": [
        "bonjour nous n'avons plus d'eau potable a {place}, on est {n} dans la famille",
        "mon enfant a la fievre depuis hier soir, on est a {place}",
        "pas de medicaments au site de {place}, ma femme est malade. nous sommes {n}",
        "notre abri est tombé avec la pluie à {place}, {n} personnes dorment dehors",
        "svp on a besoin de baches et de nattes a {place}, famille de {n} personnes",
        "les latrines sont pleines ici a {place} depuis 2 semaines",
        "aidez nous svp, pas de couvertures pour les enfants a {place}",
        "le forage est en panne a {place}, nous sommes {n}",
        "des hommes armés menacent les femmes au puits de {place}",
        "nous sommes arrivés à {place} hier, {n} personnes",
        "je veux savoir ou en est ma demande",
        "bonjour",
        "merci beaucoup pour votre aide",
    ],
    "bm": [
        "ji te an fe {place}, an ye mogo {n} ye",
        "an den ka bana kosebe, farigan b'a la. an be {place}",
        "muso konoma dow bana {place}, fura te yen",
        "an ka so tinyena sanji fe {place}, an ye mogo {n} ye",
        "an mago be bache ni dilan na {place}, an ye mogo {n} ye",
        "ji saniyalen te yen {place}, denmisenw bana konoboli",
        "an deme, nene be an na, kene kan an be sunogo {place}",
        "kolon tinyena {place}, an ye mogo {n} ye",
        "marifatigiw be musow tooro {place}, an siranna",
        "an nana {place} kunun, an ye mogo {n} ye",
        "n ka nyininkali be min?",
        "i ni ce",
        "i ni ce kosebe",
    ],
    "en": [
        "we have no clean water in {place}, we are {n} people",
        "my baby is sick since yesterday, we are at {place}",
        "no medicine at the health centre in {place}, my wife is ill. we are {n}",
        "our shelter was destroyed by the rain in {place}, family of {n}",
        "please we need blankets and mats at {place}, {n} of us",
        "the toilets are full at the camp in {place}",
        "pls help, the children sleep outside in the cold at {place}",
        "the water pump is broken in {place}, we are {n}",
        "armed men are threatening the girls near {place}",
        "we arrived in {place} last week, {n} of us",
        "what is the status of my request",
        "hello",
        "thank you so much",
    ],
}


def place_names() -> list[str]:
    """Names and aliases of every place below the country, from the gazetteer data file."""
    names: list[str] = []
    with (ROOT / "tickets" / "data" / "places.csv").open(encoding="utf-8-sig") as handle:
        for row in csv.DictReader(handle):
            if row["kind"] == "country":
                continue
            names.append(row["name"])
            names.extend(a for a in row["aliases"].split("|") if a)
    return names


def generate_messages(count: int, seed: int) -> list[tuple[str, str]]:
    """``count`` (language, text) pairs in a fixed random order, SMS-style variations."""
    rng = random.Random(seed)
    places = place_names()
    out: list[tuple[str, str]] = []
    languages = list(TEMPLATES)
    for i in range(count):
        language = languages[i % len(languages)]
        text = rng.choice(TEMPLATES[language]).format(
            place=rng.choice(places), n=rng.randint(2, 14)
        )
        roll = rng.random()
        if roll < 0.2:
            text = text.upper()
        elif roll < 0.5:
            text = text.lower()
        out.append((language, text))
    rng.shuffle(out)
    return out


# --- statistics -----------------------------------------------------------------------------


def pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q * len(ordered) + 0.5) - 1))]


def ms(value: float) -> str:
    return "—" if value != value else f"{value * 1000:,.0f}"  # NaN → dash


# --- processes ------------------------------------------------------------------------------


def process_cpu(session_ids: dict[str, int]) -> dict[int, tuple[str, float]]:
    """pid → (component, user+system CPU seconds) for every process of the given sessions
    (Linux /proc) and the PostgreSQL backends of the bench database; the bot's session is
    split into Rasa and the action server by command line."""
    tick = os.sysconf("SC_CLK_TCK")
    by_session = {sid: name for name, sid in session_ids.items()}
    out: dict[int, tuple[str, float]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                stat = handle.read()
            with open(f"/proc/{entry}/cmdline", "rb") as handle:
                cmdline = handle.read().replace(b"\0", b" ").decode(errors="replace")
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        owner = by_session.get(int(fields[3]))
        if owner == "bot":
            owner = "actions" if " actions" in cmdline else "rasa"
        elif owner is None and cmdline.startswith("postgres:") and f" {DB_NAME} " in cmdline:
            owner = "postgres (bench db)"
        if owner is not None:
            out[int(entry)] = (owner, (int(fields[11]) + int(fields[12])) / tick)
    return out


def start_profilers(session_ids: dict[str, int], label: str, seconds: float) -> list[Any]:
    """With BENCH_PROFILE_DIR set: one ``py-spy record`` (collapsed stacks, ``--format raw``)
    per Python process of the platform's components for the run, so where each component's
    CPU per message goes can be read next to its total. py-spy samples from outside (no
    change to the processes), ~100 samples/s, non-blocking."""
    import shutil
    import subprocess

    out_dir = os.environ.get("BENCH_PROFILE_DIR")
    spy = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    if not out_dir or not Path(spy).exists():
        return []
    Path(out_dir).mkdir(parents=True, exist_ok=True)
    started = []
    for pid, (owner, _cpu) in process_cpu(session_ids).items():
        if owner.startswith("postgres"):
            continue
        try:
            exe = os.readlink(f"/proc/{pid}/exe")
        except OSError:
            continue
        if "python" not in Path(exe).name:
            continue
        target = Path(out_dir) / f"{label}-{owner}-{pid}.txt"
        started.append(
            subprocess.Popen(
                [
                    spy,
                    "record",
                    "--pid",
                    str(pid),
                    "--duration",
                    str(int(seconds)),
                    "--format",
                    "raw",
                    "--nonblocking",
                    "--output",
                    str(target),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    return started


def cpu_delta(
    before: dict[int, tuple[str, float]], after: dict[int, tuple[str, float]]
) -> dict[str, float]:
    """CPU seconds per component between two snapshots (processes that ended meanwhile are
    not counted; new ones count from zero)."""
    totals: dict[str, float] = {}
    for pid, (owner, cpu) in after.items():
        previous = before.get(pid)
        used = cpu - previous[1] if previous and previous[0] == owner else cpu
        totals[owner] = totals.get(owner, 0.0) + max(0.0, used)
    return totals


# --- set-up ---------------------------------------------------------------------------------


def configure_environment(database_url: str, redis_url: str) -> None:
    """Before any Deme module is imported: settings are read once per process."""
    for name in list(os.environ):
        if name.startswith("DEME_") and name not in KEEP_ENV:
            del os.environ[name]
    os.environ.update(
        {
            "DEME_ENV": "test",
            "DEME_DATABASE_URL": database_url,
            "DEME_REDIS_URL": redis_url,
            "DEME_VAR_DIR": str(VAR_DIR),
            "DEME_PUBLIC_URL": "https://deme.test",  # what tests.gateway signed() signs for
            "DEME_BOT_SHARED_SECRET": SHARED_SECRET,
            "DEME_LOG_LEVEL": "WARNING",
        }
    )
    VAR_DIR.mkdir(parents=True, exist_ok=True)


def admin_sql(*statements: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = :name AND pid <> pg_backend_pid()"
            ),
            {"name": DB_NAME},
        )
        for statement in statements:
            connection.execute(text(statement))
    admin.dispose()


def create_database(database_url: str, provider_url: str) -> str:
    """Fresh migrated database with places, teams, a Twilio channel on the fake provider and
    a service user; returns the service user's API token."""
    admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}"', f'CREATE DATABASE "{DB_NAME}"')
    from support.db import run_migrations

    run_migrations(database_url)
    from core.db import session_scope
    from deme.seed import seed_places, seed_teams_and_rules
    from models import Channel, ChannelType, User, UserRole
    from ops_console.auth import issue_api_token
    from tests.gateway.gateway_helpers import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER

    with session_scope() as session:
        seed_places(session, lambda _line: None)
        seed_teams_and_rules(session, lambda _line: None)
        session.add(
            Channel(
                name="twilio-bench",
                type=ChannelType.TWILIO,
                address=OUR_NUMBER,
                credentials={"account_sid": ACCOUNT_SID, "auth_token": AUTH_TOKEN},
                config={"api_base_url": provider_url, "max_per_second": 50},
            )
        )
        service = User(username="bot", display_name="bot", role=UserRole.SERVICE)
        session.add(service)
        session.flush()
        return issue_api_token(session, service, "bench")


def flush_redis(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_timeout=5)
    client.flushdb()
    client.close()


# --- (a) NLU parse --------------------------------------------------------------------------


@dataclass
class ParseResult:
    parse: list[float]
    root: list[float]
    burst_rate: float
    burst_latencies: list[float]
    intents: dict[str, int]


def measure_parse(rasa_url: str, texts: list[str], in_flight: int) -> ParseResult:
    import httpx

    from bot.normalize import normalize

    prepared = [normalize(t).lstrip("/").strip() for t in texts]  # as the deme channel does
    parse: list[float] = []
    root: list[float] = []
    intents: dict[str, int] = {}
    with httpx.Client(base_url=rasa_url, timeout=10) as client:
        for text in prepared[:20]:  # warm-up
            client.post("/model/parse", json={"text": text}).raise_for_status()
            client.get("/")
        for text in prepared:
            started = time.perf_counter()
            response = client.post("/model/parse", json={"text": text})
            parse.append(time.perf_counter() - started)
            response.raise_for_status()
            name = (response.json().get("intent") or {}).get("name") or "?"
            intents[name] = intents.get(name, 0) + 1
            started = time.perf_counter()
            client.get("/").raise_for_status()
            root.append(time.perf_counter() - started)

    async def burst() -> tuple[float, list[float]]:
        latencies: list[float] = []
        cursor = iter(prepared)
        async with httpx.AsyncClient(base_url=rasa_url, timeout=30) as client:

            async def one_connection() -> None:
                for text in cursor:
                    started = time.perf_counter()
                    response = await client.post("/model/parse", json={"text": text})
                    response.raise_for_status()
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(one_connection() for _ in range(in_flight)))
            return len(latencies) / (time.perf_counter() - started), latencies

    rate, burst_latencies = asyncio.run(burst())
    return ParseResult(parse, root, rate, burst_latencies, intents)


# --- whole Rasa turns, without the platform's worker ---------------------------------------


def measure_turns(
    rasa_url: str, texts: list[str], first_phone: int, in_flight: int
) -> tuple[list[float], float, list[float]]:
    """What the worker does, without the worker: POST each text to the deme channel as a new
    conversation (a real contact, so the actions' API calls succeed). First one at a time
    (the cost of a turn on an idle stack), then ``in_flight`` at a time (turns per second one
    Rasa process + action server sustain)."""
    import httpx

    from core.db import session_scope
    from tickets.contacts import get_or_create_contact

    with session_scope() as session:
        contacts = [get_or_create_contact(session, p) for p in phones(first_phone, len(texts))]
        session.flush()
        senders = [c.public_id for c in contacts]
    headers = {"X-Deme-Secret": SHARED_SECRET}
    half = len(texts) // 3
    sequential: list[float] = []
    with httpx.Client(base_url=rasa_url, timeout=60, headers=headers) as client:
        for sender, text in zip(senders[:half], texts[:half], strict=True):
            started = time.perf_counter()
            response = client.post(
                "/webhooks/deme/webhook",
                json={"sender": sender, "message": text, "metadata": {"channel": "twilio"}},
            )
            sequential.append(time.perf_counter() - started)
            if response.status_code != 200 or not response.json().get("messages"):
                raise RuntimeError(f"turn failed: {response.status_code} {response.text[:200]}")

    async def burst() -> tuple[float, list[float]]:
        latencies: list[float] = []
        cursor = iter(zip(senders[half:], texts[half:], strict=True))
        async with httpx.AsyncClient(base_url=rasa_url, timeout=60, headers=headers) as client:

            async def one_connection() -> None:
                for sender, text in cursor:
                    started = time.perf_counter()
                    response = await client.post(
                        "/webhooks/deme/webhook",
                        json={"sender": sender, "message": text, "metadata": {}},
                    )
                    response.raise_for_status()
                    latencies.append(time.perf_counter() - started)

            started = time.perf_counter()
            await asyncio.gather(*(one_connection() for _ in range(in_flight)))
            return len(latencies) / (time.perf_counter() - started), latencies

    rate, concurrent = asyncio.run(burst())
    return sequential, rate, concurrent


# --- the platform API the actions call, alone ---------------------------------------------


def measure_api(server_url: str, token: str, count: int = 30) -> dict[str, list[float]]:
    """One call at a time, idle system: what one action → API round trip costs at best."""
    import httpx
    from sqlalchemy import select

    from core.db import session_scope
    from models import Contact

    with session_scope() as session:
        senders = list(session.scalars(select(Contact.public_id).limit(6)))
    out: dict[str, list[float]] = {
        "POST /api/v1/tickets": [],
        "GET /api/v1/places/resolve": [],
        "GET /healthz (baseline)": [],
    }
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=server_url, timeout=10, headers=headers) as client:
        for i in range(count):
            body = {
                "sender": senders[i % len(senders)],
                "category": ("wash", "health", "shelter_nfi")[i % 3],
                "description": "bench probe",
                "place": "sevare",
                "household_size": 5,
                "language": "fr",
            }
            for name, call in (
                ("POST /api/v1/tickets", lambda b=body: client.post("/api/v1/tickets", json=b)),
                (
                    "GET /api/v1/places/resolve",
                    lambda: client.get("/api/v1/places/resolve", params={"q": "mopti"}),
                ),
                ("GET /healthz (baseline)", lambda: client.get("/healthz")),
            ):
                started = time.perf_counter()
                response = call()
                out[name].append(time.perf_counter() - started)
                if response.status_code >= 400:
                    raise RuntimeError(f"{name}: HTTP {response.status_code} {response.text}")
    return out


# --- (b) end to end -------------------------------------------------------------------------


@dataclass
class Sent:
    phone: str
    text: str
    planned: float = 0.0  # perf_counter offset from the start
    sent_at: float = 0.0  # time.time() just before the POST (the fake provider's clock)
    lag: float = 0.0  # how late the generator was against the schedule
    webhook: float = float("nan")
    status: int = 0
    reply_at: float | None = None
    replies: int = 0

    @property
    def latency(self) -> float | None:
        return None if self.reply_at is None else self.reply_at - self.sent_at


@dataclass
class E2EResult:
    label: str
    sent: list[Sent]
    duration: float
    cpu: dict[str, float] = field(default_factory=dict)
    stages: dict[str, list[float]] = field(default_factory=dict)
    needs_review: int = 0
    by_fallback: int = 0
    handled: int = 0  # inbound messages the conversation task finished (HANDLED)
    elapsed: float = 0.0  # send + drain
    cpu_seconds: dict[str, float] = field(default_factory=dict)
    tickets: int = 0
    keyed: int = 0  # tickets carrying their inbound message id (the idempotency key)
    public_ids: dict[str, str] = field(default_factory=dict)  # phone → Contact.public_id

    def latencies(self) -> list[float]:
        return [
            s.latency for s in self.sent if s.latency is not None and s.latency <= REPLY_DEADLINE
        ]

    def missing(self) -> int:
        return sum(1 for s in self.sent if s.latency is None or s.latency > REPLY_DEADLINE)


def phones(first: int, count: int) -> list[str]:
    """Valid, distinct Orange Mali numbers (+223 7x xx xx xx)."""
    return [f"+2237{n:07d}" for n in range(first, first + count)]


async def _send_open_loop(server_url: str, items: list[Sent], rate: float) -> None:
    import httpx

    from tests.gateway.gateway_helpers import signed, twilio_sms_form

    path = "/webhooks/twilio/sms"
    prepared = [signed(path, twilio_sms_form(s.phone, s.text)) for s in items]
    limits = httpx.Limits(max_connections=200, max_keepalive_connections=200)
    async with httpx.AsyncClient(base_url=server_url, timeout=20, limits=limits) as client:

        async def post(item: Sent, body: bytes, headers: dict[str, str]) -> None:
            started = time.perf_counter()
            item.sent_at = time.time()
            try:
                response = await client.post(path, content=body, headers=headers)
                item.status = response.status_code
            except httpx.HTTPError:
                item.status = -1
            item.webhook = time.perf_counter() - started

        start = time.perf_counter() + 0.1
        tasks = []
        for i, (item, (body, headers)) in enumerate(zip(items, prepared, strict=True)):
            item.planned = i / rate
            delay = start + item.planned - time.perf_counter()
            if delay > 0:
                await asyncio.sleep(delay)
            item.lag = max(0.0, time.perf_counter() - start - item.planned)
            tasks.append(asyncio.create_task(post(item, body, headers)))
        await asyncio.gather(*tasks)


def collect_replies(provider: Any, items: list[Sent]) -> None:
    by_phone = {s.phone: s for s in items}
    for s in items:
        s.reply_at, s.replies = None, 0
    for record in provider.sent("twilio"):
        item = by_phone.get(record.form.get("To", ""))
        if item is None:
            continue
        item.replies += 1
        if item.reply_at is None or record.at < item.reply_at:
            item.reply_at = record.at


def run_e2e(
    label: str,
    server_url: str,
    provider: Any,
    texts: list[tuple[str, str]],
    first_phone: int,
    rate: float,
    cpu_probe: Callable[[], dict[int, tuple[str, float]]],
    profile_sessions: dict[str, int] | None = None,
) -> E2EResult:
    items = [
        Sent(p, t) for p, (_lang, t) in zip(phones(first_phone, len(texts)), texts, strict=True)
    ]
    cpu_before = cpu_probe()
    profilers = start_profilers(profile_sessions or {}, label, len(texts) / rate + 5)
    started = time.monotonic()
    asyncio.run(_send_open_loop(server_url, items, rate))
    send_done = time.monotonic()
    # Wait for every reply, bounded: REPLY_DEADLINE after the last send.
    while time.monotonic() - send_done < REPLY_DEADLINE + 1:
        collect_replies(provider, items)
        if all(s.reply_at is not None for s in items):
            break
        time.sleep(0.5)
    collect_replies(provider, items)
    duration = time.monotonic() - started
    cpu_after = cpu_probe()
    for profiler in profilers:
        profiler.wait(timeout=60)
    used = cpu_delta(cpu_before, cpu_after)
    cpu = {k: v / duration for k, v in used.items()}
    return E2EResult(label, items, send_done - started, cpu, cpu_seconds=used, elapsed=duration)


def warm_up(server_url: str, provider: Any, first_phone: int, count: int = 6) -> None:
    """A few messages at a slow pace: pools open, code paths imported, caches filled."""
    texts = generate_messages(count, seed=99)
    items = [Sent(p, t) for p, (_l, t) in zip(phones(first_phone, count), texts, strict=True)]
    asyncio.run(_send_open_loop(server_url, items, 3.0))
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        collect_replies(provider, items)
        if all(s.reply_at is not None for s in items):
            return
        time.sleep(0.3)
    print(f"warning: warm-up got {sum(s.reply_at is not None for s in items)}/{count} replies")


def analyse_database(result: E2EResult) -> None:
    """Per-stage timings from the rows the platform wrote, and the fallback's tickets."""
    from sqlalchemy import func, select

    from core.crypto import lookup_hash
    from core.db import session_scope
    from models import Contact, Message, MessageDirection, MessageStatus, Ticket, TicketEvent

    by_hash = {lookup_hash(s.phone): s for s in result.sent}
    stages: dict[str, list[float]] = {
        k: []
        for k in (
            "webhook → inbound row",
            "inbound row → process_inbound",
            "process_inbound → reply queued (bot turn + task wait)",
            "reply queued → send started",
            "send started → provider",
        )
    }
    with session_scope() as session:
        contacts = {
            c.id: (c, by_hash[c.phone_hash])
            for c in session.scalars(select(Contact).where(Contact.phone_hash.in_(by_hash)))
        }
        ids = list(contacts)
        result.tickets = session.scalar(
            select(func.count(Ticket.id)).where(Ticket.contact_id.in_(ids))
        )
        key = getattr(Ticket, "source_message_id", None)  # absent before issue 14's migration
        result.keyed = (
            0
            if key is None
            else session.scalar(
                select(func.count(Ticket.id)).where(Ticket.contact_id.in_(ids), key.is_not(None))
            )
        )
        result.by_fallback = session.scalar(
            select(func.count(TicketEvent.id))
            .join(Ticket, Ticket.id == TicketEvent.ticket_id)
            .where(
                Ticket.contact_id.in_(ids),
                TicketEvent.kind == "created",
                TicketEvent.actor_label == "fallback",
            )
        )
        result.handled = session.scalar(
            select(func.count(Message.id)).where(
                Message.contact_id.in_(ids),
                Message.direction == MessageDirection.INBOUND,
                Message.status == MessageStatus.HANDLED,
            )
        )
        result.needs_review = session.scalar(
            select(func.count(Ticket.id)).where(
                Ticket.contact_id.in_(ids), Ticket.needs_review.is_(True)
            )
        )
        inbound: dict[int, Message] = {}
        outbound: dict[int, Message] = {}
        for message in session.scalars(
            select(Message).where(Message.contact_id.in_(ids)).order_by(Message.id)
        ):
            target = inbound if message.direction == MessageDirection.INBOUND else outbound
            target.setdefault(message.contact_id, message)
        for contact_id, (contact, item) in contacts.items():
            result.public_ids[item.phone] = contact.public_id
            message_in, message_out = inbound.get(contact_id), outbound.get(contact_id)
            if message_in is None:
                continue
            t_in = message_in.created_at.timestamp()
            t_processed = message_in.status_updated_at.timestamp()
            stages["webhook → inbound row"].append(t_in - item.sent_at)
            stages["inbound row → process_inbound"].append(t_processed - t_in)
            if message_out is None:
                continue
            t_out = message_out.created_at.timestamp()
            stages["process_inbound → reply queued (bot turn + task wait)"].append(
                t_out - t_processed
            )
            if message_out.send_started_at is not None:
                t_send = message_out.send_started_at.timestamp()
                stages["reply queued → send started"].append(t_send - t_out)
                if item.reply_at is not None:
                    stages["send started → provider"].append(item.reply_at - t_send)
    result.stages = stages


def analyse_trackers(rasa_url: str, result: E2EResult, sample: int) -> dict[str, list[float]]:
    """Rasa's own event timestamps for a sample of the run's conversations: when the turn
    started (session start / first event), when NLU was done (the user event), when it ended
    (last event), and the time spent in custom actions (action server → platform API)."""
    import httpx

    from core.db import session_scope
    from models import Message, MessageDirection

    public_ids = result.public_ids
    chosen = [s for s in result.sent if s.phone in public_ids][
        :: max(1, len(result.sent) // sample)
    ]
    out: dict[str, list[float]] = {
        "process_inbound → Rasa turn starts (queue + lock + HTTP)": [],
        "turn start → NLU done": [],
        "NLU done → turn end (policies + custom actions)": [],
        "of which custom actions (action server + API)": [],
        "custom action calls per turn": [],
    }
    with httpx.Client(base_url=rasa_url, timeout=10) as client, session_scope() as session:
        from sqlalchemy import select

        from models import Contact

        for item in chosen:
            public_id = public_ids[item.phone]
            response = client.get(f"/conversations/{public_id}/tracker")
            if response.status_code != 200:
                continue
            events = response.json().get("events") or []
            stamps = [e["timestamp"] for e in events if e.get("timestamp")]
            users = [e["timestamp"] for e in events if e.get("event") == "user"]
            if not stamps or not users:
                continue
            processed = session.scalar(
                select(Message.status_updated_at)
                .join(Contact, Contact.id == Message.contact_id)
                .where(
                    Contact.public_id == public_id,
                    Message.direction == MessageDirection.INBOUND,
                )
                .order_by(Message.id)
                .limit(1)
            )
            if processed is not None:
                out["process_inbound → Rasa turn starts (queue + lock + HTTP)"].append(
                    stamps[0] - processed.timestamp()
                )
            out["turn start → NLU done"].append(users[0] - stamps[0])
            out["NLU done → turn end (policies + custom actions)"].append(stamps[-1] - users[0])
            # ActionExecuted is stamped once the action has run: its duration is the gap
            # since the event before it (the user event or the previous action's results).
            custom_time = 0.0
            calls = 0
            for previous, event in itertools.pairwise(events):
                name = event.get("name") or ""
                if (
                    event.get("event") == "action"
                    and name not in ("action_listen", "action_session_start")
                    and not name.startswith("utter_")
                    and previous.get("timestamp")
                ):
                    custom_time += event["timestamp"] - previous["timestamp"]
                    calls += 1
            out["of which custom actions (action server + API)"].append(custom_time)
            out["custom action calls per turn"].append(float(calls))
    return out


# --- report ---------------------------------------------------------------------------------


def machine() -> str:
    with open("/proc/meminfo") as handle:
        total_kb = int(handle.readline().split()[1])
    cpu_model = "?"
    with open("/proc/cpuinfo") as handle:
        for line in handle:
            if line.startswith("model name"):
                cpu_model = line.split(":", 1)[1].strip()
                break
    return (
        f"{os.cpu_count()} CPUs (nproc; {cpu_model}), {total_kb / 1024 / 1024:.0f} GiB RAM, "
        f"{platform.system()} {platform.release()}"
    )


def print_report(
    args: argparse.Namespace,
    ready_seconds: float,
    parse: ParseResult | None,
    api: dict[str, list[float]],
    turns: tuple[list[float], float, list[float]] | None,
    runs: list[E2EResult],
    tracker: dict[str, list[float]],
    loads: Iterable[float],
) -> None:
    now = dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC")
    print(f"\n## Bot latency — {now}\n")
    print(f"- machine: {machine()}; load average during the run: {list(loads)}")
    print(
        f"- stack: uvicorn {args.web_workers} workers, Celery worker --concurrency "
        f"{args.concurrency} (prefork, queue deme) + {args.bot_threads} threads "
        "(queue conversation), Rasa 3.6 + action server (run.sh, "
        f"in-memory tracker/lock store); Rasa ready {ready_seconds:.0f} s after start"
    )
    print(
        f"- load: {args.rate:g} msg/s open loop for {args.seconds:g} s per run, one new sender "
        f"per message, fr/bm/en generated from templates + gazetteer\n"
    )
    if parse is not None:
        print("### (a) Rasa NLU, one request at a time\n")
        print("| probe | n | p50 ms | p95 ms | max ms |")
        print("|---|---:|---:|---:|---:|")
        for name, values in (
            ("POST /model/parse", parse.parse),
            ("GET / (baseline: HTTP + Sanic, no NLU)", parse.root),
        ):
            print(
                f"| {name} | {len(values)} | {ms(pct(values, 0.5))} | {ms(pct(values, 0.95))} "
                f"| {ms(max(values))} |"
            )
        parse_p50, root_p50 = pct(parse.parse, 0.5), pct(parse.root, 0.5)
        burst = parse.burst_latencies
        print(
            f"\nparse/baseline p50 ratio {parse_p50 / root_p50:.1f}× (NLU ≈ "
            f"{ms(parse_p50 - root_p50)} ms of each parse). {args.in_flight} parses in flight: "
            f"{parse.burst_rate:.0f} parses/s, p50 {ms(pct(burst, 0.5))} ms, "
            f"p95 {ms(pct(burst, 0.95))} ms."
        )
        top = sorted(parse.intents.items(), key=lambda kv: -kv[1])[:8]
        print("Intents predicted (sanity): " + ", ".join(f"{k} {v}" for k, v in top) + "\n")

    print("### The platform API the actions call (one call at a time, idle)\n")
    print("| call | n | p50 ms | p95 ms |")
    print("|---|---:|---:|---:|")
    for name, values in api.items():
        print(f"| {name} | {len(values)} | {ms(pct(values, 0.5))} | {ms(pct(values, 0.95))} |")
    print()
    if turns is not None:
        sequential, turn_rate, concurrent = turns
        print("### Whole Rasa turns (deme channel → NLU → policies → actions → API), no worker\n")
        print("| mode | n | turns/s | p50 ms | p95 ms |")
        print("|---|---:|---:|---:|---:|")
        print(
            f"| one at a time | {len(sequential)} | {len(sequential) / sum(sequential):.1f} "
            f"| {ms(pct(sequential, 0.5))} | {ms(pct(sequential, 0.95))} |"
        )
        print(
            f"| {args.in_flight} in flight | {len(concurrent)} | {turn_rate:.1f} "
            f"| {ms(pct(concurrent, 0.5))} | {ms(pct(concurrent, 0.95))} |\n"
        )
    print("### (b) End to end: signed webhook POST → reply recorded by the fake provider\n")
    print(
        "| DEME_BOT | sent | sent msg/s | handled/s | webhook p95 ms "
        "| p50 ms | p95 ms | p99 ms | max ms "
        f"| no reply ≤{REPLY_DEADLINE:.0f} s | tickets | by the fallback | needs_review "
        "| p95 ≤ 1.5 s |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|")
    for run in runs:
        lat = run.latencies()
        ok = [s for s in run.sent if s.status == 200]
        p95 = pct(lat, 0.95)
        print(
            f"| {run.label} | {len(run.sent)} ({len(ok)} × 200) "
            f"| {len(run.sent) / run.duration:.1f} | {run.handled / run.elapsed:.1f} "
            f"| {ms(pct([s.webhook for s in run.sent], 0.95))} | {ms(pct(lat, 0.5))} "
            f"| {ms(p95)} | {ms(pct(lat, 0.99))} | {ms(max(lat) if lat else float('nan'))} "
            f"| {run.missing()} | {run.tickets} | {run.by_fallback} | {run.needs_review} "
            f"| {'yes' if p95 <= 1.5 and run.missing() == 0 else '**no**'} |"
        )
    print(
        "\nTickets keyed by their inbound message (one ticket per message at most): "
        + ", ".join(f"{r.label} {r.keyed}/{r.tickets}" for r in runs)
    )
    print("\n### Where the time goes (p50 / p95 ms per stage)\n")
    print("| stage | " + " | ".join(r.label for r in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    names: list[str] = []
    for run in runs:
        names += [n for n in run.stages if n not in names]
    for name in names:
        cells = []
        for run in runs:
            values = run.stages.get(name, [])
            cells.append(f"{ms(pct(values, 0.5))} / {ms(pct(values, 0.95))}" if values else "—")
        print(f"| {name} | " + " | ".join(cells) + " |")
    if tracker and any(tracker.values()):
        n = len(next(iter(tracker.values())))
        print(f"\nRasa tracker timestamps, {n} conversations of the rasa run (p50 / p95):\n")
        print("| inside the Rasa turn | p50 | p95 |")
        print("|---|---:|---:|")
        for name, values in tracker.items():
            if name.startswith("custom action calls"):
                print(f"| {name} | {pct(values, 0.5):.0f} | {pct(values, 0.95):.0f} |")
            else:
                print(f"| {name} (ms) | {ms(pct(values, 0.5))} | {ms(pct(values, 0.95))} |")
    print(
        "\n### CPU during each run: cores (averaged over send + drain) / CPU ms per message "
        "handled by the conversation task\n"
    )
    components = sorted({k for r in runs for k in r.cpu})
    print("| component | " + " | ".join(r.label for r in runs) + " |")
    print("|---|" + "---:|" * len(runs))
    for name in components:
        cells = []
        for r in runs:
            per = r.cpu_seconds.get(name, 0.0) / max(1, r.handled) * 1000
            cells.append(f"{r.cpu.get(name, 0.0):.2f} / {per:.0f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
    print(
        "\nCommand: `.venv/bin/python bench/bot_latency.py "
        f"--rate {args.rate:g} --seconds {args.seconds:g} --parse-count {args.parse_count} "
        f"--concurrency {args.concurrency}{' --skip-fallback' if args.skip_fallback else ''}"
        f"{' --fallback-only' if args.fallback_only else ''}`"
    )


# --- main -----------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=20.0, help="messages per second")
    parser.add_argument("--seconds", type=float, default=40.0, help="duration of each e2e run")
    parser.add_argument("--parse-count", type=int, default=300, help="messages parsed")
    parser.add_argument("--in-flight", type=int, default=8, help="parses in flight (burst)")
    parser.add_argument(
        "--concurrency", type=int, default=2, help="processes of the default-queue worker"
    )
    parser.add_argument(
        "--bot-threads", type=int, default=8, help="threads of the conversation-queue worker"
    )
    parser.add_argument("--web-workers", type=int, default=2, help="uvicorn workers")
    parser.add_argument("--redis-db", type=int, default=7)
    parser.add_argument("--rasa-timeout", type=float, default=30.0)
    parser.add_argument("--skip-fallback", action="store_true", help="no fallback baseline run")
    parser.add_argument(
        "--fallback-only",
        action="store_true",
        help="no Rasa at all: only the DEME_BOT=fallback run (its CPU per message)",
    )
    args = parser.parse_args()
    if not 0 < args.rate <= 100 or not 0 < args.seconds <= 120:
        parser.error("--rate must be in (0, 100] and --seconds in (0, 120]")

    database_url = PG_ADMIN.rsplit("/", 1)[0] + f"/{DB_NAME}"
    redis_url = f"{REDIS_BASE}/{args.redis_db}"
    configure_environment(database_url, redis_url)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))  # still clean up

    from support.bot import BotProcess
    from support.workers import WorkerProcess
    from tests.gateway.fake_provider import FakeProvider
    from tests.gateway.gateway_helpers import UvicornServer

    count = int(args.rate * args.seconds)
    provider = FakeProvider().start()
    server = bot = worker = bot_worker = None
    sessions: dict[str, int] = {}
    loads: list[float] = []
    worker_env = {
        "DEME_RASA_TIMEOUT_SECONDS": f"{args.rasa_timeout:g}",
        "DEME_LOG_LEVEL": "WARNING",
    }
    try:
        flush_redis(redis_url)
        t0 = time.monotonic()
        token = create_database(database_url, provider.url)
        print(f"database ready in {time.monotonic() - t0:.0f} s", flush=True)
        server = UvicornServer(workers=args.web_workers)
        sessions["uvicorn"] = server.process.pid
        ready = 0.0
        parse: ParseResult | None = None
        turns: tuple[list[float], float, list[float]] | None = None
        tracker: dict[str, list[float]] = {}
        api: dict[str, list[float]] = {}
        runs: list[E2EResult] = []

        def probe() -> dict[int, tuple[str, float]]:
            return process_cpu(sessions)

        if not args.fallback_only:
            bot = BotProcess(
                {
                    "DEME_API_URL": server.url,
                    "DEME_API_TOKEN": token,
                    "DEME_BOT_SHARED_SECRET": SHARED_SECRET,
                },
            )
            sessions["bot"] = bot.process.pid
            # As `deme run` and compose do: a prefork worker for the default queue and a
            # thread-pool worker for bot turns, so replies never wait behind Rasa.
            worker = WorkerProcess(
                concurrency=args.concurrency,
                queues="deme",
                env={**worker_env, "DEME_BOT": "rasa", "DEME_RASA_URL": bot.url},
            )
            bot_worker = WorkerProcess(
                concurrency=args.bot_threads,
                pool="threads",
                queues="conversation",
                env={**worker_env, "DEME_BOT": "rasa", "DEME_RASA_URL": bot.url},
            )
            sessions["worker"] = worker.process.pid
            sessions["bot-worker"] = bot_worker.process.pid
            ready = bot.wait_ready(timeout=300)
            print(f"bot ready ({ready:.0f} s)", flush=True)

            parse = measure_parse(
                bot.url, [t for _l, t in generate_messages(args.parse_count, 7)], args.in_flight
            )
            print(f"parse: p50 {ms(pct(parse.parse, 0.5))} ms", flush=True)

            warm_up(server.url, provider, 9_000_000)
            api = measure_api(server.url, token)
            turns = measure_turns(
                bot.url, [t for _l, t in generate_messages(120, 5)], 8_000_000, args.in_flight
            )
            print(f"turns: p50 {ms(pct(turns[0], 0.5))} ms, {turns[1]:.1f}/s", flush=True)
            loads.append(round(os.getloadavg()[0], 1))
            rasa_run = run_e2e(
                "rasa",
                server.url,
                provider,
                generate_messages(count, 1),
                6_000_000,
                args.rate,
                probe,
                sessions,
            )
            loads.append(round(os.getloadavg()[0], 1))
            runs.append(rasa_run)
            print(f"rasa run: p95 {ms(pct(rasa_run.latencies(), 0.95))} ms", flush=True)
            analyse_database(rasa_run)
            tracker = analyse_trackers(bot.url, rasa_run, sample=100)

        if args.fallback_only or not args.skip_fallback:
            for previous in (worker, bot_worker):
                if previous is not None:
                    previous.stop()
            flush_redis(redis_url)  # no task of the rasa run may leak into the baseline
            worker = WorkerProcess(
                concurrency=args.concurrency,
                queues="deme",
                env={**worker_env, "DEME_BOT": "fallback"},
            )
            bot_worker = WorkerProcess(
                concurrency=args.bot_threads,
                pool="threads",
                queues="conversation",
                env={**worker_env, "DEME_BOT": "fallback"},
            )
            sessions["worker"] = worker.process.pid
            sessions["bot-worker"] = bot_worker.process.pid
            warm_up(server.url, provider, 9_100_000)
            if args.fallback_only:
                api = measure_api(server.url, token)
            loads.append(round(os.getloadavg()[0], 1))
            fallback_run = run_e2e(
                "fallback",
                server.url,
                provider,
                generate_messages(count, 1),
                7_000_000,
                args.rate,
                probe,
                sessions,
            )
            loads.append(round(os.getloadavg()[0], 1))
            analyse_database(fallback_run)
            runs.append(fallback_run)
        print_report(args, ready, parse, api, turns, runs, tracker, loads)
    finally:
        for process in (worker, bot_worker, bot, server):
            if process is not None:
                try:
                    process.stop()
                except Exception as exc:  # keep cleaning up
                    print(f"warning: stop failed: {exc}", file=sys.stderr)
        provider.stop()
        from core.db import reset_engine_cache

        reset_engine_cache()
        flush_redis(redis_url)
        admin_sql(f'DROP DATABASE IF EXISTS "{DB_NAME}"')


if __name__ == "__main__":
    main()
