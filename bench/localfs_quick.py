"""Quick figures for the local backend: put/get of 256 MiB next to cp/dd/cat of the
same file in the same run, and peak RSS of put+get at 64 MiB and 1 GiB.

    .venv/bin/python bench/localfs_quick.py [--mib 256] [--runs 5]

Prints medians (min-max) in MiB/s and each figure's ratio to its baseline.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator

import visiona_storage as vs
from _common import peak_rss_mib, timed

MiB = 1 << 20


def _shell(command: str) -> Callable[[], object]:
    return lambda: subprocess.run(command, shell=True, check=True)


def _drain(store: vs.Store, key: str) -> None:
    with store.get(key) as reader:
        while reader.read(MiB):
            pass


def _peak_rss_child(mib: int, folder: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(mib), "--dir", folder],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def rss_child(mib: int, folder: str) -> None:
    store = vs.LocalFSStore(os.path.join(folder, f"rss-{mib}"), fsync=False)
    block = os.urandom(MiB)

    def blocks() -> Iterator[bytes]:
        for _ in range(mib):
            yield block

    before = peak_rss_mib()
    store.put("big.bin", blocks())
    _drain(store, "big.bin")
    print(json.dumps({"before_mib": before, "peak_mib": peak_rss_mib()}))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: a temp folder)")
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.rss_child:
        rss_child(options.rss_child, options.dir)
        return

    with tempfile.TemporaryDirectory(dir=options.dir) as folder:
        source = os.path.join(folder, "source.bin")
        with open(source, "wb") as out:
            for _ in range(options.mib):
                out.write(os.urandom(MiB))
        copy = os.path.join(folder, "copy.bin")
        fast = vs.LocalFSStore(os.path.join(folder, "nosync"), fsync=False)
        durable = vs.LocalFSStore(os.path.join(folder, "sync"))
        with open(source, "rb") as f:
            fast.put("model.bin", f)

        def put(store: vs.LocalFSStore) -> Callable[[], object]:
            def action() -> None:
                with open(source, "rb") as f:
                    store.put("model.bin", f, size=options.mib * MiB)

            return action

        def sha256_only() -> None:
            digest = hashlib.sha256()
            with open(source, "rb") as f:
                while chunk := f.read(MiB):
                    digest.update(chunk)

        cases: dict[str, Callable[[], object]] = {
            "cp (no fsync)": _shell(f"cp {source} {copy}"),
            "put, fsync off": put(fast),
            "sha256 of the file alone": sha256_only,
            "dd bs=8M conv=fsync": _shell(f"dd if={source} of={copy} bs=8M conv=fsync status=none"),
            "put, fsync on": put(durable),
            "cat > /dev/null": _shell(f"cat {source} > /dev/null"),
            "get, 1 MiB reads": lambda: _drain(fast, "model.bin"),
        }
        times: dict[str, list[float]] = {name: [] for name in cases}
        for action in cases.values():
            action()  # warm-up
        for _ in range(options.runs):
            for name, action in cases.items():
                times[name].append(timed(action))

        def rate(name: str) -> tuple[float, float, float]:
            speeds = [options.mib / t for t in times[name]]
            return statistics.median(speeds), min(speeds), max(speeds)

        print(
            f"{options.mib} MiB, {options.runs} runs after a warm-up, page cache warm, MiB/s median (min-max)"
        )
        pairs = [
            ("put, fsync off", "cp (no fsync)"),
            ("put, fsync off", "sha256 of the file alone"),
            ("put, fsync on", "dd bs=8M conv=fsync"),
            ("get, 1 MiB reads", "cat > /dev/null"),
        ]
        for ours, baseline in pairs:
            o, b = rate(ours), rate(baseline)
            print(
                f"  {ours:<18} {o[0]:7.0f} ({o[1]:.0f}-{o[2]:.0f})   vs {baseline:<26} "
                f"{b[0]:7.0f} ({b[1]:.0f}-{b[2]:.0f})   ratio {o[0] / b[0]:.2f}"
            )
        for mib in (64, 1024):
            r = _peak_rss_child(mib, folder)
            peak, start = r["peak_mib"], r["before_mib"]
            print(f"  peak RSS, put+get of {mib:>4} MiB: {peak:.1f} MiB (at start {start:.1f})")


if __name__ == "__main__":
    main()
