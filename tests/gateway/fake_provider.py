"""A local fake SMS provider for tests: speaks Twilio's Messages.json (create, and the
Messages list with its To / DateSent filters) and Africa's Talking's /version1/messaging well
enough for the real SDKs, records every request, and fails on command (HTTP 429, 500, a hang
past the client's timeout, Twilio 21610 / 21211; or 500 / a slow success after *accepting*
the message, which the Messages list then shows, as a real provider would).

It runs in a thread of the test process and listens on 127.0.0.1 only; worker processes
reach it over HTTP like they would reach the real provider.
"""

from __future__ import annotations

import contextlib
import json
import socket
import threading
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl

# Commands: what the next matching request gets instead of a success.
OK = "ok"
THROTTLE = "429"
SERVER_ERROR = "500"
HANG = "hang"
OPTED_OUT = "21610"
INVALID_NUMBER = "21211"
ACCEPTED_THEN_500 = "accepted-500"  # message taken (listed), answer 500
DELAYED_OK = "delayed-ok"  # message taken, success answered after hang_seconds


@dataclass
class Recorded:
    provider: str  # "twilio" | "africastalking"
    path: str
    form: dict[str, str]
    headers: dict[str, str]
    outcome: str
    at: float = field(default_factory=time.time)


class FakeProvider:
    def __init__(self) -> None:
        self.requests: list[Recorded] = []
        self.messages: list[dict[str, Any]] = []  # what Twilio holds (the Messages list)
        self._commands: deque[str] = deque()
        self._failing: str | None = None  # fail_all: what every request gets until recover()
        self._connections: set[socket.socket] = set()  # open keep-alive connections
        self._lock = threading.Lock()
        self.release = threading.Event()  # ends every hang
        self.hang_seconds = 60.0
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with fake._lock:
                    fake._connections.add(self.connection)

            def finish(self) -> None:
                with fake._lock:
                    fake._connections.discard(self.connection)
                super().finish()

            def do_GET(self) -> None:
                path, _, query = self.path.partition("?")
                params = dict(parse_qsl(query, keep_blank_values=True))
                fake._record(Recorded("twilio-list", path, params, dict(self.headers), OK))
                payload = json.dumps(fake._twilio_list(path, params)).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                raw = self.rfile.read(length).decode("utf-8")
                form = dict(parse_qsl(raw, keep_blank_values=True))
                provider = "twilio" if "/Messages.json" in self.path else "africastalking"
                outcome = fake._next()
                fake._record(Recorded(provider, self.path, form, dict(self.headers), outcome))
                if outcome == HANG:
                    fake.release.wait(fake.hang_seconds)
                    self.close_connection = True
                    return
                if outcome == DELAYED_OK:
                    fake.release.wait(fake.hang_seconds)
                status, body = fake._answer(provider, outcome, form)
                payload = json.dumps(body).encode()
                self.send_response(status)
                # Exactly this value: the africastalking SDK compares the header literally.
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self._handler = Handler
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    # --- control ---------------------------------------------------------------------
    def start(self) -> FakeProvider:
        self._thread.start()
        return self

    def stop(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def go_down(self) -> None:
        """The API becomes unreachable: the port is closed, connections are refused."""
        self.server.shutdown()
        self.server.server_close()
        with self._lock:
            connections, self._connections = list(self._connections), set()
        for connection in connections:  # kept-alive client connections die with it
            with contextlib.suppress(OSError):
                connection.shutdown(socket.SHUT_RDWR)
                connection.close()

    def go_up(self) -> None:
        """Reachable again, on the same port (the channels' URL is unchanged)."""
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), self._handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self._thread.start()

    def fail_all(self, outcome: str) -> None:
        """Every send request gets ``outcome`` (500, 429, a hang…) until ``recover()``."""
        with self._lock:
            self._failing = outcome

    def recover(self) -> None:
        with self._lock:
            self._failing = None
        self.release.set()
        self.release = threading.Event()

    def fail_next(self, *outcomes: str) -> None:
        with self._lock:
            self._commands.extend(outcomes)

    def reset(self) -> None:
        with self._lock:
            self._commands.clear()
            self._failing = None
            self.requests.clear()
            self.messages.clear()
        self.release.set()
        self.release = threading.Event()

    def sent(self, provider: str | None = None) -> list[Recorded]:
        """Send requests (list look-ups excluded)."""
        with self._lock:
            return [
                r
                for r in self.requests
                if r.provider != "twilio-list" and (provider is None or r.provider == provider)
            ]

    def lookups(self) -> list[Recorded]:
        with self._lock:
            return [r for r in self.requests if r.provider == "twilio-list"]

    # --- internals --------------------------------------------------------------------
    def _next(self) -> str:
        with self._lock:
            if self._commands:
                return self._commands.popleft()
            return self._failing or OK

    def _record(self, item: Recorded) -> None:
        with self._lock:
            self.requests.append(item)

    def _answer(self, provider: str, outcome: str, form: dict[str, str]) -> tuple[int, Any]:
        if provider == "twilio":
            status, body = self._twilio(outcome, form)
            if outcome == ACCEPTED_THEN_500:
                body = {**self._twilio(OK, form)[1], "status": "sent"}
            if status == 201 or outcome == ACCEPTED_THEN_500:
                now = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime())
                stored = {**body, "date_sent": now}
                with self._lock:
                    self.messages.append(stored)
            if outcome == ACCEPTED_THEN_500:
                return self._twilio(SERVER_ERROR, form)
            return status, body
        return self._africastalking(outcome, form)

    def _twilio_list(self, path: str, params: dict[str, str]) -> dict[str, Any]:
        """GET .../Messages.json: newest first, filtered by To and From (no date filter
        beyond day granularity is simulated; the caller matches times itself)."""
        with self._lock:
            found = [
                m
                for m in reversed(self.messages)
                if ("To" not in params or m.get("to") == params["To"])
                and ("From" not in params or m.get("from") == params["From"])
            ]
        return {
            "messages": found,
            "end": max(len(found) - 1, 0),
            "first_page_uri": path,
            "next_page_uri": None,
            "page": 0,
            "page_size": len(found),
            "previous_page_uri": None,
            "start": 0,
            "uri": path,
        }

    @staticmethod
    def _twilio(outcome: str, form: dict[str, str]) -> tuple[int, Any]:
        def error(status: int, code: int, message: str) -> tuple[int, Any]:
            return status, {
                "code": code,
                "message": message,
                "more_info": f"https://www.twilio.com/docs/errors/{code}",
                "status": status,
            }

        if outcome == THROTTLE:
            return error(429, 20429, "Too Many Requests")
        if outcome == SERVER_ERROR:
            return error(500, 20500, "Internal Server Error")
        if outcome == OPTED_OUT:
            return error(400, 21610, "Attempt to send to unsubscribed recipient")
        if outcome == INVALID_NUMBER:
            return error(400, 21211, "The 'To' number is not a valid phone number.")
        sid = "SM" + uuid.uuid4().hex
        return 201, {
            "sid": sid,
            "status": "queued",
            "to": form.get("To"),
            "from": form.get("From"),
            "body": form.get("Body"),
            "num_segments": "1",
            "account_sid": "AC" + "0" * 32,
            "direction": "outbound-api",
            "date_created": time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime()),
            "uri": f"/2010-04-01/Accounts/AC/Messages/{sid}.json",
        }

    @staticmethod
    def _africastalking(outcome: str, form: dict[str, str]) -> tuple[int, Any]:
        if outcome == THROTTLE:
            return 429, {"error": "Too many requests"}
        if outcome == SERVER_ERROR:
            return 500, {"error": "Internal server error"}

        def recipient(code: int, status: str, message_id: str) -> tuple[int, Any]:
            return 201, {
                "SMSMessageData": {
                    "Message": "Sent to 1/1 Total Cost: XOF 20",
                    "Recipients": [
                        {
                            "statusCode": code,
                            "number": form.get("to"),
                            "status": status,
                            "cost": "XOF 20",
                            "messageId": message_id,
                        }
                    ],
                }
            }

        if outcome == OPTED_OUT:
            return recipient(406, "UserInBlacklist", "None")
        if outcome == INVALID_NUMBER:
            return recipient(403, "InvalidPhoneNumber", "None")
        return recipient(101, "Success", "ATXid_" + uuid.uuid4().hex)
