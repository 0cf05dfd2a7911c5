"""Head-of-line bench: does a failing SMS provider delay intake? Both deployments, one run.

    .venv/bin/python bench/hol.py [--deployment embedded|pg|both] [--rate 5] [--seconds 30]

Per deployment, ``deme run --bot fallback`` (the topology of ``core.celery_app.WORKERS``)
with a Twilio channel on the fake provider (tests/gateway/fake_provider.py, in this
process; the channel's ``timeout_seconds`` is 2 s): signed Twilio SMS at ``--rate`` msg/s,
one new sender each, for ``--seconds`` with the provider healthy (the baseline), then as
long again with it failing — HTTP 500 for the first half, read timeouts (the fake hangs 3 s)
for the second — then healthy again. Reported per phase:

- inbound-to-ticket p50 / p95: webhook posted → ticket row created (``tickets.created_at``);
  the target is the failing phase within 20 % of the healthy one;
- CPU per message: utime + stime of ``deme run``'s whole process tree (/proc) over the
  phase, divided by the messages posted (PostgreSQL's own CPU not included: it is shared);
- the replies: sent once / sent twice / unknown (a send the provider may have taken: never
  resent blindly — reconciled or listed, see gateway.delivery) / never sent; the breaker's
  openings and the provider requests made while it was failing.

Embedded: SQLite + the embedded broker under a temporary var/. PG: PostgreSQL on
127.0.0.1:5432 or ``--pg-port`` (database ``deme_bench_hol``, recreated), a private
redis-server (or Redis db 6 on 127.0.0.1:6379 when redis-server is not on PATH). Prints a
Markdown table.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import faults  # noqa: E402
from faults import DEME, Load, Run, _free_port, _python  # noqa: E402

from tests.gateway import fake_provider as fp  # noqa: E402
from tests.gateway.gateway_helpers import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, RedisServer  # noqa: E402

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:{port}/postgres"
PG_DB = "deme_bench_hol"
REDIS_URL = "redis://127.0.0.1:6379/6"

CREATE_CHANNEL = f"""
import sys
from core.db import session_scope
from models import Channel, ChannelType
with session_scope() as s:
    s.add(Channel(name="bench-twilio", type=ChannelType.TWILIO, address={OUR_NUMBER!r},
        credentials={{"account_sid": {ACCOUNT_SID!r}, "auth_token": {AUTH_TOKEN!r}}},
        config={{"api_base_url": sys.argv[1], "timeout_seconds": 2, "max_per_second": 50}}))
"""
# phone → (ticket created_at, [outbound statuses]) for every contact.
TICKETS_AND_REPLIES = """
import json
from collections import defaultdict
from sqlalchemy import select
from core.db import session_scope
from models import ChannelBreaker, Contact, Message, MessageDirection, Ticket
out = {}
with session_scope() as s:
    phones = {c.id: c.phone for c in s.scalars(select(Contact))}
    tickets = {}
    for t in s.scalars(select(Ticket)):
        tickets.setdefault(t.contact_id, t.created_at.timestamp())
    replies = defaultdict(list)
    for contact_id, status in s.execute(select(Message.contact_id, Message.status).where(
            Message.direction == MessageDirection.OUTBOUND)):
        replies[contact_id].append(status.value)
    for cid, phone in phones.items():
        out[phone] = [tickets.get(cid), replies.get(cid, [])]
    opened = sum(b.times_opened for b in s.scalars(select(ChannelBreaker)))
