"""Fault harness: ``deme run`` under the faults of issue 17, on both deployments.

    .venv/bin/python bench/faults.py [--deployment embedded|pg|both] [--freeze-seconds 15]

Embedded: SQLite + Kombu filesystem broker under a temporary var/. PG: PostgreSQL on
127.0.0.1:5432 (database ``deme_bench_faults``, recreated) reached through a TCP proxy in
this script, Redis database 6 on 127.0.0.1:6379 (flushed). Loopback only; each experiment
is bounded (about 2 minutes per deployment).

1. worker SIGKILL: /healthz probed on fresh connections throughout; web never down, the
   worker back (a new process) within 5 s.
2. graceful restart under load: SIGHUP to ``deme run`` while 4 clients probe; 0 refused.
3. frozen database for ``--freeze-seconds``: PG — the proxy forwards nothing (neither answers
   nor refuses); SQLite — another process holds an exclusive write lock. Signed Twilio
   webhooks from 4 clients: every answer 200, p99 ≤ 1 s; after the thaw the beat's spool
   replay stores every message (counted in the database).
4. ``deme run`` SIGKILL: no child left alive; the next ``deme run`` on the same var/ and
   port starts.
Prints a Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from tests.core.test_runner import Prober, _alive, _children  # noqa: E402
from tests.gateway.gateway_helpers import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    OUR_NUMBER,
    TcpProxy,
    signed,
    twilio_sms_form,
)

DEME = str(ROOT / ".venv" / "bin" / "deme")
PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_DB = "deme_bench_faults"
REDIS_URL = "redis://127.0.0.1:6379/6"

CREATE_CHANNEL = f"""
from core.db import session_scope
from models import Channel, ChannelType
with session_scope() as s:
    s.add(Channel(name="bench-twilio", type=ChannelType.TWILIO, address={OUR_NUMBER!r},
        credentials={{"account_sid": {ACCOUNT_SID!r}, "auth_token": {AUTH_TOKEN!r}}},
        config={{"api_base_url": "http://127.0.0.1:1"}}))
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


def _python(env: dict[str, str], script: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr[-2000:])
    return done.stdout.strip()


class Run:
    def __init__(self, env: dict[str, str], port: int, log: Path) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        with log.open("ab") as out:
            self.process = subprocess.Popen(
                [DEME, "run", "--bot", "fallback"],
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


def graceful_restart(run: Run) -> dict[str, str]:
    old = _children(run.process.pid)["web"]
    probers = [Prober(run.url) for _ in range(4)]
    for p in probers:
        p.__enter__()
    time.sleep(0.5)
    run.process.send_signal(signal.SIGHUP)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline and _alive(old):
        time.sleep(0.1)
    time.sleep(0.5)
    for p in probers:
        p.__exit__()
    failures = [f for p in probers for f in p.failures]
    return {
        "refused/failed": str(len(failures)),
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


def deployment(name: str, freeze: float, work: Path) -> list[tuple[str, str, dict[str, str]]]:
    var = work / name / "var"
    var.mkdir(parents=True)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DEME_")}
    env.update(
        {
            "DEME_VAR_DIR": str(var),
            "DEME_PORT": str(port),
            "DEME_PUBLIC_URL": "https://deme.test",
            "DEME_BOT": "fallback",
        }
    )
    proxy: TcpProxy | None = None
    holder: list[sqlite3.Connection] = []
    if name == "pg":
        import redis
        from sqlalchemy import create_engine, text

        admin = create_engine(PG_ADMIN, isolation_level="AUTOCOMMIT")
        with admin.connect() as c:
            c.execute(text(f'DROP DATABASE IF EXISTS "{PG_DB}" WITH (FORCE)'))
            c.execute(text(f'CREATE DATABASE "{PG_DB}"'))
        admin.dispose()
        redis.Redis.from_url(REDIS_URL).flushdb()
        proxy = TcpProxy(5432)
        env["DEME_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:{proxy.port}/{PG_DB}"
        env["DEME_REDIS_URL"] = REDIS_URL
    subprocess.run([DEME, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    _python(env, CREATE_CHANNEL)
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

    rows: list[tuple[str, str, dict[str, str]]] = []
    run = Run(env, port, log)
    try:
        rows.append((name, "worker SIGKILL", worker_kill(run)))
        rows.append((name, "SIGHUP restart under load", graceful_restart(run)))
        rows.append(
            (
                name,
                f"database frozen {freeze:.0f} s",
                frozen_database(run, env, freeze, freeze_on, thaw),
            )
        )
        rows.append((name, "deme run SIGKILL", parent_kill(run, env, log)))
    finally:
        run.stop()
        if proxy is not None:
            proxy.close()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployment", choices=["embedded", "pg", "both"], default="both")
    parser.add_argument("--freeze-seconds", type=float, default=15.0)
    args = parser.parse_args()
    names = ["embedded", "pg"] if args.deployment == "both" else [args.deployment]
    rows: list[tuple[str, str, dict[str, str]]] = []
    with tempfile.TemporaryDirectory(prefix="deme-faults-") as work:
        for name in names:
            rows += deployment(name, args.freeze_seconds, Path(work))
    print(f"Fault harness, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n")
    print("| deployment | experiment | result |")
    print("|---|---|---|")
    for name, experiment, result in rows:
        print(
            f"| {name} | {experiment} | " + "; ".join(f"{k}: {v}" for k, v in result.items()) + " |"
        )


if __name__ == "__main__":
    main()
