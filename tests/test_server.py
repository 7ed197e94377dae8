"""`GuardedHttpProtocol`: the bounds `serve`'s HTTP server puts on each connection
(head size and time, a client that stops reading, the connection cap), on a real
uvicorn on loopback with small limits."""

from __future__ import annotations

import asyncio
import contextlib
import os
import resource
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from attacks import path_of, serve
from servers import LiveServer
from visiona_storage.http import GuardedHttpProtocol, ServerLimits

LIMITS = ServerLimits(header_timeout=0.5, send_timeout=0.5, max_header_bytes=4096, max_connections=3)
OK = b"HTTP/1.1 200 OK"


class _Guarded(GuardedHttpProtocol):
    limits = LIMITS


class _App:
    """`/slow` answers after 1 s; `/big` sends 64 MiB; anything else answers "ok"
    at once. Counts the big responses that are over, sent or cut off."""

    def __init__(self) -> None:
        self.big_done = 0

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        path = scope["path"]
        if path == "/slow":
            await asyncio.sleep(1.0)
        body = b"ok"
        if path in ("/read", "/headers"):  # reads the whole body first, as an upload does
            while (await receive()).get("more_body", False):
                pass
        if path == "/headers":  # the request's header names, as the app sees them
            body = b",".join(name for name, _ in scope["headers"])
        if path == "/whole":  # 8 MiB in one message: all of it handed over at once
            body = b"x" * (8 << 20)
        if path == "/big":
            await send({"type": "http.response.start", "status": 200, "headers": []})
            piece = b"x" * (1 << 20)
            try:
                for _ in range(64):
                    await send({"type": "http.response.body", "body": piece, "more_body": True})
                await send({"type": "http.response.body", "body": b""})
            finally:
                self.big_done += 1
            return
        headers = [(b"content-length", str(len(body)).encode())]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": body})


@pytest.fixture(scope="module")
def app() -> _App:
    return _App()


@pytest.fixture(scope="module")
def server(app: _App) -> Iterator[LiveServer]:
    with LiveServer(http=_Guarded) as live:
        live.serve(app)
        yield live


def _connect(server: LiveServer) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=5)


def _read_until_closed(sock: socket.socket, seconds: float = 5) -> tuple[bytes, float]:
    """Everything the server sends until it closes the connection; and how long that took."""
    started = time.monotonic()
    sock.settimeout(seconds)
    answer = b""
    try:
        while chunk := sock.recv(65536):
            answer += chunk
    except ConnectionResetError:
        pass
    return answer, time.monotonic() - started


def _get(sock: socket.socket, path: str = "/") -> bytes:
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    answer = b""
    while not answer.endswith(b"ok"):
        chunk = sock.recv(65536)
        if not chunk:
            break
        answer += chunk
    return answer


