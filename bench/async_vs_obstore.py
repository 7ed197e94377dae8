"""The async API (`AsyncStore`) against obstore's async API and against our own sync
API, in the same run:

- 1,000 concurrent 4 KiB gets, and puts, on localfs against obstore's LocalStore
  (``get_async``, ``put_async``), and on Ceph against obstore's S3Store;
- an async put and get of 256 MiB (an async iterable of 1 MiB chunks, as a request
  body comes; read in 1 MiB chunks) against the sync put and get of the same;
- the worst stall of the event loop during that async put and get: how late a
  task that sleeps 1 ms at a time wakes, against the same loop idle;
- beside the figures that miss their target, their floor in the same run: the
  least work the same design does, with none of the library's code around it. For localfs
  puts, the layout's bare system calls (a data file and its sidecar, each a new
  inode) on the same 16 worker threads, and beside them one file with its
  metadata in an xattr, the design change that would lift that floor; for Ceph,
  raw boto3 calls on the same 16 worker threads (a PUT and the HEAD that makes
  `put` return what `stat` would; a GET); for the 256 MiB get, one worker thread
  that reads 1 MiB `bytes` with `os.pread` and hands each to the loop, at most
  two waiting, as in `AsyncStore`. A floor below the target is the design's ceiling.

    .venv/bin/python bench/async_vs_obstore.py [--runs 5] [--mib 256] [--dir /work]

The Ceph figures start a throw-away cluster with scripts/ceph-rgw (root, Debian
packages) unless CEPH_RGW_ENDPOINT, CEPH_RGW_ACCESS_KEY and CEPH_RGW_SECRET_KEY
point at one.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import tempfile
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import obstore
from obstore.store import LocalStore

import _bare
import visiona_storage as vs
import visiona_storage._async_read as read_ahead
from _common import Figure, LoopStallWatch, interleaved, table
from s3_vs_boto3 import boto3_client, ceph_env, obstore_s3
from visiona_storage.backends.localfs._layout import SIDECAR_SUFFIX
from visiona_storage.backends.s3._store import DEFAULT_MAX_CONNECTIONS

MiB = 1 << 20
CONCURRENT = 1000
SMALL = 4096
THREADS = 16
"""`AsyncStore`'s worker threads, which the floors use too."""
AHEAD = read_ahead.AHEAD
"""Chunks of 1 MiB that the bare read-ahead floor lets wait, as `AsyncStore` does."""

Floors = dict[str, list[tuple[str, Callable[[int], object]]]]
"""For "puts" or "gets": each floor's name, and its sync call for object `n`."""


def _many(action: Callable[[int], Awaitable[object]]) -> Callable[[], None]:
    """Run `action(0)` ... `action(CONCURRENT - 1)` at once, in a new event loop."""

    async def main() -> None:
        await asyncio.gather(*(action(n) for n in range(CONCURRENT)))

    return lambda: asyncio.run(main())


