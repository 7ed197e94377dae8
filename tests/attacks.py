"""The harness of ``tests/test_attacks.py``: a real ``visiona-storage serve`` on
loopback, a legitimate client that keeps using it while an attack runs, and the
server's RSS sampled from /proc.

The server settings an attack needs (``header_timeout``, ``body_timeout``, ...)
go under ``storage.server`` in the YAML, unless ``VS_ATTACK_OLD=1``: the server
before those settings refuses unknown fields, so then no ``server:`` section is
written at all (to measure the old server with the same attacks).
"""

from __future__ import annotations

import http.client
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import visiona_storage as vs
from servers import free_port, stop_process, wait_for_port

OLD = os.environ.get("VS_ATTACK_OLD") == "1"
"""Measure the server from before the attack settings: write no ``server:`` section."""

KiB, MiB = 1 << 10, 1 << 20
LEGIT_TIMEOUT = 10.0
"""A legitimate request's socket timeout; a failed request counts as this long."""
LEGIT_PERIOD = 0.05
TEMP_SUFFIX = ".vs-tmp"


def raise_own_nofile() -> None:
    """Raise this process's soft limit of open files to its hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def path_of(url: str) -> str:
    """The request target of a presigned URL: its path and query."""
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


def status_kib(pid: int, field_name: str = "VmRSS") -> int:
    """A field of /proc/<pid>/status in KiB, 0 once the process is gone (or a zombie)."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith(field_name + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def write_config(tmp_path: Path, port: int, settings: Mapping[str, float | int]) -> Path:
    """A YAML configuration of a local store under ``tmp_path/data`` served on `port`."""
    lines = [
        "storage:",
        "  localfs:",
        f"    root: {tmp_path / 'data'}",
        f"    base_url: http://127.0.0.1:{port}/storage",
        "    fsync: false",
    ]
    if settings and not OLD:
        lines.append("  server:")
        lines += [f"    {name}: {value}" for name, value in settings.items()]
    config = tmp_path / "storage.yaml"
    config.write_text("\n".join(lines) + "\n")
    return config


@dataclass
class Served:
    """A running ``visiona-storage serve`` that this test started."""

    port: int
    root: Path
    store: vs.LocalFSStore
    proc: subprocess.Popen[bytes]
    log_path: Path
    rss_at_start_kib: int = 0

    def rss_kib(self) -> int:
        return status_kib(self.proc.pid)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def log_text(self) -> str:
        return self.log_path.read_bytes().decode(errors="replace")

    def temp_files(self) -> list[Path]:
        return [p for p in self.root.rglob("*") if p.name.endswith(TEMP_SUFFIX)]


@contextmanager
def serve(
    tmp_path: Path, settings: Mapping[str, float | int], *, nofile: int | None = None
) -> Iterator[Served]:
    """Start ``visiona-storage serve`` (with at most `nofile` open files, if given);
    stop it, by its PID, when the block ends."""
    port = free_port()
    config = write_config(tmp_path, port, settings)
    store = vs.open_store(config)
    assert isinstance(store, vs.LocalFSStore)
    log_path = tmp_path / "serve.log"
    log = open(log_path, "wb")  # noqa: SIM115 - closed with the server

    def limit_files() -> None:
        if nofile is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (nofile, nofile))

    command = [sys.executable, "-m", "visiona_storage.cli", "--config", str(config)]
    proc = subprocess.Popen(
        [*command, "serve", "--port", str(port), "--no-access-log"],
        stdout=log,
        stderr=subprocess.STDOUT,
        preexec_fn=limit_files,  # noqa: PLW1509 - only setrlimit, before any attack thread starts
    )
    try:
        wait_for_port(port, proc, 30, "visiona-storage serve")
        served = Served(port, tmp_path / "data", store, proc, log_path)
        time.sleep(0.3)
        served.rss_at_start_kib = served.rss_kib()
        yield served
    finally:
        stop_process(proc, signal.SIGINT, 10)
        log.close()
        store.close()


class RssSampler:
    """The server's VmRSS every 100 ms, in a thread of its own."""

    def __init__(self, pid: int, period: float = 0.1) -> None:
        self.pid = pid
        self.period = period
        self.samples: list[tuple[float, int]] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            kib = status_kib(self.pid)
            if kib:
                self.samples.append((time.monotonic(), kib))
            self._stop.wait(self.period)

    def __enter__(self) -> RssSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)

    def max_kib(self, since: float = 0.0, until: float = float("inf")) -> int:
        return max((kib for at, kib in list(self.samples) if since <= at <= until), default=0)


@dataclass(frozen=True)
class Sample:
    at: float
    """When the request started (time.monotonic())."""
    kind: str
    seconds: float
    ok: bool
    problem: str = ""
    cause: str = ""
    """What went wrong, in short: an exception's class, 'status 503', 'short body'."""


@dataclass
class _Kind:
    name: str
    method: str
    target: str
    body: bytes | None
    expect: bytes | None
    """The body a GET must answer, or None for a PUT."""
    headers: dict[str, str] = field(default_factory=dict)


