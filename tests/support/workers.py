"""A real Celery worker process for integration tests."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

from core.celery_app import ALL_QUEUES, WORKERS, WorkerSpec
from support import PROJECT_ROOT, var_dir_for_tests


def _wait_for_worker(log_path: Path, process: subprocess.Popen[bytes], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"celery worker exited early:\n{log_path.read_text()[-3000:]}")
        if "ready." in log_path.read_text(errors="replace"):
            return
        time.sleep(0.2)
    raise RuntimeError(f"celery worker not ready in {timeout}s:\n{log_path.read_text()[-3000:]}")


class WorkerProcess:
    """A real Celery worker (and optionally beat) running the project's tasks, on the broker the
    environment selects (core.celery_app.broker_options: Redis, or the embedded broker)."""

    def __init__(
        self,
        *,
        concurrency: int = 2,
        beat: bool = False,
        env: dict[str, str] | None = None,
        queues: str | None = None,
        pool: str = "prefork",
    ) -> None:
        if queues is None:
            queues = ALL_QUEUES  # every queue the product routes to
        self.log_path = var_dir_for_tests() / f"worker-{uuid.uuid4().hex[:8]}.log"
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "core.celery_app:celery_app",
            "worker",
            "--loglevel=INFO",
            f"--pool={pool}",
            f"--concurrency={concurrency}",
            "--without-gossip",
            "--without-mingle",
            f"--queues={queues}",
            f"--hostname=test-{uuid.uuid4().hex[:6]}@%h",
        ]
        if beat:
            command.append("--beat")
            command.append(f"--schedule={var_dir_for_tests() / 'beat-schedule'}")
        var_dir_for_tests().mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
            start_new_session=True,
        )
        _wait_for_worker(self.log_path, self.process, timeout=60)

    def kill(self, sig: int = signal.SIGKILL) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, sig)
            self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.kill()
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


def topology_workers(env: dict[str, str] | None = None) -> list[WorkerProcess]:
    """The workers of ``core.celery_app.WORKERS`` — the bulkheads `deme run` and compose
    start — each on its own queues, pool and concurrency. Stop them with ``stop_all``."""
    started: list[WorkerProcess] = []
    try:
        for spec in WORKERS:
            started.append(worker_for(spec, env=env))
    except BaseException:
        stop_all(started)
        raise
    return started


def worker_for(spec: WorkerSpec, env: dict[str, str] | None = None) -> WorkerProcess:
    return WorkerProcess(
        concurrency=spec.concurrency, queues=",".join(spec.queues), pool=spec.pool, env=env
    )


def stop_all(workers: list[WorkerProcess]) -> None:
    for worker in workers:
        worker.stop()


class BeatProcess:
    """Real Celery beat: the periodic sweeps, e.g. the due-sweep that publishes sends waiting
    in the database for their retry (``gateway.send_due``). ``due_seconds`` shortens its
    period (``DEME_OUTBOUND_DUE_SECONDS``) so tests wait less."""

    def __init__(self, *, due_seconds: float = 0.5, env: dict[str, str] | None = None) -> None:
        tag = uuid.uuid4().hex[:8]
        self.log_path = var_dir_for_tests() / f"beat-{tag}.log"
        var_dir_for_tests().mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        command = [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "core.celery_app:celery_app",
            "beat",
            "--loglevel=INFO",
            f"--schedule={var_dir_for_tests() / f'beat-{tag}'}",
        ]
        self.process = subprocess.Popen(
            command,
            cwd=PROJECT_ROOT,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env={**os.environ, "DEME_OUTBOUND_DUE_SECONDS": str(due_seconds), **(env or {})},
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while "beat: Starting" not in self.log_path.read_text(errors="replace"):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"celery beat not started:\n{self.log()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._log.close()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
