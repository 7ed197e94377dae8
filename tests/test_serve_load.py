"""`visiona-storage serve` under load: 64 downloads and 16 uploads at once for 60 s.

Uploads overwrite the very objects being downloaded; every download is checked
against the SHA-256 its own response's metadata carries. Prints the figures (``-s``).
"""

from __future__ import annotations

import hashlib
import http.client
import math
import os
import random
import signal
import subprocess
import sys
import threading
import time
import urllib.parse
from collections import Counter
from pathlib import Path

import pytest

import visiona_storage as vs
from servers import free_port, stop_process, wait_for_port

SECONDS = float(os.environ.get("VISIONA_LOAD_SECONDS", "60"))
DOWNLOADERS, UPLOADERS, OBJECTS = 64, 16, 32
MiB = 1 << 20


def _random_bytes(rng: random.Random) -> bytes:
    return rng.randbytes(int(math.exp(rng.uniform(math.log(1024), math.log(4 * MiB)))))


def _status_kib(pid: int, field: str) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field} for {pid}")


class _Tally:
    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.counts: Counter[str] = Counter()
        self.problems: list[str] = []
        self.bytes = 0

    def add(self, what: str, size: int = 0, problem: str | None = None) -> None:
        with self.lock:
            self.counts[what] += 1
            self.bytes += size
            if problem is not None and len(self.problems) < 20:
                self.problems.append(problem)


def _exchange(
    conn: http.client.HTTPConnection,
    tally: _Tally,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[http.client.HTTPResponse, bytes] | None:
    """One request on a kept-alive connection: the response and its body, or None
    (counted as an error, the connection closed to start afresh) if it failed."""
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response, response.read()
    except (OSError, http.client.HTTPException) as exc:
        tally.add("error", problem=f"{method} {path.split('?', maxsplit=1)[0]}: {exc!r}")
        conn.close()
        return None


def _path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.mark.slow
def test_serve_under_64_downloads_and_16_uploads_keeps_every_body_intact(tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "data"
    config = tmp_path / "storage.yaml"
    config.write_text(
        f"storage:\n  localfs:\n    root: {root}\n    base_url: http://127.0.0.1:{port}/storage\n"
    )
    store = vs.open_store(config)
    rng = random.Random(5)
    keys = [f"load/{n}.bin" for n in range(OBJECTS)]
    for key in keys:
        data = _random_bytes(rng)
        store.put(key, data, metadata={"sha256": hashlib.sha256(data).hexdigest()})
    get_urls = {key: _path(store.presigned_get_url(key, ttl=3600)) for key in keys}
    put_urls = {
        key: _path(store.presigned_put_url(key, ttl=3600, content_type="application/octet-stream"))
        for key in keys
    }
    log = open(tmp_path / "serve.log", "wb")  # noqa: SIM115 - closed with the server
    server = subprocess.Popen(
        [sys.executable, "-m", "visiona_storage.cli", "--config", str(config), "serve", "--port", str(port)],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    tally = _Tally()
    rss_samples: list[int] = []
    try:
        wait_for_port(port, server, 30, "visiona-storage serve")
        rss_at_start = _status_kib(server.pid, "VmRSS")
        deadline = time.monotonic() + SECONDS

        def downloader(seed: int) -> None:
            rng = random.Random(seed)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while time.monotonic() < deadline:
                key = rng.choice(keys)
                answered = _exchange(conn, tally, "GET", get_urls[key])
                if answered is None:
                    continue
                response, body = answered
                digest = hashlib.sha256(body).hexdigest()
                if response.status != 200:
                    tally.add("error", problem=f"GET {key}: {response.status} {body[:200]!r}")
                elif (
                    digest != response.getheader("x-amz-meta-sha256")
                    or response.getheader("etag") != f'"{digest}"'
                ):
                    tally.add("corrupted", problem=f"GET {key}: body does not match its headers")
                else:
                    tally.add("download", len(body))
            conn.close()

        def uploader(seed: int) -> None:
            rng = random.Random(seed)
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
            while time.monotonic() < deadline:
                key = rng.choice(keys)
                data = _random_bytes(rng)
                headers = {
                    "Content-Type": "application/octet-stream",
                    "x-amz-meta-sha256": hashlib.sha256(data).hexdigest(),
                }
                answered = _exchange(conn, tally, "PUT", put_urls[key], data, headers)
                if answered is None:
                    continue
                response, answer = answered
                if response.status != 200:
                    tally.add("error", problem=f"PUT {key}: {response.status} {answer[:200]!r}")
                else:
                    tally.add("upload", len(data))
            conn.close()

        def watch_memory() -> None:
            while time.monotonic() < deadline:
                rss_samples.append(_status_kib(server.pid, "VmRSS"))
                time.sleep(0.5)

        threads = [threading.Thread(target=downloader, args=(n,)) for n in range(DOWNLOADERS)]
        threads += [threading.Thread(target=uploader, args=(1000 + n,)) for n in range(UPLOADERS)]
        threads.append(threading.Thread(target=watch_memory))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(SECONDS + 120)
        assert not any(thread.is_alive() for thread in threads)
        peak_kib = _status_kib(server.pid, "VmHWM")
    finally:
        stop_process(server, signal.SIGINT, 15)
        log.close()
    err = (tmp_path / "serve.log").read_bytes()

    for key in keys:
        with store.get(key) as r:
            assert hashlib.sha256(r.read()).hexdigest() == r.info.metadata["sha256"] == r.info.etag
    leftovers = [p for p in root.rglob("*") if p.name.endswith(".vs-tmp")]
    c = tally.counts
    print(
        f"\nserve, {SECONDS:.0f} s, {DOWNLOADERS} downloaders + {UPLOADERS} uploaders (1 KiB-4 MiB): "
        f"{c['download']} downloads, {c['upload']} uploads, {tally.bytes / MiB:.0f} MiB moved, "
        f"{c['error']} errors, {c['corrupted']} corrupted; server RSS {rss_at_start / 1024:.1f} MiB at "
        f"start, median {sorted(rss_samples)[len(rss_samples) // 2] / 1024:.1f}, peak {peak_kib / 1024:.1f}"
    )
    assert tally.problems == []
    assert c["download"] > 100
    assert c["upload"] > 10
    assert leftovers == []
    assert b"Traceback" not in err, err.decode(errors="replace")[-3000:]
    assert peak_kib < 256 * 1024
