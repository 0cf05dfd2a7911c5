"""``deme run`` supervises itself, on the embedded deployment (SQLite, no Redis): a killed
child comes back while the web app keeps answering, a second ``deme run`` is refused, a
SIGHUP restarts the web app without refusing a connection, and a SIGKILLed ``deme run``
leaves no orphan behind (the next one starts)."""

from __future__ import annotations

import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from core.celery_app import WORKERS
from deme.runner import backoff_seconds
from support import PROJECT_ROOT
from tests.core.test_make_run import _embedded_env, _free_port

pytestmark = pytest.mark.slow

DEME = str(PROJECT_ROOT / ".venv" / "bin" / "deme")
CHILDREN = {"web", *(spec.name for spec in WORKERS), "beat"}


@dataclass
class Platform:
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    port: int
    log_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


def _children(pid: int) -> dict[str, int]:
    """name → pid of the supervisor's children (broker, web, the topology's workers, beat)."""
    found: dict[str, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) != pid:
            continue
        words = [w.decode(errors="replace") for w in cmdline]
        if words[0].split(" ", 1)[0].endswith("valkey-server"):  # core.broker execs it
            found["broker"] = int(entry.name)
        elif "uvicorn" in words or words[2:4] == ["deme.cli", "web"]:
            found["web"] = int(entry.name)
        elif "beat" in words:
            found["beat"] = int(entry.name)
        else:
            for spec in WORKERS:
                if f"--hostname={spec.name}@%h" in words:
                    found[spec.name] = int(entry.name)
    return found


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie no one reaped yet is gone for our purposes
        return (Path("/proc") / str(pid) / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


EMBEDDED_CHILDREN = {"broker", *CHILDREN}


def _start(
    tmp_path: Path, port: int | None = None, extra_env: dict[str, str] | None = None
) -> Platform:
    port = port or _free_port()
    env = {**_embedded_env(tmp_path / "var", port), **(extra_env or {})}
    log_path = tmp_path / f"deme-run-{time.monotonic_ns()}.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [DEME, "run", "--bot", "fallback"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    platform = Platform(process, env, port, log_path)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, platform.log()
        try:
            answered = httpx.get(f"{platform.url}/healthz", timeout=2).status_code == 200
            if answered and set(_children(process.pid)) == EMBEDDED_CHILDREN:
                return platform
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise AssertionError("deme run did not come up:\n" + platform.log())


def _stop(platform: Platform) -> None:
    if platform.process.poll() is None:
        platform.process.send_signal(signal.SIGINT)
        try:
            platform.process.wait(timeout=40)
        except subprocess.TimeoutExpired:
            os.killpg(platform.process.pid, signal.SIGKILL)
            platform.process.wait()


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    started = _start(tmp_path_factory.mktemp("deme-run"))
    yield started
    _stop(started)


class Prober:
    """Hits /healthz in a loop on fresh connections; counts answers and failures."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                response = httpx.get(f"{self.url}/healthz", timeout=10)
                if response.status_code == 200:
                    self.ok += 1
                else:
                    self.failures.append(f"HTTP {response.status_code}")
            except httpx.HTTPError as exc:
                self.failures.append(type(exc).__name__)
            time.sleep(0.02)

    def __enter__(self) -> Prober:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


def test_backoff_doubles_and_is_capped() -> None:
    assert [backoff_seconds(n) for n in (1, 2, 3, 4)] == [1.0, 2.0, 4.0, 8.0]
    assert backoff_seconds(20) == 30.0


def test_second_deme_run_is_refused_naming_the_pid(platform: Platform) -> None:
    second = subprocess.run(
        [DEME, "run", "--bot", "fallback"],
        cwd=PROJECT_ROOT,
        env=platform.env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert "already running" in second.stderr
    assert f"pid {platform.process.pid}" in second.stderr
    assert platform.process.poll() is None  # the first one is untouched


def test_killed_worker_is_restarted_while_web_answers(platform: Platform) -> None:
    before = _children(platform.process.pid)
    with Prober(platform.url) as prober:
        os.kill(before["worker"], signal.SIGKILL)
        deadline = time.monotonic() + 5
        restarted = None
        while time.monotonic() < deadline:
            restarted = _children(platform.process.pid).get("worker")
            if restarted not in (None, before["worker"]):
                break
            time.sleep(0.1)
        time.sleep(0.5)
    assert restarted not in (None, before["worker"]), platform.log()
    assert _alive(restarted)  # type: ignore[arg-type]
    assert _children(platform.process.pid)["web"] == before["web"]  # web never went down
    assert prober.failures == [] and prober.ok > 10
    assert "[worker] exited with code" in platform.log()


def test_sighup_restarts_web_without_refusing_a_connection(platform: Platform) -> None:
    old_web = _children(platform.process.pid)["web"]
    with Prober(platform.url) as prober:
        time.sleep(0.3)
        platform.process.send_signal(signal.SIGHUP)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            web = _children(platform.process.pid).get("web")
            if web not in (None, old_web) and not _alive(old_web):
                break
            time.sleep(0.1)
        time.sleep(0.5)
    new_web = _children(platform.process.pid).get("web")
    assert new_web not in (None, old_web), platform.log()
    assert not _alive(old_web)
    assert prober.failures == [], prober.failures
    assert prober.ok > 10


def test_killed_deme_run_leaves_no_orphan_and_next_start_works(tmp_path: Path) -> None:
    first = _start(tmp_path)
    children = _children(first.process.pid)
    os.kill(first.process.pid, signal.SIGKILL)
    first.process.wait()
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and any(_alive(pid) for pid in children.values()):
        time.sleep(0.2)
    assert [name for name, pid in children.items() if _alive(pid)] == []
    second = _start(tmp_path, port=first.port)  # same var/ and port: lock and port are free
    try:
        assert httpx.get(f"{second.url}/healthz", timeout=5).status_code == 200
    finally:
        _stop(second)


CHANNEL_SCRIPT = """
import sys
from core.db import session_scope
from models import Channel, ChannelType
with session_scope() as session:
    session.add(Channel(name="twilio-run", type=ChannelType.TWILIO, address=sys.argv[1],
        credentials={"account_sid": sys.argv[2], "auth_token": sys.argv[3]},
        config={"api_base_url": sys.argv[4], "max_per_second": 50}))
"""


def test_embedded_deme_run_starts_its_broker_and_a_webhook_message_gets_its_reply(
    tmp_path: Path,
) -> None:
    """`deme run` with no DEME_REDIS_URL: the embedded broker is a supervised child, its data
    under var/broker; a signed SMS gets its reply from the provider, before and after the
    broker is SIGKILLed and restarted by the supervisor."""
    from tests.e2e.helpers import post_sms, replies_to
    from tests.gateway.fake_provider import FakeProvider
    from tests.gateway.gateway_helpers import ACCOUNT_SID, AUTH_TOKEN, OUR_NUMBER, PUBLIC_URL

    provider = FakeProvider().start()
    extra = {"DEME_PUBLIC_URL": PUBLIC_URL}  # the URL Twilio signs
    env = {**_embedded_env(tmp_path / "var", 8000), **extra}
    for command in (["migrate"], ["seed"]):
        done = subprocess.run([DEME, *command], cwd=PROJECT_ROOT, env=env, capture_output=True)
        assert done.returncode == 0, done.stdout + done.stderr
    subprocess.run(
        [
            str(PROJECT_ROOT / ".venv" / "bin" / "python"),
            "-c",
            CHANNEL_SCRIPT,
            OUR_NUMBER,
            ACCOUNT_SID,
            AUTH_TOKEN,
            provider.url,
        ],
        cwd=PROJECT_ROOT,
        env=env,
        check=True,
    )
    platform = _start(tmp_path, extra_env=extra)
    try:
        assert "DEME_REDIS_URL" not in platform.env  # nothing configured: embedded
        assert (tmp_path / "var" / "broker" / "appendonlydir").is_dir()
        ready = httpx.get(f"{platform.url}/readyz", timeout=5)
        assert ready.status_code == 200 and ready.json()["checks"]["broker"] == "ok"

        def reply_reaches(sender: str, timeout: float = 60) -> list[str]:
            post_sms(None, sender, "pa d'eau potable a sevare, ns sommes 7", platform.url)
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline and not replies_to(provider, sender):
                time.sleep(0.2)
            return replies_to(provider, sender)

        assert reply_reaches("+22376000301"), platform.log()

        old_broker = _children(platform.process.pid)["broker"]
        os.kill(old_broker, signal.SIGKILL)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            restarted = _children(platform.process.pid).get("broker")
            if restarted not in (None, old_broker):
                break
            time.sleep(0.1)
        # The whole log: beat's tracebacks while the broker is down push it out of log()'s tail.
        assert "[broker] exited with code" in platform.log_path.read_text(errors="replace")
        assert reply_reaches("+22376000302", timeout=90), platform.log()
        assert len(replies_to(provider, "+22376000301")) == 1  # the first reply: sent once
    finally:
        _stop(platform)
        provider.stop()
    assert not _alive(old_broker)


def test_rasa_calls_the_action_server_on_the_port_it_was_started_on(
    db: object, monkeypatch: pytest.MonkeyPatch
) -> None:
    """run.sh starts the action server on DEME_ACTIONS_PORT; a Rasa pointed at 5055 instead
    would fail every action and hand every message to the keyword fallback."""
    from deme.runner import bot_environment

    monkeypatch.delenv("DEME_ACTION_ENDPOINT_URL", raising=False)
    monkeypatch.setenv("DEME_ACTIONS_PORT", "6123")
    assert bot_environment()["DEME_ACTION_ENDPOINT_URL"] == "http://127.0.0.1:6123/webhook"
    monkeypatch.delenv("DEME_ACTIONS_PORT")
    assert bot_environment()["DEME_ACTION_ENDPOINT_URL"] == "http://127.0.0.1:5055/webhook"
