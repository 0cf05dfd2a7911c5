"""Whole conversations on `make run`'s topology, side by side with the server stack.

    .venv/bin/python bench/embedded.py [--deployment embedded|pg|both] [--rate 20]
        [--seconds 60] [--bot rasa|fallback]

Per deployment, ``deme run --bot rasa`` (web, the workers of ``core.celery_app.WORKERS``, beat,
Rasa + action server, and on embedded the Valkey broker) exactly as ``make run`` starts it:
embedded = no database URL and no Redis (SQLite + the embedded broker under a temporary
var/); pg = PostgreSQL on 127.0.0.1:5432 (database ``deme_bench_embedded``, recreated) and a
private redis-server (or Redis db 5 on 127.0.0.1:6379). ``deme seed`` gives places, teams
and rules; one Twilio channel points at the fake provider (tests/gateway/fake_provider.py,
in this process). After Rasa has loaded its model and answered a few warm-up messages:
signed Twilio SMS at ``--rate`` msg/s (Poisson arrivals) for ``--seconds``, one new sender
each, in French, Bambara and English (needs in the four sectors and protection, with a place
and a household size; generated here, never trained on). Reported per deployment:

- reply latency: webhook posted → first SMS to that sender recorded by the fake provider
  (p50 / p95 / p99), and senders without a reply 30 s after the last post;
- tickets created by the keyword fallback instead of Rasa (the ticket's "created" event has
  actor ``fallback``); inbound messages stored (lost / duplicated); senders with 2+ replies
  to their one message;
- CPU per message: utime + stime of ``deme run``'s whole process tree (Rasa included) plus
  the PostgreSQL backends of the bench database, from the first post until the last reply
  (a backlog worked off after the load is part of the cost), less the idle platform's CPU
  over the same time (measured for 10 s just before: the baseline), divided by messages
  posted; and the same per process (web, each worker, Rasa, actions, broker, PostgreSQL).

Both deployments run one after the other in the same invocation, so the ratio between them
is measured on the same machine state. Prints Markdown tables. About 4–6 minutes per
deployment (Rasa loads its model in 30–90 s).
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
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))

import faults  # noqa: E402
from faults import DEME, _free_port, _python  # noqa: E402
from hol import PoissonLoad, _percentile  # noqa: E402

from tests.gateway import fake_provider as fp  # noqa: E402
from tests.gateway.gateway_helpers import (  # noqa: E402
    ACCOUNT_SID,
    AUTH_TOKEN,
    OUR_NUMBER,
    RedisServer,
    message_sid,
    signed,
    twilio_sms_form,
)

PG_ADMIN = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
PG_DB = os.environ.get("BENCH_EMBEDDED_DB", "deme_bench_embedded")
REDIS_URL = "redis://127.0.0.1:6379/5"
REPLY_WAIT_SECONDS = 30.0

CREATE_CHANNEL = f"""
import sys
from core.db import session_scope
from models import Channel, ChannelType
with session_scope() as s:
    s.add(Channel(name="bench-twilio", type=ChannelType.TWILIO, address={OUR_NUMBER!r},
        credentials={{"account_sid": {ACCOUNT_SID!r}, "auth_token": {AUTH_TOKEN!r}}},
        config={{"api_base_url": sys.argv[1], "timeout_seconds": 5, "max_per_second": 100}}))
"""
OUTCOME = """
import json
from sqlalchemy import func, select
from core.db import session_scope
from models import Contact, Message, MessageDirection, Ticket, TicketEvent
with session_scope() as s:
    inbound = s.scalar(select(func.count(Message.id)).where(
        Message.direction == MessageDirection.INBOUND))
    distinct = s.scalar(select(func.count(func.distinct(Message.provider_id))).where(
        Message.direction == MessageDirection.INBOUND))
    tickets = s.scalar(select(func.count(Ticket.id)))
    by_fallback = s.scalar(select(func.count(func.distinct(TicketEvent.ticket_id))).where(
        TicketEvent.kind == "created", TicketEvent.actor_label == "fallback"))
print(json.dumps({"inbound": inbound, "distinct": distinct, "tickets": tickets,
    "by_fallback": by_fallback}))
