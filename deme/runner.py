"""``deme run``: the whole platform as one supervised foreground process.

Web app, Celery worker and beat (and the Rasa bot when enabled) are started as children;
their output is prefixed with their name. A child that dies is restarted after a backoff
(1 s, 2 s, 4 s … capped at 30 s; reset once it has stayed up a minute) while the others
keep running. Ctrl-C (or SIGTERM) stops all of them.

- Children die with the supervisor: each gets ``PR_SET_PDEATHSIG`` (Linux; see
  ``death_signal``), so a
  SIGKILLed ``deme run`` leaves no orphan holding the port or running a second beat.
- One ``deme run`` per ``var/``: an ``flock`` on ``var/deme-run.lock`` (held until the
  process dies, whatever kills it); a second one exits naming the pid of the first.
- The listening socket belongs to the supervisor and is handed to uvicorn (``--fd``): while
  the web child restarts, connections wait in the backlog instead of being refused. SIGHUP
  restarts the web child gracefully — the new one is up before the old one drains.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

from core import broker
from core.celery_app import WORKERS
from core.settings import PROJECT_ROOT, get_settings

BACKOFF_FIRST_SECONDS = 1.0
BACKOFF_MAX_SECONDS = 30.0
STABLE_AFTER_SECONDS = 60.0  # a child up this long starts again from the first backoff
WEB_READY_MARK = b"Application startup complete"
_PR_SET_PDEATHSIG = 1


@dataclass
class Child:
    name: str
    process: subprocess.Popen[bytes]
    started_at: float = field(default_factory=time.monotonic)
    ready: threading.Event = field(default_factory=threading.Event)


def _pump(child: Child, stream: IO[bytes]) -> None:
    prefix = f"[{child.name}] ".encode()
    for line in iter(stream.readline, b""):
        if WEB_READY_MARK in line:
            child.ready.set()
        sys.stdout.buffer.write(prefix + line)
        sys.stdout.buffer.flush()


def _load_prctl() -> Callable[..., int] | None:
    # Looked up once in the parent: the preexec_fn runs between fork and exec, where loading
    # a library (malloc, locks held by other threads) is not safe; calling it is.
    try:
        return ctypes.CDLL(None, use_errno=True).prctl
    except (OSError, AttributeError):  # not Linux: no parent-death signal
        return None


_prctl = _load_prctl()


def death_signal(name: str) -> signal.Signals:
    """What a child gets when the supervisor dies. Celery processes: SIGKILL — a warm
    shutdown could wait forever on a pool process blocked writing to the dead supervisor's
    pipe, and Celery's pool processes already die with their worker (PDEATHSIG SIGKILL);
    a killed task is redelivered (acks_late). Web and bot: SIGTERM, they stop on it."""
    return signal.SIGTERM if name in ("web", "bot") else signal.SIGKILL


def _die_with_parent(parent_pid: int, signum: signal.Signals) -> Callable[[], None]:
    """preexec_fn: the kernel sends ``signum`` to the child when the supervisor dies."""

    def preexec() -> None:
        if _prctl is not None:
            _prctl(_PR_SET_PDEATHSIG, int(signum), 0, 0, 0)
        if os.getppid() != parent_pid:  # the supervisor died before prctl took effect
            os._exit(1)

    return preexec


def _start(
    name: str, command: list[str], env: dict[str, str], pass_fds: tuple[int, ...] = ()
) -> Child:
    process = subprocess.Popen(
        command,
        cwd=PROJECT_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,  # its own group: we stop it and everything it spawned
        preexec_fn=_die_with_parent(os.getpid(), death_signal(name)),
        pass_fds=pass_fds,
    )
    assert process.stdout is not None
    child = Child(name, process)
    threading.Thread(target=_pump, args=(child, process.stdout), daemon=True).start()
    return child


def backoff_seconds(failures: int) -> float:
    """Wait before the ``failures``-th restart in a row: 1, 2, 4, … capped."""
    return float(min(BACKOFF_FIRST_SECONDS * 2 ** max(failures - 1, 0), BACKOFF_MAX_SECONDS))


class AlreadyRunning(RuntimeError):
    pass


def acquire_run_lock(var_dir: Path) -> IO[str]:
    """Hold ``var/deme-run.lock`` for this process's lifetime; AlreadyRunning names the pid
    of the ``deme run`` that holds it."""
    path = var_dir / "deme-run.lock"
    handle = path.open("a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise AlreadyRunning(
            f"deme run is already running on {var_dir} (pid {holder}); stop it first"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"{os.getpid()}\n")
    handle.flush()
    return handle


def listening_socket(host: str, port: int) -> socket.socket:
    """The web port, bound once by the supervisor and inherited by every web child."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((host, port))
    sock.listen(2048)
    sock.set_inheritable(True)
    return sock


