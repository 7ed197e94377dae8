"""The floors under three localfs targets: the bare system calls our layout needs
(`_bare.py`: no validation, no JSON, no locking, no crash safety), against obstore
in the same run. If a floor is already below a target, no implementation of this
layout in Python can meet it. bench/run.py measures the put and list floors beside
our own figures in every run; this runs them alone, and the stats floor too.

    PYTHONPATH=bench .venv/bin/python bench/experiments/floors.py [--objects 10000] [--runs 5] [--dir /work]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import obstore
from obstore.store import LocalStore

import _bare
from _common import interleaved


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default=None)
    options = parser.parse_args()
    payload = os.urandom(1024)
    keys = [f"objects/{i % 100:02d}/{i:06d}.bin" for i in range(options.objects)]
    with tempfile.TemporaryDirectory(dir=options.dir) as work:
        root = os.path.join(work, "bare")
        root_fd = _bare.make_folders(root, keys)
        os.makedirs(os.path.join(work, "obstore"))
        theirs = LocalStore(os.path.join(work, "obstore"))

        def bare_puts() -> None:
            _bare.puts(root_fd, keys, payload)

        def bare_stats() -> None:
            _bare.stats(root_fd, keys)

        def bare_list() -> None:
            assert _bare.listing(os.path.join(root, "objects")) == len(keys)

        def obstore_puts() -> None:
            for key in keys:
                obstore.put(theirs, key, payload)

        def obstore_heads() -> None:
            for key in keys:
                obstore.head(theirs, key)

        def obstore_list() -> None:
            assert sum(len(batch) for batch in obstore.list(theirs, "objects/")) == len(keys)

        bare_puts()
        obstore_puts()
        rows = [
            ("1 KiB puts over objects written a moment before", bare_puts, obstore_puts, 1.0, None),
            ("1 KiB puts over objects on disk (os.sync first)", bare_puts, obstore_puts, 1.0, os.sync),
            ("stats", bare_stats, obstore_heads, 3.0, None),
            (f"list {len(keys)} keys", bare_list, obstore_list, 1.0, None),
        ]
        print(f"{len(keys)} objects, median of {options.runs} runs after a warm-up")
        print("| operation | bare syscalls of our layout, s | obstore, s | floor ratio | target |")
        print("|---|---|---|---|---|")
        for name, bare, other, target, settle in rows:
            mine, theirs_times = interleaved(options.runs, bare, other, settle)
            floor = statistics.median(theirs_times) / statistics.median(mine)
            print(
                f"| {name} | {statistics.median(mine):.3f} | {statistics.median(theirs_times):.3f} "
                f"| {floor:.2f} | >= {target:g} |"
            )
        os.close(root_fd)


if __name__ == "__main__":
    main()
