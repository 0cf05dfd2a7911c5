"""The real bot for tests and benchmarks: bot/scripts/run.sh (Rasa server + action server,
in the bot's own Python 3.10 environment) in its own process group."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import httpx

from support import PROJECT_ROOT, var_dir_for_tests
from tests.gateway.gateway_helpers import free_port


class BotProcess:
    def __init__(self, env: dict[str, str]) -> None:
        rasa_port, actions_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{rasa_port}"
        self.actions_url = f"http://127.0.0.1:{actions_port}"
        self.log_path = var_dir_for_tests() / f"bot-{rasa_port}.log"
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        self._log = self.log_path.open("wb")
        self.process = subprocess.Popen(
            ["bash", str(PROJECT_ROOT / "bot" / "scripts" / "run.sh")],
            cwd=PROJECT_ROOT,
            env={
                **os.environ,
                **env,
                "DEME_RASA_PORT": str(rasa_port),
                "DEME_ACTIONS_PORT": str(actions_port),
            },
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )

    def wait_ready(self, timeout: float = 420) -> float:
        """Seconds until Rasa has its model loaded and the action server answers."""
        started = time.monotonic()
        while time.monotonic() - started < timeout:
            if self.process.poll() is not None:
                raise RuntimeError("bot exited:\n" + self.log())
            try:
                status = httpx.get(self.url + "/status", timeout=2)
                actions = httpx.get(self.actions_url + "/health", timeout=2)
                if (
                    status.status_code == 200
                    and actions.status_code == 200
                    and status.json().get("model_file")
                ):
                    return time.monotonic() - started
            except httpx.HTTPError:
                pass
            time.sleep(1)
        raise RuntimeError("bot not ready:\n" + self.log())

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-5000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(10)
        self._log.close()
