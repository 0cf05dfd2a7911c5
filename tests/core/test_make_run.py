"""The embedded ``make run`` path on a bare setup: SQLite, no Redis, fallback bot.

Starts ``make run`` exactly as a newcomer would, waits for /readyz, checks the first
screen (URL and admin password), then stops it with Ctrl-C (SIGINT to the group) and
checks that the broker, web, worker and beat all went away.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import httpx
import pytest

from support import PROJECT_ROOT

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _embedded_env(var_dir: Path, port: int) -> dict[str, str]:
    env = {name: value for name, value in os.environ.items() if not name.startswith("DEME_")}
    env.update(
        {
            "DEME_VAR_DIR": str(var_dir),
            "DEME_PORT": str(port),
            "DEME_PUBLIC_URL": f"http://localhost:{port}",
            "DEME_BOT": "fallback",
        }
    )
    return env


def test_make_run_starts_answers_readyz_and_stops_on_ctrl_c(tmp_path: Path) -> None:
    port = _free_port()
    log_path = tmp_path / "make-run.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            ["make", "run"],
            cwd=PROJECT_ROOT,
            env=_embedded_env(tmp_path / "var", port),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            ready = None
            deadline = time.monotonic() + 180
            while time.monotonic() < deadline and process.poll() is None:
                try:
                    ready = httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2)
                    if ready.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                time.sleep(0.5)
            output = log_path.read_text(errors="replace")
            assert ready is not None and ready.status_code == 200, output[-4000:]
            assert ready.json()["checks"] == {"database": "ok", "broker": "ok", "bot": "ok"}
            assert f"http://localhost:{port}" in output
            assert "Log in as 'admin' with password: " in output
            assert (tmp_path / "var" / "deme.sqlite3").exists()
            # The embedded broker: a supervised child, persisting under var/broker.
            assert "[broker]" in output and "Ready to accept connections" in output
            assert (tmp_path / "var" / "broker" / "appendonlydir").is_dir()
            assert httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=2).status_code == 200
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                raise
    output = log_path.read_text(errors="replace")
    assert "Stopping web, workers, beat" in output
    # Nothing of the platform is left listening or running.
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1)
    assert _processes_with_env(f"DEME_VAR_DIR={tmp_path / 'var'}") == []


def _processes_with_env(marker: str) -> list[str]:
    """Command lines of live processes whose environment contains ``marker``."""
    found = []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        try:
            if marker.encode() in environ.read_bytes().split(b"\0"):
                found.append((environ.parent / "cmdline").read_bytes().replace(b"\0", b" "))
        except OSError:
            continue
    return [command.decode(errors="replace") for command in found]
