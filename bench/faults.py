"""Fault harness: ``deme run`` under the faults of issue 17, on both deployments.

    .venv/bin/python bench/faults.py [--deployment embedded|pg|both] [--freeze-seconds 15]

Embedded: SQLite + the embedded Valkey broker (core.broker) under a temporary var/. PG:
PostgreSQL on 127.0.0.1:5432 (database ``deme_bench_faults``, recreated) reached through a
TCP proxy in this script, Redis database 6 on 127.0.0.1:6379 (flushed). Loopback only; each
experiment is bounded (about 2 minutes per deployment).

1. worker SIGKILL: /healthz probed on fresh connections throughout; web never down, the
   worker back (a new process) within 5 s.
2. graceful restart under load: SIGHUP to ``deme run`` while signed SMS arrive at 20/s and 4
   clients probe /healthz; 0 refused, every webhook answered 200.
3. frozen database for ``--freeze-seconds``: PG — the proxy forwards nothing (neither answers
   nor refuses); SQLite — another process holds an exclusive write lock. Signed Twilio
   webhooks from 4 clients: every answer 200, p99 ≤ 1 s; after the thaw the beat's spool
   replay stores every message (counted in the database).
4. database stopped under load (``--outage-seconds``, default 10): signed Twilio SMS at
   5 msg/s through ``deme run --bot fallback``, whose replies go through the Twilio channel to
   the fake provider (tests/gateway/fake_provider.py, in this process; the channel's
   ``api_base_url`` points at it). PG — the proxy's ``cut()`` (connections dropped, new ones
   refused) then ``restore()``; SQLite — an exclusive write lock held by another process.
   Per inbound message: exactly one reply at the provider, stored once; the last reply's
   delay after the fault ended (target ≤ 60 s; 0 lost, 0 duplicated, 0 double replies).
5. Broker killed under load. PG: the deployment's broker is a private redis-server
   started here (``--save "" --appendonly no``), SIGKILLed mid-run and started again on the
   same port 3 s later (n/a when redis-server is not on PATH). Embedded: the Valkey child of
   ``deme run`` SIGKILLed; its supervisor restarts it from the append-only file. Same
   measurement.
6. provider failing for ~15 s under load: 5xx for half of it (every other one *after*
   accepting the message, which Twilio's Messages list then shows), read timeouts for the
   rest (the channel's ``timeout_seconds`` is 2 s, the fake hangs 3 s). Every reply that
   ended unknown must be reconciled (Twilio look-up) or listed by the console's "delivery
   unknown" query (``gateway.delivery.unresolved()``, what /delivery-unknown shows). To keep
   the run short the bench calls ``gateway.delivery.reconcile_unknown()`` itself once the
   replies have settled instead of waiting for the beat's minute. Also inbound-to-reply
   (first provider request) p95 before and during the failure (informative).
7. ``deme run`` SIGKILL: no child left alive; the next ``deme run`` on the same var/ and
   port starts.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tests.core.test_runner import Prober, _alive, _children  # noqa: E402
from tests.gateway import fake_provider as fp  # noqa: E402
from tests.gateway.gateway_helpers import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    OUR_NUMBER,
    RedisServer,
    TcpProxy,
    message_sid,
    signed,
    twilio_sms_form,
)

DEME = str(ROOT / ".venv" / "bin" / "deme")
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
# Overridable, so that two engineers can run the harness on one PostgreSQL / Redis at once.
PG_DB = os.environ.get("BENCH_FAULTS_DB", "deme_bench_faults")
REDIS_URL = os.environ.get("BENCH_FAULTS_REDIS_URL", "redis://127.0.0.1:6379/6")

CREATE_CHANNEL = f"""
import sys
from core.db import session_scope
from models import Channel, ChannelType
with session_scope() as s:
    s.add(Channel(name="bench-twilio", type=ChannelType.TWILIO, address={OUR_NUMBER!r},
        credentials={{"account_sid": {ACCOUNT_SID!r}, "auth_token": {AUTH_TOKEN!r}}},
        config={{"api_base_url": sys.argv[1], "timeout_seconds": 2}}))
