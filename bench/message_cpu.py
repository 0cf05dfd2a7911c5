"""Benchmark: CPU and SQL statements per task of one inbound SMS, in one process.

    .venv/bin/python bench/message_cpu.py [--messages 200] [--bot fallback]

The profile behind ``bench/bot_latency.py``'s CPU table, without the noise of a whole stack:
every message is recorded as the webhook records it (``gateway.inbound.record_inbound``,
one new sender each, fr/bm/en texts of bot_latency's generator), then the Celery tasks it
causes are taken off Redis (the same task messages a worker would get) and run in this
process one after the other, each timed with ``time.thread_time`` (this thread's CPU: the
platform's Python side, without the fake provider's thread) and counted in SQL statements.
PostgreSQL's side is measured too: the on-CPU time (``/proc/<pid>/schedstat``, ns) of every
backend connected to the bench database, read before and after each task. Replies go to
the local fake provider (tests/gateway/fake_provider.py) through the Twilio SDK, as in
production. Baseline in the same run: a trivial ``SELECT 1`` round trip on the same engine,
timed the same way — a statement's floor.

Not counted: Celery's own per-task cost in a worker (message decoding, tracing, ack: the
tasks are called directly here), PostgreSQL's shared processes (WAL writer, checkpointer).
``--profile FILE`` writes a cProfile of the measured part (``python -m pstats FILE``).

Only the fallback classifier runs here (``--bot fallback``): a Rasa turn is an HTTP call
whose CPU is Rasa's, measured by bot_latency.py. Needs PostgreSQL and Redis as the tests do;
creates and drops its own database (``deme_bench_msgcpu``) and flushes Redis database 3.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "bench")]

os.environ.setdefault("BENCH_BOT_DB", "deme_bench_msgcpu")

import bot_latency as bl  # noqa: E402  (shares the database set-up and message generator)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=200)
    parser.add_argument("--redis-db", type=int, default=3)
    parser.add_argument("--profile", help="write a cProfile of the measured messages here")
    args = parser.parse_args()

    database_url = bl.PG_ADMIN.rsplit("/", 1)[0] + f"/{bl.DB_NAME}"
    redis_url = f"{bl.REDIS_BASE}/{args.redis_db}"
    bl.configure_environment(database_url, redis_url)
    os.environ["DEME_BOT"] = "fallback"

    from tests.gateway.fake_provider import FakeProvider

    provider = FakeProvider().start()
    try:
        bl.flush_redis(redis_url)
        bl.create_database(database_url, provider.url)
        run(args, redis_url, provider)
    finally:
        provider.stop()
        from core.db import reset_engine_cache

        reset_engine_cache()
        bl.flush_redis(redis_url)
        bl.admin_sql(f'DROP DATABASE IF EXISTS "{bl.DB_NAME}"')


def run(args: argparse.Namespace, redis_url: str, provider: Any) -> None:
    import redis
    from sqlalchemy import event, select, text

    from core.celery_app import ALL_QUEUES, celery_app
    from core.db import get_engine
    from gateway.inbound import InboundSms, publish_inbound, record_inbound
    from models import Channel

    celery_app.loader.import_default_modules()  # the worker's task modules
    client = redis.Redis.from_url(redis_url)
    statements = [0]

    trace: list[str] | None = [] if os.environ.get("BENCH_TRACE_SQL") else None
    checkouts = [0]

    @event.listens_for(get_engine(), "before_cursor_execute")
    def _count(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        statements[0] += 1
        if trace is not None:
            trace.append(" ".join(statement.split())[:150])

    @event.listens_for(get_engine().pool, "checkout")
    def _checkout(*_args: object) -> None:
        checkouts[0] += 1

    # Round trips that are no statement of ours: BEGIN + COMMIT/ROLLBACK per transaction and
    # the pool's pings (SQLAlchemy runs them below its statement events).
    extra = [0]
    dialect = get_engine().dialect
    ping = dialect.do_ping

    def counted_ping(dbapi_connection: object) -> bool:
        extra[0] += 1
        return bool(ping(dbapi_connection))

    dialect.do_ping = counted_ping  # type: ignore[method-assign]

    @event.listens_for(get_engine(), "begin")
    def _begin(*_args: object) -> None:
        extra[0] += 2

    with get_engine().connect() as connection:
        channel_id = connection.execute(select(Channel.id)).scalar_one()

    backends = PostgresBackends(bl.DB_NAME)

    @event.listens_for(get_engine().pool, "connect")
    def _new_backend(*_args: object) -> None:
        backends.stale = True

    cpu: dict[str, float] = defaultdict(float)
    sql: dict[str, int] = defaultdict(int)
    runs: dict[str, int] = defaultdict(int)

    pool: dict[str, int] = defaultdict(int)
    trips: dict[str, int] = defaultdict(int)

    pg_cpu: dict[str, float] = defaultdict(float)

    def timed(name: str, call: object, *call_args: object) -> None:
        pg_before = backends.cpu_seconds()
        before_sql, before, before_pool = statements[0], time.thread_time(), checkouts[0]
        before_extra = extra[0]
        if trace is not None:
            trace.append(f"--- {name}")
        call(*call_args)  # type: ignore[operator]
        cpu[name] += time.thread_time() - before
        pg_cpu[name] += backends.cpu_seconds() - pg_before
        sql[name] += statements[0] - before_sql
        pool[name] += checkouts[0] - before_pool
        trips[name] += statements[0] - before_sql + extra[0] - before_extra
        runs[name] += 1

    def drain() -> None:
        while True:
            raw = None
            for queue in ALL_QUEUES.split(","):
                raw = client.rpop(queue)
                if raw is not None:
                    break
            if raw is None:
                return
            message = json.loads(raw)
            task_args, task_kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            name = message["headers"]["task"]
            task = celery_app.tasks[name]
            timed(name, lambda t=task, a=task_args, k=task_kwargs: t(*a, **k))

    texts = bl.generate_messages(args.messages + 10, seed=1)
    phones = bl.phones(5_000_000, len(texts))
    profiler = None
    for index, ((_lang, body), phone) in enumerate(zip(texts, phones, strict=True)):
        if index == 10:  # warm-up done: pools, caches, imports
            if args.profile:
                import cProfile

                profiler = cProfile.Profile(time.thread_time)
                profiler.enable()
            cpu.clear()
            pg_cpu.clear()
            sql.clear()
            runs.clear()
            pool.clear()
            trips.clear()
            if trace is not None:
                trace.clear()
        if index == 11 and trace is not None:
            print("\n".join(trace))
            trace = None
        sms = InboundSms(
            channel_id=channel_id, provider_id=f"SMbench{index:08d}", sender=phone, text=body
        )
        timed("webhook: record + publish", lambda s=sms: publish_inbound(record_inbound(s)))
        drain()
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(args.profile)

    floor = []
    with get_engine().connect() as connection:
        for _ in range(200):
            before = time.thread_time()
            connection.execute(text("SELECT 1"))
            floor.append(time.thread_time() - before)
    n = args.messages
    print(f"\n## CPU per inbound SMS, in process ({n} messages, DEME_BOT=fallback)\n")
    print(
        "| task | runs/msg | Deme CPU ms/msg | PostgreSQL CPU ms/msg | SQL statements/msg "
        "| connection checkouts/msg | database round trips/msg |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name in sorted(cpu, key=lambda k: -cpu[k]):
        print(
            f"| {name} | {runs[name] / n:.2f} | {cpu[name] / n * 1000:.2f} "
            f"| {pg_cpu[name] / n * 1000:.2f} "
            f"| {sql[name] / n:.1f} | {pool[name] / n:.1f} | {trips[name] / n:.1f} |"
        )
    total_cpu = sum(cpu.values()) / n * 1000
    total_pg = sum(pg_cpu.values()) / n * 1000
    total_sql = sum(sql.values()) / n
    total_pool = sum(pool.values()) / n
    total_trips = sum(trips.values()) / n
    print(
        f"| **total** | | **{total_cpu:.2f}** | **{total_pg:.2f}** | **{total_sql:.1f}** "
        f"| **{total_pool:.1f}** | **{total_trips:.1f}** |"
    )
    print(f"\nDeme + PostgreSQL: **{total_cpu + total_pg:.2f} ms** CPU per message.")
    floor.sort()
    from sqlalchemy import func

    from models import Message, MessageDirection

    with get_engine().connect() as connection:
        statuses = connection.execute(
            select(Message.status, func.count())
            .where(Message.direction == MessageDirection.OUTBOUND)
            .group_by(Message.status)
        ).all()
    summary = ", ".join(f"{status.value} {count}" for status, count in sorted(statuses))
    print(f"\nReplies: {summary}; requests at the fake provider: {len(provider.requests)}.")
    print(f"\nBaseline: `SELECT 1` round trip, median {floor[len(floor) // 2] * 1e6:.0f} µs CPU.")


class PostgresBackends:
    """On-CPU time of the PostgreSQL backends serving one database (same machine): the
    ``postgres: <user> <database> …`` processes, found by their title, read from
    ``/proc/<pid>/schedstat`` (nanoseconds, not ticks). The list is refreshed when the pool
    opens a connection (``stale``); a backend that exited takes its time with it."""

    def __init__(self, database: str) -> None:
        self.marker = f" {database} ".encode()
        self.pids: list[int] = []
        self.stale = True

    def _scan(self) -> None:
        pids = []
        for entry in os.scandir("/proc"):
            if not entry.name.isdigit():
                continue
            try:
                with open(f"/proc/{entry.name}/cmdline", "rb") as handle:
                    title = handle.read()
            except OSError:
                continue
            if title.startswith(b"postgres: ") and self.marker in title:
                pids.append(int(entry.name))
        self.pids = pids
        self.stale = False

    def cpu_seconds(self) -> float:
        if self.stale:
            self._scan()
        total = 0
        for pid in self.pids:
            try:
                with open(f"/proc/{pid}/schedstat", "rb") as handle:
                    total += int(handle.read().split()[0])
            except (OSError, ValueError, IndexError):
                continue
        return total / 1e9


if __name__ == "__main__":
    main()
