"""The async API (`AsyncStore`) against obstore's async API and against our own sync
API, in the same run:

- 1,000 concurrent 4 KiB gets, and puts, on localfs against obstore's LocalStore
  (``get_async``, ``put_async``), and on Ceph against obstore's S3Store;
- an async put and get of 256 MiB (an async iterable of 1 MiB chunks, as a request
  body comes; read in 1 MiB chunks) against the sync put and get of the same;
- the worst stall of the event loop during that async put and get: how late a
  task that sleeps 1 ms at a time wakes, against the same loop idle.

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
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import obstore
from obstore.store import LocalStore

import visiona_storage as vs
from _common import Figure, LoopStallWatch, interleaved, table
from s3_vs_boto3 import boto3_client, ceph_env, obstore_s3

MiB = 1 << 20
CONCURRENT = 1000
SMALL = 4096


def _many(action: Callable[[int], Awaitable[object]]) -> Callable[[], None]:
    """Run `action(0)` ... `action(CONCURRENT - 1)` at once, in a new event loop."""

    async def main() -> None:
        await asyncio.gather(*(action(n) for n in range(CONCURRENT)))

    return lambda: asyncio.run(main())


def small_figures(runs: int, where: str, ours: vs.Store, theirs: Any) -> list[Figure]:
    """1,000 concurrent 4 KiB gets and puts through `AsyncStore(ours)` and obstore."""
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
        seconds, their_seconds = interleaved(runs, _many(mine), _many(other))
        found.append(
            Figure(
                f"async: {CONCURRENT} concurrent 4 KiB {operation} on {where}",
                f"obstore {'put_async' if operation == 'puts' else 'get_async'}",
                "ops/s",
                [CONCURRENT / s for s in seconds],
                [CONCURRENT / s for s in their_seconds],
                target=1.0,
            )
        )
    return found


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
            found += small_figures(runs, "localfs, fsync off", ours, LocalStore(os.path.join(work, "theirs")))
        found += big_figures(runs, mib, work)
        with ceph_env(os.path.join(work, "ceph")) as env:
            boto3_client(env).create_bucket(Bucket="bench-async")
            with vs.S3Store(
                "bench-async",
                endpoint=env["CEPH_RGW_ENDPOINT"],
                access_key=env["CEPH_RGW_ACCESS_KEY"],
                secret_key=env["CEPH_RGW_SECRET_KEY"],
            ) as ours_s3:
                found += small_figures(runs, "Ceph", ours_s3, obstore_s3(env, "bench-async"))
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