def _many_in_threads(call: Callable[[int], object]) -> Callable[[], None]:
    """Run `call(0)` ... `call(CONCURRENT - 1)` from as many tasks at once, each on
    one of `THREADS` worker threads, as `AsyncStore` runs its calls."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        with ThreadPoolExecutor(THREADS) as pool:
            await asyncio.gather(*(loop.run_in_executor(pool, call, n) for n in range(CONCURRENT)))

    return lambda: asyncio.run(main())


def small_figures(
    runs: int,
    where: str,
    ours: vs.Store,
    theirs: Any,
    floors: Floors | None = None,
    settle: Callable[[], object] | None = None,
) -> list[Figure]:
    """1,000 concurrent 4 KiB gets and puts through `AsyncStore(ours)` and obstore,
    and the `floors` given, each against obstore in its own interleaved runs;
    `settle` runs untimed after each batch of puts (see `interleaved`)."""
    data = os.urandom(SMALL)
    astore = vs.AsyncStore(ours)

    async def our_put(n: int) -> None:
        await astore.put(f"small/ours/{n}", data)

    async def their_put(n: int) -> None:
        await obstore.put_async(theirs, f"small/theirs/{n}", data)

    async def our_get(n: int) -> None:
        async with astore.get(f"small/ours/{n}") as reader:
            assert len(await reader.read()) == SMALL

    async def their_get(n: int) -> None:
        result = await obstore.get_async(theirs, f"small/theirs/{n}")
        assert len(await result.bytes_async()) == SMALL

    found = []
    for operation, mine, other in (("puts", our_put, their_put), ("gets", our_get, their_get)):
        after = settle if operation == "puts" else None
        ways: list[tuple[str, Callable[[], None], dict[str, Any]]] = [("", _many(mine), {"target": 1.0})]
        for what, call in (floors or {}).get(operation, []):
            note = f"{what}, on {THREADS} worker threads"
            ways.append((f": {what}", _many_in_threads(call), {"note": note}))
        for suffix, action, extra in ways:
            seconds, their_seconds = interleaved(runs, action, _many(other), after)
            found.append(
                Figure(
                    f"async: {CONCURRENT} concurrent 4 KiB {operation} on {where}{suffix}",
                    f"obstore {'put_async' if operation == 'puts' else 'get_async'}",
                    "ops/s",
                    [CONCURRENT / s for s in seconds],
                    [CONCURRENT / s for s in their_seconds],
                    **extra,
                )
            )
    return found


def localfs_floors(root: str) -> Floors:
    """Bare puts under `root` (`_bare.py`: no checks, no lock, no crash safety):
    the layout's, a data file and its sidecar, each a new inode; and, for the
    design that keeps metadata in the data file's extended attributes, one file
    with the sidecar's bytes in an xattr."""
    data = os.urandom(SMALL)
    folders = []
    for name in ("layout", "xattr"):
        os.makedirs(os.path.join(root, name))
        folders.append(os.open(os.path.join(root, name), os.O_RDONLY | os.O_DIRECTORY))  # the run's
    layout, xattr = folders

    def two_files(n: int) -> None:
        _bare.publish(layout, str(n), data)
        _bare.publish(layout, f"{n}{SIDECAR_SUFFIX}", _bare.SIDECAR)

    def one_file(n: int) -> None:
        _bare.publish(xattr, str(n), data, xattr=_bare.SIDECAR)

    return {
        "puts": [
            ("the floor, the layout's bare system calls (data file and sidecar)", two_files),
            ("bare system calls of one file with its metadata in an xattr", one_file),
        ]
    }


def boto3_floors(client: Any, bucket: str) -> Floors:
    """Raw boto3 calls: a put as `S3Store.put` makes it (the PUT, then the HEAD
    whose answer it returns), and a get."""
    data = os.urandom(SMALL)
    for n in range(CONCURRENT):
        client.put_object(Bucket=bucket, Key=f"small/boto3/{n}", Body=data)

    def put(n: int) -> None:
        client.put_object(Bucket=bucket, Key=f"small/boto3/{n}", Body=data)
        client.head_object(Bucket=bucket, Key=f"small/boto3/{n}")

    def get(n: int) -> None:
        assert len(client.get_object(Bucket=bucket, Key=f"small/boto3/{n}")["Body"].read()) == SMALL

    return {
        "puts": [("the floor, boto3 put_object and head_object", put)],
        "gets": [("the floor, boto3 get_object", get)],
    }


class BigTransfers:
    """A put and a get of `mib` MiB in 1 MiB chunks on `store`, through an
    `AsyncStore` of it (``big/async``) and through the store itself (``big/sync``),
    each a call to time; the async ones note the event loop's worst stall (ms) in
    ``stalls["put"]`` and ``stalls["get"]``."""

    def __init__(self, store: vs.Store, mib: int, stalls: dict[str, list[float]]) -> None:
        self.store = store
        self.astore = vs.AsyncStore(store)  # left open: closing it would close the store
        self.mib = mib
        self.stalls = stalls
        self._chunk = os.urandom(MiB)

    def async_put(self) -> None:
        asyncio.run(self._async_put())

    def async_get(self) -> None:
        asyncio.run(self._async_get())

    def sync_put(self) -> None:
        self.store.put("big/sync", (self._chunk for _ in range(self.mib)), size=self.mib * MiB)

    def sync_get(self, size: int = MiB) -> None:
        with self.store.get("big/sync") as reader:
            for _ in reader.iter_chunks(size):
                pass

    async def _chunks(self) -> AsyncIterator[bytes]:
        for _ in range(self.mib):
            yield self._chunk

    async def _async_put(self) -> None:
        async with LoopStallWatch() as watch:
            await self.astore.put("big/async", self._chunks(), size=self.mib * MiB)
        self.stalls["put"].append(watch.worst * 1000)

    async def _async_get(self) -> None:
        async with LoopStallWatch() as watch, self.astore.get("big/async") as reader:
            async for _ in reader:
                pass
        self.stalls["get"].append(watch.worst * 1000)