def platform_commands(bot_mode: str, web_fd: int | None = None) -> list[tuple[str, list[str]]]:
    settings = get_settings()
    python = sys.executable
    celery = [python, "-m", "celery", "-A", "core.celery_app:celery_app"]
    commands = [
        (
            "web",
            # `deme web`: the server options (limits, timeouts, access log) live in one place;
            # it serves the supervisor's pre-bound socket when there is one.
            [
                python,
                "-m",
                "deme.cli",
                "web",
                *(["--fd", str(web_fd)] if web_fd is not None else []),
            ],
        ),
        # The bulkheads (core.celery_app.WORKERS): one worker per kind of work.
        *(
            (spec.name, [*celery, *spec.arguments(), f"--hostname={spec.name}@%h"])
            for spec in WORKERS
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
    if not settings.redis_url:  # embedded: the broker comes first (see run_platform)
        commands.insert(0, ("broker", broker.supervised_command()))
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
        # bot/scripts/run.sh starts the action server on DEME_ACTIONS_PORT: Rasa must call
        # that port, or every action fails and the keyword fallback answers everything.
        "DEME_ACTION_ENDPOINT_URL": os.environ.get(
            "DEME_ACTION_ENDPOINT_URL",
            f"http://127.0.0.1:{os.environ.get('DEME_ACTIONS_PORT', '5055')}/webhook",
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


def _stop_one(child: Child, grace_seconds: float = 15.0) -> None:
    _stop_all([child], grace_seconds)


def run_platform(bot_mode: str | None = None) -> int:
    settings = get_settings()
    mode = bot_mode or settings.bot
    if mode not in ("rasa", "fallback"):
        print(f"error: --bot must be 'rasa' or 'fallback', not {mode!r}", file=sys.stderr)
        return 2
    settings.var_dir.mkdir(parents=True, exist_ok=True)
    try:
        run_lock = acquire_run_lock(settings.var_dir)
    except AlreadyRunning as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    try:
        web_socket = listening_socket(settings.host, settings.port)
    except OSError as exc:
        print(
            f"error: cannot listen on {settings.host}:{settings.port}: {exc.strerror}",
            file=sys.stderr,
        )
        run_lock.close()
        return 1
    env = {**os.environ, "DEME_BOT": mode, "PYTHONUNBUFFERED": "1"}
    # Embedded: every child talks to the embedded broker as the server stack talks to Redis.
    env.update(broker.child_environment(settings))
    if mode == "rasa":
        env.update(bot_environment())
    stopping = threading.Event()
    reload_web = threading.Event()

    def _on_signal(signum: int, _frame: object) -> None:
        stopping.set()

    def _on_hup(signum: int, _frame: object) -> None:
        reload_web.set()

    signal.signal(signal.SIGINT, _on_signal)
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGHUP, _on_hup)
    fd = web_socket.fileno()
    commands = dict(platform_commands(mode, web_fd=fd))

    def start(name: str) -> Child:
        return _start(name, commands[name], env, (fd,) if name == "web" else ())

    children: dict[str, Child] = {}
    if "broker" in commands:
        children["broker"] = start("broker")
        try:
            broker.EmbeddedBroker.for_settings(settings).wait_ready(
                process=children["broker"].process
            )
        except broker.BrokerNotReady as exc:
            print(f"error: {exc}", file=sys.stderr, flush=True)
            _stop_all(list(children.values()))
            web_socket.close()
            run_lock.close()
            return 1
    children.update({name: start(name) for name in commands if name not in children})
    failures = dict.fromkeys(commands, 0)
    restart_at: dict[str, float] = {}
    print(f"Deme is starting: {settings.public_url} (Ctrl-C stops everything)", flush=True)
    try:
        while not stopping.is_set():
            now = time.monotonic()
            if reload_web.is_set():
                reload_web.clear()
                _graceful_web_restart(children, start, stopping)
            for name, child in children.items():
                code = child.process.poll()
                if code is None or name in restart_at:
                    continue
                if now - child.started_at >= STABLE_AFTER_SECONDS:
                    failures[name] = 0
                failures[name] += 1
                delay = backoff_seconds(failures[name])
                print(f"[{name}] exited with code {code}; restarting in {delay:.0f} s", flush=True)
                restart_at[name] = now + delay
            for name, when in list(restart_at.items()):
                if now >= when:
                    del restart_at[name]
                    children[name] = start(name)
            stopping.wait(0.2)
    finally:
        print(
            "Stopping web, workers, beat" + (" and bot" if mode == "rasa" else "") + "…", flush=True
        )
        # The broker last: workers stopping gracefully still ack or requeue through it.
        _stop_all([child for name, child in children.items() if name != "broker"])
        _stop_all([child for name, child in children.items() if name == "broker"])
        web_socket.close()
        run_lock.close()
    return 0


def _graceful_web_restart(
    children: dict[str, Child], start: Callable[[str], Child], stopping: threading.Event
) -> None:
    """Start a new web child on the shared socket; once it serves, let the old one drain."""
    old = children["web"]
    print("[web] restarting (SIGHUP): starting the new web process first", flush=True)
    new = start("web")
    deadline = time.monotonic() + 60
    while not new.ready.is_set() and new.process.poll() is None and not stopping.is_set():
        if time.monotonic() > deadline:
            break
        new.ready.wait(0.2)
    if not new.ready.is_set():
        print("[web] the new web process did not start; keeping the old one", flush=True)
        _stop_one(new, 5)
        return
    children["web"] = new
    _stop_one(old)  # SIGTERM: uvicorn stops accepting and finishes requests in flight
