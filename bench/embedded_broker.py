"""Which broker for the embedded deployment? Every candidate, one run, the same trivial task.

    .venv/bin/python bench/embedded_broker.py [--seconds 15] [--rates 20,100] [--burst 1000]
        [--only NAME,NAME] [--json PATH]

For each candidate: the broker (if it is a server) and one real Celery worker process
(prefork, concurrency 2, acks_late, prefetch 1: the configuration of ``deme run``'s worker)
are started; this process publishes ``bench.record(seq, sent_at)`` with ``send_task`` at a
steady rate, and the task appends ``seq sent_at started_at`` to a file. Measured:

- latency: publish → task start, p50/p95 (wall clock; one machine, one clock);
- lost: published tasks not run within the drain window (and duplicates: run twice);
- throughput: a burst of ``--burst`` tasks published at once, tasks/s until the last ran;
- CPU per task: user+system CPU of the broker process, the worker (with its pool) and this
  publisher over the phase, divided by the tasks run — plus the idle CPU per second of the
  broker + worker with no traffic (what a quiet deployment pays for polling).

Candidates: ``fs-default`` (Kombu filesystem as shipped until now, 1 s polling),
``fs-tuned`` (the same, 0.05 s polling), ``sqlite`` (Kombu SQLAlchemy transport on SQLite,
0.05 s polling), ``valkey`` (the embedded Valkey of ``core.broker``: AOF everysec, unix
socket), and the baseline ``redis-system`` (the machine's Redis at 127.0.0.1:6379, db
``--redis-db``). The machine is shared: compare ratios to the baseline of the same run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# --- the worker side: this module is also the Celery app the worker imports ---------------


def _sqlalchemy_polling(seconds: float) -> None:
    # Kombu's SQLAlchemy transport hands every transport option to create_engine, which
    # refuses polling_interval: set the transport's class default instead.
    from kombu.transport import sqlalchemy

    sqlalchemy.Transport.polling_interval = seconds


if os.environ.get("BENCH_SQLA_POLLING"):
    _sqlalchemy_polling(float(os.environ["BENCH_SQLA_POLLING"]))

if os.environ.get("BENCH_BROKER_URL"):
    from celery import Celery

    app = Celery("bench", broker=os.environ["BENCH_BROKER_URL"])
    app.conf.update(
        broker_transport_options=json.loads(os.environ.get("BENCH_TRANSPORT_OPTIONS", "{}")),
        task_ignore_result=True,
        task_acks_late=True,
        task_reject_on_worker_lost=True,
        worker_prefetch_multiplier=1,
        task_default_queue="deme",
        task_serializer="json",
        accept_content=["json"],
        worker_hijack_root_logger=False,
    )
    _OUT = os.environ["BENCH_OUT"]

    @app.task(name="bench.record")
    def record(seq: int, sent_at: float, work_seconds: float = 0.0) -> None:
        started = time.time()
        if work_seconds:  # the kill phase: recorded only once finished (then acked)
            time.sleep(work_seconds)
        fd = os.open(_OUT, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, f"{seq} {sent_at} {started}\n".encode())
        finally:
            os.close(fd)


# --- the bench ------------------------------------------------------------------------


@dataclass
class Candidate:
    name: str
    url: str
    options: dict[str, Any]
    server: Callable[[Path], subprocess.Popen[bytes] | None] = lambda _: None
    cleanup: Callable[[], None] = lambda: None
    env: dict[str, str] = field(default_factory=dict)


def _fs_options(folder: Path, polling: float | None) -> dict[str, Any]:
    for sub in ("queue", "processed", "control"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    options: dict[str, Any] = {
        "data_folder_in": str(folder / "queue"),
        "data_folder_out": str(folder / "queue"),
        "processed_folder": str(folder / "processed"),
        "control_folder": str(folder / "control"),
        "store_processed": False,
    }
    if polling is not None:
        options["polling_interval"] = polling
    return options


def candidates(work: Path, redis_db: int) -> dict[str, Candidate]:
    from core.broker import EmbeddedBroker, celery_url

    embedded = EmbeddedBroker(work / "valkey" / "broker")
    # Deme's options (core.celery_app.broker_options) but a 5 s visibility timeout swept every
    # second instead of 600 s, so the worker-kill check sees its redelivery within the drain.
    redis_options = {
        "socket_timeout": 2,
        "socket_connect_timeout": 2,
        "max_retries": 0,
        "visibility_timeout": 5,
        "unacked_restore_interval": 1,
        "unacked_restore_throttle": 1,
    }

    def flush_system_redis() -> None:
        import redis

        redis.Redis(host="127.0.0.1", port=6379, db=redis_db).flushdb()

    return {
        "fs-default": Candidate(
            "fs-default", "filesystem://", _fs_options(work / "fs-default", None)
        ),
        "fs-tuned": Candidate("fs-tuned", "filesystem://", _fs_options(work / "fs-tuned", 0.05)),
        "sqlite": Candidate(
            "sqlite",
            f"sqla+sqlite:///{work / 'broker.sqlite3'}",
            {},
            env={"BENCH_SQLA_POLLING": "0.05"},
        ),
        "valkey": Candidate(
            "valkey",
            celery_url(embedded.url),
            redis_options,
            server=lambda _: embedded.start(),
        ),
        "redis-system": Candidate(
            "redis-system",
            f"redis://127.0.0.1:6379/{redis_db}",
            redis_options,
            server=lambda _: (flush_system_redis(), None)[1],
            cleanup=flush_system_redis,
        ),
    }


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process, its reaped children and its live descendants (/proc)."""
    tick = os.sysconf("SC_CLK_TCK")
    stats: dict[int, tuple[int, float, float]] = {}  # pid -> (ppid, own, reaped children)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as handle:
                fields = handle.read().rsplit(")", 1)[1].split()
        except OSError:
            continue
        # after the name: state ppid ... utime(12) stime(13) cutime(14) cstime(15)
        stats[int(entry)] = (
            int(fields[1]),
            (int(fields[11]) + int(fields[12])) / tick,
            (int(fields[13]) + int(fields[14])) / tick,
        )
    if pid not in stats:
        return 0.0
    total = stats[pid][1] + stats[pid][2]
    frontier = [pid]
    while frontier:
        parent = frontier.pop()
        for child, (ppid, own, _) in stats.items():
            if ppid == parent:
                total += own
                frontier.append(child)
    return total