"""
INBOUND_SIDS = """
import json
from sqlalchemy import select
from core.db import session_scope
from models import Message, MessageDirection
with session_scope() as s:
    print(json.dumps(list(s.scalars(select(Message.provider_id).where(
        Message.direction == MessageDirection.INBOUND)))))
"""
UNKNOWN_REPLIES = """
import json, sys
from datetime import timezone
from sqlalchemy import select
from core.db import session_scope
from gateway.delivery import reconcile_unknown, unresolved
from models import Contact, Message, MessageDirection, MessageStatus
since = float(sys.argv[1])
looked, resolved = reconcile_unknown(limit=10000)
with session_scope() as s:
    rows = s.execute(select(Message.id, Message.status, Message.provider_id,
        Message.reconciled_at, Message.contact_id, Message.send_started_at).where(
        Message.direction == MessageDirection.OUTBOUND)).all()
    listed = set(s.scalars(select(Message.id).where(*unresolved())))
    phones = {c.id: c.phone for c in s.scalars(select(Contact))}
out = []
for mid, status, pid, rec, cid, started in rows:
    if started is None:
        continue
    if started.tzinfo is None:
        started = started.replace(tzinfo=timezone.utc)
    if started.timestamp() < since:
        continue
    if status == MessageStatus.UNKNOWN or rec is not None:
        out.append({"id": mid, "to": phones.get(cid), "status": status.value,
            "reconciled": pid is not None and status != MessageStatus.UNKNOWN,
            "listed": mid in listed})
print(json.dumps({"looked": looked, "resolved": resolved, "unknown": out}))
"""
COUNT_INBOUND = """
from sqlalchemy import func, select
from core.db import session_scope
from models import Message, MessageDirection
with session_scope() as s:
    print(s.scalar(select(func.count(Message.id)).where(
        Message.direction == MessageDirection.INBOUND)))
"""


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _python(env: dict[str, str], script: str, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script, *args], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout.strip()


def deployment_env(var: Path, port: int, bot: str = "fallback") -> dict[str, str]:
    """The environment of a bench's ``deme run``: this process's, without any DEME_* of the
    developer's, pointed at its own var/ and port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEME_")}
    env.update(
        {
            "DEME_VAR_DIR": str(var),
            "DEME_PORT": str(port),
            "DEME_PUBLIC_URL": "https://deme.test",
            "DEME_BOT": bot,
        }
    )
    return env


def recreate_pg_database(admin_url: str, name: str) -> None:
    from sqlalchemy import create_engine, text

    admin = create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as c:
        c.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        c.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()


def server_broker(fallback_url: str) -> tuple[str, RedisServer | None]:
    """A private redis-server (one the bench may kill) when installed, else the shared
    Redis's ``fallback_url`` database, flushed. Returns its URL and the server to stop."""
    if shutil.which("redis-server"):
        server = RedisServer().start()
        return server.url, server
    import redis

    redis.Redis.from_url(fallback_url).flushdb()
    return fallback_url, None


