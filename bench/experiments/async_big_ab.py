"""A large async put and get against the sync put and get of the same, on localfs
(fsync off), for several checkouts of the code side by side, their rounds
alternating: how close `AsyncStore` comes to the sync API, and the worst stall of
the event loop meanwhile.

    PYTHONPATH=bench .venv/bin/python bench/experiments/async_big_ab.py \\
        --variant new=src --variant main=/tmp/main/src [--mib 256] [--rounds 5] [--runs 3] [--dir /work]

Each variant is ``name=source folder``: a child process with that folder first on
its import path measures, per round, `--runs` pairs (after one warm-up pair) of

- put: an async put from an async iterable of 1 MiB chunks / the sync put from an
  iterator of the same;
- get: ``async for chunk in reader`` (1 MiB chunks) / the sync reader's
  ``iter_chunks(1 MiB)``;
- get 4M: ``await reader.read(4 MiB)`` in a loop / ``iter_chunks(4 MiB)``;
- trip: the sync reader's 1 MiB reads, each in a worker thread awaited from the
  loop, / the sync get: what one thread trip per MiB costs, whatever the code;

as speed ratios (sync seconds / async seconds: 1.0 is as fast as sync), and the
worst lateness of a task sleeping 1 ms at a time during each async put and get.
The order of the variants rotates from round to round.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import visiona_storage as vs  # in a child, the variant's: its folder comes first on the path
from async_vs_obstore import BigTransfers

MiB = 1 << 20
BENCH = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
KINDS = ("put", "get", "get 4M", "trip")


@dataclass
class Variant:
    name: str
    source: str
    ratios: dict[str, list[float]] = field(default_factory=lambda: {kind: [] for kind in KINDS})
    stalls: dict[str, list[float]] = field(default_factory=lambda: {"put": [], "get": []})


def _timed(action: Callable[[], object]) -> float:
    start = time.perf_counter()
    action()
    return time.perf_counter() - start


def measure(mib: int, runs: int, folder: str) -> dict[str, Any]:
    """One round in this process: the ratios of each kind and the stalls (ms)."""
    ratios: dict[str, list[float]] = {kind: [] for kind in KINDS}
    stalls: dict[str, list[float]] = {"put": [], "get": []}
    with vs.LocalFSStore(folder, fsync=False) as store, ThreadPoolExecutor(1) as pool:
        big = BigTransfers(store, mib, stalls)
        settle = getattr(getattr(store, "_reclaimer", None), "drain", lambda: None)

        async def async_get_4m() -> None:
            async with big.astore.get("big/async") as reader:
                while await reader.read(4 * MiB):
                    pass

        async def trip_get() -> None:
            loop = asyncio.get_running_loop()
            with store.get("big/sync") as reader:
                while await loop.run_in_executor(pool, reader.read, MiB):
                    pass

        pairs: dict[str, tuple[Callable[[], object], Callable[[], object]]] = {
            "put": (big.async_put, big.sync_put),
            "get": (big.async_get, big.sync_get),
            "get 4M": (lambda: asyncio.run(async_get_4m()), lambda: big.sync_get(4 * MiB)),
            "trip": (lambda: asyncio.run(trip_get()), big.sync_get),
        }
        for index in range(runs + 1):  # the first is a warm-up
            for kind, (mine, theirs) in pairs.items():
                theirs_seconds = _timed(theirs)
                settle()
                mine_seconds = _timed(mine)
                settle()
                if index:
                    ratios[kind].append(theirs_seconds / mine_seconds)
                else:
                    for stall in stalls.values():
                        stall.clear()
    return {"ratios": ratios, "stalls": {kind: max(values) for kind, values in stalls.items()}}


def _summary(values: list[float], form: str) -> str:
    return f"{statistics.median(values):{form}} ({min(values):{form}}-{max(values):{form}})"


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--variant", action="append", default=[])
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--measure", default=None, help=argparse.SUPPRESS)  # a child's folder
    options = parser.parse_args()
    if options.measure:
        print(json.dumps(measure(options.mib, options.runs, options.measure)))
        return
    variants = [Variant(*spec.split("=", 1)) for spec in options.variant]
    load = [os.getloadavg()[0]]
    with tempfile.TemporaryDirectory(dir=options.dir) as work:
        for round_ in range(options.rounds):
            shift = round_ % len(variants)
            for variant in variants[shift:] + variants[:shift]:
                folder = os.path.join(work, variant.name)
                path = [os.path.abspath(variant.source), BENCH]  # the variant's code first
                env = dict(os.environ, PYTHONPATH=os.pathsep.join(path))
                command = [sys.executable, os.path.abspath(__file__), "--measure", folder]
                command += ["--mib", str(options.mib), "--runs", str(options.runs)]
                out = subprocess.run(command, check=True, capture_output=True, text=True, env=env)
                found = json.loads(out.stdout)
                for kind in KINDS:
                    variant.ratios[kind] += found["ratios"][kind]
                for kind, worst in found["stalls"].items():
                    variant.stalls[kind].append(worst)
            load.append(os.getloadavg()[0])
    print(
        f"{options.mib} MiB on localfs, fsync off; {options.rounds} rounds x {options.runs} runs; "
        f"ratio = sync seconds / async seconds, median (min-max) over runs; "
        f"stall = worst of each round, median (min-max) over rounds; "
        f"1-minute load {min(load):.1f}-{max(load):.1f} on {os.cpu_count()} CPUs"
    )
    for v in variants:
        ratios = "  ".join(f"{kind} {_summary(v.ratios[kind], '.2f')}" for kind in KINDS)
        stalls = "  ".join(f"{kind} {_summary(v.stalls[kind], '.1f')} ms" for kind in v.stalls)
        print(f"{v.name:>8}: {ratios}\n{'':>8}  stall: {stalls}")


if __name__ == "__main__":
    main()
