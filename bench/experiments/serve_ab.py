"""PUT and GET of one large file through `visiona-storage serve`, for several
checkouts of the code side by side, their runs alternating: which is faster, and
what each upload costs serve's event loop (its main thread's CPU and minor
page faults).

    PYTHONPATH=bench .venv/bin/python bench/experiments/serve_ab.py \
        --variant new=.venv/bin/python:src --variant old=/tmp/old/.venv/bin/python:/tmp/old/src \
        [--mib 256] [--rounds 5] [--dir /work]

Each variant is ``name=python[:source folder]``: that interpreter runs serve with
the source folder first on its import path. Each serves its own store root; the
order of the variants rotates from round to round. Needs curl; binds 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from _common import main_thread_cpu_seconds
from http_vs_nginx import _free_port, _wait

MiB = 1 << 20


@dataclass
class Variant:
    name: str
    python: str
    source: str | None
    put_rates: list[float] = field(default_factory=list)
    get_rates: list[float] = field(default_factory=list)
    loop_cpu: list[float] = field(default_factory=list)
    loop_faults: list[int] = field(default_factory=list)


def _main_thread_faults(pid: int) -> int:
    """Minor page faults of the main thread of process `pid` so far."""
    return int(Path(f"/proc/{pid}/task/{pid}/stat").read_text().rsplit(")", 1)[1].split()[7])


def _presign(python: str, source: str | None, root: str, base: str) -> tuple[str, str]:
    env = dict(os.environ, PYTHONPATH=source) if source else None
    code = (
        "import sys, visiona_storage as vs\n"
        "s = vs.LocalFSStore(sys.argv[1], base_url=sys.argv[2])\n"
        "print(s.presigned_put_url('bench/up.bin', ttl=36000, content_type='application/octet-stream'))\n"
        "print(s.presigned_get_url('bench/up.bin', ttl=36000))\n"
    )
    command = [python, "-c", code, root, base]
    out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
    put, get = out.stdout.split()
    return put, get


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", action="append", required=True)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", default=None)
    options = parser.parse_args()
    variants = []
    for spec in options.variant:
        name, _, rest = spec.partition("=")
        python, _, source = rest.partition(":")
        variants.append(Variant(name, python, source or None))
    with tempfile.TemporaryDirectory(dir=options.dir) as work:
        source_file = os.path.join(work, "model.bin")
        with open(source_file, "wb") as out:
            for _ in range(options.mib):
                out.write(os.urandom(MiB))
        servers: list[tuple[Variant, subprocess.Popen[bytes], str, str]] = []
        started: list[subprocess.Popen[bytes]] = []  # stopped at the end, even if presigning failed
        try:
            for variant in variants:
                port = _free_port()
                root = os.path.join(work, variant.name)
                base = f"http://127.0.0.1:{port}/storage"
                config = os.path.join(work, f"{variant.name}.yaml")
                Path(config).write_text(f"storage:\n  localfs:\n    root: {root}\n    base_url: {base}\n")
                env = dict(os.environ, PYTHONPATH=variant.source) if variant.source else None
                server = subprocess.Popen(
                    [
                        *(variant.python, "-m", "visiona_storage.cli", "--config", config, "serve"),
                        *("--port", str(port), "--no-access-log"),
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    env=env,
                )
                started.append(server)
                _wait(port)  # serve has made the root and its signing key: presign reads them
                servers.append((variant, server, *_presign(variant.python, variant.source, root, base)))
            for round_ in range(options.rounds + 1):  # the first is a warm-up
                shift = round_ % len(servers)
                for variant, server, put_url, get_url in servers[shift:] + servers[:shift]:
                    before = main_thread_cpu_seconds(server.pid)
                    faults = _main_thread_faults(server.pid)
                    start = time.perf_counter()
                    subprocess.run(
                        [
                            *("curl", "-sS", "-f", "-o", "/dev/null", "-T", source_file),
                            *("-H", "Content-Type: application/octet-stream", put_url),
                        ],
                        check=True,
                    )
                    put_seconds = time.perf_counter() - start
                    loop = main_thread_cpu_seconds(server.pid) - before
                    faults = _main_thread_faults(server.pid) - faults
                    time.sleep(0.3)
                    start = time.perf_counter()
                    subprocess.run(["curl", "-sS", "-f", "-o", "/dev/null", get_url], check=True)
                    get_seconds = time.perf_counter() - start
                    time.sleep(0.3)
                    if round_:
                        variant.put_rates.append(options.mib / put_seconds)
                        variant.get_rates.append(options.mib / get_seconds)
                        variant.loop_cpu.append(loop)
                        variant.loop_faults.append(faults)
        finally:
            for server in started:
                server.send_signal(signal.SIGINT)
            for server in started:
                server.wait(20)
    print(f"{options.mib} MiB, {options.rounds} rounds, median (min-max)")
    for v in variants:
        put, get, cpu = v.put_rates, v.get_rates, v.loop_cpu
        print(
            f"{v.name:>10}: PUT {statistics.median(put):7.0f} MiB/s ({min(put):.0f}-{max(put):.0f})  "
            f"GET {statistics.median(get):7.0f} MiB/s ({min(get):.0f}-{max(get):.0f})  "
            f"loop CPU/PUT {statistics.median(cpu):.3f} s ({min(cpu):.3f}-{max(cpu):.3f}), "
            f"{statistics.median(v.loop_faults):.0f} page faults"
        )


if __name__ == "__main__":
    main()