class Run:
    def __init__(self, env: dict[str, str], port: int, log: Path, bot: str = "fallback") -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [DEME, "run", "--bot", bot],
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"deme run exited; see {log}")
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200 and set(
                    _children(self.process.pid)
                ) >= {"web", "worker", "beat"}:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.3)
        raise RuntimeError(f"deme run did not come up; see {log}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)


def worker_kill(run: Run) -> dict[str, str]:
    before = _children(run.process.pid)
    with Prober(run.url) as prober:
        started = time.monotonic()
        os.kill(before["worker"], signal.SIGKILL)
        back = None
        while time.monotonic() - started < 15:
            pid = _children(run.process.pid).get("worker")
            if pid not in (None, before["worker"]):
                back = time.monotonic() - started
                break
            time.sleep(0.05)
        time.sleep(0.5)
    return {
        "web failures": str(len(prober.failures)),
        "probes ok": str(prober.ok),
        "worker back after": f"{back:.1f} s" if back is not None else "never (15 s)",
    }


def _codes(codes: list[int]) -> str:
    """How many, and which (0: no HTTP answer — refused or reset)."""
    if not codes:
        return "0"
    return f"{len(codes)} (" + ", ".join(f"{c}×{codes.count(c)}" for c in sorted(set(codes))) + ")"


RESTART_RATE = 20.0  # signed SMS per second during the graceful restart (issue 17's figure)


def graceful_restart(run: Run) -> dict[str, str]:
    """SIGHUP to ``deme run`` while signed SMS arrive at RESTART_RATE and 4 clients probe
    /healthz on fresh connections: no refused connection, no webhook answered other than 200."""
    old = _children(run.process.pid)["web"]
    probers = [Prober(run.url) for _ in range(4)]
    for p in probers:
        p.__enter__()
    with Load(run, "+2237760", 12.0, rate=RESTART_RATE) as load:
        time.sleep(2)
        run.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and _alive(old):
            time.sleep(0.1)
        load.join()
    time.sleep(0.5)
    for p in probers:
        p.__exit__()
    failures = [f for p in probers for f in p.failures]
    return {
        f"webhooks at {RESTART_RATE:g}/s": str(len(load.sent)),
        "webhooks non-200": _codes([code for *_, code in load.sent if code != 200]),
        "probes refused/failed": str(len(failures))
        + (f" ({', '.join(sorted(set(failures)))})" if failures else ""),
        "probes ok": str(sum(p.ok for p in probers)),
        "web replaced": str(not _alive(old)),
    }


def frozen_database(
    run: Run, env: dict[str, str], freeze: float, freeze_on: object, thaw: object
) -> dict[str, str]:
    client = httpx.Client(base_url=run.url, timeout=30)
    warm = twilio_sms_form("+22376120000", "warm")
    body, headers = signed("/webhooks/twilio/sms", warm)
    assert client.post("/webhooks/twilio/sms", content=body, headers=headers).status_code == 200
    freeze_on()  # type: ignore[operator]
    latencies: list[float] = []
    codes: list[int] = []
    lock = threading.Lock()
    stop_at = time.monotonic() + freeze

    def sender(n: int) -> None:
        i = 0
        while time.monotonic() < stop_at:
            form = twilio_sms_form(f"+2237612{n:02d}{i % 100:02d}", f"frozen {n}-{i}")
            body, headers = signed("/webhooks/twilio/sms", form)
            started = time.monotonic()
            try:
                code = client.post("/webhooks/twilio/sms", content=body, headers=headers)
                status = code.status_code
            except httpx.HTTPError:
                status = 0
            with lock:
                latencies.append(time.monotonic() - started)
                codes.append(status)
            i += 1
            time.sleep(0.05)

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    thaw()  # type: ignore[operator]
    sent = len(codes) + 1
    deadline = time.monotonic() + 60
    stored = 0
    while time.monotonic() < deadline:
        stored = int(_python(env, COUNT_INBOUND) or 0)
        if stored >= sent:
            break
        time.sleep(2)
    latencies.sort()
    p99 = latencies[max(int(len(latencies) * 0.99) - 1, 0)]
    return {
        "webhooks": str(len(codes)),
        "non-200": str(sum(1 for c in codes if c != 200)),
        "p50": f"{statistics.median(latencies) * 1000:.0f} ms",
        "p99": f"{p99 * 1000:.0f} ms",
        "max": f"{latencies[-1] * 1000:.0f} ms",
        "stored after replay": f"{stored}/{sent}",
    }


RATE = 5.0  # inbound SMS per second in the load experiments


class Load:
    """Signed Twilio SMS at RATE msg/s, one new sender number each, for ``seconds``; every post
    in its own thread so that a slow answer does not slow the rate."""

    def __init__(self, run: Run, prefix: str, seconds: float, rate: float | None = None) -> None:
        self.run = run
        self.prefix = prefix
        self.seconds = seconds
        self.rate = rate or RATE
        self.sent: list[tuple[str, str, float, int]] = []  # sender, sid, posted at, status
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._drive, daemon=True)
        self.started = time.time()

    def __enter__(self) -> Load:
        self.started = time.time()
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.join()

    def join(self) -> None:
        self._thread.join()

    def _post(self, client: httpx.Client, i: int) -> None:
        sender = f"{self.prefix}{i:04d}"
        sid = message_sid()
        form = twilio_sms_form(sender, f"Nous avons besoin d'eau potable a Mopti, famille {i}", sid)
        body, headers = signed("/webhooks/twilio/sms", form)
        posted = time.time()
        try:
            status = client.post("/webhooks/twilio/sms", content=body, headers=headers).status_code
        except httpx.HTTPError:
            status = 0
        with self._lock:
            self.sent.append((sender, sid, posted, status))

    def _drive(self) -> None:
        client = httpx.Client(base_url=self.run.url, timeout=20)
        count = int(self.seconds * self.rate)
        with ThreadPoolExecutor(32) as pool:
            for i in range(count):
                delay = self.started + i / self.rate - time.time()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._post, client, i)
        client.close()


