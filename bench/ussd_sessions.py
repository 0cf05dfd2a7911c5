"""USSD benchmark: hop latency and throughput of the real app (uvicorn, PostgreSQL, Redis).

    .venv/bin/python bench/ussd_sessions.py [--workers N] [--quick] [--celery N]

1. 200 callers in progress at once, each walking complete paths (help request, registration,
   protection, status) with a 2 s think time between hops, as people type: hop latency p50/p99.
2. 16 connections with no think time: the most hops per second, with p50/p99.

Each scenario is also run against a bare endpoint answering "END ok" (a FastAPI app of this
file, under the same uvicorn settings), which gives the floor of the framework and the client:
the ratio shows what the menu itself costs. Everything runs on 127.0.0.1, in its own database
(``deme_bench_ussd``, dropped at the end) and Redis database (12), with bounded durations.

The load generator is a minimal HTTP/1.1 keep-alive client on asyncio, so that measuring does
not eat the CPU the server needs (an httpx client costs more per request than a hop). Latencies
are reported by hop kind (first hop: contact look-up; navigation; final: the ticket/household
write), client-side and — with one worker — inside the service, from the app's own
``deme_ussd_hop_seconds`` histogram, which separates the app's time from the machine's queueing.

The final hop only *records* a ticket (``tickets.intake.record_ticket``); routing, SLA, surges
and alerts are the worker's (``tickets.process_intake``). By default no worker runs, so the
tables measure the web process alone and compare with earlier runs; ``--celery N`` also runs a
Celery worker (N processes) during the load and reports how long after the load every recorded
ticket had been processed — the proof that nothing is left behind (it competes for the CPU).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import socket
import statistics
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.responses import PlainTextResponse

ROOT = Path(__file__).resolve().parent.parent
ADMIN_URL = os.environ.get(
    "DEME_BENCH_PG_ADMIN_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
DB_NAME = os.environ.get("DEME_BENCH_DB", "deme_bench_ussd")
REDIS_URL = os.environ.get("DEME_BENCH_REDIS_URL", "redis://127.0.0.1:6379/12")
USSD_PATH = "/webhooks/africastalking/ussd"
SERVICE_CODE = "*384*123#"
USSD_TOKEN = "bench-ussd-token"  # every hop authenticates, as a real aggregator's does

# -- the baseline: the cheapest possible USSD answer under the same server --------------------

baseline_app = FastAPI()


@baseline_app.post(USSD_PATH)
async def _baseline(request: Request) -> PlainTextResponse:
    await request.body()
    return PlainTextResponse("END ok")


# -- set-up -----------------------------------------------------------------------------------


def bench_environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEME_")}
    env.update(
        {
            "DEME_ENV": "development",
            "DEME_DATABASE_URL": ADMIN_URL.rsplit("/", 1)[0] + f"/{DB_NAME}",
            "DEME_REDIS_URL": REDIS_URL,
            "DEME_VAR_DIR": str(ROOT / "var" / "bench"),
            "DEME_BOT": "fallback",
            "DEME_LOG_LEVEL": "WARNING",
        }
    )
    return env


def prepare_database(env: dict[str, str]) -> None:
    """A fresh, migrated database with the gazetteer and one Africa's Talking channel."""
    os.environ.update(env)
    sys.path.insert(0, str(ROOT))
    from alembic import command
    from alembic.config import Config
    from sqlalchemy import create_engine, text

    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{DB_NAME}"'))
    admin.dispose()
    config = Config(str(ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(ROOT / "models" / "migrations"))
    config.attributes["database_url"] = env["DEME_DATABASE_URL"]
    config.attributes["configure_logging"] = False
    command.upgrade(config, "head")

    from core.db import reset_engine_cache, session_scope
    from deme.seed import seed_places
    from models.channels import Channel
    from models.enums import ChannelType

    with session_scope() as session:
        seed_places(session, lambda _message: None)
        session.add(
            Channel(
                name="bench-at",
                type=ChannelType.AFRICASTALKING,
                credentials={"ussd_secret": USSD_TOKEN},
                config={"ussd_service_code": SERVICE_CODE},
            )
        )
    reset_engine_cache()
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def drop_database() -> None:
    from sqlalchemy import create_engine, text

    from core.db import reset_engine_cache

    reset_engine_cache()
    admin = create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{DB_NAME}" WITH (FORCE)'))
    admin.dispose()
    import redis

    redis.Redis.from_url(REDIS_URL).flushdb()


def count_records() -> tuple[int, int, int]:
    """Tickets, of which processed by the worker (routed, SLA set), and households."""
    from sqlalchemy import func, select

    from core.db import session_scope
    from models.contacts import Household
    from models.tickets import Ticket

    with session_scope() as session:
        tickets = session.scalar(select(func.count()).select_from(Ticket)) or 0
        processed = (
            session.scalar(
                select(func.count()).select_from(Ticket).where(Ticket.triaged_at.is_not(None))
            )
            or 0
        )
        households = session.scalar(select(func.count()).select_from(Household)) or 0
    return tickets, processed, households


class CeleryWorker:
    """The project's Celery worker on the bench's database and Redis (``--celery N``)."""

    def __init__(self, env: dict[str, str], concurrency: int) -> None:
        command = [
            sys.executable, "-m", "celery", "-A", "core.celery_app:celery_app", "worker",
            "--pool=prefork", f"--concurrency={concurrency}", "--without-gossip",
            "--without-mingle", "--loglevel=WARNING", f"--hostname=bench-{uuid.uuid4().hex[:6]}@%h",
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command,
            env=env,
            cwd=ROOT,
            start_new_session=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


def wait_processed(timeout: float) -> float | None:
    """Seconds until every recorded ticket has been processed, or None on timeout."""
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        tickets, processed, _ = count_records()
        if tickets == processed:
            return time.monotonic() - started
        time.sleep(0.5)
    return None


class Server:
    def __init__(self, app: str, env: dict[str, str], workers: int, app_dir: Path) -> None:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = int(probe.getsockname()[1])
        command = [
            sys.executable, "-m", "uvicorn", app, "--host", "127.0.0.1",
            "--port", str(self.port), "--workers", str(workers), "--log-level", "warning",
            "--no-access-log", "--app-dir", str(app_dir),
        ]  # fmt: skip
        if app.endswith("create_app"):
            command.append("--factory")
        self.process = subprocess.Popen(command, env=env, cwd=ROOT, start_new_session=True)
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"{app} exited early")
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    time.sleep(0.5 * workers)  # let every worker finish importing
                    return
            except OSError:
                time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"{app} did not start")

    def stop(self) -> None:
        import signal

        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=15)


