"""A stand-in for the platform's HTTP API (the contract the bot's actions code to).

Used by the action unit tests (conftest.py) and runnable by hand for a live smoke test:
    python bot/tests/fake_platform.py 8000
It records every request it receives.
"""

from __future__ import annotations

import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlparse

# What the platform's POST /api/v1/tickets accepts (after the accountability work's merge).
TICKET_KINDS = {"need", "complaint", "positive_feedback", "rumour", "information_request", "psea"}
TICKET_CATEGORIES = {"health", "wash", "shelter_nfi", "food", "protection", "other"}


class FakePlatform:
    """Plays the platform API contract and records every request it receives."""

    def __init__(self) -> None:
        self.requests: list[dict[str, Any]] = []
        self.fail_with: int | None = None  # answer every request with this status
        self.places = {
            "sevare": {"code": "ML05-SEV", "name": "Sévaré", "kind": "site", "confidence": 1.0},
            "gao": {"code": "ML07", "name": "Gao", "kind": "region", "confidence": 1.0},
        }
        self.tickets: list[dict[str, Any]] = []
        self.requests_auth: str | None = None
        self._counter = 0

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: Any):
        self.requests.append({"method": method, "path": path, "query": query, "body": body})
        if self.fail_with:
            return self.fail_with, {"detail": "platform unavailable"}
        if method == "POST" and path == "/api/v1/tickets":
            kind = body.get("kind", "need")
            if kind not in TICKET_KINDS:
                return 422, {"detail": f"kind: unknown kind {kind!r}"}
            if body.get("category") not in TICKET_CATEGORIES:
                return 422, {"detail": f"category: unknown category {body.get('category')!r}"}
            self._counter += 1
            ref = f"T-TEST{self._counter}"
            return 201, {
                "reference": ref,
                "status": "new",
                "category": body["category"],
                "kind": kind,
                "place": None,
                "household_size": body.get("household_size"),
            }
        if method == "PATCH" and path.startswith("/api/v1/tickets/"):
            ref = unquote(path.rsplit("/", 1)[1])
            return 200, {
                "reference": ref,
                "status": "new",
                "category": "health",
                "place": None,
                "household_size": body.get("household_size"),
            }
        if method == "POST" and path == "/api/v1/households":
            return 201, {
                "id": 1,
                "size": body["size"],
                "place": {"code": "X", "name": body["place"]},
            }
        if method == "GET" and path.startswith("/api/v1/contacts/") and path.endswith("/tickets"):
            return 200, {"tickets": self.tickets}
        if method == "POST" and path.endswith("/opt-out"):
            return 200, {"ok": True}
        if method == "POST" and path.endswith("/erase"):
            return 202, {"ok": True}
        if method == "GET" and path == "/api/v1/places/resolve":
            import unicodedata

            q = (query.get("q") or [""])[0].strip().lower()
            q = "".join(c for c in unicodedata.normalize("NFKD", q) if not unicodedata.combining(c))
            return 200, {"match": self.places.get(q)}
        return 404, {"detail": "not found"}

    def last(self, method: str, prefix: str) -> dict[str, Any]:
        matching = [
            r for r in self.requests if r["method"] == method and r["path"].startswith(prefix)
        ]
        assert matching, f"no {method} {prefix} in {self.requests}"
        return matching[-1]


def make_server(fake: FakePlatform, port: int = 0) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            url = urlparse(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            fake.requests_auth = self.headers.get("Authorization")
            status, payload = fake.handle(self.command, url.path, parse_qs(url.query), body)
            data = json.dumps(payload).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_PATCH = _serve

        def log_message(self, *args: Any) -> None:  # keep test output quiet
            pass

    return ThreadingHTTPServer(("127.0.0.1", port), Handler)


def start_in_thread(fake: FakePlatform, port: int = 0) -> ThreadingHTTPServer:
    server = make_server(fake, port)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


if __name__ == "__main__":
    fake = FakePlatform()
    server = make_server(fake, int(sys.argv[1]) if len(sys.argv) > 1 else 8000)

    original = fake.handle

    def logged(method, path, query, body):
        status, payload = original(method, path, query, body)
        print(
            method,
            path,
            query or "",
            json.dumps(body, ensure_ascii=False),
            "->",
            status,
            json.dumps(payload, ensure_ascii=False),
            flush=True,
        )
        return status, payload

    fake.handle = logged  # type: ignore[method-assign]
    server.serve_forever()