"""

# Generated load, not training data: templates × places × sizes in the three languages.
PLACES = ["Mopti", "Gao", "Tombouctou", "Sevare", "Bamako", "Kidal", "Segou", "Menaka", "Douentza"]
TEMPLATES = [
    "Bonjour, nous sommes {n} personnes a {place}, nous avons besoin d'eau potable",
    "Mon enfant est malade a {place}, il faut un medecin svp. Nous sommes {n}",
    "Nous dormons dehors a {place}, pas d'abri pour {n} personnes",
    "an ye mogo {n} ye {place}, ji te an fe",
    "ne denmisen ka kene te {place}, dokotoro de be an mago la. an ye {n} ye",
    "an be {place}, so te an fe, an ye mogo {n} ye",
    "We are {n} people in {place} and we need clean water",
    "My wife is sick in {place}, we need a health worker, family of {n}",
    "No shelter for our family of {n} in {place}, please help",
]


# What each process of ``deme run``'s tree is, by its command line (first match wins).
ROLES = (
    ("rasa_sdk", "actions"),
    ("run actions", "actions"),
    ("rasa", "rasa"),
    ("--hostname=bot-worker@", "bot-worker"),
    ("--hostname=outbound-worker@", "outbound-worker"),
    ("--hostname=alerts-worker@", "alerts-worker"),
    ("--hostname=worker@", "worker"),
    (" beat", "beat"),
    ("deme.cli web", "web"),
    ("valkey", "broker"),
    ("redis-server", "broker"),
)


def _role(cmdline: str) -> str:
    for marker, role in ROLES:
        if marker in cmdline:
            return role
    return "other"


def _tree_cpu_by_role(root: int) -> dict[str, float]:
    """utime + stime (seconds) of ``root``'s live process tree, summed per role (``ROLES``).
    The private redis-server of the pg deployment is not in the tree (counted apart: no)."""
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
    by_role: dict[str, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in wanted:
        try:
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        role = "supervisor" if pid == root else _role(cmdline)
        by_role[role] = by_role.get(role, 0.0) + ticks.get(pid, 0) / tick
    return by_role


def _cpu_snapshot(root: int) -> dict[str, float]:
    snapshot = _tree_cpu_by_role(root)
    snapshot["postgresql"] = _postgres_cpu_seconds()
    return snapshot


def _delta(after: dict[str, float], before: dict[str, float]) -> dict[str, float]:
    return {k: after.get(k, 0.0) - before.get(k, 0.0) for k in after.keys() | before.keys()}


def _text(rng: random.Random) -> str:
    return rng.choice(TEMPLATES).format(place=rng.choice(PLACES), n=rng.randint(2, 12))


class ConversationLoad(PoissonLoad):
    """Poisson arrivals (``hol.PoissonLoad``) of three-language messages."""

    def __init__(self, run: faults.Run, prefix: str, seconds: float) -> None:
        super().__init__(run, prefix, seconds)
        self._rng = random.Random(prefix)

    def _post(self, client: httpx.Client, i: int) -> None:
        sender = f"{self.prefix}{i:04d}"
        sid = message_sid()
        with self._lock:
            text = _text(self._rng)
        body, headers = signed("/webhooks/twilio/sms", twilio_sms_form(sender, text, sid))
        posted = time.time()
        try:
            status = client.post("/webhooks/twilio/sms", content=body, headers=headers).status_code
        except httpx.HTTPError:
            status = 0
        with self._lock:
            self.sent.append((sender, sid, posted, status))


def _postgres_cpu_seconds() -> float:
    """utime + stime of the PostgreSQL backends connected to the bench database."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().replace(b"\0", b" ").decode()
            if not cmdline.startswith("postgres:") or f" {PG_DB} " not in cmdline:
                continue
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, UnicodeDecodeError):
            continue
        total += int(fields[11]) + int(fields[12])
    return total / tick


def _wait_for_rasa(rasa_port: int, timeout: float) -> float:
    started = time.monotonic()
    deadline = started + timeout
    while time.monotonic() < deadline:
        try:
            status = httpx.get(f"http://127.0.0.1:{rasa_port}/status", timeout=2)
            if status.status_code == 200 and status.json().get("model_file"):
                return time.monotonic() - started
        except (httpx.HTTPError, ValueError):
            pass
        time.sleep(1)
    raise RuntimeError(f"Rasa did not load its model within {timeout:.0f} s")


def _first_replies(fake: fp.FakeProvider) -> dict[str, list[float]]:
    out: dict[str, list[float]] = {}
    for record in fake.sent("twilio"):
        if record.outcome == fp.OK:
            out.setdefault(record.form.get("To", ""), []).append(record.at)
    return out


