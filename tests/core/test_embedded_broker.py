"""The embedded broker (``core.broker``) with real processes: a Valkey server from the wheel,
real Celery workers with Deme's transport options, SIGKILLs.

Tasks published while no worker runs survive a SIGKILL of the broker (the append-only file),
a worker SIGKILLed mid-task has its task run again by the next worker (acks_late), a worker
keeps consuming across a broker restart, and every task completes — the only one that may
complete twice is the one cut mid-run (at-least-once; Deme's tasks reload their rows and are
idempotent)."""

from __future__ import annotations

import os
import signal
import stat
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from core import broker
from core.celery_app import broker_options
from core.settings import Settings
from support import PROJECT_ROOT

pytestmark = pytest.mark.slow

# A Celery app configured like Deme's (core.celery_app.make_celery: acks_late, prefetch 1,
# the same broker URL and transport options) but with a 2 s visibility timeout swept every
# second, so a killed worker's task comes back within the test instead of after 600 s.
APP = """
import json, os, time
from celery import Celery

url, options = json.loads(os.environ["T_BROKER"])
options.update(visibility_timeout=2, unacked_restore_interval=1, unacked_restore_throttle=1)
app = Celery("t", broker=url)
app.conf.update(
    broker_transport_options=options, broker_connection_retry_on_startup=True,
    task_ignore_result=True, task_acks_late=True, task_reject_on_worker_lost=True,
    worker_prefetch_multiplier=1, task_default_queue="deme", worker_hijack_root_logger=False,
)

@app.task(name="t.work")
def work(n: int) -> None:
    time.sleep(0.1)
    with open(os.environ["T_DONE"], "a") as handle:  # appended once finished, then acked
        handle.write(f"{n}\\n")
"""


@pytest.fixture()
def folder(tmp_path: Path) -> Iterator[Path]:
    (tmp_path / "taskapp.py").write_text(APP)
    yield tmp_path


def _settings(folder: Path) -> Settings:
    return Settings(var_dir=folder / "var", redis_url=None)


def _env(folder: Path) -> dict[str, str]:
    import json

    return {
        **os.environ,
        "T_BROKER": json.dumps(broker_options(_settings(folder))),
        "T_DONE": str(folder / "done.txt"),
        "PYTHONPATH": f"{folder}{os.pathsep}{PROJECT_ROOT}",
    }


def _worker(folder: Path) -> subprocess.Popen[bytes]:
    log = (folder / "worker.log").open("ab")
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "celery", "-A", "taskapp:app", "worker"),
            *("--concurrency=1", "--without-gossip", "--without-mingle", "-Q", "deme"),
        ],
        cwd=folder,
        env=_env(folder),
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # killpg takes its pool process too
    )


def _publish(folder: Path, numbers: range) -> None:
    script = (
        "import taskapp, sys\n"
        "for n in range(int(sys.argv[1]), int(sys.argv[2])):\n"
        "    taskapp.work.delay(n)\n"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(numbers.start), str(numbers.stop)],
        cwd=folder,
        env=_env(folder),
        check=True,
        timeout=60,
    )


def _done(folder: Path) -> Counter[int]:
    path = folder / "done.txt"
    if not path.exists():
        return Counter()
    return Counter(int(line) for line in path.read_text().split())


def _wait(condition: Callable[[], bool], timeout: float, what: str, folder: Path) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.1)
    log = (folder / "worker.log").read_text(errors="replace")[-3000:]
    raise AssertionError(f"{what}; done: {sorted(_done(folder))}\n{log}")


def _kill_group(process: subprocess.Popen[bytes]) -> None:
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()


def test_the_broker_listens_on_a_private_socket_only(folder: Path) -> None:
    embedded = broker.EmbeddedBroker.for_settings(_settings(folder))
    server = embedded.start()
    try:
        mode = stat.S_IMODE(embedded.socket_path.stat().st_mode)
        assert mode & 0o077 == 0, oct(mode)  # nobody but this user
        import redis

        client = redis.Redis.from_url(embedded.url)
        assert client.config_get("port") == {"port": "0"}  # no TCP listener at all
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "everysec"}
        assert Path(client.config_get("dir")["dir"]) == folder / "var" / "broker"
    finally:
        broker.stop(server)


def test_no_task_is_lost_across_broker_and_worker_kills(folder: Path) -> None:
    embedded = broker.EmbeddedBroker.for_settings(_settings(folder))
    server = embedded.start()
    worker: subprocess.Popen[bytes] | None = None
    try:
        _publish(folder, range(0, 40))  # no worker yet: all 40 wait in the broker
        server.kill()  # SIGKILL: no shutdown, no final save
        server.wait()
        server = embedded.start()  # replays var/broker's append-only file

        worker = _worker(folder)
        _wait(lambda: len(_done(folder)) >= 5, 60, "the worker did not start consuming", folder)
        _kill_group(worker)  # mid-task: that task is unacked and must come back
        worker = _worker(folder)
        _wait(lambda: len(_done(folder)) >= 15, 60, "the second worker did not consume", folder)

        server.kill()  # the broker dies under a consuming worker …
        server.wait()
        time.sleep(1)
        server = embedded.start()  # … which reconnects to the restarted one
        _publish(folder, range(40, 50))  # and what is published afterwards gets through too

        _wait(lambda: set(_done(folder)) == set(range(50)), 90, "tasks were lost", folder)
        time.sleep(3)  # past the visibility timeout: nothing else may come back
        done = _done(folder)
        assert set(done) == set(range(50))
        twice = [n for n, times in done.items() if times > 1]
        # Only a task cut by a SIGKILL (worker mid-task, broker before the ack) may run again.
        assert len(twice) <= 2, twice
    finally:
        if worker is not None and worker.poll() is None:
            _kill_group(worker)
        broker.stop(server)


def test_a_deep_var_dir_gets_a_short_private_socket(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 60) / ("e" * 60) / "var"
    embedded = broker.EmbeddedBroker.for_settings(Settings(var_dir=deep, redis_url=None))
    server = embedded.start()
    try:
        assert len(str(embedded.socket_path)) <= 100
        assert stat.S_IMODE(embedded.socket_path.parent.stat().st_mode) == 0o700
        assert embedded.ping()
        assert (deep / "broker" / "valkey.conf").exists()  # data stays under var/broker
    finally:
        broker.stop(server)


def test_celery_and_redis_py_are_given_the_same_socket() -> None:
    assert broker.celery_url("unix:///run/x/valkey.sock") == "redis+socket:///run/x/valkey.sock"
    assert broker.celery_url("unix:///s.sock?db=3") == "redis+socket:///s.sock?virtual_host=3"
    assert broker.celery_url("redis://h:6379/0") == "redis://h:6379/0"