print(json.dumps({"contacts": out, "breaker_opened": opened}))
"""


class PoissonLoad(Load):
    """``faults.Load`` with random (Poisson) arrivals at the same mean rate: evenly spaced
    posts phase-lock with the embedded broker's 1 s polling, and the latency then measures
    the phase, not the system."""

    def _drive(self) -> None:
        client = httpx.Client(base_url=self.run.url, timeout=20)
        arrivals = random.Random(len(self.prefix) + int(self.seconds))
        at, count = 0.0, int(self.seconds * faults.RATE)
        with ThreadPoolExecutor(32) as pool:
            for i in range(count):
                delay = self.started + at - time.time()
                if delay > 0:
                    time.sleep(delay)
                pool.submit(self._post, client, i)
                at += arrivals.expovariate(faults.RATE)
        client.close()


def _tree_cpu_seconds(root: int) -> float:
    """utime + stime of ``root`` and every live descendant (clock ticks → seconds)."""
    parents: dict[int, int] = {}
    ticks: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parents[int(entry.name)] = int(fields[1])
        ticks[int(entry.name)] = int(fields[11]) + int(fields[12])
    wanted = {root}
    changed = True
    while changed:
        changed = False
        for pid, parent in parents.items():
            if parent in wanted and pid not in wanted:
                wanted.add(pid)
                changed = True
    return sum(ticks.get(pid, 0) for pid in wanted) / os.sysconf("SC_CLK_TCK")


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(int(len(ordered) * q) - 1, 0))]


def _settle(env: dict[str, str], senders: set[str], timeout: float) -> None:
    """Until every sender has a ticket and no reply of theirs is still waiting."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        contacts = json.loads(_python(env, TICKETS_AND_REPLIES))["contacts"]
        pending = [
            p
            for p in senders
            if p not in contacts
            or contacts[p][0] is None
            or not contacts[p][1]
            or any(s in ("pending", "queued", "sending") for s in contacts[p][1])
        ]
        if not pending:
            return
        time.sleep(2)


def _phase(run: Run, seconds: float, prefix: str, during: object = None) -> tuple[Load, float]:
    before = _tree_cpu_seconds(run.process.pid)
    with PoissonLoad(run, prefix, seconds) as load:
        if during is not None:
            during(load)  # type: ignore[operator]
    return load, _tree_cpu_seconds(run.process.pid) - before


