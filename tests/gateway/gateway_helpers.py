"""Real processes for gateway tests: uvicorn, a throw-away redis-server, a closable TCP proxy,
and Twilio-signed requests."""

from __future__ import annotations

import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager, suppress
from typing import Any
from urllib.parse import urlencode

from twilio.request_validator import RequestValidator

from support.webserver import DemeWeb, free_port
from support.workers import WorkerProcess

PUBLIC_URL = "https://deme.test"
ACCOUNT_SID = "AC" + "1" * 32
AUTH_TOKEN = "test-auth-token-0123456789abcdef"
OUR_NUMBER = "+22370000001"


def message_sid() -> str:
    return "SM" + uuid.uuid4().hex


def twilio_sms_form(sender: str, body: str, sid: str | None = None, **extra: str) -> dict[str, str]:
    sid = sid or message_sid()
    form = {
        "MessageSid": sid,
        "SmsSid": sid,
        "SmsMessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "To": OUR_NUMBER,
        "Body": body,
        "NumMedia": "0",
        "NumSegments": "1",
        "SmsStatus": "received",
        "ApiVersion": "2010-04-01",
        "FromCountry": "ML",
    }
    form.update(extra)
    return form


def signed(
    path: str, form: Mapping[str, str], token: str = AUTH_TOKEN
) -> tuple[bytes, dict[str, str]]:
    """Body and headers of a request exactly as Twilio would send it to PUBLIC_URL + path."""
    signature = RequestValidator(token).compute_signature(PUBLIC_URL + path, dict(form))
    return urlencode(form).encode(), {
        "Content-Type": "application/x-www-form-urlencoded",
        "X-Twilio-Signature": signature,
    }


class RedisServer:
    """A private redis-server (no persistence) that a test may kill and restart."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        client = redis.Redis.from_url(self.url, socket_connect_timeout=0.5)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                client.ping()
                return self
            except Exception:
                time.sleep(0.05)
        raise RuntimeError("redis-server did not start")

    def kill(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.kill()
            self.process.wait(10)

    def client(self) -> object:
        import redis

        return redis.Redis.from_url(self.url)


class UvicornServer(DemeWeb):
    """The real app as deployed (``deme web``) in its own process group, quiet: warnings and
    errors only in its log, whose tail ``log()`` returns."""

    def __init__(self, env: Mapping[str, str] | None = None, workers: int = 2) -> None:
        super().__init__({"DEME_LOG_LEVEL": "WARNING", **(env or {})}, workers=workers)

    def log(self) -> str:
        return super().log()[-4000:]


class TcpProxy:
    """127.0.0.1:port → target; ``close()`` drops every connection and stops listening,
    which is what an unreachable database looks like to the app. ``freeze()`` keeps every
    connection open but forwards nothing (new ones are accepted and left hanging): a frozen
    database that neither answers nor refuses; ``thaw()`` resumes."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(64)
        self.port = int(self.listener.getsockname()[1])
        self._sockets: list[socket.socket] = []
        self._closed = False
        self._refusing = False
        self._frozen = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def cut(self) -> None:
        """The database goes away: drop every connection, refuse new ones until restore()."""
        self._refusing = True
        for s in self._sockets:
            with suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
                s.close()
        self._sockets = []

    def restore(self) -> None:
        self._refusing = False

    def freeze(self) -> None:
        self._frozen.set()

    def thaw(self) -> None:
        self._frozen.clear()

    def _accept(self) -> None:
        while not self._closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self._closed:
                client.close()
                return
            if self._refusing:
                client.close()
                continue
            while self._frozen.is_set() and not self._closed:
                time.sleep(0.05)  # accepted, but the "server" says nothing until thawed
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            self._sockets += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    def _pipe(self, source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                while self._frozen.is_set() and not self._closed:
                    time.sleep(0.05)
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                with suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self._closed = True
        with suppress(OSError):
            # close() alone does not wake a thread blocked in accept(): shutdown() does.
            self.listener.shutdown(socket.SHUT_RDWR)
        self.listener.close()
        for s in self._sockets:
            try:
                s.shutdown(socket.SHUT_RDWR)
                s.close()
            except OSError:
                pass


@contextmanager
def environ(**values: str) -> Iterator[None]:
    saved = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


class CutOffWorker:
    """A worker whose database connections go through a proxy the test can cut."""

    def __init__(self, redis: RedisServer) -> None:
        from core.celery_app import make_celery
        from core.settings import Settings, get_settings

        self.proxy = TcpProxy(5432)
        url = get_settings().effective_database_url
        proxied = url.replace("127.0.0.1:5432", f"127.0.0.1:{self.proxy.port}")
        assert proxied != url
        self.broker = make_celery(Settings(redis_url=redis.url))
        with environ(DEME_REDIS_URL=redis.url, DEME_DATABASE_URL=proxied):
            self.worker = WorkerProcess(concurrency=1)

    def send(self, task: str, *args: Any) -> None:
        self.broker.send_task(task, args=list(args))

    def stop(self) -> None:
        self.worker.stop()
        self.proxy.close()