def _replies(fake: fp.FakeProvider, senders: set[str]) -> dict[str, list[fp.Recorded]]:
    found: dict[str, list[fp.Recorded]] = {s: [] for s in senders}
    for r in fake.sent("twilio"):
        if r.form.get("To") in found:
            found[r.form["To"]].append(r)
    return found


def _settled_replies(
    fake: fp.FakeProvider, senders: set[str], *, settle_seconds: float
) -> dict[str, list[fp.Recorded]]:
    """Wait (at most 90 s) until every sender has a reply, then ``settle_seconds`` more to
    catch late duplicates; the replies per sender."""
    deadline = time.time() + 90
    while time.time() < deadline and not all(_replies(fake, senders).values()):
        time.sleep(1)
    time.sleep(settle_seconds)
    return _replies(fake, senders)


def _p95(values: list[float]) -> str:
    if not values:
        return "-"
    values = sorted(values)
    return f"{values[max(int(len(values) * 0.95) - 1, 0)]:.1f} s"


def load_under_fault(
    run: Run,
    env: dict[str, str],
    fake: fp.FakeProvider,
    prefix: str,
    fault_seconds: float,
    fault_on: object,
    fault_off: object,
) -> dict[str, str]:
    """5 s of load, the fault for ``fault_seconds`` under load, 5 s more; then up to 90 s for
    the replies, and 5 s more to catch late duplicates."""
    with Load(run, prefix, 10 + fault_seconds) as load:
        time.sleep(5)
        fault_on()  # type: ignore[operator]
        time.sleep(fault_seconds)
        fault_off()  # type: ignore[operator]
        ended = time.time()
        load.join()
    senders = {s for s, *_ in load.sent}
    replies = _settled_replies(fake, senders, settle_seconds=5)
    ok = [r for rs in replies.values() for r in rs if r.outcome == fp.OK]
    last = max((r.at for r in ok), default=None)
    sids = [sid for _, sid, _, _ in load.sent]
    stored = json.loads(_python(env, INBOUND_SIDS))
    wanted = set(sids)
    stored_ours = [x for x in stored if x in wanted]
    return {
        "inbound": str(len(load.sent)),
        "non-200": str(sum(1 for *_, c in load.sent if c != 200)),
        "stored": f"{len(set(stored_ours))}/{len(sids)}",
        "duplicated inbound": str(len(stored_ours) - len(set(stored_ours))),
        "without reply": str(sum(1 for rs in replies.values() if not rs)),
        "double replies": str(sum(1 for rs in replies.values() if len(rs) > 1)),
        "last reply after fault end": f"{last - ended:.1f} s" if last else "-",
    }


