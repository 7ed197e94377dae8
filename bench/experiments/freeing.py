"""What freeing a replaced or deleted object's blocks in the background saves:
a put over a 256 MiB object and a delete of one, with the old file freed by
`_reclaim`'s thread (the default) and in the call (as before), interleaved.

    PYTHONPATH=bench .venv/bin/python bench/experiments/freeing.py [--mib 256] [--runs 7] [--dir /work]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import visiona_storage as vs
from _common import MiB, timed
from visiona_storage.backends.localfs import _reclaim

MODES = {"in the background": _reclaim.RECLAIM_FROM, "in the call": 1 << 62}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--dir", default=None)
    options = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=options.dir) as work:
        source = os.path.join(work, "model.bin")
        with open(source, "wb") as out:
            for _ in range(options.mib):
                out.write(os.urandom(MiB))
        for fsync in (True, False):
            _compare(vs.LocalFSStore(os.path.join(work, f"fsync-{fsync}"), fsync=fsync), source, options)


def _compare(store: vs.LocalFSStore, source: str, options: argparse.Namespace) -> None:
    size = options.mib * MiB

    def put() -> None:
        with open(source, "rb") as f:
            store.put("model.bin", f, size=size)

    puts: dict[str, list[float]] = {mode: [] for mode in MODES}
    deletes: dict[str, list[float]] = {mode: [] for mode in MODES}
    with store:
        put()
        for _ in range(options.runs):
            for mode, threshold in MODES.items():
                _reclaim.RECLAIM_FROM = threshold
                puts[mode].append(timed(put))  # replaces the object the last round left
                store._reclaimer.drain()
                deletes[mode].append(timed(lambda: store.delete("model.bin")))
                store._reclaimer.drain()
                put()
                store._reclaimer.drain()
    _reclaim.RECLAIM_FROM = MODES["in the background"]
    print(f"fsync={'on' if store.fsync else 'off'}, {options.mib} MiB, {options.runs} runs, median (min-max)")
    for mode in MODES:
        rates = [options.mib / t for t in puts[mode]]
        ms = [t * 1000 for t in deletes[mode]]
        print(
            f"  freed {mode:17}: put over it {statistics.median(rates):6.0f} MiB/s"
            f" ({min(rates):.0f}-{max(rates):.0f}), delete {statistics.median(ms):5.1f} ms"
            f" ({min(ms):.1f}-{max(ms):.1f})"
        )
    ratio = statistics.median(puts["in the call"]) / statistics.median(puts["in the background"])
    saved = statistics.median(deletes["in the call"]) / statistics.median(deletes["in the background"])
    print(f"  background / in the call: put {ratio:.2f}x as fast, delete {saved:.0f}x as fast")


if __name__ == "__main__":
    main()