def own_cpu() -> float:
    times = os.times()
    return times.user + times.system


@dataclass
class Phase:
    name: str
    published: int
    ran: int
    duplicates: int
    seconds: float
    p50_ms: float | None
    p95_ms: float | None
    throughput: float
    cpu_ms_per_task: dict[str, float] = field(default_factory=dict)


def _read(out: Path) -> dict[int, tuple[float, float]]:
    rows: dict[int, tuple[float, float]] = {}
    if not out.exists():
        return rows
    for line in out.read_text().splitlines():
        seq, sent, started = line.split()
        if int(seq) in rows:
            rows[-int(seq) - 10**9] = (float(sent), float(started))  # a duplicate, kept apart
        else:
            rows[int(seq)] = (float(sent), float(started))
    return rows


class Run:
    def __init__(self, candidate: Candidate, work: Path) -> None:
        self.candidate = candidate
        self.out = work / f"{candidate.name}.out"
        self.broker = candidate.server(work)
        env = {
            **os.environ,
            "BENCH_BROKER_URL": candidate.url,
            "BENCH_TRANSPORT_OPTIONS": json.dumps(candidate.options),
            "BENCH_OUT": str(self.out),
            "PYTHONPATH": str(ROOT),
            **candidate.env,
        }
        if "BENCH_SQLA_POLLING" in candidate.env:
            _sqlalchemy_polling(float(candidate.env["BENCH_SQLA_POLLING"]))
        from celery import Celery

        self.app = Celery("bench-publisher", broker=candidate.url)
        self.app.conf.update(
            broker_transport_options=candidate.options,
            task_default_queue="deme",
            task_serializer="json",
        )
        self.env = env
        self.work = work
        self.worker = self._start_worker()
        self.seq = 0
        # Warm up: the first task proves the worker consumes (and opens every connection).
        self._publish(10**8)
        self._wait_for({10**8}, 60)

    def _start_worker(self) -> subprocess.Popen[bytes]:
        return subprocess.Popen(
            [
                sys.executable,
                "-m",
                "celery",
                "-A",
                "bench.embedded_broker:app",
                "worker",
                "--loglevel=WARNING",
                "--concurrency=2",
                "--without-gossip",
                "--without-mingle",
                "-Q",
                "deme",
            ],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=open(self.work / f"{self.candidate.name}.worker.log", "ab"),
        )

    def kill_phase(self, count: int, drain: float) -> dict[str, int]:
        """Tasks of 0.3 s each; the worker is SIGKILLed 1 s in and a new one started: which
        tasks ever complete (at-least-once: one cut mid-run may complete twice)?"""
        first = self.seq
        for seq in range(first, first + count):
            self.app.send_task("bench.record", args=[seq, time.time(), 0.3], queue="deme")
        self.seq += count
        time.sleep(1.0)
        self.worker.kill()
        self.worker.wait()
        time.sleep(0.5)  # its pool processes notice and exit
        self.worker = self._start_worker()
        wanted = set(range(first, first + count))
        rows = self._wait_for(wanted, drain)
        done = {seq for seq in rows if seq in wanted}
        again = sum(1 for seq in rows if seq < -(10**9) and -(seq + 10**9) in wanted)
        return {"sent": count, "lost": count - len(done), "completed_twice": again}

    def _publish(self, seq: int) -> None:
        self.app.send_task("bench.record", args=[seq, time.time()], queue="deme")

    def _wait_for(self, wanted: set[int], timeout: float) -> dict[int, tuple[float, float]]:
        deadline = time.monotonic() + timeout
        rows = _read(self.out)
        while time.monotonic() < deadline and not wanted <= rows.keys():
            time.sleep(0.1)
            rows = _read(self.out)
        return rows

    def cpu(self) -> dict[str, float]:
        return {
            "broker": cpu_seconds(self.broker.pid) if self.broker else 0.0,
            "worker": cpu_seconds(self.worker.pid),
            "publisher": own_cpu(),
        }

    def idle_cpu_per_second(self, seconds: float) -> float:
        before = self.cpu()
        time.sleep(seconds)
        after = self.cpu()
        return (after["broker"] - before["broker"] + after["worker"] - before["worker"]) / seconds

    def phase(self, name: str, rate: float | None, count: int, drain: float) -> Phase:
        first = self.seq
        wanted = set(range(first, first + count))
        before = self.cpu()
        start = time.monotonic()
        start_wall = time.time()
        for index, seq in enumerate(range(first, first + count)):
            if rate:
                delay = start + index / rate - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            self._publish(seq)
        self.seq += count
        published_cpu = own_cpu()  # the publisher's share ends here, not after the drain
        rows = self._wait_for(wanted, drain)
        after = self.cpu()
        ran = {seq: row for seq, row in rows.items() if seq in wanted}
        duplicates = sum(1 for seq in rows if seq < -(10**9) and -(seq + 10**9) in wanted)
        latencies = sorted((started - sent) * 1000 for sent, started in ran.values())
        last = max((started for _, started in ran.values()), default=start_wall)
        tasks = max(len(ran), 1)
        cpu = {part: (after[part] - before[part]) * 1000 / tasks for part in ("broker", "worker")}
        cpu["publisher"] = (published_cpu - before["publisher"]) * 1000 / tasks
        cpu["total"] = sum(cpu.values())
        return Phase(
            name=name,
            published=count,
            ran=len(ran),
            duplicates=duplicates,
            seconds=round(last - start_wall, 2),
            p50_ms=round(statistics.median(latencies), 1) if latencies else None,
            p95_ms=round(latencies[int(0.95 * (len(latencies) - 1))], 1) if latencies else None,
            throughput=round(len(ran) / max(last - start_wall, 1e-6), 1),
            cpu_ms_per_task={part: round(value, 2) for part, value in cpu.items()},
        )

    def close(self) -> None:
        from core.broker import stop

        self.worker.terminate()
        try:
            self.worker.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.worker.kill()
            self.worker.wait()
        if self.broker is not None:
            stop(self.broker)
        self.candidate.cleanup()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=15.0)
    parser.add_argument("--rates", default="20,100")
    parser.add_argument("--burst", type=int, default=1000)
    parser.add_argument("--drain", type=float, default=30.0, help="wait for stragglers, s")
    parser.add_argument("--idle", type=float, default=5.0, help="idle CPU window, s")
    parser.add_argument("--redis-db", type=int, default=1)
    parser.add_argument("--only", default="")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    rates = [float(rate) for rate in args.rates.split(",")]
    results: dict[str, Any] = {"date": time.strftime("%Y-%m-%d"), "candidates": {}}
    with tempfile.TemporaryDirectory(prefix="deme-broker-bench-") as tmp:
        work = Path(tmp)
        chosen = candidates(work, args.redis_db)
        names = [n for n in args.only.split(",") if n] or list(chosen)
        for name in names:
            print(f"== {name}", flush=True)
            run = Run(chosen[name], work)
            try:
                # First, on an empty queue: the durability check must not wait behind a
                # backlog left by a saturated phase.
                killed = run.kill_phase(20, args.drain)
                idle = run.idle_cpu_per_second(args.idle)
                phases = [
                    run.phase(f"{rate:g}/s", rate, int(rate * args.seconds), args.drain)
                    for rate in rates
                ]
                phases.append(run.phase(f"burst {args.burst}", None, args.burst, args.drain))
            finally:
                run.close()
            results["candidates"][name] = {
                "idle_cpu_ms_per_s": round(idle * 1000, 1),
                "worker_killed": killed,
                "phases": [phase.__dict__ for phase in phases],
            }
            print(
                f"   idle: {idle * 1000:.1f} ms CPU/s (broker + worker); worker SIGKILL: {killed}"
            )
            for phase in phases:
                print(
                    f"   {phase.name:>11}: ran {phase.ran}/{phase.published} "
                    f"dup {phase.duplicates}  p50 {phase.p50_ms} ms  p95 {phase.p95_ms} ms  "
                    f"{phase.throughput} tasks/s  CPU/task {phase.cpu_ms_per_task}",
                    flush=True,
                )
    print(_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2))
    return 0