def provider_failure(
    run: Run, env: dict[str, str], fake: fp.FakeProvider, seconds: float
) -> dict[str, str]:
    """5xx (every other one after accepting the message) then read timeouts, under load."""
    mode = [fp.OK]
    flip = [0]

    def next_outcome() -> str:
        if mode[0] == fp.SERVER_ERROR:
            flip[0] += 1
            return fp.ACCEPTED_THEN_500 if flip[0] % 2 else fp.SERVER_ERROR
        return mode[0]

    fake.hang_seconds = 3.0
    fake._next = next_outcome  # type: ignore[method-assign]
    since = time.time()
    with Load(run, "+2237790", 10 + seconds) as load:
        time.sleep(5)
        fault_start = time.time()
        mode[0] = fp.SERVER_ERROR
        time.sleep(seconds / 2)
        mode[0] = fp.HANG
        time.sleep(seconds / 2)
        mode[0] = fp.OK
        fault_end = time.time()
        load.join()
    senders = {s for s, *_ in load.sent}
    # 8 s: the last timeouts (2 s) and their UNKNOWN records.
    replies = _settled_replies(fake, senders, settle_seconds=8)
    outcome = json.loads(_python(env, UNKNOWN_REPLIES, str(since)))
    unknown = [u for u in outcome["unknown"] if u["to"] in senders]
    covered = [u for u in unknown if u["reconciled"] or u["listed"]]
    before, during = [], []
    for sender, _, posted, _ in load.sent:
        if replies[sender]:
            delay = min(r.at for r in replies[sender]) - posted
            if posted < fault_start:
                before.append(delay)
            elif posted < fault_end:
                during.append(delay)
    outcomes: dict[str, int] = {}
    for rs in replies.values():
        for r in rs:
            outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return {
        "inbound": str(len(load.sent)),
        "provider requests": ", ".join(f"{k} {v}" for k, v in sorted(outcomes.items())),
        "without any send": str(sum(1 for rs in replies.values() if not rs)),
        "sent twice": str(sum(1 for rs in replies.values() if len(rs) > 1)),
        "ended unknown": str(len(unknown)),
        "reconciled": str(sum(1 for u in unknown if u["reconciled"])),
        "listed": str(sum(1 for u in unknown if u["listed"] and not u["reconciled"])),
        "covered": f"{len(covered)}/{len(unknown)}",
        "inbound→reply p95 before": _p95(before),
        "during": _p95(during),
    }


def broker_kill(run: Run, env: dict[str, str], fake: fp.FakeProvider) -> dict[str, str]:
    """Embedded: the Valkey child SIGKILLed under load; ``deme run`` restarts it from its
    append-only file. Tasks in its last second may be gone; the database sweeps find them."""

    def kill() -> None:
        pid = _children(run.process.pid).get("broker")
        if pid is not None:
            os.kill(pid, signal.SIGKILL)

    def back() -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "broker" not in _children(run.process.pid):
            time.sleep(0.2)

    return load_under_fault(run, env, fake, "+2237750", 1.0, kill, back)


def parent_kill(run: Run, env: dict[str, str], log: Path) -> dict[str, str]:
    children = _children(run.process.pid)
    os.kill(run.process.pid, signal.SIGKILL)
    run.process.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(p) for p in children.values()):
        time.sleep(0.2)
    orphans = [name for name, pid in children.items() if _alive(pid)]
    try:
        again = Run(env, run.port, log)
        restarted = "yes"
        again.stop()
    except RuntimeError as exc:
        restarted = f"no: {exc}"
    return {"orphans": ",".join(orphans) or "0", "next deme run": restarted}