def deployment(name: str, bot: str, seconds: float, work: Path) -> dict[str, str]:
    var = work / name / "var"
    var.mkdir(parents=True)
    port, rasa_port, actions_port = _free_port(), _free_port(), _free_port()
    env = faults.deployment_env(var, port, bot)
    env.update(
        {
            "DEME_RASA_PORT": str(rasa_port),
            "DEME_ACTIONS_PORT": str(actions_port),
            "DEME_RASA_URL": f"http://127.0.0.1:{rasa_port}",
        }
    )
    private_redis: RedisServer | None = None
    fake = fp.FakeProvider().start()
    if name == "pg":
        faults.recreate_pg_database(PG_ADMIN, PG_DB)
        env["DEME_DATABASE_URL"] = f"postgresql+psycopg://postgres@127.0.0.1:5432/{PG_DB}"
        env["DEME_REDIS_URL"], private_redis = faults.server_broker(REDIS_URL)
    subprocess.run([DEME, "migrate"], cwd=ROOT, env=env, check=True, capture_output=True)
    subprocess.run([DEME, "seed"], cwd=ROOT, env=env, check=True, capture_output=True)
    _python(env, CREATE_CHANNEL, fake.url)
    run = faults.Run(env, port, work / name / "deme-run.log", bot=bot)
    try:
        loaded = _wait_for_rasa(rasa_port, 600) if bot == "rasa" else 0.0
        with ConversationLoad(run, "+2237790", 3):  # warm-up: first parses are slow
            pass
        # Baseline in the same run: the idle platform's CPU (beat, polls, Rasa's loop).
        idle_start, idle_before = time.monotonic(), _cpu_snapshot(run.process.pid)
        time.sleep(10)
        fake.reset()
        idle = _delta(_cpu_snapshot(run.process.pid), idle_before)
        idle_rate = sum(idle.values()) / (time.monotonic() - idle_start)
        window_start, cpu_before = time.monotonic(), _cpu_snapshot(run.process.pid)
        with ConversationLoad(run, "+2237791", seconds) as load:
            pass
        deadline = time.time() + REPLY_WAIT_SECONDS
        senders = {s for s, *_ in load.sent}
        while time.time() < deadline and not senders <= set(_first_replies(fake)):
            time.sleep(0.5)
        # Counted until the last reply, not only while posting: a backlog worked off after
        # the load is part of what the messages cost (a saturated run's CPU during the
        # load alone is capped by the cores and reads as a lower cost).
        window = time.monotonic() - window_start
        by_role = _delta(_cpu_snapshot(run.process.pid), cpu_before)
        cpu = sum(by_role.values()) - idle_rate * window
        time.sleep(3)  # late duplicates
        replies = _first_replies(fake)
        latencies = [
            min(replies[s]) - posted for s, _sid, posted, code in load.sent if s in replies
        ]
        outcome = json.loads(_python(env, OUTCOME))
        posted = len(load.sent)
        accepted = sum(1 for *_, code in load.sent if code == 200)
        warmup = 3 * faults.RATE
        return {
            "deployment": name,
            "bot": bot + (f" (model loaded in {loaded:.0f} s)" if bot == "rasa" else ""),
            "rate": f"{faults.RATE:g} msg/s × {seconds:g} s",
            "posted / accepted": f"{posted} / {accepted}",
            "reply p50": f"{statistics.median(latencies):.2f} s" if latencies else "-",
            "reply p95": f"{_percentile(latencies, 0.95):.2f} s" if latencies else "-",
            "reply p99": f"{_percentile(latencies, 0.99):.2f} s" if latencies else "-",
            f"no reply ≤{REPLY_WAIT_SECONDS:.0f} s": str(len(senders - set(replies))),
            "two+ replies": str(sum(1 for s in senders if len(replies.get(s, [])) > 1)),
            # The warm-up's messages and tickets are in the database too.
            "stored inbound (lost, dup)": (
                f"{outcome['inbound']} ({accepted + warmup - outcome['distinct']:.0f}, "
                f"{outcome['inbound'] - outcome['distinct']})"
            ),
            "by the fallback": f"{outcome['by_fallback']} of {outcome['tickets']} tickets",
            "CPU/msg": f"{cpu / max(posted, 1) * 1000:.0f} ms",
            "idle CPU": f"{idle_rate * 1000:.0f} ms/s",
            "CPU/msg by process": ", ".join(
                f"{role} {seconds_ / max(posted, 1) * 1000:.1f}"
                for role, seconds_ in sorted(by_role.items(), key=lambda kv: -kv[1])
                if seconds_ / max(posted, 1) >= 0.0005
            ),
        }
    finally:
        run.stop()
        if private_redis is not None:
            private_redis.kill()
        fake.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--deployment", choices=["embedded", "pg", "both"], default="both")
    parser.add_argument("--bot", choices=["rasa", "fallback"], default="rasa")
    parser.add_argument("--rate", type=float, default=20.0, help="inbound SMS/s")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--keep", type=Path, help="keep var/ and deme-run.log under this dir")
    args = parser.parse_args()
    faults.RATE = args.rate
    names = ["embedded", "pg"] if args.deployment == "both" else [args.deployment]
    rows = []
    with tempfile.TemporaryDirectory(prefix="deme-embedded-") as scratch:
        work = args.keep or Path(scratch)
        for name in names:
            rows.append(deployment(name, args.bot, args.seconds, work))
    print(f"Whole conversations, {dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M} UTC\n")
    print("| " + " | ".join(rows[0]) + " |")
    print("|" + "---|" * len(rows[0]))
    for row in rows:
        print("| " + " | ".join(row.values()) + " |")


if __name__ == "__main__":
    main()
