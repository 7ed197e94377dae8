"""Worker processes for the multi-process tests: run as ``python tests/workers.py CMD ...``.

Every worker prints one JSON line of results on stdout, unless it is killed.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator

import visiona_storage as vs

MiB = 1 << 20


def _payload(rng: random.Random, min_size: int, max_size: int) -> bytes:
    """Random bytes: the bounds themselves, or a size spread evenly on a log scale between them."""
    low, high = max(min_size, 1), max(max_size, 1)
    size = rng.choice([min_size, max_size, int(math.exp(rng.uniform(math.log(low), math.log(high))))])
    return rng.randbytes(size)


def _open(spec: str, fsync: bool = True) -> vs.Store:
    """A store from a worker's argument: a local root, or ``s3|endpoint|bucket|access|secret``."""
    if spec.startswith("s3|"):
        _, endpoint, bucket, access, secret = spec.split("|")
        return vs.S3Store(bucket, endpoint=endpoint, access_key=access, secret_key=secret)
    return vs.LocalFSStore(spec, fsync=fsync)


def writer(spec: str, keys: str, seed: str, rounds: str, min_size: str, max_size: str, fsync: str) -> None:
    """Put random objects, each tagged with its own SHA-256 and its writer, over and over."""
    rng = random.Random(int(seed))
    store = _open(spec, fsync=fsync == "1")
    names = keys.split(",")
    for i in range(int(rounds)):
        data = _payload(rng, int(min_size), int(max_size))
        chunks = [data[j : j + 65536] for j in range(0, len(data), 65536)]
        store.put(
            rng.choice(names),
            iter(chunks),
            metadata={"sha256": hashlib.sha256(data).hexdigest(), "writer": seed, "round": str(i)},
            content_type=f"application/x-writer-{seed}",
        )
    print(json.dumps({"writes": int(rounds)}))


def consistent(data: bytes, info: vs.ObjectInfo) -> bool:
    """Whether `data` is the object `info` describes: its SHA-256, size and writer's content
    type (and the ETag too where it is a SHA-256, as on localfs)."""
    digest = hashlib.sha256(data).hexdigest()
    return (
        digest == info.metadata.get("sha256")
        and (info.etag == digest or len(info.etag) != 64)
        and len(data) == info.size
        and info.content_type == f"application/x-writer-{info.metadata.get('writer')}"
    )


def reader(spec: str, key: str, stop_file: str, max_seconds: str) -> None:
    """Read one key until `stop_file` exists; count reads whose data does not match the
    metadata read with it."""
    store = _open(spec)
    reads = mismatched = missing = 0
    deadline = time.monotonic() + float(max_seconds)
    while not os.path.exists(stop_file) and time.monotonic() < deadline:
        try:
            with store.get(key) as r:
                data = r.read()
                info = r.info
        except vs.NotFoundError:
            missing += 1
            continue
        reads += 1
        mismatched += not consistent(data, info)
    print(json.dumps({"reads": reads, "mismatched": mismatched, "missing": missing}))


def observer(spec: str) -> None:
    """Answer, one JSON line per request on stdin, what this process sees of a key.

    ``{"key": K, "etag": E}`` asks get, stat and list to show exactly version E;
    ``{"key": K, "etag": null}`` asks all three to show no object. The answer is the
    list of stale views (empty when all three agree with the request).
    """
    store = _open(spec)
    for line in sys.stdin:
        request = json.loads(line)
        key, etag = request["key"], request["etag"]
        stale: list[str] = []
        try:
            with store.get(key) as r:
                data, info = r.read(), r.info
            if etag is None:
                stale.append("get found a deleted object")
            elif info.etag != etag or hashlib.sha256(data).hexdigest() != info.metadata.get("sha256"):
                stale.append(f"get returned {info.etag}")
        except vs.NotFoundError:
            if etag is not None:
                stale.append("get found nothing")
        try:
            seen: str | None = store.stat(key).etag
        except vs.NotFoundError:
            seen = None
        if seen != etag:
            stale.append(f"stat returned {seen}")
        listed = [o.etag for o in store.list(key) if o.key == key]
        if listed != ([] if etag is None else [etag]):
            stale.append(f"list returned {listed}")
        print(json.dumps(stale), flush=True)


def create_once(spec: str, key: str, start_at: str) -> None:
    """Race to create `key` with if_none_match="*"; say whether this process won."""
    store = _open(spec)
    time.sleep(max(0.0, float(start_at) - time.time()))
    try:
        store.put(key, str(os.getpid()).encode(), if_none_match="*")
        print(json.dumps({"won": 1}))
    except vs.PreconditionFailedError:
        print(json.dumps({"won": 0}))


def increment(spec: str, key: str, times: str) -> None:
    """Add 1 to the counter at `key`, `times` times, by if_match read-modify-write."""
    store = _open(spec)
    retries = 0
    for _ in range(int(times)):
        while True:
            with store.get(key) as r:
                value, etag = int(r.read()), r.info.etag
            try:
                store.put(key, str(value + 1).encode(), if_match=etag)
                break
            except vs.PreconditionFailedError:
                retries += 1
    print(json.dumps({"retries": retries}))


def peak_rss_kib() -> int:
    """This process's peak RSS. ``ru_maxrss`` would do, but Linux carries it over from
    the parent across fork and exec, so read the memory map's own high-water mark."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def memory(root: str, mib: str) -> None:
    """Put `mib` MiB from a generator, read it back in 1 MiB reads; report peak RSS."""
    store = vs.LocalFSStore(root, fsync=False)
    block = bytes(range(256)) * 4096  # 1 MiB

    def blocks() -> Iterator[bytes]:
        for _ in range(int(mib)):
            yield block

    before = peak_rss_kib()
    info = store.put("big/object.bin", blocks())
    digest = hashlib.sha256()
    with store.get("big/object.bin") as r:
        while chunk := r.read(MiB):
            digest.update(chunk)
    expected = hashlib.sha256()
    for chunk in blocks():
        expected.update(chunk)
    peak = peak_rss_kib()
    print(
        json.dumps(
            {
                "size": info.size,
                "intact": digest.hexdigest() == expected.hexdigest() == info.etag,
                "rss_before_kib": before,
                "peak_rss_kib": peak,
            }
        )
    )


def s3_memory(
    endpoint: str, bucket: str, mib: str, access_key: str = "testing", secret_key: str = "testing-secret"
) -> None:
    """Like `memory`, through an `S3Store`."""
    store = vs.S3Store(bucket, endpoint=endpoint, access_key=access_key, secret_key=secret_key)
    block = bytes(range(256)) * 4096
    count = int(mib)
    info = store.put("big/object.bin", (block for _ in range(count)))
    digest = hashlib.sha256()
    with store.get("big/object.bin") as r:
        while chunk := r.read(MiB):
            digest.update(chunk)
    expected = hashlib.sha256()
    for _ in range(count):
        expected.update(block)
    result = {
        "size": info.size,
        "intact": digest.digest() == expected.digest(),
        "peak_rss_kib": peak_rss_kib(),
    }
    print(json.dumps(result))


if __name__ == "__main__":
    command, *arguments = sys.argv[1:]
    commands: dict[str, Callable[..., None]] = {
        "writer": writer,
        "reader": reader,
        "memory": memory,
        "s3-memory": s3_memory,
        "create-once": create_once,
        "increment": increment,
        "observer": observer,
    }
    commands[command](*arguments)