def deployment(
    name: str, rate: float, seconds: float, work: Path, pg_port: int = 5432
) -> list[dict[str, str]]:
    var = work / name / "var"
    var.mkdir(parents=True)
    port = _free_port()
    env = faults.deployment_env(var, port)
    private_redis: RedisServer | None = None
    fake = fp.FakeProvider().start()
    fake.hang_seconds = 3.0
    if name == "pg":
        faults.recreate_pg_database(PG_ADMIN.format(port=pg_port), PG_DB)
        env["DEME_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:{pg_port}/{PG_DB}"
        env["DEME_REDIS_URL"], private_redis = faults.server_broker(REDIS_URL)
    subprocess.run([DEME, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    _python(env, CREATE_CHANNEL, fake.url)
    run = Run(env, port, work / name / "deme-run.log")
    rows = []
    try:
        time.sleep(5)  # workers warm
        healthy, healthy_cpu = _phase(run, seconds, "+2237710")
        # The baseline's replies all out before the fault, so it cannot touch them.
        _settle(env, {s for s, *_ in healthy.sent}, 90)
        fault_requests = [0, 0]

        def failing(load: Load) -> None:
            fault_requests[0] = len(fake.sent())
            fake.fail_all(fp.SERVER_ERROR)
            time.sleep(seconds / 2)
            fake.fail_all(fp.HANG)
            time.sleep(seconds / 2)
            fake.recover()
            fault_requests[1] = len(fake.sent())

        failed, failed_cpu = _phase(run, seconds, "+2237720", failing)
        recovered_at = time.time()
        # Every reply settles: sent, or unknown (tried while failing) — at most 120 s.
        _settle(env, {s for s, *_ in healthy.sent + failed.sent}, 120)
        settled_after = time.time() - recovered_at
        time.sleep(5)  # late duplicates
        state = json.loads(_python(env, TICKETS_AND_REPLIES))
        contacts = state["contacts"]  # type: ignore[index]
        at_provider: dict[str, int] = {}
        for r in fake.sent("twilio"):
            if r.outcome == fp.OK:
                at_provider[r.form.get("To", "")] = at_provider.get(r.form.get("To", ""), 0) + 1
        for label, load, cpu in (
            ("healthy", healthy, healthy_cpu),
            ("failing", failed, failed_cpu),
        ):
            latencies = [
                contacts[s][0] - posted
                for s, _sid, posted, code in load.sent
                if code == 200 and s in contacts and contacts[s][0] is not None
            ]
            ours = [s for s, *_ in load.sent]
            statuses = [contacts.get(s, [None, []])[1] for s in ours]
            rows.append(
                {
                    "deployment": name,
                    "provider": label,
                    "rate": f"{rate:g} msg/s",
                    "inbound": str(len(load.sent)),
                    "tickets": f"{len(latencies)}/{len(load.sent)}",
                    "p50": f"{statistics.median(latencies):.2f} s" if latencies else "-",
                    "p95": f"{_percentile(latencies, 0.95):.2f} s" if latencies else "-",
                    "_p95": str(_percentile(latencies, 0.95) if latencies else 0),
                    "cpu/msg": f"{cpu / max(len(load.sent), 1) * 1000:.0f} ms",
                    "replies sent once": str(sum(1 for s in ours if at_provider.get(s, 0) == 1)),
                    "sent twice": str(sum(1 for s in ours if at_provider.get(s, 0) > 1)),
                    "unknown": str(sum(1 for st in statuses if "unknown" in st)),
                    "never sent": str(
                        sum(
                            1
                            for s, st in zip(ours, statuses, strict=True)
                            if at_provider.get(s, 0) == 0 and "unknown" not in st
                        )
                    ),
                }
            )
        rows[-1]["breaker opened"] = str(state["breaker_opened"])
        rows[-1]["provider requests while failing"] = str(fault_requests[1] - fault_requests[0])
        rows[-1]["all settled after recovery"] = f"{settled_after:.0f} s"
    finally:
        run.stop()
        if private_redis is not None:
            private_redis.kill()
        fake.stop()
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployment", choices=["embedded", "pg", "both"], default="both")
    parser.add_argument("--rate", type=float, default=5.0, help="inbound SMS/s (server stack)")
    parser.add_argument(
        "--embedded-rate",
        type=float,
        default=1.0,
        help="inbound SMS/s on the embedded deployment (its broker saturates near 2, issue 12)",
    )
    parser.add_argument("--seconds", type=float, default=30.0, help="per phase")
    parser.add_argument(
        "--pg-port", type=int, default=5432, help="a PostgreSQL of your own (trust auth)"
    )
    parser.add_argument("--keep", type=Path, help="keep var/ and deme-run.log under this dir")
    args = parser.parse_args()
    names = ["embedded", "pg"] if args.deployment == "both" else [args.deployment]
    rows: list[dict[str, str]] = []
    with tempfile.TemporaryDirectory(prefix="deme-hol-") as scratch:
        work = args.keep or Path(scratch)
        for name in names:
            rate = args.embedded_rate if name == "embedded" else args.rate
            faults.RATE = rate
            rows += deployment(name, rate, args.seconds, work, args.pg_port)
    print(f"Head-of-line bench, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n")
    columns = [c for c in rows[0] if not c.startswith("_")]
    print("| " + " | ".join(columns) + " | extra |")
    print("|" + "---|" * (len(columns) + 1))
    for row in rows:
        extra = "; ".join(f"{k}: {v}" for k, v in row.items() if k not in columns and k[0] != "_")
        print("| " + " | ".join(row[c] for c in columns) + f" | {extra} |")
    by_name: dict[str, dict[str, float]] = {}
    for row in rows:
        by_name.setdefault(row["deployment"], {})[row["provider"]] = float(row["_p95"])
    for name, p95 in by_name.items():
        if p95.get("healthy"):
            print(f"\n{name}: failing/healthy p95 = {p95['failing'] / p95['healthy']:.2f}")


if __name__ == "__main__":
    main()