def bare_async_get(path: str) -> None:
    """The floor of an async get that hands `bytes` from a worker thread to the
    loop: one thread reads the file in 1 MiB chunks (`os.pread`) with at most
    `AHEAD` waiting, the loop takes each; nothing else."""

    async def main() -> None:
        loop = asyncio.get_running_loop()
        chunks: asyncio.Queue[bytes] = asyncio.Queue()
        room = threading.Semaphore(AHEAD)
        fd = os.open(path, os.O_RDONLY)

        def fill() -> None:
            offset = 0
            while True:
                room.acquire()
                chunk = os.pread(fd, MiB, offset)
                offset += len(chunk)
                loop.call_soon_threadsafe(chunks.put_nowait, chunk)
                if not chunk:
                    return

        try:
            with ThreadPoolExecutor(1) as pool:
                filled = loop.run_in_executor(pool, fill)
                while await chunks.get():
                    room.release()
                await filled
        finally:
            os.close(fd)

    asyncio.run(main())


def big_figures(runs: int, mib: int, folder: str) -> list[Figure]:
    """An async 256 MiB put and get against the sync ones, and the loop's worst stall."""
    stalls: dict[str, list[float]] = {"put": [], "get": [], "idle": []}
    found = []
    with vs.LocalFSStore(os.path.join(folder, "big"), fsync=False) as store:
        big = BigTransfers(store, mib, stalls)

        async def idle() -> None:
            async with LoopStallWatch() as watch:
                await asyncio.sleep(0.5)
            stalls["idle"].append(watch.worst * 1000)

        for operation, mine, theirs in (
            ("put", big.async_put, big.sync_put),
            ("get", big.async_get, big.sync_get),
        ):
            seconds, sync_seconds = interleaved(runs, mine, theirs, store._reclaimer.drain)
            found.append(
                Figure(
                    f"async: {operation} {mib} MiB on localfs, fsync off"
                    + (" (an async iterable of 1 MiB chunks)" if operation == "put" else ", 1 MiB chunks"),
                    f"the sync {operation} of the same",
                    "MiB/s",
                    [mib / s for s in seconds],
                    [mib / s for s in sync_seconds],
                    target=0.9,
                )
            )
        data_file = os.path.join(folder, "big", "big", "sync")
        seconds, sync_seconds = interleaved(runs, lambda: bare_async_get(data_file), big.sync_get)
        found.append(
            Figure(
                f"async: get {mib} MiB on localfs, fsync off, 1 MiB chunks: the floor, a bare threaded read",
                "the sync get of the same",
                "MiB/s",
                [mib / s for s in seconds],
                [mib / s for s in sync_seconds],
                note=f"a thread reads 1 MiB bytes (os.pread), {AHEAD} waiting at most; the loop takes each",
            )
        )
        for _ in range(runs):
            asyncio.run(idle())
    for operation in ("put", "get"):
        found.append(
            Figure(
                f"async: the event loop's worst stall during the {mib} MiB {operation}",
                "the same loop idle",
                "ms",
                stalls[operation][1:],  # the warm-up's left out, as for the timing
                stalls["idle"][: len(stalls[operation]) - 1],
                higher_is_better=False,
                limit=10,
                note="how late a task that sleeps 1 ms at a time wakes, worst of the transfer",
            )
        )
    return found


def figures(runs: int = 5, mib: int = 256, folder: str | None = None) -> list[Figure]:
    """Every async figure: localfs, Ceph, and the big transfers."""
    found: list[Figure] = []
    with tempfile.TemporaryDirectory(dir=folder) as work:
        with vs.LocalFSStore(os.path.join(work, "ours"), fsync=False) as ours:
            os.makedirs(os.path.join(work, "theirs"))
            found += small_figures(
                runs,
                "localfs, fsync off",
                ours,
                LocalStore(os.path.join(work, "theirs")),
                localfs_floors(os.path.join(work, "bare")),
                settle=os.sync,  # each batch's writeback is its own, not the next one's
            )
        found += big_figures(runs, mib, work)
        with ceph_env(os.path.join(work, "ceph")) as env:
            client = boto3_client(env, connections=DEFAULT_MAX_CONNECTIONS)  # S3Store's pool
            client.create_bucket(Bucket="bench-async")
            with vs.S3Store(
                "bench-async",
                endpoint=env["CEPH_RGW_ENDPOINT"],
                access_key=env["CEPH_RGW_ACCESS_KEY"],
                secret_key=env["CEPH_RGW_SECRET_KEY"],
            ) as ours_s3:
                found += small_figures(
                    runs, "Ceph", ours_s3, obstore_s3(env, "bench-async"), boto3_floors(client, "bench-async")
                )
    return found


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--mib", type=int, default=256)
    parser.add_argument("--dir", default=None)
    options = parser.parse_args()
    print(table(figures(options.runs, options.mib, options.dir)))


if __name__ == "__main__":
    main()
