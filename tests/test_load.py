"""Load: S3's consistency promises under many processes, on localfs and on Ceph.

- writers overwriting one key while readers read: no mixed read, one writer wins;
- read-after-write and read-after-delete seen from another process: no stale answer;
- 10,000 keys listed under many prefixes: exact, in one order, on every backend.

Each test prints its figure (run with ``-s``).
"""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

import visiona_storage as vs
from processes import finish, spawn
from servers import S3Server
from visiona_storage._keys import key_problem
from workers import consistent

MiB = 1 << 20


@pytest.mark.slow
def test_8_writers_overwriting_one_key_while_8_readers_read_never_mix_versions(
    shared_store: tuple[str, vs.Store], tmp_path: Path
) -> None:
    spec, store = shared_store
    key = "hot/model.bin"
    seed = b"seed"
    store.put(
        key,
        seed,
        metadata={"sha256": hashlib.sha256(seed).hexdigest(), "writer": "0"},
        content_type="application/x-writer-0",
    )
    stop = tmp_path / "stop"
    readers = [spawn("reader", spec, key, str(stop), "600") for _ in range(8)]
    writers = [spawn("writer", spec, key, str(n), "50", "1024", str(16 * MiB), "0") for n in range(1, 9)]
    writes = sum(finish(p, 600)["writes"] for p in writers)
    stop.touch()
    results = [finish(p) for p in readers]
    reads = sum(r["reads"] for r in results)
    mismatched = sum(r["mismatched"] for r in results)
    with store.get(key) as r:
        data, info = r.read(), r.info
    print(
        f"\n{'ceph' if spec.startswith('s3|') else 'localfs'}: 8 writers x 50 overwrites "
        f"(1 KiB-16 MiB, {writes} writes), 8 readers: {reads} reads, "
        f"{mismatched} mixed; final object from writer {info.metadata['writer']}, round "
        f"{info.metadata['round']}"
    )
    assert writes == 400
    assert reads >= 100
    assert mismatched == 0
    assert all(r["missing"] == 0 for r in results)
    assert consistent(data, info)
    assert info.metadata["writer"] in {str(n) for n in range(1, 9)}


def _tagged(value: str) -> tuple[bytes, dict[str, str]]:
    data = value.encode()
    return data, {"sha256": hashlib.sha256(data).hexdigest()}


@pytest.mark.slow
def test_another_process_never_sees_a_stale_object_after_put_or_delete(
    shared_store: tuple[str, vs.Store],
) -> None:
    """10,000 rounds of create, overwrite, delete; after each step another process's
    get, stat and list must all show exactly that step's result."""
    spec, store = shared_store
    rounds, lanes = 10_000, 4
    stale: list[str] = []
    checks = [0] * lanes

    def lane(n: int) -> None:
        observer = spawn("observer", spec, stdin=True)
        assert observer.stdin is not None
        assert observer.stdout is not None

        def seen_by_observer(key: str, etag: str | None) -> None:
            assert observer.stdin is not None
            assert observer.stdout is not None
            observer.stdin.write(json.dumps({"key": key, "etag": etag}) + "\n")
            observer.stdin.flush()
            answer = json.loads(observer.stdout.readline())
            checks[n] += 1
            stale.extend(f"{key} ({'deleted' if etag is None else etag}): {s}" for s in answer)

        try:
            for i in range(n, rounds, lanes):
                key = f"raw/{n}/{i % 25}.txt"
                for version in ("created", "overwritten"):
                    data, metadata = _tagged(f"{i} {version}")
                    seen_by_observer(key, store.put(key, data, metadata=metadata).etag)
                store.delete(key)
                seen_by_observer(key, None)
        finally:
            observer.stdin.close()
            observer.wait(60)

    with ThreadPoolExecutor(lanes) as pool:
        list(pool.map(lane, range(lanes)))
    print(
        f"\n{rounds} x (put, overwrite, delete) over {lanes} lanes: "
        f"{sum(checks)} checks of get+stat+list by another process, {len(stale)} stale"
    )
    assert sum(checks) == 3 * rounds
    assert stale == [], stale[:10]


# Names chosen so that siblings differ at the characters that order around "/" in
# UTF-8 ("-" and "." sort before it, "0" and letters after), plus the s3-tests names.
_NAMES = ["a", "a-", "a.", "a0", "a b", "aé", "a中", "A", "b~", "b_", "%", "&", "'", "$", "😀", "z"]


def _keys(count: int) -> list[str]:
    rng = random.Random(11)
    keys: set[str] = set()
    while len(keys) < count:
        folders = [rng.choice(_NAMES) for _ in range(rng.randrange(0, 4))]
        key = "/".join([*folders, f"{rng.choice(_NAMES)}{len(keys)}.bin"])
        if key_problem(key) is None:
            keys.add(key)
    return sorted(keys, key=lambda k: k.encode())


KEYS = _keys(10_000)


def _prefixes(keys: list[str]) -> list[str]:
    """The empty prefix, every first character, and 40 cuts of random keys."""
    rng = random.Random(12)
    cuts = [k[: rng.randrange(1, len(k) + 1)] for k in rng.sample(keys, 40)]
    return ["", *sorted({k[0] for k in keys}), *cuts, "a/", "a-", "a.", "zz-none"]


@pytest.fixture(params=["memory", "localfs", "moto", "ceph"])
def listed_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, vs.Store]]:
    """(the backend's name, a store on it)."""
    name = request.param
    if name == "memory":
        yield name, vs.MemoryStore()
    elif name == "localfs":
        yield name, vs.LocalFSStore(tmp_path / "storage", fsync=False)
    else:
        server: S3Server = request.getfixturevalue(name)
        bucket = server.new_bucket()
        yield (
            name,
            vs.S3Store(
                bucket, endpoint=server.endpoint, access_key=server.access_key, secret_key=server.secret_key
            ),
        )
        server.drop_bucket(bucket)


@pytest.mark.slow
def test_10000_keys_list_exactly_and_in_one_order_under_every_prefix(
    listed_store: tuple[str, vs.Store],
) -> None:
    name, store = listed_store

    def put(key: str) -> None:
        store.put(key, key.encode())

    with ThreadPoolExecutor(16) as pool:
        list(pool.map(put, KEYS))
    prefixes = _prefixes(KEYS)
    listed = 0
    for prefix in prefixes:
        got = [info.key for info in store.list(prefix)]
        listed += len(got)
        assert got == [k for k in KEYS if k.startswith(prefix)], prefix
    first_characters = sorted({k[0] for k in KEYS})
    union = [key for c in first_characters for key in (info.key for info in store.list(c))]
    assert sorted(union, key=lambda k: k.encode()) == KEYS
    assert len(set(union)) == len(union) == len(KEYS)
    for key in random.Random(13).sample(KEYS, 200):
        with store.get(key) as r:
            assert r.read() == key.encode()
    print(
        f"\n{name}: {len(KEYS)} keys, {len(prefixes)} prefixes, {listed} listed: "
        "0 duplicates, 0 gaps, UTF-8 byte order"
    )
