"""The local backend against obstore's LocalStore (Rust object_store), in the same run:
10,000 puts of 1 KiB (fsync off) over objects still in the page cache and over
objects on disk, 10,000 stats, and a streamed listing of 100,000 keys (time, and
memory in a process of its own). obstore stores no metadata; we keep an ETag
(SHA-256), a content type and metadata per object, and list them all. Beside the
puts over objects on disk and the listing, the bare system calls of our layout
(`_bare.py`) do the same against obstore: the floor for any code of this layout.

    .venv/bin/python bench/localfs_vs_obstore.py [--objects 10000] [--listed 100000] [--runs 5]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile

import obstore
from obstore.store import LocalStore

import _bare
import visiona_storage as vs
from _common import Figure, interleaved, peak_rss_mib, rss_mib, table

BARE = "no checks, no JSON, no lock, no crash safety: bench/_bare.py"


def list_child(root: str, prefix: str) -> None:
    """List every key under `prefix` with all its fields; print the count and RSS growth."""
    store = vs.LocalFSStore(root)
    before = rss_mib()
    count = sum(1 for info in store.list(prefix) if info.etag and info.content_type)
    print(json.dumps({"count": count, "growth_mib": peak_rss_mib() - before, "before_mib": before}))


def figures(
    runs: int = 5, objects: int = 10_000, listed: int = 100_000, folder: str | None = None
) -> list[Figure]:
    payload = os.urandom(1024)
    keys = [f"objects/{i % 100:02d}/{i:06d}.bin" for i in range(objects)]
    listed_keys = [f"list/{i % 1000:03d}/{i:07d}" for i in range(listed)]
    found = []
    with tempfile.TemporaryDirectory(dir=folder) as work:
        ours = vs.LocalFSStore(os.path.join(work, "ours"), fsync=False)
        os.makedirs(os.path.join(work, "obstore"))
        theirs = LocalStore(os.path.join(work, "obstore"))

        def ours_puts() -> None:
            for key in keys:
                ours.put(key, payload, metadata={"run": "1"})

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
            ours.put(key, b"", metadata={"run": "1"})
            obstore.put(theirs, key, b"")

        def ours_list() -> None:
            count = sum(1 for info in ours.list("list/") if info.etag and info.content_type)
            assert count == listed

        def theirs_list() -> None:
            count = sum(len(batch) for batch in obstore.list(theirs, "list/"))
            assert count == listed

        def per_second(count: int, times: list[float]) -> list[float]:
            return [count / t for t in times]

        # Each run replaces the objects of the run before. Those are still in the page
        # cache, or, after an untimed os.sync, on disk (as objects older than half a
        # minute are): on this machine's journal-less ext4 that makes every new file
        # dearer (see the README), and no run pays for the other side's writeback.
        for over, settle in (("written a moment before", None), ("on disk", os.sync)):
            mine, other = interleaved(runs, ours_puts, theirs_puts, settle=settle)
            found.append(
                Figure(
                    f"localfs {objects} puts of 1 KiB over objects {over}, fsync off",
                    "obstore LocalStore put",
                    "puts/s",
                    per_second(objects, mine),
                    per_second(objects, other),
                    1.0,
                )
            )
        bare_fd = _bare.make_folders(os.path.join(work, "bare"), keys)
        try:
            floor, other = interleaved(runs, lambda: _bare.puts(bare_fd, keys, payload), theirs_puts, os.sync)
        finally:
            os.close(bare_fd)
        found.append(
            Figure(
                f"localfs {objects} puts of 1 KiB over objects on disk: the layout's bare system calls",
                "obstore LocalStore put",
                "puts/s",
                per_second(objects, floor),
                per_second(objects, other),
                note=BARE,
            )
        )
        mine, other = interleaved(runs, ours_stats, theirs_heads)
        found.append(
            Figure(
                f"localfs {objects} stats",
                "obstore head",
                "stats/s",
                per_second(objects, mine),
                per_second(objects, other),
                3.0,
            )
        )
        mine, other = interleaved(runs, ours_list, theirs_list)
        found.append(
            Figure(
                f"localfs list {listed} keys, streamed, all fields",
                "obstore list",
                "s",
                mine,
                other,
                1.0,
                higher_is_better=False,
            )
        )

        def bare_list() -> None:
            assert _bare.listing(os.path.join(work, "ours", "list")) == listed

        floor, other = interleaved(runs, bare_list, theirs_list)
        found.append(
            Figure(
                f"localfs list {listed} keys: the layout's bare system calls",
                "obstore list",
                "s",
                floor,
                other,
                higher_is_better=False,
                note=BARE,
            )
        )
        out = subprocess.run(
            [sys.executable, __file__, "--list-child", os.path.join(work, "ours")],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        result = json.loads(out)
        assert result["count"] == listed
        found.append(
            Figure(
                f"localfs list {listed} keys: RSS growth",
                "the process before the call",
                "MiB",
                [result["growth_mib"]],
                [result["before_mib"]],
                limit=32,
            )
        )
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--listed", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default=None)
    parser.add_argument("--list-child", default=None, help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.list_child:
        list_child(options.list_child, "list/")
        return
    print(table(figures(options.runs, options.objects, options.listed, options.dir)))


if __name__ == "__main__":
    main()