def _table(results: dict[str, Any]) -> str:
    base = results["candidates"].get("redis-system")

    def cpu_of(entry: dict[str, Any], index: int) -> float:
        return float(entry["phases"][index]["cpu_ms_per_task"]["total"])

    lines = [
        "| broker | lost after worker SIGKILL | idle CPU ms/s | phase | p50 ms | p95 ms "
        "| ran/sent | tasks/s | CPU ms/task (broker+worker+pub) | × baseline |",
        "|---|---:|---:|---|---:|---:|---:|---:|---:|---:|",
    ]
    for name, entry in results["candidates"].items():
        for index, phase in enumerate(entry["phases"]):
            ratio = (
                f"{cpu_of(entry, index) / cpu_of(base, index):.2f}"
                if base and cpu_of(base, index)
                else "–"
            )
            cpu = phase["cpu_ms_per_task"]
            lines.append(
                f"| {name} | {entry['worker_killed']['lost']}/{entry['worker_killed']['sent']} "
                f"| {entry['idle_cpu_ms_per_s']} | {phase['name']} | {phase['p50_ms']} "
                f"| {phase['p95_ms']} | {phase['ran']}/{phase['published']} "
                f"| {phase['throughput']} | {cpu['total']} ({cpu['broker']}+{cpu['worker']}+"
                f"{cpu['publisher']}) | {ratio} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