def test_a_head_that_grows_past_the_limit_gets_431_before_it_ends(server: LiveServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n")
        time.sleep(0.05)
        sock.sendall(b"X-Big: " + b"a" * 8192)
        answer, took = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")
    assert took < LIMITS.header_timeout


def test_a_whole_head_past_the_limit_gets_431(server: LiveServer) -> None:
    with _connect(server) as sock:
        headers = b"".join(b"X-%d: %s\r\n" % (n, b"a" * 100) for n in range(60))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        answer, _ = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_a_long_request_line_gets_431(server: LiveServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET /" + b"a" * 8192 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        answer, _ = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_a_head_just_under_the_limit_is_served(server: LiveServer) -> None:
    with _connect(server) as sock:
        filler = b"a" * 3500
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nX-Fill: " + filler + b"\r\n\r\n")
        answer = sock.recv(65536)
    assert answer.startswith(OK)


def test_a_connection_that_sends_nothing_is_closed_after_the_header_timeout(server: LiveServer) -> None:
    with _connect(server) as sock:
        answer, took = _read_until_closed(sock)
    assert answer == b""
    assert LIMITS.header_timeout * 0.8 < took < LIMITS.header_timeout + 2


def test_a_head_that_stops_half_way_gets_408(server: LiveServer) -> None:
    with _connect(server) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHo")
        answer, took = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert took < LIMITS.header_timeout + 2


def test_a_head_sent_slowly_is_cut_off_though_each_byte_comes_in_time(server: LiveServer) -> None:
    """The timeout runs from the connection's start, not from the last byte."""
    with _connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET / HTTP/1.1\r\n")
        sock.settimeout(0.1)
        answer = b""
        while time.monotonic() - started < LIMITS.header_timeout + 3:
            try:
                sock.sendall(b"X-A: b\r\n")
                answer = sock.recv(65536)
            except TimeoutError:
                continue
            except OSError:
                break
            if answer:
                break
        took = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 ")
    assert took < LIMITS.header_timeout + 2


def test_a_kept_alive_connection_is_served_then_closed_once_idle(server: LiveServer) -> None:
    with _connect(server) as sock:
        assert _get(sock).startswith(OK)
        time.sleep(LIMITS.header_timeout / 3)
        assert _get(sock).startswith(OK)  # the timeout restarted after the first response
        answer, took = _read_until_closed(sock)
    assert answer == b""
    assert took < LIMITS.header_timeout + 2


def test_a_request_that_runs_longer_than_the_header_timeout_is_answered(server: LiveServer) -> None:
    with _connect(server) as sock:
        assert _get(sock, "/slow").startswith(OK)


def test_past_the_cap_a_new_connection_closes_the_longest_idle_one(server: LiveServer) -> None:
    idle = [_connect(server) for _ in range(LIMITS.max_connections)]
    try:
        time.sleep(0.05)
        with _connect(server) as newest:
            assert _get(newest).startswith(OK)
        answer, took = _read_until_closed(idle[0], seconds=LIMITS.header_timeout / 2)
        assert answer == b""
        assert took < LIMITS.header_timeout / 2
    finally:
        for sock in idle:
            sock.close()


def test_past_the_cap_with_every_connection_busy_a_new_one_gets_503(server: LiveServer) -> None:
    busy = [_connect(server) for _ in range(LIMITS.max_connections)]
    try:
        for sock in busy:
            sock.sendall(b"GET /slow HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        with _connect(server) as refused:
            answer, _ = _read_until_closed(refused)
        assert answer.startswith(b"HTTP/1.1 503 ")
        for sock in busy:  # the busy ones are answered all the same
            sock.settimeout(5)
            assert sock.recv(65536).startswith(OK)
    finally:
        for sock in busy:
            sock.close()


def test_a_client_that_stops_reading_a_response_is_cut_off(server: LiveServer, app: _App) -> None:
    before = app.big_done
    with socket.socket() as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", server.port))
        sock.sendall(b"GET /big HTTP/1.1\r\nHost: x\r\n\r\n")
        deadline = time.monotonic() + LIMITS.send_timeout + 5
        while app.big_done == before and time.monotonic() < deadline:
            time.sleep(0.05)
        assert app.big_done == before + 1, "the response still waits on a client that reads nothing"
        answer, _ = _read_until_closed(sock)
    assert len(answer) < 64 << 20


class _SendsLonger(GuardedHttpProtocol):
    limits = ServerLimits(header_timeout=0.3, send_timeout=1.0, max_header_bytes=4096, max_connections=3)


def test_a_finished_response_nobody_reads_does_not_keep_its_connection(app: _App) -> None:
    """A response handed over whole, then the connection idle past the header timeout:
    closing it waits for the unsent bytes only `send_timeout` seconds, so a client
    that reads nothing cannot hold it (and a place under the cap) for ever."""
    with LiveServer(http=_SendsLonger) as live, socket.socket() as sock:
        live.serve(app)
        connections = live._server.server_state.connections
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", live.port))
        sock.sendall(b"GET /whole HTTP/1.1\r\nHost: x\r\n\r\n")
        time.sleep(0.2)
        assert len(connections) == 1
        deadline = time.monotonic() + 0.3 + 1.0 + 3
        while connections and time.monotonic() < deadline:
            time.sleep(0.05)
        assert len(connections) == 0


def test_the_cap_is_lowered_to_what_the_descriptor_limit_holds() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fitted = ServerLimits(max_connections=10**9).fitted_to_descriptors()
    now_soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        assert now_soft >= soft
        assert 0 < fitted.max_connections <= now_soft // 2
        assert ServerLimits(max_connections=5).fitted_to_descriptors().max_connections == 5
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def _stream_until_closed(sock: socket.socket, first: bytes, more: bytes, most: int) -> int:
    """Send `first`, then `more` again and again until the server closes or `most`
    bytes went; how many went."""
    sock.sendall(first)
    sent = len(first)
    sock.settimeout(5)
    try:
        while sent < most:
            sock.sendall(more)
            sent += len(more)
    except OSError:
        pass
    return sent


def test_an_endless_trailer_is_cut_off(server: LiveServer) -> None:
    with _connect(server) as sock:
        head = b"PUT /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
        head += b"5\r\nhello\r\n0\r\nX-T: "
        sent = _stream_until_closed(sock, head, b"a" * 65536, 64 << 20)
    assert sent < 16 << 20  # the kernel's buffers take some; the server stops past 4 KiB of framing


def test_an_endless_chunk_line_is_cut_off(server: LiveServer) -> None:
    with _connect(server) as sock:
        head = b"PUT /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5;ext="
        sent = _stream_until_closed(sock, head, b"a" * 65536, 64 << 20)
    assert sent < 16 << 20


def test_too_many_header_fields_get_431(server: LiveServer) -> None:
    with _connect(server) as sock:
        fields = b"".join(b"a%d: b\r\n" % n for n in range(200))
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n" + fields + b"\r\n")
        answer, _ = _read_until_closed(sock)
    assert answer.startswith(b"HTTP/1.1 431 ")


def test_trailer_fields_never_become_request_headers(server: LiveServer) -> None:
    """Sent in one write with the head, a trailer would land in the headers the app
    reads (uvicorn appends it to them): an upload's trailer could set metadata."""
    with _connect(server) as sock:
        sock.sendall(
            b"PUT /headers HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"2\r\nhi\r\n0\r\nx-amz-meta-injected: from-trailer\r\n\r\n"
        )
        sock.settimeout(5)
        answer = sock.recv(65536)
    assert answer.startswith(OK)
    assert answer.split(b"\r\n\r\n", 1)[1] == b"host,transfer-encoding"


def test_a_chunked_upload_in_big_chunks_is_read_whole(server: LiveServer) -> None:
    with _connect(server) as sock:
        body = b"".join(b"%x\r\n%s\r\n" % (1024, b"x" * 1024) for _ in range(512)) + b"0\r\n\r\n"
        sock.sendall(b"PUT /read HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n" + body)
        sock.settimeout(5)
        assert sock.recv(65536).startswith(OK)


def test_a_download_cut_off_by_the_send_timeout_lets_go_of_its_file(tmp_path: Path) -> None:
    """Cut off while its response waited to be sent, a download's stream is closed at
    once: its reader (a file descriptor) and its last piece are not left for the
    garbage collector."""
    with serve(tmp_path, {"send_timeout": 1}) as served:
        served.store.put("big.bin", os.urandom(32 << 20))
        data_file = str(served.root / "big.bin")
        request = (
            f"GET {path_of(served.store.presigned_get_url('big.bin', ttl=600))} HTTP/1.1\r\n"
            f"Host: 127.0.0.1:{served.port}\r\n\r\n"
        ).encode()
        clients = []
        for _ in range(5):
            sock = socket.create_connection(("127.0.0.1", served.port))
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
            sock.sendall(request)
            clients.append(sock)
        time.sleep(0.5)
        assert _open_on(served.proc.pid, data_file) == 5  # all five are sending
        deadline = time.monotonic() + 15
        while _open_on(served.proc.pid, data_file) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert _open_on(served.proc.pid, data_file) == 0
        for sock in clients:
            sock.close()


def _open_on(pid: int, path: str) -> int:
    """How many of process `pid`'s file descriptors are open on `path`."""
    count = 0
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd) == path
    return count
