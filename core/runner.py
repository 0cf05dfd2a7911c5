"""``deme run``: the whole platform as one foreground process group.

Web app, Celery worker and beat (and the Rasa bot when enabled) are started as children;
their output is prefixed with their name. Ctrl-C (or SIGTERM) stops all of them, and if one
dies the others are stopped too, so a half-running platform never stays up unnoticed.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import IO

from core.celery_app import CONVERSATION_QUEUE, DEFAULT_QUEUE
from core.settings import PROJECT_ROOT, get_settings


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]


def _pump(name: str, stream: IO[bytes]) -> None:
    prefix = f"[{name}] ".encode()
    for line in iter(stream.readline, b""):
        sys.stdout.buffer.write(prefix + line)
        sys.stdout.buffer.flush()


def _start(name: str, command: list[str], env: dict[str, str]) -> Child:
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: we stop it and everything it spawned
    )
    assert process.stdout is not None
    threading.Thread(target=_pump, args=(name, process.stdout), daemon=True).start()
    return Child(name, process)


def platform_commands(bot_mode: str) -> list[tuple[str, list[str]]]:
    settings = get_settings()
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "core.celery_app:celery_app"]
    commands = [
        (
            "web",
            [
                python,
                "-m",
                "uvicorn",
                "core.asgi:app",
                "--host",
                settings.host,
                "--port",
                str(settings.port),
                "--no-proxy-headers",  # the app reads them, only from DEME_TRUSTED_PROXIES
                "--log-level",
                settings.log_level.lower(),
            ],
        ),
        (
            "worker",
            [
                *celery,
                "worker",
                "--loglevel=INFO",
                "--concurrency=2",
                "--without-gossip",
                "-Q",
                DEFAULT_QUEUE,
                "--hostname=worker@%h",
            ],
        ),
        (
            # Bot turns mostly wait on Rasa: threads, so several conversations are in flight.
            "bot-worker",
            [
                *celery,
                "worker",
                "--loglevel=INFO",
                "--pool=threads",
                "--concurrency=8",
                "--without-gossip",
                "-Q",
                CONVERSATION_QUEUE,
                "--hostname=conversation@%h",
            ],
        ),
        (
            "beat",
            [
                *celery,
                "beat",
                "--loglevel=INFO",
                f"--schedule={settings.var_dir / 'celerybeat-schedule'}",
            ],
        ),
    ]
    if bot_mode == "rasa":
        commands.append(("bot", ["bash", str(PROJECT_ROOT / "bot" / "scripts" / "run.sh")]))
    return commands


def bot_environment() -> dict[str, str]:
    """What the Rasa server and action server need to talk to this platform: a fresh bearer
    token for a ``bot`` service user (tokens are stored hashed, so a new one is issued per
    start and the previous start's token is revoked), the API URL and the shared secret."""
    from sqlalchemy import select, update

    from core.db import session_scope
    from models.base import utcnow
    from models.enums import UserRole
    from models.users import ApiToken, User
    from ops_console.auth import issue_api_token

    settings = get_settings()
    with session_scope() as session:
        user = session.scalar(select(User).where(User.username == "bot"))
        if user is None:
            user = User(username="bot", display_name="Rasa bot", role=UserRole.SERVICE)
            session.add(user)
            session.flush()
        session.execute(
            update(ApiToken)
            .where(
                ApiToken.user_id == user.id,
                ApiToken.name == "deme-run",
                ApiToken.revoked_at.is_(None),
            )
            .values(revoked_at=utcnow())
        )
        token = issue_api_token(session, user, "deme-run")
    return {
        "DEME_API_URL": f"http://127.0.0.1:{settings.port}",
        "DEME_API_TOKEN": token,
        "DEME_BOT_SHARED_SECRET": settings.bot_shared_secret.get_secret_value(),
        "DEME_ACTION_ENDPOINT_URL": os.environ.get(
            "DEME_ACTION_ENDPOINT_URL", "http://127.0.0.1:5055/webhook"
        ),
    }


def _stop_all(children: list[Child], grace_seconds: float = 15.0) -> None:
    # SIGTERM to each leader only: Celery then stops its pool cleanly (a group-wide signal
    # would kill pool processes under it mid-task), uvicorn drains, run.sh stops Rasa.
    # Whatever is still alive after the grace period is killed with its whole group.
    for child in children:
        if child.process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                child.process.terminate()
    deadline = time.monotonic() + grace_seconds
    for child in children:
        remaining = max(deadline - time.monotonic(), 0.1)
        try:
            child.process.wait(timeout=remaining)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(child.process.pid, signal.SIGKILL)
            child.process.wait()
        # Stragglers a leader left behind (none expected) go with the group.
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.process.pid, signal.SIGKILL)


def run_platform(bot_mode: str | None = None) -> int:
    settings = get_settings()
    mode = bot_mode or settings.bot
    if mode not in ("rasa", "fallback"):
        print(f"error: --bot must be 'rasa' or 'fallback', not {mode!r}", file=sys.stderr)
        return 2
    env = {**os.environ, "DEME_BOT": mode, "PYTHONUNBUFFERED": "1"}
    if mode == "rasa":
        env.update(bot_environment())
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    stopping = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    children = [_start(name, command, env) for name, command in platform_commands(mode)]
    print(f"Deme is starting: {settings.public_url} (Ctrl-C stops everything)", flush=True)
    exit_code = 0
    try:
        while not stopping.is_set():
            for child in children:
                code = child.process.poll()
                if code is not None:
                    print(
                        f"[{child.name}] exited with code {code}; stopping the platform", flush=True
                    )
                    exit_code = 1
                    stopping.set()
                    break
            stopping.wait(0.5)
    finally:
        print(
            "Stopping web, workers, beat" + (" and bot" if mode == "rasa" else "") + "…", flush=True
        )
        _stop_all(children)
    return exit_code
