"""The web app exactly as deployed: ``deme web`` (deme.cli) in its own process, on a free port,
every line it writes kept in a file the test can read (and grep)."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import httpx

from support import PROJECT_ROOT, var_dir_for_tests


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class DemeWeb:
    def __init__(self, env: dict[str, str] | None = None, workers: int = 1) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        var_dir_for_tests().mkdir(parents=True, exist_ok=True)
        self.log_path = var_dir_for_tests() / f"deme-web-{uuid.uuid4().hex[:8]}.log"
        self._log = self.log_path.open("wb")
        environment = {
            **os.environ,
            "DEME_HOST": "127.0.0.1",
            "DEME_PORT": str(self.port),
            "DEME_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **(env or {}),
        }
        self.process = subprocess.Popen(
            [sys.executable, "-m", "deme.cli", "web", "--workers", str(workers)],
            cwd=PROJECT_ROOT,
            env=environment,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError("deme web exited:\n" + self.log())
            try:
                if httpx.get(self.url + "/healthz", timeout=1).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError("deme web not ready:\n" + self.log())

    def log(self) -> str:
        return Path(self.log_path).read_text(errors="replace")

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
