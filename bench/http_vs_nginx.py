"""The /storage endpoint (`visiona-storage serve`, one uvicorn worker) against nginx
(one worker, ``sendfile off``) serving the same files, in the same run:

- GET of 256 MiB with a presigned URL, against nginx serving the file;
- PUT of 256 MiB through serve, against `store.put` of the same file in-process,
  with the CPU each upload takes (serve, its event loop, curl); beside it, the
  bound for one uvicorn worker: an app that only receives the body and drops it
  (`_sink_asgi.py`), and the least time this machine's cores allow an upload
  through serve: the CPU of serve's event loop and of curl, plus SHA-256 and
  write+fsync of the same bytes as each costs alone, spread over every core;
- 4 KiB signed GETs per second, against nginx's 4 KiB GETs, both driven by wrk,
  and the same through `serve --workers 2`; beside them, two bounds for one
  Python worker on uvicorn: an app that only returns 4 KiB from memory
  (`_hello_asgi.py`), and one that only checks the signature and gets the
  object (`_least_get_asgi.py`).

    .venv/bin/python bench/http_vs_nginx.py [--mib 256] [--runs 5] [--seconds 5]

Installs nginx and wrk from Debian if missing (root). Everything binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import visiona_storage as vs
from _common import (
    Figure,
    children_cpu_seconds,
    cpu_seconds,
    install_commands,
    interleaved,
    main_thread_cpu_seconds,
    table,
)

MiB = 1 << 20


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait(port: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), 0.5).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port}")


def install() -> None:
    """nginx, wrk and curl from Debian, if missing (needs root)."""
    install_commands({"nginx": "nginx-light", "wrk": "wrk", "curl": "curl"})


def _nginx(root: str, folder: str) -> tuple[subprocess.Popen[bytes], int]:
    port = _free_port()
    conf = os.path.join(folder, "nginx.conf")
    Path(conf).write_text(
        f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log {folder}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile off;
    client_body_temp_path {folder}/nginx-body;
    proxy_temp_path {folder}/nginx-proxy;
    fastcgi_temp_path {folder}/nginx-fastcgi;
    uwsgi_temp_path {folder}/nginx-uwsgi;
    scgi_temp_path {folder}/nginx-scgi;
    server {{
        listen 127.0.0.1:{port};
        location / {{ root {root}; }}
    }}
}}
"""
    )
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", folder], stderr=subprocess.DEVNULL)
    _wait(port)
    return proc, port