def deployment(
    name: str, freeze: float, outage: float, work: Path, load_only: bool = False
) -> list[tuple[str, str, dict[str, str]]]:
    var = work / name / "var"
    var.mkdir(parents=True)
    port = _free_port()
    env = deployment_env(var, port)
    proxy: TcpProxy | None = None
    private_redis: RedisServer | None = None
    holder: list[sqlite3.Connection] = []
    fake = fp.FakeProvider().start()
    if name == "pg":
        recreate_pg_database(PG_ADMIN, PG_DB)
        proxy = TcpProxy(5432)
        env["DEME_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{PG_DB}"
        # A private broker is one this bench may kill and restart.
        env["DEME_REDIS_URL"], private_redis = server_broker(REDIS_URL)
    subprocess.run([DEME, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    _python(env, CREATE_CHANNEL, fake.url)
    log = work / name / "deme-run.log"

    def freeze_on() -> None:
        if proxy is not None:
            proxy.freeze()
        else:
            connection = sqlite3.connect(var / "deme.sqlite3", timeout=1, isolation_level=None)
            connection.execute("BEGIN EXCLUSIVE")
            holder.append(connection)

    def thaw() -> None:
        if proxy is not None:
            proxy.thaw()
        for connection in holder:
            connection.execute("ROLLBACK")
            connection.close()
        holder.clear()

    def stop_database() -> None:
        if proxy is not None:
            proxy.cut()
        else:
            freeze_on()

    def start_database() -> None:
        if proxy is not None:
            proxy.restore()
        else:
            thaw()

    def redis_restart() -> dict[str, str]:
        if private_redis is None:
            return {"result": "n/a (no redis-server on PATH)"}

        def kill() -> None:
            private_redis.kill()

        def start() -> None:
            private_redis.start()

        return load_under_fault(run, env, fake, "+2237780", 3.0, kill, start)

    rows: list[tuple[str, str, dict[str, str]]] = []
    run = Run(env, port, log)
    try:
        if not load_only:
            rows.append((name, "worker SIGKILL", worker_kill(run)))
            rows.append((name, "SIGHUP restart under load", graceful_restart(run)))
            rows.append(
                (
                    name,
                    f"database frozen {freeze:.0f} s",
                    frozen_database(run, env, freeze, freeze_on, thaw),
                )
            )
        rows.append(
            (
                name,
                f"database stopped {outage:.0f} s under {RATE:g} msg/s",
                load_under_fault(run, env, fake, "+2237770", outage, stop_database, start_database),
            )
        )
        if name == "pg":
            rows.append((name, f"Redis SIGKILL + restart under {RATE:g} msg/s", redis_restart()))
        else:
            rows.append(
                (name, f"embedded broker SIGKILL under {RATE:g} msg/s", broker_kill(run, env, fake))
            )
        rows.append(
            (
                name,
                f"provider 5xx then timeouts 15 s under {RATE:g} msg/s",
                provider_failure(run, env, fake, 15.0),
            )
        )
        rows.append((name, "deme run SIGKILL", parent_kill(run, env, log)))
    finally:
        run.stop()
        if proxy is not None:
            proxy.close()
        if private_redis is not None:
            private_redis.kill()
        fake.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployment", choices=["embedded", "pg", "both"], default="both")
    parser.add_argument("--freeze-seconds", type=float, default=15.0)
    parser.add_argument("--outage-seconds", type=float, default=10.0)
    parser.add_argument("--load-only", action="store_true", help="only experiments 4 to 6")
    parser.add_argument("--rate", type=float, default=5.0, help="inbound SMS/s under load")
    parser.add_argument("--keep", type=Path, help="keep var/ and deme-run.log under this dir")
    args = parser.parse_args()
    global RATE
    RATE = args.rate
    names = ["embedded", "pg"] if args.deployment == "both" else [args.deployment]
    rows: list[tuple[str, str, dict[str, str]]] = []
    with tempfile.TemporaryDirectory(prefix="deme-faults-") as scratch:
        work = args.keep or scratch
        for name in names:
            rows += deployment(
                name, args.freeze_seconds, args.outage_seconds, Path(work), args.load_only
            )
    print(f"Fault harness, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n")
    print("| deployment | experiment | result |")
    print("|---|---|---|")
    for name, experiment, result in rows:
        print(
            f"| {name} | {experiment} | " + "; ".join(f"{k}: {v}" for k, v in result.items()) + " |"
        )


if __name__ == "__main__":
    main()
