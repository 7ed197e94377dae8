"""Fuzzing: keys on every backend without a server, and random requests at /storage.

Each test prints its figure (run with ``-s``).
"""

from __future__ import annotations

import logging
import os
import random
import socket
import urllib.parse
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import visiona_storage as vs
from servers import LiveServer
from visiona_storage._keys import key_problem
from visiona_storage.http import create_app

S3_TESTS_SPECIAL_NAMES = [" ", '"', "$", "%", "&", "'", "<", ">", "_", "_ ", " _", "__", "_ _"]

_ALPHABET = st.characters(codec="utf-8") | st.sampled_from(list("/.\\%&$'\"<> _-\x00\n~"))
_KEYS = (
    st.text(alphabet=_ALPHABET, max_size=40)
    | st.sampled_from(["..", "a/..", "./a", "a/./b", "a.meta.json", "x.vs-tmp", ".visiona-storage/x", "a//b"])
    | st.sampled_from(S3_TESTS_SPECIAL_NAMES)
)


@pytest.mark.slow
def test_fuzzed_keys_get_the_same_verdict_everywhere_and_stay_under_the_root(tmp_path: Path) -> None:
    root = tmp_path / "inside" / "root"
    local = vs.LocalFSStore(root, fsync=False)
    memory = vs.MemoryStore()
    before = sorted(p.name for p in tmp_path.iterdir())
    counts = {"accepted": 0, "refused": 0}

    @settings(max_examples=10_000, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(_KEYS)
    def check(key: str) -> None:
        verdicts = []
        for store in (memory, local):
            try:
                store.put(key, key.encode())
            except vs.InvalidKeyError:
                verdicts.append("refused")
                continue
            with store.get(key) as reader:
                assert reader.read() == key.encode()
            assert store.stat(key).key == key
            assert key in [info.key for info in store.list(key)]
            store.delete(key)
            verdicts.append("accepted")
        assert verdicts[0] == verdicts[1], (key, verdicts)
        assert (verdicts[0] == "refused") == (key_problem(key) is not None)
        counts[verdicts[0]] += 1

    check()
    for name in S3_TESTS_SPECIAL_NAMES:
        check.hypothesis.inner_test(name)  # type: ignore[attr-defined]
    print(
        f"\nkey fuzzing: {counts['accepted']} accepted and round-tripped, {counts['refused']} refused alike"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert [p for p in root.rglob("*") if p.is_file() and ".visiona-storage" not in p.parts] == []


@pytest.fixture
def served(tmp_path: Path, live: LiveServer) -> Iterator[vs.LocalFSStore]:
    with vs.LocalFSStore(tmp_path / "storage", base_url=f"{live.url}/storage", fsync=False) as store:
        live.serve(create_app(store, cors_origins=["https://a.example"]))
        yield store


def _send(port: int, method: str, target: str, headers: dict[str, str], body: bytes | None) -> int:
    """One raw HTTP/1.1 request (header bytes as UTF-8, however odd); the status, or 0."""
    lines = [f"{method} {target} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Connection: close"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if body is not None:
        lines.append(f"Content-Length: {len(body)}")
    data = ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + (body or b"")
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        reply = b""
        while b"\r\n" not in reply:
            chunk = sock.recv(4096)
            if not chunk:
                return 0
            reply += chunk
    return int(reply.split(b" ", 2)[1])


@pytest.mark.slow
def test_fuzzed_requests_never_get_a_5xx(
    served: vs.LocalFSStore, live: LiveServer, caplog: pytest.LogCaptureFixture
) -> None:
    rng = random.Random(7)
    served.put("a/b.bin", b"0123456789" * 100, metadata={"x": "y"})
    served.put("empty", b"")
    signed = [
        served.presigned_get_url("a/b.bin"),
        served.presigned_put_url("a/c.bin", content_type="application/octet-stream", max_size=500),
        served.presigned_get_url("empty"),
        served.presigned_get_url("missing"),
    ]
    pieces = [
        "..",
        "%2e%2e",
        "%2F",
        "%00",
        "%5C",
        "a",
        "b.bin",
        "%25",
        "%E6%A8%A1",
        "%E6%A8",
        ".meta.json",
        "x.vs-tmp",
        "",
        ".visiona-storage",
        "%ff",
        "%",
        "%20",
        "%3F",
        "..%2f",
        "%252e%252e",
    ]
    queries = [
        "",
        "X-VS-Signature=x",
        "X-VS-Expires=abc&X-VS-Key-Id=k&X-VS-Signature=z",
        "X-VS-Expires=99999999999999999999&X-VS-Key-Id=%00&X-VS-Signature=",
        "X-VS-Max-Size=-1",
    ]
    statuses: dict[int, int] = {}
    for _ in range(3000):
        if rng.random() < 0.5:
            parts = urllib.parse.urlsplit(rng.choice(signed))
            path, query = parts.path, parts.query
            if rng.random() < 0.3:
                path = "/storage/" + "/".join(rng.choice(pieces) for _ in range(rng.randint(1, 4)))
        else:
            path = "/storage/" + "/".join(rng.choice(pieces) for _ in range(rng.randint(0, 4)))
            query = rng.choice(queries)
        method = rng.choice(["GET", "HEAD", "PUT", "OPTIONS", "DELETE", "POST", "PATCH", "get"])
        headers: dict[str, str] = {}
        if rng.random() < 0.5:
            headers["Range"] = rng.choice(
                [
                    "bytes=0-0",
                    "bytes=-1",
                    "bytes=5-",
                    "bytes=999999999999999999999-",
                    "bytes=--",
                    "bytes=1-2,3-4",
                    "bytes=a-b",
                    "bytes=-",
                    "bytes 0-1",
                    "bytes=0-999999999999999999999999999",
                    "=",
                    "",
                ]
            )
        if rng.random() < 0.3:
            headers["If-None-Match"] = rng.choice(["*", '"x"', "", "W/", '"' * 3])
        if rng.random() < 0.3:
            headers["If-Match"] = rng.choice(["*", '"x"', "", ","])
        if rng.random() < 0.5:
            headers["Content-Type"] = rng.choice(
                ["application/octet-stream", "", "text/html", "a\tb", "模型"]
            )
        if rng.random() < 0.3:
            name = "x-amz-meta-" + rng.choice(["k", "bad_key", "é", "a.b", ""])
            headers[name] = rng.choice(["v", "=?UTF-8?B?!!?=", "x" * 3000, "", "模型"])
        if rng.random() < 0.2:
            headers["Origin"] = rng.choice(["https://a.example", "https://evil"])
        body = (
            rng.choice([None, b"", b"x" * rng.randint(1, 1000)])
            if method in ("PUT", "POST", "PATCH")
            else None
        )
        status = _send(live.port, method, path + ("?" + query if query else ""), headers, body)
        statuses[status] = statuses.get(status, 0) + 1
    print(f"\n3000 fuzzed requests: statuses {dict(sorted(statuses.items()))}")
    assert all(status < 500 for status in statuses if status), statuses
    failures = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert failures == [], failures[:3]  # nothing failed after a status was already sent
    with served.get("a/b.bin") as reader:
        assert reader.read() == b"0123456789" * 100
    assert not os.path.exists(os.path.join(os.path.dirname(served.root), "a"))
