"""The local backend on big files, against the tools a user would otherwise use, in
the same run: put of 256 MiB against ``dd conv=fsync`` (fsync on) and against
SHA-256 alone (fsync off, the ETag's cost is the floor), get against ``cat``, and
peak RSS of put+get at 64 MiB and 1 GiB.

    .venv/bin/python bench/localfs_files.py [--mib 256] [--runs 5] [--dir FOLDER]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator

import visiona_storage as vs
from _common import Figure, MiB, interleaved, peak_rss_mib, rss_mib, table


def _shell(command: str) -> Callable[[], object]:
    return lambda: subprocess.run(command, shell=True, check=True)


def _drain(store: vs.Store, key: str) -> None:
    with store.get(key) as reader:
        while reader.read(MiB):
            pass


def rss_child(mib: int, folder: str, source: str) -> None:
    """Put `mib` MiB from a generator or a file and read it back; print RSS before and peak after."""
    store = vs.LocalFSStore(os.path.join(folder, f"rss-{source}-{mib}"), fsync=False)
    block = os.urandom(MiB)

    def blocks() -> Iterator[bytes]:
        for _ in range(mib):
            yield block

    path = os.path.join(folder, f"rss-{mib}.bin")
    if source == "file":
        with open(path, "wb") as out:
            for chunk in blocks():
                out.write(chunk)
    before = rss_mib()
    if source == "file":
        with open(path, "rb") as data:
            store.put("big.bin", data)  # size unknown: the store finds the end
        os.remove(path)
    else:
        store.put("big.bin", blocks())
    _drain(store, "big.bin")
    print(json.dumps({"before_mib": before, "peak_mib": peak_rss_mib()}))


def _rss(mib: int, folder: str, source: str) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, __file__, "--rss-child", str(mib), "--rss-source", source, "--dir", folder],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(out)
    return result


def figures(runs: int = 5, mib: int = 256, folder: str | None = None) -> list[Figure]:
    """Every local big-file figure, each against its baseline in the same run."""
    with tempfile.TemporaryDirectory(dir=folder) as work:
        source = os.path.join(work, "source.bin")
        with open(source, "wb") as out:
            for _ in range(mib):
                out.write(os.urandom(MiB))
        copy = os.path.join(work, "copy.bin")
        fast = vs.LocalFSStore(os.path.join(work, "nosync"), fsync=False)
        durable = vs.LocalFSStore(os.path.join(work, "sync"))

        def put(store: vs.LocalFSStore) -> Callable[[], object]:
            def action() -> None:
                with open(source, "rb") as f:
                    store.put("model.bin", f, size=mib * MiB)

            return action

        def sha256_only() -> None:
            digest = hashlib.sha256()
            with open(source, "rb") as f:
                while chunk := f.read(MiB):
                    digest.update(chunk)

        def rates(times: list[float]) -> list[float]:
            return [mib / t for t in times]

        found = []
        # A put frees the object it replaces in the background (localfs/_reclaim.py):
        # wait for that between actions, so that no action pays for the one before.
        ours, theirs = interleaved(
            runs,
            put(durable),
            _shell(f"dd if={source} of={copy} bs=8M conv=fsync status=none"),
            settle=durable._reclaimer.drain,
        )
        found.append(
            Figure(
                f"localfs put {mib} MiB from a file, fsync on",
                "dd bs=8M conv=fsync",
                "MiB/s",
                rates(ours),
                rates(theirs),
                0.9,
            )
        )
        ours, theirs = interleaved(runs, put(fast), sha256_only, settle=fast._reclaimer.drain)
        found.append(
            Figure(
                f"localfs put {mib} MiB, fsync off",
                "hashlib.sha256 alone",
                "MiB/s",
                rates(ours),
                rates(theirs),
                0.9,
            )
        )
        copy_file = _shell(f"cp {source} {copy}")
        ours, theirs = interleaved(runs, put(fast), copy_file, settle=fast._reclaimer.drain)
        found.append(Figure(f"localfs put {mib} MiB, fsync off", "cp", "MiB/s", rates(ours), rates(theirs)))
        ours, theirs = interleaved(
            runs, lambda: _drain(fast, "model.bin"), _shell(f"cat {source} > /dev/null")
        )
        found.append(
            Figure(
                f"localfs get {mib} MiB, 1 MiB reads",
                "cat > /dev/null",
                "MiB/s",
                rates(ours),
                rates(theirs),
                1.0,
            )
        )
        for source in ("generator", "file"):
            small, large = _rss(64, work, source), _rss(1024, work, source)
            grow_small = small["peak_mib"] - small["before_mib"]
            grow_large = large["peak_mib"] - large["before_mib"]
            found.append(
                Figure(
                    f"localfs peak RSS growth, put+get 1 GiB from a {source}",
                    "the process before the call",
                    "MiB",
                    [grow_large],
                    [large["before_mib"]],
                    limit=32,
                )
            )
            found.append(
                Figure(
                    f"localfs peak RSS, 1 GiB minus 64 MiB case, from a {source}",
                    "64 MiB case",
                    "MiB",
                    [abs(large["peak_mib"] - small["peak_mib"])],
                    [small["peak_mib"]],
                    limit=8,
                    note=f"64 MiB case grew {grow_small:.1f} MiB",
                )
            )
        return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default=None, help="folder on the disk to measure (default: a temp folder)")
    parser.add_argument("--rss-child", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--rss-source", default="generator", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.rss_child:
        rss_child(options.rss_child, options.dir, options.rss_source)
        return
    print(table(figures(options.runs, options.mib, options.dir)))


if __name__ == "__main__":
    main()
