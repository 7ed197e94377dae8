"""Worker processes for the multi-process tests: run as ``python tests/workers.py CMD ...``.

Every worker prints one JSON line of results on stdout, unless it is killed.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import resource
import sys
import time
from collections.abc import Callable, Iterator

import visiona_storage as vs

MiB = 1 << 20


def _payload(rng: random.Random, max_size: int) -> bytes:
    size = rng.choice([0, 1, rng.randrange(1, 4096), rng.randrange(1, max_size + 1)])
    return rng.randbytes(size)


def writer(root: str, keys: str, seed: str, rounds: str, max_size: str, fsync: str) -> None:
    """Put random objects, each tagged with its own SHA-256, over and over."""
    rng = random.Random(int(seed))
    store = vs.LocalFSStore(root, fsync=fsync == "1")
    names = keys.split(",")
    for i in range(int(rounds)):
        data = _payload(rng, int(max_size))
        chunks = [data[j : j + 65536] for j in range(0, len(data), 65536)]
        store.put(
            rng.choice(names),
            iter(chunks),
            metadata={"sha256": hashlib.sha256(data).hexdigest(), "writer": seed, "round": str(i)},
            content_type=f"application/x-writer-{seed}",
        )
    print(json.dumps({"writes": int(rounds)}))


def reader(root: str, key: str, seconds: str) -> None:
    """Read one key in a loop; count reads whose data does not match the metadata read with it."""
    store = vs.LocalFSStore(root)
    reads = mismatched = missing = 0
    deadline = time.monotonic() + float(seconds)
    while time.monotonic() < deadline:
        try:
            with store.get(key) as r:
                data = r.read()
                info = r.info
        except vs.NotFoundError:
            missing += 1
            continue
        reads += 1
        digest = hashlib.sha256(data).hexdigest()
        ok = (
            digest == info.etag == info.metadata.get("sha256")
            and len(data) == info.size
            and info.content_type == f"application/x-writer-{info.metadata.get('writer')}"
        )
        mismatched += not ok
    print(json.dumps({"reads": reads, "mismatched": mismatched, "missing": missing}))


def _open(spec: str) -> vs.Store:
    """A store from a worker's argument: a local root, or ``s3|endpoint|bucket|access|secret``."""
    if spec.startswith("s3|"):
        _, endpoint, bucket, access, secret = spec.split("|")
        return vs.S3Store(bucket, endpoint=endpoint, access_key=access, secret_key=secret)
    return vs.LocalFSStore(spec)


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
    }
    commands[command](*arguments)
