"""Resource limits against the real server (``deme web`` on a free port, raw sockets): an
oversized body is refused before authentication and without being read, chunked bodies are
counted as they stream, and slow clients are disconnected within the bounds."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import pytest

from support.webserver import DemeWeb

BODY_TIMEOUT = 2.0
HEADER_TIMEOUT = 2.0


@pytest.fixture(scope="module")
def server(database: str) -> Iterator[DemeWeb]:
    web = DemeWeb(
        env={
            "DEME_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
            "DEME_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
        }
    )
    yield web
    web.stop()


def _connect(server: DemeWeb) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", server.port), timeout=10)
    return sock


def _read_all(sock: socket.socket, timeout: float = 10) -> bytes:
    """Everything the server sends until it closes the connection."""
    sock.settimeout(timeout)
    data = b""
    while True:
        try:
            chunk = sock.recv(65536)
        except ConnectionResetError:
            break
        if not chunk:
            break
        data += chunk
    return data


def test_100_mb_declared_body_without_token_is_413_at_once(server: DemeWeb) -> None:
    sock = _connect(server)
    started = time.monotonic()
    sock.sendall(
        b"POST /api/v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 104857600\r\n\r\n" + b"{" + b" " * 4096
    )
    answer = _read_all(sock)
    elapsed = time.monotonic() - started
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"request body larger than 65536 bytes" in answer
    assert b"connection: close" in answer.lower()
    # Answered without waiting for (or reading) the 100 MB, and before the token check.
    assert elapsed < 2, elapsed
    assert b"401" not in answer.split(b"\r\n", 1)[0]


def test_chunked_oversize_body_is_413_while_streaming(server: DemeWeb) -> None:
    sock = _connect(server)
    sock.sendall(
        b"POST /webhooks/twilio/sms HTTP/1.1\r\nHost: x\r\n"
        b"Content-Type: application/x-www-form-urlencoded\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"a" * 8192
    sent = 0
    try:
        for _ in range(64):  # up to 512 KiB, far past the limit
            sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            sent += len(chunk)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the server answered and closed: what we want
    answer = _read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 413"), answer[:200]
    assert b"request body larger than 65536 bytes" in answer


def test_small_chunked_body_still_reaches_the_route(server: DemeWeb) -> None:
    """The limit buffers and replays the body: a chunked request under it works as before
    (here: no bearer token → the API's own 401, proving the body got past the limit)."""
    sock = _connect(server)
    body = b'{"category": "health"}'
    sock.sendall(
        b"POST /api/v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
        + b"%x\r\n%s\r\n0\r\n\r\n"
        % (len(body), body)
    )
    answer = _read_all(sock)
    sock.close()
    assert answer.startswith(b"HTTP/1.1 401"), answer[:300]


def test_slow_body_is_408_and_the_connection_closed(server: DemeWeb) -> None:
    sock = _connect(server)
    sock.sendall(
        b"POST /api/v1/tickets HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 1000\r\n\r\n"
    )
    started = time.monotonic()
    sock.settimeout(0.5)
    answer = b""
    closed = False
    while time.monotonic() - started < BODY_TIMEOUT + 8:
        try:
            sock.sendall(b" ")  # one byte every half second: a trickle
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            continue
        except ConnectionResetError:
            closed = True
            break
        if not chunk:
            closed = True
            break
        answer += chunk
    elapsed = time.monotonic() - started
    sock.close()
    assert answer.startswith(b"HTTP/1.1 408"), answer[:200]
    assert b"request body not received within 2 seconds" in answer
    assert closed, "the server kept the connection open"
    assert elapsed < BODY_TIMEOUT + 4, elapsed


def test_slow_headers_are_cut_off(server: DemeWeb) -> None:
    sock = _connect(server)
    started = time.monotonic()
    sock.sendall(b"GET /healthz HTTP/1.1\r\n")
    sock.settimeout(0.5)
    closed = False
    while time.monotonic() - started < HEADER_TIMEOUT + 8:
        try:
            sock.sendall(b"X-a: b\r\n")  # a header line every half second, never the end
            chunk = sock.recv(100)
        except TimeoutError:
            continue
        except (BrokenPipeError, ConnectionResetError):
            closed = True
            break
        if not chunk:
            closed = True
            break
    elapsed = time.monotonic() - started
    sock.close()
    assert closed, "the server kept a never-ending request open"
    assert elapsed < HEADER_TIMEOUT + 4, elapsed


def test_oversized_headers_are_cut_off(server: DemeWeb) -> None:
    sock = _connect(server)
    sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    closed = False
    try:
        for _ in range(256):  # up to 1 MiB of headers, sent as fast as possible
            sock.sendall(b"X-Big: " + b"a" * 4096 + b"\r\n")
    except (BrokenPipeError, ConnectionResetError):
        closed = True
    if not closed:
        answer = _read_all(sock, timeout=HEADER_TIMEOUT + 8)
        closed = not answer or answer.startswith((b"HTTP/1.1 400", b"HTTP/1.1 431"))
    elapsed = time.monotonic() - started
    sock.close()
    assert closed
    assert elapsed < HEADER_TIMEOUT - 0.5, elapsed  # cut off by size, not by the timer


def test_idle_connection_is_closed(server: DemeWeb) -> None:
    sock = _connect(server)
    started = time.monotonic()
    assert _read_all(sock, timeout=HEADER_TIMEOUT + 8) == b""
    assert time.monotonic() - started < HEADER_TIMEOUT + 4


def test_413_in_process_without_content_length(client: object) -> None:
    """The same limit in the app itself (TestClient streams a generator without a length)."""

    def chunks() -> Iterator[bytes]:
        for _ in range(20):
            yield b"x" * 8192

    response = client.post(  # type: ignore[attr-defined]
        "/api/v1/households", content=chunks(), headers={"Content-Type": "application/json"}
    )
    assert response.status_code == 413
    assert response.json() == {"detail": "request body larger than 65536 bytes"}
