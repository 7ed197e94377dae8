"""The local backend against obstore's LocalStore (Rust object_store), in the same run:
10,000 puts of 1 KiB (fsync off), 10,000 stats, and listing 100,000 keys (time and
memory). obstore stores no metadata; we store a sidecar and a SHA-256 ETag per object.

    .venv/bin/python bench/localfs_vs_obstore.py [--objects 10000] [--listed 100000] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import tracemalloc

import obstore
from obstore.store import LocalStore

import visiona_storage as vs
from _common import timed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--listed", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    options = parser.parse_args()
    payload = os.urandom(1024)
    keys = [f"objects/{i % 100:02d}/{i:06d}.bin" for i in range(options.objects)]
    listed_keys = [f"list/{i % 1000:03d}/{i:07d}" for i in range(options.listed)]
    with tempfile.TemporaryDirectory(dir="/work" if os.path.isdir("/work") else None) as folder:
        ours = vs.LocalFSStore(os.path.join(folder, "ours"), fsync=False)
        os.makedirs(os.path.join(folder, "obstore"))
        theirs = LocalStore(os.path.join(folder, "obstore"))

        def ours_puts() -> None:
            for key in keys:
                ours.put(key, payload)

        def theirs_puts() -> None:
            for key in keys:
                obstore.put(theirs, key, payload)

        def ours_stats() -> None:
            for key in keys:
                ours.stat(key)

        def theirs_heads() -> None:
            for key in keys:
                obstore.head(theirs, key)

        for key in listed_keys:
            ours.put(key, b"")
            obstore.put(theirs, key, b"")

        def ours_list() -> None:
            count = sum(1 for _ in ours.list("list/"))
            assert count == options.listed

        def theirs_list() -> None:
            count = sum(len(batch) for batch in obstore.list(theirs, "list/"))
            assert count == options.listed

        cases = {
            "put 1 KiB": (ours_puts, theirs_puts),
            "stat / head": (ours_stats, theirs_heads),
            f"list {options.listed} keys": (ours_list, theirs_list),
        }
        print(f"{options.objects} objects, {options.runs} runs after a warm-up, median seconds (min-max)")
        for name, (mine, other) in cases.items():
            mine()
            other()
            times: dict[str, list[float]] = {"ours": [], "obstore": []}
            for _ in range(options.runs):
                times["ours"].append(timed(mine))
                times["obstore"].append(timed(other))
            o, b = statistics.median(times["ours"]), statistics.median(times["obstore"])
            print(
                f"  {name:<20} ours {o:7.3f} s ({min(times['ours']):.3f}-{max(times['ours']):.3f})"
                f"   obstore {b:7.3f} s ({min(times['obstore']):.3f}-{max(times['obstore']):.3f})"
                f"   speed ratio {b / o:.2f}"
            )
        tracemalloc.start()
        ours_list()
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        print(f"  list {options.listed} keys: peak Python heap {peak / (1 << 20):.1f} MiB (tracemalloc)")


if __name__ == "__main__":
    main()