# -- load -------------------------------------------------------------------------------------


class Connection:
    """One keep-alive HTTP/1.1 connection; enough protocol for form POSTs to uvicorn."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, form: dict[str, str]) -> tuple[int, str]:
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        body = urlencode(form).encode()
        self.writer.write(
            (
                f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                "Content-Type: application/x-www-form-urlencoded\r\n"
                f"X-Deme-Token: {USSD_TOKEN}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n"
            ).encode()
            + body
        )
        status = int((await self.reader.readline()).split()[1])
        length = 0
        while True:
            line = await self.reader.readline()
            if line in (b"\r\n", b""):
                break
            name, _, value = line.decode("latin-1").partition(":")
            if name.lower() == "content-length":
                length = int(value)
        return status, (await self.reader.readexactly(length)).decode()

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@dataclass
class Result:
    # (kind, seconds): kind is "first" (contact look-up), "nav" or "final" (the write).
    samples: list[tuple[str, float]] = field(default_factory=list)
    errors: int = 0
    walks: int = 0
    elapsed: float = 0.0
    unexpected: list[str] = field(default_factory=list)

    def error(self, answer: str) -> None:
        self.errors += 1
        if len(self.unexpected) < 5:
            self.unexpected.append(answer[:80])

    def rows(self, name: str, *, by_kind: bool) -> list[str]:
        lines = [self._row(name, [s for _, s in self.samples], errors=True)]
        if by_kind:
            for kind, label in (
                ("nav", "navigation hops"),
                ("first", "first hop (contact look-up)"),
                ("final", "final hop (ticket/household write)"),
            ):
                lines.append(self._row(f"  ↳ {label}", [s for k, s in self.samples if k == kind]))
        return lines

    def _row(self, name: str, latencies: list[float], *, errors: bool = False) -> str:
        ordered = sorted(latencies)
        if not ordered:
            return f"| {name} | 0 | – | – | – | – | – | – |"

        def pct(q: float) -> float:
            return ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000

        return (
            f"| {name} | {len(ordered)} | {len(ordered) / self.elapsed:,.0f} | "
            f"{statistics.median(ordered) * 1000:.1f} | {pct(0.99):.1f} | "
            f"{ordered[-1] * 1000:.1f} | {self.errors if errors else ''} | "
            f"{self.walks if errors else ''} |"
        )


TYPED_PLACES = ["Sevare", "tbk", "commune 6", "Kati", "Gao", "Bourem", "Djenne", "Kayes"]


def walk_inputs(rng: random.Random, *, complete: bool) -> list[str]:
    """One path from the main menu. Complete paths end in a help request, a registration, a
    protection report or the status list; the others browse (lists, pages, back, typed names,
    a wrong key) and hang up before sending, as many real callers do."""
    size = str(rng.randint(1, 15))
    if not complete:
        return [
            "2", rng.choice("123"), "1", "9", rng.choice("12345"), "0", "9", "9", "0", "0",
            "0", "2", rng.choice(TYPED_PLACES), "2", "7", "00",
        ]  # fmt: skip
    draw = rng.random()
    if draw < 0.5:
        return ["2", rng.choice("123"), "2", rng.choice(TYPED_PLACES), "1", size, "1"]
    if draw < 0.75:
        return ["1", "1", "9", "5", rng.choice("12345"), size, "1"]  # Mopti page, a cercle
    if draw < 0.9:
        return ["3", "1", rng.choice("123")]
    return ["4"]


async def caller(
    port: int,
    number: str,
    think: float,
    deadline: float,
    result: Result,
    seed: int,
    complete: bool,
) -> None:
    rng = random.Random(seed)
    connection = Connection(port)
    knows_language = False
    await asyncio.sleep(rng.uniform(0, think))  # callers do not all dial in the same second
    try:
        while time.monotonic() < deadline:
            inputs = walk_inputs(rng, complete=complete)
            if not knows_language:
                inputs = [rng.choice("123"), *inputs]
            form = {
                "sessionId": "bench_" + uuid.uuid4().hex,
                "serviceCode": SERVICE_CODE,
                "phoneNumber": number,
                "networkCode": "61001",
                "text": "",
            }
            path: list[str] = []
            answer = ""
            for position in range(len(inputs) + 1):
                if position:
                    if think:
                        await asyncio.sleep(think * rng.uniform(0.9, 1.1))
                    if time.monotonic() >= deadline:
                        break
                    path.append(inputs[position - 1])
                    form["text"] = "*".join(path)
                started = time.perf_counter()
                status, answer = await connection.post(USSD_PATH, form)
                elapsed = time.perf_counter() - started
                kind = "first" if position == 0 else "nav"
                if complete and position == len(inputs):
                    kind = "final"
                result.samples.append((kind, elapsed))
                if status != 200 or not answer.startswith(("CON ", "END ")):
                    result.error(f"{status} {answer}")
            else:
                knows_language = True
                result.walks += 1
                if complete and not answer.startswith("END"):
                    result.error(answer)
    finally:
        connection.close()


async def run_load(
    port: int, callers: int, think: float, seconds: float, salt: int, complete: bool
) -> Result:
    result = Result()
    started = time.monotonic()
    deadline = started + seconds
    await asyncio.gather(
        *(
            caller(
                port,
                f"+2237{salt}{i:06d}",
                think,
                deadline,
                result,
                seed=salt * 10_000 + i,
                complete=complete,
            )
            for i in range(callers)
        )
    )
    result.elapsed = time.monotonic() - started
    return result


def scenario(
    port: int, callers: int, think: float, seconds: float, salt: int, *, complete: bool = True
) -> Result:
    return asyncio.run(run_load(port, callers, think, seconds, salt, complete))


Buckets = dict[tuple[str, float], float]


def scrape_hop_histogram(port: int) -> Buckets:
    """Cumulative bucket counts of ``deme_ussd_hop_seconds`` (time inside the service)."""
    import re
    from urllib.request import urlopen

    with urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as response:
        text = response.read().decode()
    found: Buckets = {}
    pattern = r'^deme_ussd_hop_seconds_bucket\{kind="(\w+)",le="([^"]+)"\} ([0-9.e+]+)$'
    for kind, le, value in re.findall(pattern, text, flags=re.MULTILINE):
        found[(kind, float(le))] = float(value)
    return found


def app_time_rows(name: str, before: Buckets, after: Buckets) -> list[str]:
    """p50/p99 upper bounds per hop kind from the histogram's growth during a scenario."""
    rows = []
    for kind in ("nav", "first", "final"):
        edges = sorted(le for k, le in after if k == kind)
        counts = [after[(kind, le)] - before.get((kind, le), 0.0) for le in edges]
        total = counts[-1] if counts else 0.0
        if not total:
            continue

        def bound(
            q: float, edges: list[float] = edges, counts: list[float] = counts, total: float = total
        ) -> str:
            for le, count in zip(edges, counts, strict=True):
                if count >= q * total:
                    return "> 1000" if le == float("inf") else f"≤ {le * 1000:g}"
            return "?"

        under5 = next((c for le, c in zip(edges, counts, strict=True) if le >= 0.005), total)
        rows.append(
            f"| {name}: {kind} | {total:.0f} | {bound(0.5)} | {bound(0.99)} | "
            f"{under5 / total:.0%} |"
        )
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=1, help="uvicorn workers (default 1)")
    parser.add_argument("--quick", action="store_true", help="short runs (a smoke test)")
    parser.add_argument(
        "--celery",
        type=int,
        default=0,
        metavar="N",
        help="also run a Celery worker of N processes and wait for it to process every ticket",
    )
    args = parser.parse_args()
    think_seconds, busy_seconds = (10.0, 4.0) if args.quick else (40.0, 12.0)

    env = bench_environment()
    prepare_database(env)
    rows: list[str] = []
    worker = CeleryWorker(env, args.celery) if args.celery else None
    drained: float | None = None
    try:
        server = Server("deme.app:create_app", env, args.workers, ROOT)
        try:
            scenario(server.port, 16, 0.0, 2.0, salt=9)  # warm caches and connection pools
            # With one worker /metrics sees every hop; with several, only one worker's share.
            marks = [scrape_hop_histogram(server.port)]
            thinking = scenario(server.port, 200, 2.0, think_seconds, salt=6)
            marks.append(scrape_hop_histogram(server.port))
            browsing = scenario(server.port, 16, 0.0, busy_seconds, salt=5, complete=False)
            marks.append(scrape_hop_histogram(server.port))
            busy = scenario(server.port, 16, 0.0, busy_seconds, salt=8)
            marks.append(scrape_hop_histogram(server.port))
        finally:
            server.stop()
        if worker is not None:
            drained = wait_processed(timeout=300)
            worker.stop()
            worker = None
        tickets, processed, households = count_records()
        server = Server("ussd_sessions:baseline_app", env, args.workers, ROOT / "bench")
        try:
            base_thinking = scenario(server.port, 200, 2.0, min(think_seconds, 12.0), salt=4)
            base_busy = scenario(server.port, 16, 0.0, busy_seconds, salt=3)
        finally:
            server.stop()
    finally:
        if worker is not None:
            worker.stop()
        drop_database()

    rows += thinking.rows("Deme: 200 sessions in progress, 2 s think, complete paths", by_kind=True)
    rows += base_thinking.rows("baseline END ok: 200 sessions, 2 s think", by_kind=False)
    rows += browsing.rows("Deme: 16 connections, no think, browsing (no writes)", by_kind=False)
    rows += busy.rows("Deme: 16 connections, no think, complete paths", by_kind=True)
    rows += base_busy.rows("baseline END ok: 16 connections, no think", by_kind=False)

    def rate(result: Result) -> float:
        return len(result.samples) / result.elapsed

    print(f"\n### USSD hops — uvicorn --workers {args.workers}, {os.cpu_count()} CPUs\n")
    print("| scenario | hops | hops/s | p50 ms | p99 ms | max ms | errors | walks |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for row in rows:
        print(row)
    print(
        f"\nAt 16 connections Deme answers {rate(browsing) / rate(base_busy):.0%} of the bare "
        f"endpoint's hops/s when browsing, {rate(busy) / rate(base_busy):.0%} on complete "
        f"paths. Written: {tickets} tickets ({processed} processed by a worker), "
        f"{households} households. Load average at the end: {os.getloadavg()[0]:.1f}."
    )
    if args.celery:
        print(
            "Celery worker: every ticket processed "
            + (
                f"{drained:.1f} s after the load ended."
                if drained is not None
                else "— NOT within 300 s."
            )
        )
    if args.workers == 1:  # with several workers each scrape sees a different process
        print("\n#### Time inside the USSD service per hop (deme_ussd_hop_seconds)\n")
        print("| scenario: hop kind | hops | p50 ms | p99 ms | ≤ 5 ms |")
        print("|---|---:|---:|---:|---:|")
        for name, before, after in (
            ("200 sessions, 2 s think", marks[0], marks[1]),
            ("16 connections, browsing", marks[1], marks[2]),
            ("16 connections, complete paths", marks[2], marks[3]),
        ):
            for row in app_time_rows(name, before, after):
                print(row)
    for result in (thinking, browsing, busy):
        for answer in result.unexpected:
            print(f"unexpected answer: {answer!r}")


if __name__ == "__main__":
    main()
