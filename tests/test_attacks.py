"""Attacks on a real ``visiona-storage serve`` on loopback, while a legitimate client
keeps making a 1 KiB GET, a 1 MiB GET and a 1 KB PUT every 50 ms.

Each test prints one line of figures (the legitimate client's worst and median
latency per kind and its failures, the server's RSS at start and at most during
the attack) before it asserts its targets. ``VS_ATTACK_OLD=1`` measures a server
from before the ``storage.server`` timeouts and limits (``tests/attacks.py``).
"""

from __future__ import annotations

import contextlib
import os
import random
import select
import selectors
import socket
import threading
import time
import urllib.parse
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

import visiona_storage as vs
from attacks import (
    LegitClient,
    MiB,
    RssSampler,
    Served,
    mib,
    path_of,
    raise_own_nofile,
    read_status,
    serve,
    wait_until,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ADDRESS = "127.0.0.1"
RSS_LIMIT_KIB = 256 * 1024
WORST_LATENCY = 0.25
"""The target for others' worst latency while an attack holds what it took."""
STARVED = 2.0
"""Others' worst latency at any time, bursts included: past it they are starved
(a burst of legitimate-looking traffic on two cores costs some 100 ms)."""


def _send_until(sock: socket.socket, data: bytes, deadline: float) -> int:
    """Send as much of `data` as the peer takes before `deadline`; how much it took.
    Stops early if the peer closes or resets the connection."""
    view = memoryview(data)
    sent = 0
    sock.setblocking(False)
    while sent < len(view):
        left = deadline - time.monotonic()
        if left <= 0:
            break
        _, writable, _ = select.select([], [sock], [], min(left, 0.5))
        if not writable:
            continue
        try:
            sent += sock.send(view[sent : sent + MiB])
        except BlockingIOError:
            continue
        except OSError:
            break
    return sent


# 1. A header that never ends


@dataclass
class _HeaderOutcome:
    sent: int
    seconds: float
    how: str
    """'answered', 'closed', 'reset', 'no answer' (still open at the end), 'gave up' (safety cap)."""
    status: int | None
    longest_stall: float
    """The longest time the server took no byte of the header."""


def _endless_header(
    served: Served, seconds: float, cap: int = 1 << 30, rss_cap_kib: int = 3 << 20
) -> _HeaderOutcome:
    payload = memoryview(b"a" * MiB)
    sent = offset = 0
    reply = b""
    how = ""
    status: int | None = None
    with socket.create_connection((ADDRESS, served.port), timeout=5) as sock:
        sock.sendall(b"GET /storage/x HTTP/1.1\r\nHost: a\r\nX-Big: ")
        sock.setblocking(False)
        started = last_progress = checked = time.monotonic()
        longest_stall = 0.0
        while not how:
            now = time.monotonic()
            if now >= started + seconds:
                how = "no answer"
                break
            if now - checked > 0.1:
                checked = now
                if sent >= cap or served.rss_kib() > rss_cap_kib or not served.alive():
                    how = "gave up"
                    break
            readable, writable, _ = select.select([sock], [sock], [], min(0.1, started + seconds - now))
            if readable:
                try:
                    chunk = sock.recv(65536)
                except OSError:
                    how = "reset"
                    break
                if not chunk:
                    how = "closed" if not reply else "answered"
                    break
                reply += chunk
                if b"\r\n" in reply:
                    how = "answered"
                    break
            if writable:
                try:
                    n = sock.send(payload[offset:])
                except BlockingIOError:
                    n = 0
                except OSError:
                    with contextlib.suppress(OSError):  # the answer may have come just before the close
                        reply += sock.recv(65536)
                    how = "answered" if b"\r\n" in reply else "reset"
                    break
                sent += n
                offset = (offset + n) % MiB
                if n:
                    last_progress = time.monotonic()
            longest_stall = max(longest_stall, time.monotonic() - last_progress)
        if how == "answered":
            fields = reply.split(b"\r\n", 1)[0].split(b" ", 2)
            status = int(fields[1]) if len(fields) > 1 and fields[1].isdigit() else 0
        return _HeaderOutcome(sent, time.monotonic() - started, how, status, longest_stall)


def test_endless_header_is_cut_off(tmp_path: Path) -> None:
    with serve(tmp_path, {"header_timeout": 5}) as served, RssSampler(served.proc.pid) as rss:
        with LegitClient(served) as legit:
            started = time.monotonic()
            outcome = _endless_header(served, seconds=15)
            ended = time.monotonic()
            time.sleep(max(1.0, started + 3 - ended))
        log = served.log_text()
    rss_max = rss.max_kib(started)
    answer = f" {outcome.status}" if outcome.status is not None else ""
    print(
        f"\nendless header: {mib(outcome.sent // 1024)} of header taken in {outcome.seconds:.1f} s, "
        f"then {outcome.how}{answer} (longest stall {outcome.longest_stall:.1f} s); server RSS "
        f"{mib(served.rss_at_start_kib)} at start, max {mib(rss_max)}; {legit.summary(started)}"
    )
    assert outcome.how in ("answered", "closed", "reset"), outcome
    assert outcome.status in (None, 400, 431), outcome
    assert rss_max < RSS_LIMIT_KIB
    assert legit.worst(started) < WORST_LATENCY, legit.summary(started)
    assert "Traceback" not in log, log[-3000:]


# 2. Connections that never send a request (or half of one)

HEADER_TIMEOUT = 5
HALF_OPEN = 1100


@dataclass
class _HalfOpen:
    sock: socket.socket
    opened: float
    partial: bool
    closed: float | None = None
    how: str = ""
    answered: bytes = b""


def _watch_until_closed(conns: list[_HalfOpen], deadline: float) -> None:
    """Wait for the server to close each connection (EOF or reset), noting when."""
    with selectors.DefaultSelector() as selector:
        for conn in conns:
            conn.sock.setblocking(False)
            selector.register(conn.sock, selectors.EVENT_READ, conn)
        open_count = len(conns)
        while open_count and time.monotonic() < deadline:
            for key, _ in selector.select(min(0.2, max(0.0, deadline - time.monotonic()))):
                conn = key.data
                try:
                    chunk = conn.sock.recv(4096)
                except BlockingIOError:
                    continue
                except OSError:
                    chunk, conn.how = b"", "reset"
                if chunk:
                    conn.answered += chunk[: 100 - len(conn.answered)]
                    continue
                conn.closed = time.monotonic()
                conn.how = conn.how or "eof"
                selector.unregister(conn.sock)
                open_count -= 1


def test_half_open_connections_are_closed(tmp_path: Path) -> None:
    raise_own_nofile()
    conns: list[_HalfOpen] = []
    not_opened: Counter[str] = Counter()
    settings = {"header_timeout": HEADER_TIMEOUT}
    with serve(tmp_path, settings, nofile=1024) as served, RssSampler(served.proc.pid) as rss:
        try:
            with LegitClient(served) as legit:
                started = time.monotonic()
                for n in range(HALF_OPEN):
                    if time.monotonic() - started > 15:
                        not_opened["no time left"] += 1
                        continue
                    sock = socket.socket()
                    sock.settimeout(1)
                    try:
                        sock.connect((ADDRESS, served.port))
                        partial = n % 3 == 2
                        if partial:
                            sock.sendall(b"GET /sto")
                    except OSError as exc:
                        not_opened[type(exc).__name__] += 1
                        sock.close()
                        continue
                    conns.append(_HalfOpen(sock, time.monotonic(), partial))
                opened = time.monotonic()
                _watch_until_closed(conns, opened + HEADER_TIMEOUT + 10)
                watched = time.monotonic()
                time.sleep(1)
        finally:
            for conn in conns:
                conn.sock.close()
        log = served.log_text()
    rss_max = rss.max_kib(started)

    def closed_within(seconds: float, partial: bool) -> int:
        return sum(
            1
            for c in conns
            if c.partial == partial and c.closed is not None and c.closed - c.opened <= seconds
        )

    counts = []
    for partial, name in ((False, "silent"), (True, "half a request line")):
        total = sum(1 for c in conns if c.partial == partial)
        steps = ", ".join(
            f"{closed_within(s, partial)} by {s:.0f} s"
            for s in (1, HEADER_TIMEOUT + 1, HEADER_TIMEOUT + 5, 15)
        )
        counts.append(f"{total} {name}: {steps}")
    answered = Counter(c.answered.split(b"\r\n", 1)[0].decode(errors="replace") for c in conns if c.answered)
    late_failures = legit.failures(started + 2)
    print(
        f"\nhalf-open connections: {len(conns)} opened in {opened - started:.1f} s"
        f" ({sum(not_opened.values())} not: {dict(not_opened)}), closed by the server: {'; '.join(counts)};"
        f" {sum(c.how == 'reset' for c in conns)} reset, answers {dict(answered)}; watched"
        f" {watched - opened:.1f} s; server RSS {mib(served.rss_at_start_kib)} at start, max {mib(rss_max)};"
        f" {legit.summary(started)}; {len(late_failures)} failed after the first 2 s"
    )
    late = [c for c in conns if c.closed is None or c.closed - c.opened > HEADER_TIMEOUT + 5]
    assert late_failures == [], legit.summary(started + 2)
    assert late == [], f"{len(late)} connections not closed within {HEADER_TIMEOUT + 5} s"
    assert "Traceback" not in log, log[-3000:]


# 3. Uploads that stall half way

STALLED_UPLOADS = 60
RELEASED_SLACK_KIB = 64 * 1024
"""Released: the server's RSS back within this of where it started."""
DECLARED = 64 * MiB
SENT = 4 * MiB
STALL = 20.0


def test_stalled_uploads_do_not_starve_others(tmp_path: Path) -> None:
    key = "attack/stalled.bin"
    results: list[tuple[int, int]] = []
    sent_by: list[float] = []
    lock = threading.Lock()
    with serve(tmp_path, {"body_timeout": 60}) as served, RssSampler(served.proc.pid) as rss:
        target = path_of(
            served.store.presigned_put_url(key, ttl=3600, content_type="application/octet-stream")
        )
        head = (
            f"PUT {target} HTTP/1.1\r\nHost: {ADDRESS}:{served.port}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {DECLARED}\r\n\r\n"
        ).encode()
        data = head + os.urandom(SENT)

        def upload() -> None:
            try:
                sock = socket.create_connection((ADDRESS, served.port), timeout=5)
            except OSError:
                with lock:
                    results.append((0, -2))
                return
            with sock:
                sent = _send_until(sock, data, time.monotonic() + 10)
                with lock:
                    sent_by.append(time.monotonic())
                # The stall: the connection stays open, sending nothing; an answer ends it early.
                status = read_status(sock, time.monotonic() + STALL)
            with lock:
                results.append((max(0, sent - len(head)), status))

        def key_files() -> list[Path]:
            return [p for p in served.root.rglob("*") if "stalled" in p.name]

        with LegitClient(served) as legit:
            started = time.monotonic()
            uploaders = [threading.Thread(target=upload, daemon=True) for _ in range(STALLED_UPLOADS)]
            for thread in uploaders:
                thread.start()
            for thread in uploaders:
                thread.join(STALL + 30)
            left = time.monotonic()
            time.sleep(1)
        stall_rss = rss.max_kib(started, left)
        released = served.rss_at_start_kib + RELEASED_SLACK_KIB
        temps_at_leaving = len(served.temp_files())
        recovered = wait_until(
            lambda: served.rss_kib() < released and not served.temp_files() and not key_files(),
            max(0.0, left + 5 - time.monotonic()),
        )
        rss_after = served.rss_kib()
        leftovers = [str(p.relative_to(served.root)) for p in served.temp_files() + key_files()]
        try:
            served.store.stat(key)
            stored = "stored!"
        except vs.NotFoundError:
            stored = "not stored"
        log = served.log_text()
    statuses = Counter(status for _, status in results)
    stalled = max(sent_by, default=left)
    print(
        f"\nstalled uploads: {len(results)} uploads took {sum(s for s, _ in results) / MiB:.0f} MiB"
        f" in {stalled - started:.1f} s (answers {dict(statuses)}, -1 = none in {STALL:.0f} s),"
        f" then stalled for {left - stalled:.1f} s;"
        f" server RSS {mib(served.rss_at_start_kib)} at start, max {mib(stall_rss)} during the stall,"
        f" {mib(rss_after)} {f'{recovered:.1f} s' if recovered is not None else 'still, 5 s'} after they"
        f" left; {temps_at_leaving} temp files as they left, {len(leftovers)} left 5 s later; key {stored};"
        f" while they sent: {legit.summary(started, stalled)};"
        f" while they stalled: {legit.summary(stalled, left)}"
    )
    assert legit.failures(started, left) == [], legit.summary(started, left)
    assert legit.worst(started, left) < STARVED, legit.summary(started, left)
    assert legit.worst(stalled, left) < WORST_LATENCY, legit.summary(stalled, left)
    assert stall_rss < RSS_LIMIT_KIB
    assert recovered is not None, (mib(rss_after), leftovers[:5])
    assert stored == "not stored"
    assert "Traceback" not in log, log[-3000:]


# 4. Downloads that never read

NEVER_READ = 300
BIG = 32 * MiB
HOLD = 20.0


def test_downloads_that_never_read(tmp_path: Path) -> None:
    raise_own_nofile()
    socks: list[socket.socket] = []
    refused: Counter[str] = Counter()
    with serve(tmp_path, {"send_timeout": 60}) as served, RssSampler(served.proc.pid) as rss:
        served.store.put("attack/big.bin", random.Random(4).randbytes(BIG))
        target = path_of(served.store.presigned_get_url("attack/big.bin", ttl=3600))
        request = f"GET {target} HTTP/1.1\r\nHost: {ADDRESS}:{served.port}\r\n\r\n".encode()
        try:
            with LegitClient(served) as legit:
                started = time.monotonic()
                for _ in range(NEVER_READ):
                    if time.monotonic() - started > 10:
                        refused["no time left"] += 1
                        continue
                    sock = socket.socket()
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
                    sock.settimeout(2)
                    try:
                        sock.connect((ADDRESS, served.port))
                        sock.sendall(request)
                    except OSError as exc:
                        refused[type(exc).__name__] += 1
                        sock.close()
                        continue
                    socks.append(sock)
                opened = time.monotonic()
                time.sleep(max(0.0, started + HOLD - time.monotonic()))
                # What each connection got (it never read): an answer started, or closed.
                waiting = sum(1 for s in socks if not select.select([s], [], [], 0)[0])
                for sock in socks:
                    sock.close()
                left = time.monotonic()
                time.sleep(2)
                rss_after = served.rss_kib()
        finally:
            for sock in socks:
                sock.close()
        log = served.log_text()
    rss_max = rss.max_kib(started, left)
    print(
        f"\ndownloads that never read: {len(socks)} GETs of {BIG // MiB} MiB sent in {opened - started:.1f} s"
        f" ({sum(refused.values())} not: {dict(refused)}), held {left - started:.0f} s ({waiting} had"
        f" nothing to read); server RSS {mib(served.rss_at_start_kib)} at start, max {mib(rss_max)},"
        f" {mib(rss_after)} 2 s after they closed; {legit.summary(started, left)}"
    )
    assert rss_max < 2 * RSS_LIMIT_KIB
    assert legit.failures(started, left) == [], legit.summary(started, left)
    assert "Traceback" not in log, log[-3000:]


# 5. Random requests and mutated presigned URLs

RANDOM_REQUESTS = 1500
MUTATIONS = 1000
SEED = 20260101


@dataclass(frozen=True)
class _Raw:
    data: bytes
    half_close: bool
    """Shut the sending side once sent: the body's framing may promise more than it sends."""


def _raw_request(
    method: bytes,
    target: bytes,
    headers: list[tuple[bytes, bytes]],
    body: bytes,
    version: bytes = b"HTTP/1.1",
) -> bytes:
    lines = [method + b" " + target + b" " + version, b"Host: 127.0.0.1", b"Connection: close"]
    lines += [name + b": " + value for name, value in headers]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


_PIECES = [
    "..", "%2e%2e", "%2F", "%00", "%5C", "a", "b.bin", "%25", "%E6%A8%A1", "%E6%A8", ".meta.json",
    "x.vs-tmp", "", ".visiona-storage", "%ff", "%", "%20", "%3F", "..%2f", "%252e%252e", "%E6%A8%A1%E5%9E%8B",
    "\\", "~", "+",
]  # fmt: skip
_QUERIES = [
    "", "X-VS-Signature=x", "X-VS-Expires=abc&X-VS-Key-Id=k&X-VS-Signature=z",
    "X-VS-Expires=99999999999999999999&X-VS-Key-Id=%00&X-VS-Signature=", "X-VS-Max-Size=-1",
    "X-VS-Expires=%C2%B2&X-VS-Key-Id=k&X-VS-Signature=z",
    "X-VS-Expires=%E2%91%A0&X-VS-Key-Id=k&X-VS-Signature=z",
    "&&&", "=&=", "%", "a=%zz", "X-VS-Signature=%ff%fe",
]  # fmt: skip
_RANGES = [
    "bytes=0-0", "bytes=-1", "bytes=5-", "bytes=999999999999999999999-", "bytes=--", "bytes=1-2,3-4",
    "bytes=a-b", "bytes=-", "bytes 0-1", "bytes=0-999999999999999999999999999", "=", "", "bytes=²-³",
    "bytes=①-②", "bytes=\u0661-\u0662", "bytes=-0", "bytes=0-", "bytes=" + "9" * 5000,
]  # fmt: skip
_CONTENT_LENGTHS = [
    "-1", "abc", "²", "①", "\u0661\u0662", "\uff11\uff12", "1e3", " 5", "5 ", "99999999999999999999999",
    "0x10", "5, 5", "+5", "",
]  # fmt: skip
_TRANSFER_ENCODINGS = [
    "chunked", "gzip", "chunked, chunked", "identity", "gzip, chunked", "Chunked", "xchunked", "chunked;q=1",
    "", "\uff43hunked",
]  # fmt: skip
_CHUNKED_BODIES = [
    b"5\r\nhello\r\n0\r\n\r\n", b"zz\r\n", b"5\r\nabc", b"ffffffffffffffffff\r\nx", b"0\r\n\r\n",
    b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\n", b"-1\r\nx\r\n", b"\r\n\r\n",
]  # fmt: skip


_PROTOCOL_ANOMALIES = [
    "method", "target", "version", "header name", "header value", "fold", "no colon", "content-length",
    "transfer-encoding",
]  # fmt: skip


def _random_request(rng: random.Random, signed: list[str]) -> _Raw:
    """A random request: most are well formed for the HTTP parser, with odd values for
    the app to judge; about a third carry one anomaly the parser itself should refuse."""
    anomaly = rng.choice(_PROTOCOL_ANOMALIES) if rng.random() < 0.3 else ""
    method = rng.choice([b"GET"] * 4 + [b"HEAD", b"PUT", b"PUT", b"POST", b"DELETE", b"OPTIONS", b"PATCH"])
    if anomaly == "method":
        method = rng.choice([b"BREW", b"get", b"G ET", b"\xffGET", b"", b"A" * 300, b"PUT\x00", b"CONNECT"])
    roll = rng.random()
    if roll < 0.4:
        target = path_of(rng.choice(signed)).encode()
    elif roll < 0.85:
        path = "/storage/" + "/".join(rng.choice(_PIECES) for _ in range(rng.randint(0, 4)))
        query = rng.choice(_QUERIES)
        target = (path + ("?" + query if query else "")).encode()
    else:
        target = rng.choice(
            [
                b"*", b"http://127.0.0.1/storage/a/b.bin", b"/", b"/storage", b"/storage/", b"//storage//a",
                b"/storage/a#frag", b"/storage/..%2f..%2fetc%2fpasswd", b"/storage/a?" + b"&" * 1000,
                b"/storage/" + b"a" * rng.choice([1000, 10_000, 100_000]), b"/storage/%", b"/storage/a\\b",
            ]
        )  # fmt: skip
    if anomaly == "target":
        raw = rng.choice([b"\xe6\xa8\xa1", b"\xff\xfe", b" ", b"\t", b"\x00", b"\x7f"])
        target = rng.choice([b"", b"/storage/a" + raw + b"b", target + raw])
    version = b"HTTP/1.1" if rng.random() < 0.9 else rng.choice([b"HTTP/1.0", b"HTTP/2.0"])
    if anomaly == "version":
        version = rng.choice([b"HTTP/1.1x", b"", b"HTTP/9.9", b"http/1.1", b"HTTP/1"])
    headers: list[tuple[bytes, bytes]] = []
    if rng.random() < 0.4:
        headers.append((b"Range", rng.choice(_RANGES).encode()))
    if rng.random() < 0.3:
        headers.append((b"If-None-Match", rng.choice(["*", '"x"', "", "W/", '"' * 3, "é", "²"]).encode()))
    if rng.random() < 0.3:
        headers.append((b"If-Match", rng.choice(["*", '"x"', "", ",", "W/*", "模型"]).encode()))
    if rng.random() < 0.5:
        kind = rng.choice(["application/octet-stream", "", "text/html", "a\tb", "模型", "x/y; charset=é"])
        headers.append((b"Content-Type", kind.encode()))
    for _ in range(rng.choice([0, 0, 1, 2, 30])):
        meta = rng.choice([b"k", b"bad_key", b"a.b", b"", b"K-2", b"x" * 200])
        value = rng.choice(
            [b"v", b"=?UTF-8?B?!!?=", b"=?UTF-8?B?5qih5Z6L?=", b"x" * 3000, b"", "模型".encode(), b"\xff\xfe"]
        )
        headers.append((b"x-amz-meta-" + meta, value))
    if rng.random() < 0.15:
        headers.append(
            rng.choice(
                [
                    (b"X-Huge", b"h" * rng.choice([8 * 1024, 64 * 1024, 300 * 1024])),
                    (b"X-Bytes", bytes(rng.randrange(128, 256) for _ in range(64))),
                    (b"Expect", b"100-continue"),
                    (b"Host", b"second.example"),
                    (b"Connection", b"keep-alive, Upgrade"),
                    (b"Upgrade", b"websocket"),
                ]
            )
        )
    if rng.random() < 0.05:
        headers += [(f"X-Many-{n}".encode(), b"v") for n in range(rng.choice([100, 1000]))]
    if anomaly == "header name":
        name = rng.choice(["x-amz-meta-é", "x-amz-meta-k k", "x-amz-meta-\xff", "", "X Space", "X:Colon"])
        headers.append((name.encode("utf-8", "surrogateescape"), b"v"))
    elif anomaly == "header value":
        headers.append(
            (rng.choice([b"x-amz-meta-k", b"Range", b"X-A"]), rng.choice([b"a\x00b", b"a\rb", b"\x7f"]))
        )
    elif anomaly == "fold":
        headers.append((b"X-Fold", b"a\r\n b"))
    elif anomaly == "no colon":
        headers.append((b"NoColon\r\nX-After", b"v"))
    framing = rng.choice(["none", "none", "exact", "exact", "more", "less", "chunked"])
    if anomaly in ("content-length", "transfer-encoding"):
        framing = anomaly
    body = b""
    half_close = framing in ("more", "chunked", "content-length", "transfer-encoding")
    if framing == "exact":
        body = rng.randbytes(rng.choice([0, 1, 100, 600, 2000]))
        headers.append((b"Content-Length", str(len(body)).encode()))
    elif framing == "more":
        body = rng.randbytes(rng.randint(0, 100))
        headers.append((b"Content-Length", str(len(body) + rng.choice([1, 100, 1 << 30])).encode()))
    elif framing == "less":
        body = rng.randbytes(rng.randint(10, 200))
        headers.append((b"Content-Length", str(rng.randint(0, 9)).encode()))
    elif framing == "chunked":
        body = rng.choice(_CHUNKED_BODIES)
        headers.append((b"Transfer-Encoding", b"chunked"))
    elif framing == "content-length":
        body = b"hello"
        headers.append((b"Content-Length", rng.choice(_CONTENT_LENGTHS).encode()))
        if rng.random() < 0.3:
            headers.append((b"Content-Length", b"7"))
    elif framing == "transfer-encoding":
        body = rng.choice(_CHUNKED_BODIES)
        headers.append((b"Transfer-Encoding", rng.choice(_TRANSFER_ENCODINGS).encode()))
        if rng.random() < 0.5:
            headers.append((b"Content-Length", b"5"))
    rng.shuffle(headers)
    return _Raw(_raw_request(method, target, headers, body, version), half_close)


_KEY_CHARS = [
    "a", "Z", "/", ".", "%", "%2F", "%00", "%C2%B2", "é", "..", "\\", "%25", "+", " ", "?", "#", "%E2%91%A0",
    "%ff", "~", "模",
]  # fmt: skip
_WEIRD_NUMBERS = [
    "%C2%B2", "%E2%91%A0", "²", "①", "%D9%A1%D9%A2%D9%A3", "%EF%BC%91%EF%BC%92", "-1", "+1", "%201", "1.0",
    "", "9" * 13, "9" * 20, "0x10", "1e9", "%00", "\uff11\uff12\uff13",
]  # fmt: skip


def _mutate(rng: random.Random, text: str, alphabet: list[str]) -> str:
    """Flip, insert or delete a character of `text`."""
    where = rng.randrange(len(text) + 1)
    how = rng.choice(["flip", "insert", "delete"]) if text else "insert"
    if how == "insert":
        return text[:where] + rng.choice(alphabet) + text[where:]
    where = min(where, len(text) - 1)
    if how == "delete":
        return text[:where] + text[where + 1 :]
    return text[:where] + rng.choice(alphabet) + text[where + 1 :]


def _mutated_url(rng: random.Random, bases: list[tuple[str, str]]) -> _Raw:
    method, url = rng.choice(bases)
    parts = urllib.parse.urlsplit(url)
    key = parts.path.removeprefix("/storage/")
    params = [field.partition("=")[::2] for field in parts.query.split("&")]
    for _ in range(rng.choice([1, 1, 1, 2, 3])):
        roll = rng.random()
        n = rng.randrange(len(params)) if params else 0
        if roll < 0.2:
            key = _mutate(rng, key, _KEY_CHARS)
        elif roll < 0.27:
            key = rng.choice(
                [
                    "".join(f"%{b:02X}" for b in urllib.parse.unquote(key).encode()),
                    key.replace("%", "%25"),
                    key.upper(),
                    key.lower(),
                    "../" + key,
                    key + "/",
                    "/" + key,
                    key.replace("/", "%2F"),
                ]
            )
        elif roll < 0.42 and params:
            name, value = params[n]
            params[n] = (name, _mutate(rng, value, [*_KEY_CHARS, "0", "9", "f"]))
        elif roll < 0.57 and params:
            wanted = rng.choice(["X-VS-Expires", "X-VS-Max-Size"])
            weird = rng.choice(_WEIRD_NUMBERS)
            found = [i for i, (name, _) in enumerate(params) if name == wanted]
            if found:
                value = params[found[0]][1]
                value = rng.choice(
                    [weird, "0" + value, value + weird, "".join(f"%{ord(c):02X}" for c in value)]
                )
                params[found[0]] = (wanted, value)
            else:
                params.insert(rng.randrange(len(params) + 1), (wanted, weird))
        elif roll < 0.7 and params:
            name, value = params[n]
            again = (name, rng.choice([value, "", "0", value + "0", rng.choice(_WEIRD_NUMBERS)]))
            params.insert(rng.choice([0, n, len(params)]), again)
        elif roll < 0.77 and params:
            del params[n]
        elif roll < 0.85 and params:
            name, value = params[n]
            name = rng.choice(
                [
                    name.lower(),
                    name.upper(),
                    name.replace("-", "%2D"),
                    name + " ",
                    "%58" + name[1:],
                    name + "[]",
                ]
            )
            params[n] = (name, value)
        elif roll < 0.92:
            params.insert(
                rng.randrange(len(params) + 1),
                rng.choice(
                    [("", ""), ("X-VS-Max-Size", "1"), ("a", "%zz"), ("X-VS-Signature", ""), ("%", "%")]
                ),
            )
        else:
            method = rng.choice(["GET", "HEAD", "PUT", "DELETE"])
    query = "&".join(f"{name}={value}" if value or rng.random() < 0.5 else name for name, value in params)
    target = f"/storage/{key}?{query}".encode()
    headers: list[tuple[bytes, bytes]] = []
    body = b""
    if method == "PUT":
        body = rng.randbytes(rng.choice([0, 100, 600]))
        content_type = rng.choice([b"application/octet-stream"] * 5 + [b"text/plain", b""])
        headers += [(b"Content-Type", content_type), (b"Content-Length", str(len(body)).encode())]
    return _Raw(_raw_request(method.encode(), target, headers, body), False)


def _exchange(port: int, raw: _Raw, deadline: float) -> int:
    """Send one raw request; the status (0: closed without an answer, -1: none in 10 s,
    -2: could not connect, -3: not sent, out of time)."""
    if time.monotonic() > deadline:
        return -3
    try:
        sock = socket.create_connection((ADDRESS, port), timeout=10)
    except OSError:
        return -2
    with sock:
        try:
            sock.sendall(raw.data)
            if raw.half_close:
                sock.shutdown(socket.SHUT_WR)
        except OSError:
            pass  # the server may answer and close before taking it all
        return read_status(sock, time.monotonic() + 10)


def _send_all(port: int, requests: list[_Raw], seconds: float = 25) -> Counter[int]:
    """Send `requests`, 8 at a time; how many got each status (see `_exchange`)."""
    deadline = time.monotonic() + seconds
    with ThreadPoolExecutor(8) as pool:
        return Counter(pool.map(lambda raw: _exchange(port, raw, deadline), requests))


def test_random_requests_and_url_mutations_never_get_a_5xx(tmp_path: Path) -> None:
    rng = random.Random(SEED)
    with (
        serve(tmp_path, {"header_timeout": 5, "body_timeout": 5}) as served,
        RssSampler(served.proc.pid) as rss,
    ):
        store = served.store
        original = b"0123456789" * 100
        store.put("a/b.bin", original, metadata={"x": "y", "u": "模型"})
        store.put("empty", b"")
        store.put("模型/ü ~.bin", b"unicode")

        def sign_get(key: str) -> str:
            return store.presigned_get_url(key, ttl=3600)

        octet = "application/octet-stream"
        bases = [
            ("GET", sign_get("a/b.bin")),
            ("GET", sign_get("empty")),
            ("GET", sign_get("模型/ü ~.bin")),
            ("GET", sign_get("missing")),
            ("PUT", store.presigned_put_url("a/c.bin", ttl=3600, content_type=octet, max_size=500)),
            ("PUT", store.presigned_put_url("a/d.bin", ttl=3600, content_type=octet)),
        ]
        randoms = [_random_request(rng, [url for _, url in bases]) for _ in range(RANDOM_REQUESTS)]
        mutations = [_mutated_url(rng, bases) for _ in range(MUTATIONS)]
        with LegitClient(served) as legit:
            started = time.monotonic()
            random_statuses = _send_all(served.port, randoms)
            mutation_statuses = _send_all(served.port, mutations)
            ended = time.monotonic()
        with store.get("a/b.bin") as reader:
            intact = reader.read() == original
        log = served.log_text()
    tracebacks = log.count("Traceback")
    print(
        f"\nrandom requests and URL mutations in {ended - started:.1f} s: {RANDOM_REQUESTS} random, statuses"
        f" {dict(sorted(random_statuses.items()))}; {MUTATIONS} mutated URLs, statuses"
        f" {dict(sorted(mutation_statuses.items()))} (0 = closed without an answer, -1 = none in 10 s,"
        " -3 = out of time);"
        f" {tracebacks} tracebacks in the log; server RSS {mib(served.rss_at_start_kib)} at start, max"
        f" {mib(rss.max_kib(started))}; {legit.summary(started, ended)}"
    )
    fives = {s: n for s, n in (random_statuses + mutation_statuses).items() if s >= 500}
    assert fives == {}, fives
    assert tracebacks == 0, log[log.index("Traceback") - 500 :][:4000]
    assert intact