class LegitClient:
    """A legitimate client: a 1 KiB GET, a 1 MiB GET and a 1 KB PUT every 50 ms, each
    kind in its own thread, each request on a fresh connection (or one kept alive)
    with a 10 s timeout. A failure (error, timeout, unexpected answer) counts as
    `LEGIT_TIMEOUT` seconds."""

    KINDS = ("get 1 KiB", "get 1 MiB", "put 1 KB")

    def __init__(self, served: Served, *, keep_alive: bool = False) -> None:
        self.port = served.port
        self.keep_alive = keep_alive
        store = served.store
        small, big = os.urandom(KiB), os.urandom(MiB)
        store.put("legit/1k.bin", small)
        store.put("legit/1m.bin", big)
        put_url = store.presigned_put_url("legit/put.bin", ttl=3600, content_type="application/octet-stream")
        self.kinds = [
            _Kind(
                "get 1 KiB", "GET", path_of(store.presigned_get_url("legit/1k.bin", ttl=3600)), None, small
            ),
            _Kind("get 1 MiB", "GET", path_of(store.presigned_get_url("legit/1m.bin", ttl=3600)), None, big),
            _Kind(
                "put 1 KB",
                "PUT",
                path_of(put_url),
                os.urandom(1000),
                None,
                {"Content-Type": "application/octet-stream"},
            ),
        ]
        self.samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._run, args=(kind,), name=f"legit {kind.name}", daemon=True)
            for kind in self.kinds
        ]

    def __enter__(self) -> LegitClient:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(LEGIT_TIMEOUT * 3)

    def _run(self, kind: _Kind) -> None:
        conn: http.client.HTTPConnection | None = None
        next_at = time.monotonic()
        while not self._stop.is_set():
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=LEGIT_TIMEOUT)
            started = time.monotonic()
            problem, cause = self._one(conn, kind)
            seconds = time.monotonic() - started
            if problem or not self.keep_alive:
                conn.close()
                conn = None
            with self._lock:
                self.samples.append(
                    Sample(
                        started, kind.name, LEGIT_TIMEOUT if problem else seconds, not problem, problem, cause
                    )
                )
            next_at = max(next_at + LEGIT_PERIOD, time.monotonic())
            self._stop.wait(next_at - time.monotonic())
        if conn is not None:
            conn.close()

    @staticmethod
    def _one(conn: http.client.HTTPConnection, kind: _Kind) -> tuple[str, str]:
        """One request; what was wrong with it and its cause in short, or ('', '')."""
        try:
            conn.request(kind.method, kind.target, body=kind.body, headers=kind.headers)
            response = conn.getresponse()
            body = response.read()
        except (OSError, http.client.HTTPException) as exc:
            return f"{kind.name}: {exc!r}", type(exc).__name__
        if response.status != 200:
            return f"{kind.name}: {response.status} {body[:200]!r}", f"status {response.status}"
        if kind.expect is not None and body != kind.expect:
            return f"{kind.name}: {len(body)} bytes, not the object's {len(kind.expect)}", "wrong body"
        return "", ""

    def window(self, since: float = 0.0, until: float = float("inf")) -> list[Sample]:
        with self._lock:
            return [s for s in self.samples if since <= s.at <= until]

    def failures(self, since: float = 0.0, until: float = float("inf")) -> list[Sample]:
        return [s for s in self.window(since, until) if not s.ok]

    def worst(self, since: float = 0.0, until: float = float("inf")) -> float:
        return max((s.seconds for s in self.window(since, until)), default=0.0)

    def summary(self, since: float = 0.0, until: float = float("inf")) -> str:
        """Worst and median latency per kind, and the failures, of the requests started in the window."""
        samples = self.window(since, until)
        parts = []
        for name in self.KINDS:
            seconds = [s.seconds for s in samples if s.kind == name]
            if seconds:
                median = statistics.median(seconds)
                parts.append(f"{name} worst {_ms(max(seconds))} median {_ms(median)} ({len(seconds)})")
            else:
                parts.append(f"{name}: none")
        failed = [s for s in samples if not s.ok]
        text = "legit " + ", ".join(parts) + f"; {len(failed)} failed of {len(samples)}"
        if failed:
            causes = Counter(s.cause for s in failed)
            first = {s.cause: s.problem for s in reversed(failed)}
            text += " (" + ", ".join(f"{n} {cause}" for cause, n in causes.most_common())
            text += "".join(f"; {first[c]}"[:160] for c in causes if c.startswith(("status", "wrong"))) + ")"
        return text


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.0f} ms" if seconds < 10 else f"{seconds:.1f} s"


def mib(kib: int) -> str:
    return f"{kib / 1024:.1f} MiB"


def wait_until(condition: Callable[[], bool], seconds: float, period: float = 0.1) -> float | None:
    """Poll `condition` for up to `seconds`; how long it took to hold, or None."""
    started = time.monotonic()
    while True:
        if condition():
            return time.monotonic() - started
        if time.monotonic() - started > seconds:
            return None
        time.sleep(period)


def read_status(sock: socket.socket, deadline: float) -> int:
    """The status of the first final (not 1xx) response on `sock`: 0 if the server
    closed or reset the connection first, -1 if nothing came before `deadline`."""
    reply = b""
    while True:
        if b"\r\n" in reply:
            fields = reply.split(b"\r\n", 1)[0].split(b" ", 2)
            try:
                status = int(fields[1]) if len(fields) > 1 and fields[0].startswith(b"HTTP/") else 0
            except ValueError:
                return 0
            if not 100 <= status < 200:
                return status
            end = reply.find(b"\r\n\r\n")
            if end >= 0:  # an interim response: the final one follows
                reply = reply[end + 4 :]
                continue
        left = deadline - time.monotonic()
        if left <= 0:
            return -1
        sock.settimeout(left)
        try:
            chunk = sock.recv(65536)
        except TimeoutError:
            return -1
        except OSError:
            return 0
        if not chunk:
            return 0
        reply += chunk
