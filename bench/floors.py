"""The floors under three localfs targets: the bare system calls our layout needs,
issued from Python with nothing else (no validation, no JSON, no locking, no
crash safety), against obstore in the same run.

    .venv/bin/python bench/floors.py [--objects 10000] [--runs 5] [--dir /work]

The layout is the one DESIGN.md prescribes: each object is a data file plus a
``.meta.json`` sidecar. So a put publishes two files (obstore: one), a stat reads
a sidecar besides the file's inode (obstore: the inode only), and a listing reads
every sidecar (obstore: names and inodes). If a floor is already below a target,
no implementation of this layout in Python can meet it. A file published over
another is swapped in and the old one unlinked, as the store does with fsync off
(a plain ``rename`` over it makes ext4 start writing the new file out).
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile

import obstore
from obstore.store import LocalStore

from _common import interleaved
from visiona_storage.backends.localfs._tree import replace


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--objects", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--dir", default=None)
    options = parser.parse_args()
    payload = os.urandom(1024)
    sidecar = (
        b'{"format":1,"versions":[{"etag":"' + b"0" * 64 + b'","content_type":"application/octet-stream"}]}'
    )
    keys = [f"objects/{i % 100:02d}/{i:06d}.bin" for i in range(options.objects)]
    with tempfile.TemporaryDirectory(dir=options.dir) as work:
        root = os.path.join(work, "bare")
        for n in range(100):
            os.makedirs(os.path.join(root, "objects", f"{n:02d}"))
        os.makedirs(os.path.join(work, "obstore"))
        theirs = LocalStore(os.path.join(work, "obstore"))
        root_fd = os.open(root, os.O_RDONLY | os.O_DIRECTORY)
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC

        def publish(dir_fd: int, name: str, data: bytes) -> None:
            fd = os.open(name + ".tmp", flags, 0o644, dir_fd=dir_fd)
            os.write(fd, data)
            os.close(fd)
            replace(dir_fd, name + ".tmp", name, lazy=True)  # as a put with fsync off does

        def bare_puts() -> None:  # open the folder, publish data and sidecar
            for key in keys:
                folder, name = key.rsplit("/", 1)
                dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY, dir_fd=root_fd)
                publish(dir_fd, name, payload)
                publish(dir_fd, name + ".meta.json", sidecar)
                os.close(dir_fd)

        def bare_stats() -> None:  # the data file's inode and the sidecar's bytes
            for key in keys:
                os.stat(key, dir_fd=root_fd, follow_symlinks=False)
                fd = os.open(key + ".meta.json", os.O_RDONLY, dir_fd=root_fd)
                os.read(fd, 65536)
                os.close(fd)

        def bare_list() -> None:  # names, inodes and sidecars, folder by folder
            count = 0
            for n in range(100):
                folder = os.path.join(root, "objects", f"{n:02d}")
                dir_fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
                for entry in sorted(os.scandir(dir_fd), key=lambda e: e.name):
                    if entry.name.endswith(".meta.json"):
                        continue
                    entry.stat(follow_symlinks=False)
                    fd = os.open(entry.name + ".meta.json", os.O_RDONLY, dir_fd=dir_fd)
                    os.read(fd, 65536)
                    os.close(fd)
                    count += 1
                os.close(dir_fd)
            assert count == len(keys)

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