@contextlib.contextmanager
def _uvicorn(app: str, port: int, root: str | None = None) -> Iterator[None]:
    """A uvicorn worker serving `app` from bench/ on `port` (with ``VS_BENCH_ROOT=root``)."""
    env = dict(os.environ, VS_BENCH_ROOT=root) if root is not None else None
    server = subprocess.Popen(
        [
            *(sys.executable, "-m", "uvicorn", "--app-dir", str(Path(__file__).parent), app),
            *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "--no-access-log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    with _running(server, port):
        yield


def _serve(config: str, port: int, workers: int = 1) -> subprocess.Popen[bytes]:
    """`visiona-storage serve` of `config` on `port`, without an access log."""
    return subprocess.Popen(
        [
            *(sys.executable, "-m", "visiona_storage.cli", "--config", config, "serve"),
            *("--port", str(port), "--workers", str(workers), "--no-access-log"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


@contextlib.contextmanager
def _running(server: subprocess.Popen[bytes], port: int) -> Iterator[None]:
    """The block runs once `server` listens on `port`; then SIGINT stops it."""
    try:
        _wait(port)
        yield
    finally:
        server.send_signal(signal.SIGINT)
        server.wait(20)


def _curl(*args: str) -> Callable[[], object]:
    return lambda: subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", *args], check=True)


def _wrk(url: str, seconds: int) -> float:
    out = subprocess.run(
        ["wrk", "-t", "1", "-c", "16", "-d", f"{seconds}s", url], check=True, capture_output=True, text=True
    ).stdout
    match = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if match is None or "Non-2xx" in out:
        raise RuntimeError(f"wrk failed:\n{out}")
    return float(match.group(1))


class UploadCPU:
    """The CPU seconds of each upload through serve: serve's whole process, its
    event loop (the main thread, where uvicorn receives the body) and the client's
    (curl, a child of this process)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.uploads: list[tuple[float, float, float]] = []
        """(serve, its event loop, curl) per upload, in the order they ran."""

    def around(self, upload: Callable[[], object]) -> Callable[[], None]:
        """`upload`, with its CPU counted."""

        def counted() -> None:
            before = self._now()
            upload()
            after = self._now()
            serve, loop, client = (a - b for a, b in zip(after, before, strict=True))
            self.uploads.append((serve, loop, client))

        return counted

    def _now(self) -> tuple[float, float, float]:
        return cpu_seconds([self.pid]), main_thread_cpu_seconds(self.pid), children_cpu_seconds()


def hash_and_write_cpu(source: str, folder: str) -> tuple[float, float]:
    """CPU seconds that SHA-256 alone, and writing a new file in `folder` and
    fsyncing it alone, spend on the bytes of `source` (read in 4 MiB pieces, not
    counted). The file is removed."""
    digest = hashlib.sha256()
    hashing = writing = 0.0
    piece = memoryview(bytearray(4 * MiB))
    path = os.path.join(folder, "alone.bin")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        with open(source, "rb", buffering=0) as data:
            while got := data.readinto(piece):
                start = time.thread_time()
                digest.update(piece[:got])
                hashed = time.thread_time()
                os.write(fd, piece[:got])
                writing += time.thread_time() - hashed
                hashing += hashed - start
        start = time.thread_time()
        os.fsync(fd)
        writing += time.thread_time() - start
    finally:
        os.close(fd)
        os.unlink(path)
    return hashing, writing


def least_upload_seconds(loop: float, client: float, hashing: float, writing: float, cores: int) -> float:
    """The least wall time an upload can take when its event loop, its client, its
    hashing and its writing need these CPU seconds and share `cores` perfectly."""
    return (loop + client + hashing + writing) / cores


def upload_cpu_note(cpu: UploadCPU, seconds: list[float], cores: int) -> str:
    """The median CPU per upload beside its wall time, for the PUT figure's note."""
    serve, loop, client = (statistics.median(column) for column in zip(*cpu.uploads, strict=True))
    wall = statistics.median(seconds)
    return (
        f"CPU per upload, median: serve {serve:.2f} s (its event loop {loop:.2f} s), "
        f"curl {client:.2f} s, in {wall:.2f} s of wall time: {(serve + client) / wall:.1f} "
        f"of {cores} cores busy"
    )


def figures(runs: int = 5, mib: int = 256, seconds: int = 5, folder: str | None = None) -> list[Figure]:
    """serve against nginx (GET), against store.put (PUT), and 4 KiB GETs per second."""
    install()
    with tempfile.TemporaryDirectory(dir=folder) as work:
        os.chmod(work, 0o755)
        root = os.path.join(work, "storage")
        port = _free_port()
        base = f"http://127.0.0.1:{port}/storage"
        store = vs.LocalFSStore(root, base_url=base)
        source = os.path.join(work, "model.bin")
        with open(source, "wb") as out:
            for _ in range(mib):
                out.write(os.urandom(MiB))
        with open(source, "rb") as f:
            store.put("bench/model.bin", f)
        store.put("bench/small.bin", os.urandom(4096))
        config = os.path.join(work, "storage.yaml")
        Path(config).write_text(f"storage:\n  localfs:\n    root: {root}\n    base_url: {base}\n")
        serve = _serve(config, port)
        nginx, nginx_port = _nginx(root, work)
        try:
            _wait(port)
            get_url = store.presigned_get_url("bench/model.bin", ttl=3600)
            put_url = store.presigned_put_url(
                "bench/upload.bin", ttl=3600, content_type="application/octet-stream"
            )
            small_url = store.presigned_get_url("bench/small.bin", ttl=3600)
            nginx_big = f"http://127.0.0.1:{nginx_port}/bench/model.bin"
            nginx_small = f"http://127.0.0.1:{nginx_port}/bench/small.bin"

            def store_put() -> None:
                with open(source, "rb") as f:
                    store.put("bench/upload.bin", f, size=mib * MiB)

            def rates(times: list[float]) -> list[float]:
                return [mib / t for t in times]

            found = []
            ours, theirs = interleaved(runs, _curl(get_url), _curl(nginx_big))
            found.append(
                Figure(
                    f"GET {mib} MiB through serve, presigned",
                    "nginx, same file",
                    "MiB/s",
                    rates(ours),
                    rates(theirs),
                    0.8,
                )
            )
            upload = _curl("-T", source, "-H", "Content-Type: application/octet-stream", put_url)

            def settle() -> None:
                """Let serve's process, then ours, free the upload each replaced."""
                time.sleep(0.2)
                store._reclaimer.drain()

            cpu = UploadCPU(serve.pid)
            ours, theirs = interleaved(runs, cpu.around(upload), store_put, settle)
            del cpu.uploads[0]  # the warm-up's
            cores = len(os.sched_getaffinity(0))
            found.append(
                Figure(
                    f"PUT {mib} MiB through serve",
                    "store.put of the same file",
                    "MiB/s",
                    rates(ours),
                    rates(theirs),
                    0.7,
                    note=upload_cpu_note(cpu, ours, cores),
                )
            )
            bound = [
                least_upload_seconds(loop, client, *hash_and_write_cpu(source, work), cores)
                for _, loop, client in cpu.uploads
            ]
            found.append(
                Figure(
                    f"PUT {mib} MiB through serve: the least time {cores} cores allow "
                    "(serve's event loop and curl, SHA-256 and write+fsync as each costs alone)",
                    "store.put of the same file",
                    "MiB/s",
                    rates(bound),
                    rates(theirs),
                    note="their CPU seconds summed and spread over every core, run by run",
                )
            )
            sink_port = _free_port()
            with _uvicorn("_sink_asgi:app", sink_port):
                sink = _curl("-T", source, f"http://127.0.0.1:{sink_port}/")
                ours, theirs = interleaved(runs, sink, store_put, settle)
            found.append(
                Figure(
                    f"PUT {mib} MiB to a bare ASGI app on uvicorn that drops the body "
                    "(the ceiling of one worker)",
                    "store.put of the same file",
                    "MiB/s",
                    rates(ours),
                    rates(theirs),
                    note="no signature, no hash, no file: bench/_sink_asgi.py",
                )
            )
            mine: list[float] = []
            other: list[float] = []
            bare: list[float] = []
            least: list[float] = []
            pair: list[float] = []
            hello_port, least_port, pair_port = _free_port(), _free_port(), _free_port()
            with (
                _uvicorn("_hello_asgi:app", hello_port),
                _uvicorn("_least_get_asgi:app", least_port, root),
                _running(_serve(config, pair_port, workers=2), pair_port),
            ):
                least_url = small_url.replace(base, f"http://127.0.0.1:{least_port}/storage")
                pair_url = small_url.replace(base, f"http://127.0.0.1:{pair_port}/storage")
                for _ in range(max(3, runs // 2)):
                    other.append(_wrk(nginx_small, seconds))
                    mine.append(_wrk(small_url, seconds))
                    pair.append(_wrk(pair_url, seconds))
                    least.append(_wrk(least_url, seconds))
                    bare.append(_wrk(f"http://127.0.0.1:{hello_port}/", seconds))
            found.append(
                Figure(
                    "4 KiB GETs through serve, presigned (wrk, 16 connections)",
                    "nginx, 4 KiB file",
                    "req/s",
                    mine,
                    other,
                    0.25,
                )
            )
            found.append(
                Figure(
                    "4 KiB GETs through serve --workers 2, presigned (wrk, 16 connections)",
                    "nginx, 4 KiB file",
                    "req/s",
                    pair,
                    other,
                    note="two processes on the 2 cores that nginx's one worker and wrk share",
                )
            )
            found.append(
                Figure(
                    "4 KiB GETs from a bare ASGI app on uvicorn (the ceiling of one Python worker)",
                    "nginx, 4 KiB file",
                    "req/s",
                    bare,
                    other,
                    note="no routing, no signature, no file: bench/_hello_asgi.py",
                )
            )
            found.append(
                Figure(
                    "4 KiB GETs from a raw ASGI app that only checks the signature and gets the object",
                    "nginx, 4 KiB file",
                    "req/s",
                    least,
                    other,
                    note="no Starlette, no Range or conditional headers, no errors: bench/_least_get_asgi.py",
                )
            )
            return found
        finally:
            serve.send_signal(signal.SIGINT)
            nginx.send_signal(signal.SIGQUIT)
            serve.wait(10)
            nginx.wait(10)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=5)
    parser.add_argument("--dir", default=None)
    options = parser.parse_args()
    print(table(figures(options.runs, options.mib, options.seconds, options.dir)))


if __name__ == "__main__":
    main()
