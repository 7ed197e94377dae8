"""The /storage endpoint, over a real uvicorn on loopback."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import os
import socket
import threading
import time
import urllib.parse
from collections.abc import AsyncIterator, Iterator, Sequence
from datetime import UTC, datetime, timedelta, timezone
from email.utils import format_datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from starlette.datastructures import Headers, QueryParams

import visiona_storage as vs
from servers import LiveServer
from visiona_storage.backends.localfs import _reading as localfs_reading
from visiona_storage.driver import PutWriter
from visiona_storage.http import create_app
from visiona_storage.http._app import _get_headers, _http_date, _query

MiB = 1 << 20


@pytest.fixture
def store(tmp_path: Path, live: LiveServer) -> Iterator[vs.LocalFSStore]:
    with vs.LocalFSStore(tmp_path / "storage", base_url=f"{live.url}/storage") as store:
        live.serve(create_app(store, cors_origins=["https://app.example.com"]))
        yield store


def request(
    method: str, url: str, body: bytes | Iterator[bytes] | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    parts = urllib.parse.urlsplit(url)
    conn = http.client.HTTPConnection(parts.hostname or "127.0.0.1", parts.port, timeout=30)
    try:
        target = parts.path + ("?" + parts.query if parts.query else "")
        chunked = not isinstance(body, (bytes, type(None)))
        conn.request(method, target, body=body, headers=headers or {}, encode_chunked=chunked)
        response = conn.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        conn.close()


def raw_upload(url: str, declared: int, sent: bytes, content_type: str = "application/octet-stream") -> None:
    """A client that sends `sent` while declaring `declared` bytes, then hangs up."""
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname, parts.port), timeout=10) as sock:
        head = (
            f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {declared}\r\n\r\n"
        )
        sock.sendall(head.encode() + sent)
        sock.shutdown(socket.SHUT_WR)
        with contextlib.suppress(OSError):
            sock.recv(1000)


# GET and HEAD


def test_get_sends_the_object_with_its_headers(store: vs.LocalFSStore) -> None:
    info = store.put("m/model.onnx", b"0123456789", metadata={"framework": "onnx", "title": "模型 v2"})
    status, headers, body = request("GET", store.presigned_get_url("m/model.onnx"))
    assert (status, body) == (200, b"0123456789")
    assert headers["etag"] == f'"{info.etag}"'
    assert headers["content-type"] == "application/octet-stream"
    assert headers["content-length"] == "10"
    assert headers["accept-ranges"] == "bytes"
    assert headers["last-modified"].endswith("GMT")
    assert headers["x-amz-meta-framework"] == "onnx"
    assert vs._headers.decode_value(headers["x-amz-meta-title"]) == "模型 v2"


def test_head_sends_the_headers_only(store: vs.LocalFSStore) -> None:
    store.put("k", b"abc")
    status, headers, body = request("HEAD", store.presigned_get_url("k"))
    assert (status, body, headers["content-length"]) == (200, b"", "3")


@pytest.mark.parametrize(
    ("header", "status", "body", "content_range"),
    [
        ("bytes=2-5", 206, b"2345", "bytes 2-5/10"),
        ("bytes=7-", 206, b"789", "bytes 7-9/10"),
        ("bytes=-3", 206, b"789", "bytes 7-9/10"),
        ("bytes=5-100", 206, b"56789", "bytes 5-9/10"),
        ("bytes=-100", 200, b"0123456789", None),
        ("bytes=0-9", 200, b"0123456789", None),
        ("bytes=0-1,4-5", 200, b"0123456789", None),
        ("bytes=abc", 200, b"0123456789", None),
        ("bytes=5-2", 200, b"0123456789", None),
        ("items=0-1", 200, b"0123456789", None),
        ("bytes=10-", 416, None, "bytes */10"),
        ("bytes=10-20", 416, None, "bytes */10"),
        ("bytes=-0", 416, None, "bytes */10"),
    ],
)
def test_range_requests(
    store: vs.LocalFSStore, header: str, status: int, body: bytes | None, content_range: str | None
) -> None:
    store.put("r", b"0123456789")
    got_status, headers, got_body = request("GET", store.presigned_get_url("r"), headers={"Range": header})
    assert got_status == status
    if body is not None:
        assert got_body == body
        assert headers["content-length"] == str(len(body))
    assert headers.get("content-range") == content_range


def test_if_none_match_answers_304(store: vs.LocalFSStore) -> None:
    info = store.put("k", b"abc")
    url = store.presigned_get_url("k")
    status, headers, body = request("GET", url, headers={"If-None-Match": f'"{info.etag}"'})
    assert (status, body, headers["etag"]) == (304, b"", f'"{info.etag}"')
    assert "content-length" not in headers
    assert request("GET", url, headers={"If-None-Match": 'W/"other", "x"'})[0] == 200
    assert request("GET", url, headers={"If-None-Match": "*"})[0] == 304


def test_errors_are_small_json_bodies(store: vs.LocalFSStore) -> None:
    status, headers, body = request("GET", store.presigned_get_url("missing"))
    assert status == 404
    assert headers["content-type"] == "application/json"
    assert json.loads(body) == {
        "error": "NoSuchKey",
        "message": "no object at key 'missing'",
        "key": "missing",
    }


def test_unsigned_or_foreign_requests_are_403(store: vs.LocalFSStore, live: LiveServer) -> None:
    store.put("k", b"secret")
    assert request("GET", f"{live.url}/storage/k")[0] == 403
    other = vs.LocalFSStore(store.root + "-other", base_url=store.base_url)
    assert request("GET", other.presigned_get_url("k"))[0] == 403


@pytest.mark.parametrize(
    "path", ["a//b", "a/../b", "%2e%2e/x", "a%00b", "x.meta.json", ".visiona-storage/signing-keys.json"]
)
def test_bad_keys_are_400(store: vs.LocalFSStore, live: LiveServer, path: str) -> None:
    status, _, body = request("GET", f"{live.url}/storage/{path}?X-VS-Signature=x")
    assert status in (400, 404), path
    if status == 400:
        assert json.loads(body)["error"] == "InvalidKey"


# PUT


def test_put_streams_into_the_store_with_metadata_headers(store: vs.LocalFSStore) -> None:
    url = store.presigned_put_url("up/model.bin", content_type="application/octet-stream")
    data = bytes(range(256)) * (3 * 4096)
    status, headers, _ = request(
        "PUT",
        url,
        data,
        {
            "Content-Type": "application/octet-stream",
            "x-amz-meta-framework": "onnx",
            "x-amz-meta-title": vs._headers.encode_value("模型 v2"),
        },
    )
    assert status == 200
    info = store.stat("up/model.bin")
    assert headers["etag"] == f'"{info.etag}"'
    assert info.metadata == {"framework": "onnx", "title": "模型 v2"}
    with store.get("up/model.bin") as r:
        assert r.read() == data


def test_an_upload_that_ends_early_stores_nothing(store: vs.LocalFSStore) -> None:
    store.put("k", b"old version")
    url = store.presigned_put_url("k", content_type="application/octet-stream")
    raw_upload(url, declared=4 * MiB, sent=b"x" * MiB)
    raw_upload(url, declared=100, sent=b"")
    with store.get("k") as r:
        assert r.read() == b"old version"
    raw_upload(store.presigned_put_url("new", content_type="application/octet-stream"), 1000, b"y" * 10)
    assert [i.key for i in store.list()] == ["k"]


def test_an_upload_over_the_signed_max_size_is_413(store: vs.LocalFSStore) -> None:
    url = store.presigned_put_url("k", content_type="application/octet-stream", max_size=100)
    assert request("PUT", url, b"x" * 101, {"Content-Type": "application/octet-stream"})[0] == 413
    assert request("PUT", url, b"x" * 100, {"Content-Type": "application/octet-stream"})[0] == 200
    headers = {"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"}
    status = request("PUT", url, iter([b"x" * 60, b"x" * 60]), headers)[0]
    assert status == 413
    assert store.stat("k").size == 100


def test_put_needs_the_signed_content_type(store: vs.LocalFSStore) -> None:
    url = store.presigned_put_url("k", content_type="application/x-onnx")
    assert request("PUT", url, b"x", {"Content-Type": "text/html"})[0] == 403
    assert request("PUT", url, b"x")[0] == 403
    assert request("PUT", url, b"x", {"Content-Type": "application/x-onnx"})[0] == 200


def test_a_get_url_cannot_put_and_a_put_url_cannot_get(store: vs.LocalFSStore) -> None:
    store.put("k", b"keep")
    assert (
        request("PUT", store.presigned_get_url("k"), b"x", {"Content-Type": "application/octet-stream"})[0]
        == 403
    )
    assert request("GET", store.presigned_put_url("k"))[0] == 403


def test_conditional_put_headers_are_honoured(store: vs.LocalFSStore) -> None:
    url = store.presigned_put_url("c", content_type="application/octet-stream")
    ct = {"Content-Type": "application/octet-stream"}
    assert request("PUT", url, b"1", {**ct, "If-None-Match": "*"})[0] == 200
    assert request("PUT", url, b"2", {**ct, "If-None-Match": "*"})[0] == 412
    etag = store.stat("c").etag
    assert request("PUT", url, b"3", {**ct, "If-Match": f'"{etag}"'})[0] == 200
    assert request("PUT", url, b"4", {**ct, "If-Match": f'"{etag}"'})[0] == 412


def test_bad_metadata_headers_are_400_and_store_nothing(store: vs.LocalFSStore) -> None:
    url = store.presigned_put_url("k", content_type="application/octet-stream")
    status, _, body = request(
        "PUT", url, b"x", {"Content-Type": "application/octet-stream", "x-amz-meta-big": "v" * 3000}
    )
    assert status == 400
    assert json.loads(body)["error"] == "InvalidArgument"
    assert list(store.list()) == []


def test_key_conflicts_are_409(store: vs.LocalFSStore) -> None:
    store.put("a/b", b"x")
    url = store.presigned_put_url("a/b/c", content_type="application/octet-stream")
    assert request("PUT", url, b"y", {"Content-Type": "application/octet-stream"})[0] == 409


# CORS


def test_cors_preflight_and_exposed_etag(store: vs.LocalFSStore) -> None:
    url = store.presigned_put_url("k", content_type="application/octet-stream")
    status, headers, _ = request(
        "OPTIONS",
        url,
        headers={
            "Origin": "https://app.example.com",
            "Access-Control-Request-Method": "PUT",
            "Access-Control-Request-Headers": "content-type,x-amz-meta-framework",
        },
    )
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert "PUT" in headers["access-control-allow-methods"]
    assert "x-amz-meta-framework" in headers["access-control-allow-headers"].lower()
    status, headers, _ = request(
        "PUT", url, b"x", {"Origin": "https://app.example.com", "Content-Type": "application/octet-stream"}
    )
    assert status == 200
    assert headers["access-control-allow-origin"] == "https://app.example.com"
    assert "etag" in headers["access-control-expose-headers"].lower()


def test_cors_exposes_each_responses_metadata_headers(store: vs.LocalFSStore) -> None:
    store.put("m.bin", b"x", metadata={"framework": "onnx", "model-name": "模型"})
    origin = {"Origin": "https://app.example.com"}
    for method in ("GET", "HEAD"):
        status, headers, _ = request(method, store.presigned_get_url("m.bin"), headers=origin)
        assert status == 200
        exposed = [name.strip() for name in headers["access-control-expose-headers"].lower().split(",")]
        assert "etag" in exposed
        assert [name for name in exposed if name.startswith("x-amz-meta-")] == sorted(
            name for name in headers if name.startswith("x-amz-meta-")
        )
        assert len([name for name in exposed if name.startswith("x-amz-meta-")]) == 2
    store.put("plain.bin", b"x")
    _, headers, _ = request("GET", store.presigned_get_url("plain.bin"), headers=origin)
    assert "x-amz-meta" not in headers["access-control-expose-headers"]


def test_cors_refuses_other_origins(store: vs.LocalFSStore) -> None:
    status, headers, _ = request(
        "OPTIONS",
        store.presigned_put_url("k"),
        headers={"Origin": "https://evil.example.com", "Access-Control-Request-Method": "PUT"},
    )
    assert status == 400
    assert "access-control-allow-origin" not in headers


def test_the_app_needs_a_signer() -> None:
    with pytest.raises(vs.ConfigError):
        create_app(vs.MemoryStore())


def test_a_thousand_mutated_urls_are_all_403_over_http(store: vs.LocalFSStore) -> None:
    from test_signing import _mutations  # noqa: PLC0415 - the same mutation table, sent over HTTP

    store.put("t/model.onnx", b"original")
    content_type = "application/octet-stream"
    url = store.presigned_put_url("t/model.onnx", ttl=600, content_type=content_type, max_size=1000)
    parts = urllib.parse.urlsplit(url)
    key = urllib.parse.unquote(parts.path.removeprefix("/storage/"))
    params = dict(urllib.parse.parse_qsl(parts.query))
    statuses: dict[int, int] = {}
    # A content type with trailing space is the same header on the wire (HTTP strips it).
    mutations = [m for m in _mutations(params, key, content_type) if m[3] == m[3].strip()]
    accepted = []
    for method, other_key, other_params, other_type in mutations:
        mutated = urllib.parse.urlunsplit(
            parts._replace(
                path="/storage/" + urllib.parse.quote(other_key), query=urllib.parse.urlencode(other_params)
            )
        )
        headers = {"Content-Type": other_type} if other_type else {}
        status = request(method, mutated, b"forged", headers)[0]
        statuses[status] = statuses.get(status, 0) + 1
        if status < 400:
            accepted.append((method, other_key, other_params, other_type))
    print(f"\n{len(mutations)} mutated presigned URLs over HTTP: statuses {statuses}")
    assert request("PUT", url, b"genuine", {"Content-Type": content_type})[0] == 200
    assert accepted == []
    assert set(statuses) <= {400, 403, 405}
    assert statuses.get(403, 0) >= 1000
    with store.get("t/model.onnx") as r:
        assert r.read() == b"genuine"


def test_bytes_beyond_content_length_are_never_stored(store: vs.LocalFSStore) -> None:
    """Over HTTP/1.1 bytes past Content-Length are the next request, a bad one here:
    the object holds exactly the declared bytes, or (if the server drops the whole
    connection first) nothing; never the extra bytes."""
    url = store.presigned_put_url("k", content_type="application/octet-stream")
    parts = urllib.parse.urlsplit(url)
    with socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 80), timeout=10) as sock:
        head = (
            f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: 10\r\n\r\n"
        )
        sock.sendall(head.encode() + b"0123456789" + b"EXTRA BYTES NOT DECLARED\r\n\r\n")
        replies = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                replies += chunk
    assert b"HTTP/1.1 400" in replies
    stored = [info.key for info in store.list()]
    if stored:
        with store.get("k") as r:
            assert r.read() == b"0123456789"
        assert replies.startswith(b"HTTP/1.1 200")


def test_the_app_mounts_inside_another_starlette_app(tmp_path: Path, live: LiveServer) -> None:
    from starlette.applications import Starlette  # noqa: PLC0415
    from starlette.routing import Mount  # noqa: PLC0415

    with vs.LocalFSStore(tmp_path / "s", base_url=f"{live.url}/api/files") as store:
        live.serve(Starlette(routes=[Mount("/api", app=create_app(store, prefix="/files"))]))
        store.put("a b/模型.bin", b"mounted")
        assert request("GET", store.presigned_get_url("a b/模型.bin"))[:3:2] == (200, b"mounted")


# Large uploads: the event loop receives up to 8 MiB ahead while the store writes and hashes.


def _ragged(data: bytes) -> Iterator[bytes]:
    """`data` in pieces of 1 byte to 3 MiB, as a client might send them."""
    sizes = [1, 1000, 65_536, 3 * MiB, 300_000, 7, 2 * MiB + 1]
    offset = 0
    for n in range(len(data)):
        if offset >= len(data):
            return
        size = sizes[n % len(sizes)]
        yield data[offset : offset + size]
        offset += size


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
def test_a_large_upload_arrives_whole(store: vs.LocalFSStore, tmp_path: Path, chunked: bool) -> None:
    data = bytes(range(256)) * (40 * MiB // 256) + b"tail"
    url = store.presigned_put_url("big/model.bin", content_type="application/octet-stream")
    headers = {"Content-Type": "application/octet-stream"}
    if chunked:
        headers["Transfer-Encoding"] = "chunked"
    status, response, _ = request("PUT", url, _ragged(data) if chunked else data, headers)
    assert status == 200
    info = store.stat("big/model.bin")
    assert (info.size, info.etag) == (len(data), hashlib.sha256(data).hexdigest())
    assert response["etag"] == f'"{info.etag}"'
    with store.get("big/model.bin") as r:
        assert r.read() == data
    assert sorted(os.listdir(tmp_path / "storage" / "big")) == ["model.bin", "model.bin.meta.json"]


def test_a_large_upload_refused_before_its_body_is_read_gets_its_answer(
    store: vs.LocalFSStore, tmp_path: Path
) -> None:
    store.put("c/k", b"old")
    url = store.presigned_put_url("c/k", content_type="application/octet-stream")
    parts = urllib.parse.urlsplit(url)
    size = 64 * MiB
    with socket.create_connection((parts.hostname, parts.port), timeout=30) as sock:
        head = (
            f"PUT {parts.path}?{parts.query} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
            f"Content-Type: application/octet-stream\r\nContent-Length: {size}\r\nIf-None-Match: *\r\n\r\n"
        )
        sock.sendall(head.encode())

        def send_body() -> None:
            with contextlib.suppress(OSError):  # the server may hang up once it has answered
                for _ in range(size // MiB):
                    sock.sendall(b"z" * MiB)

        sender = threading.Thread(target=send_body, daemon=True)
        sender.start()
        answer = sock.recv(200)
        sender.join(timeout=30)
    assert answer.startswith(b"HTTP/1.1 412")
    with store.get("c/k") as r:
        assert r.read() == b"old"
    assert request("GET", store.presigned_get_url("c/k"))[0] == 200
    assert sorted(os.listdir(tmp_path / "storage" / "c")) == ["k", "k.meta.json"]


def test_a_chunked_upload_past_a_large_signed_max_size_is_413(store: vs.LocalFSStore, tmp_path: Path) -> None:
    store.put("m/k", b"old")
    url = store.presigned_put_url("m/k", content_type="application/octet-stream", max_size=10 * MiB)
    headers = {"Content-Type": "application/octet-stream", "Transfer-Encoding": "chunked"}
    status = request("PUT", url, iter([b"x" * MiB] * 20), headers)[0]
    assert status == 413
    with store.get("m/k") as r:
        assert r.read() == b"old"
    assert sorted(os.listdir(tmp_path / "storage" / "m")) == ["k", "k.meta.json"]


_QUERY_ALPHABET = "aZ09=&%+;-._~é \x00" + "X-VS-Signature"


@settings(max_examples=500, deadline=None)
@given(st.text(_QUERY_ALPHABET, max_size=40) | st.binary(max_size=40).map(lambda b: b.decode("latin-1")))
def test_the_query_is_read_as_starlette_reads_it(text: str) -> None:
    raw = text.encode("latin-1", "replace")
    assert _query(raw) == dict(QueryParams(raw.decode("latin-1")))


@given(st.datetimes(min_value=datetime(1000, 1, 1), max_value=datetime(9999, 12, 30), timezones=st.just(UTC)))
def test_http_dates_are_written_as_email_utils_writes_them(when: datetime) -> None:
    assert _http_date(when) == format_datetime(when, usegmt=True)


def test_http_dates_of_other_time_zones_are_given_in_gmt() -> None:
    tokyo = timezone(timedelta(hours=9))
    assert _http_date(datetime(2026, 1, 1, 8, 30, tzinfo=tokyo)) == "Wed, 31 Dec 2025 23:30:00 GMT"


def test_a_get_reads_its_conditions_from_the_raw_headers_as_starlette_does() -> None:
    scope = {
        "headers": [
            (b"host", b"example.com"),
            (b"range", b"bytes=0-9"),
            (b"if-none-match", b'"a"'),
            (b"if-none-match", b'"b"'),  # the first of a repeated header counts
            (b"x-amz-meta-range", b"no"),
        ]
    }
    found = _get_headers(scope)
    assert found == {"range": "bytes=0-9", "if-none-match": '"a"'}
    for name in ("range", "if-none-match", "if-match"):
        assert found.get(name) == Headers(scope=scope).get(name)


def test_a_file_copied_in_by_hand_is_hashed_off_the_event_loop_once(
    store: vs.LocalFSStore, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = os.urandom(2 * MiB + 1)
    (tmp_path / "storage/hand").mkdir(parents=True)
    (tmp_path / "storage/hand/big.bin").write_bytes(data)
    hashed_on: list[str] = []
    real_adopt = localfs_reading._adopt

    def watched_adopt(*args: Any) -> Any:
        hashed_on.append(threading.current_thread().name)
        return real_adopt(*args)

    monkeypatch.setattr(localfs_reading, "_adopt", watched_adopt)
    url = store.presigned_get_url("hand/big.bin")
    for method in ("HEAD", "GET", "GET"):
        status, headers, body = request(method, url)
        assert status == 200
        assert headers["etag"] == f'"{hashlib.sha256(data).hexdigest()}"'
    assert body == data
    assert len(hashed_on) == 1
    assert hashed_on[0] != "live-uvicorn"  # the event loop's thread


# Hardening: what an unusual or hostile client gets.


def _raw(port: int, head: bytes, body: bytes = b"", wait: float = 10) -> bytes:
    """Send `head` and `body` as they are; what the server answers before it closes
    (or `wait` seconds pass)."""
    with socket.create_connection(("127.0.0.1", port), timeout=wait) as sock:
        sock.sendall(head + body)
        answer = b""
        with contextlib.suppress(OSError):
            while chunk := sock.recv(65536):
                answer += chunk
                if b"\r\n\r\n" in answer and b'"key"' in answer:
                    break
        return answer


def _target(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return f"{parts.path}?{parts.query}"


@pytest.mark.parametrize(
    ("content_type", "sandboxed"),
    [
        ("image/svg+xml", True),
        ("text/html; charset=utf-8", True),
        ("TEXT/HTML", True),
        ("application/xhtml+xml", True),
        ("application/xml", True),
        ("text/xml", True),
        ("application/rss+xml", True),
        ("text/javascript", True),
        ("application/javascript", True),
        ("application/octet-stream", False),
        ("application/json", False),
        ("image/png", False),
        ("text/plain", False),
    ],
)
def test_objects_are_served_nosniff_and_active_types_sandboxed(
    store: vs.LocalFSStore, content_type: str, sandboxed: bool
) -> None:
    store.put("u/file", b"<svg onload=alert(1)>", content_type=content_type)
    for method in ("GET", "HEAD"):
        status, headers, _ = request(method, store.presigned_get_url("u/file"))
        assert status == 200
        assert headers["x-content-type-options"] == "nosniff"
        assert (headers.get("content-security-policy") == "sandbox") is sandboxed


def test_if_match_star_on_put_replaces_only_an_existing_object(store: vs.LocalFSStore) -> None:
    url = store.presigned_put_url("u/m", content_type="application/octet-stream")
    headers = {"Content-Type": "application/octet-stream", "If-Match": "*"}
    assert request("PUT", url, b"new", headers)[0] == 412
    with pytest.raises(vs.NotFoundError):
        store.stat("u/m")
    store.put("u/m", b"old")
    assert request("PUT", url, b"new", headers)[0] == 200
    with store.get("u/m") as reader:
        assert reader.read() == b"new"


def test_raw_utf8_metadata_headers_are_stored_as_the_text_they_spell(
    store: vs.LocalFSStore, live: LiveServer
) -> None:
    url = store.presigned_put_url("u/meta", content_type="application/octet-stream")
    head = (
        f"PUT {_target(url)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        f"Content-Length: 2\r\nConnection: close\r\n"
    ).encode() + "x-amz-meta-title: 模型 café\r\nx-amz-meta-latin: caf\xe9\r\n\r\n".encode()
    head = head.replace("caf\xe9\r\n\r\n".encode(), b"caf\xe9\r\n\r\n")  # one raw Latin-1 byte
    assert b" 200 " in _raw(live.port, head, b"ok")
    assert store.stat("u/meta").metadata == {"title": "模型 café", "latin": "café"}


@pytest.mark.parametrize("coding", ["gzip", "gzip, chunked", "identity", "chunked, gzip"])
def test_a_transfer_coding_other_than_chunked_is_refused(
    store: vs.LocalFSStore, live: LiveServer, coding: str
) -> None:
    url = store.presigned_put_url("u/te", content_type="application/octet-stream")
    head = (
        f"PUT {_target(url)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
        f"Transfer-Encoding: {coding}\r\n\r\n"
    ).encode()
    answer = _raw(live.port, head, b"5\r\nhello\r\n0\r\n\r\n")
    status = int(answer.split(b" ", 2)[1]) if answer else 0
    if coding == "gzip, chunked":  # the parser takes it: the app must refuse it
        assert status == 400
        assert b"InvalidRequest" in answer
    else:  # the parser itself refuses it, or closes
        assert status in (0, 400)
    with pytest.raises(vs.NotFoundError):
        store.stat("u/te")


class _SlowWriter(PutWriter):
    """A local writer that takes `delay` seconds over each piece, as a slow disk would."""

    def __init__(self, inner: PutWriter, delay: float) -> None:
        self.inner, self.delay = inner, delay

    def write(self, data: bytes) -> None:
        time.sleep(self.delay)
        self.inner.write(data)

    def commit(self) -> vs.ObjectInfo:
        time.sleep(self.delay)
        return self.inner.commit()

    def abort(self) -> None:
        self.inner.abort()


class _SlowDiskStore(vs.LocalFSStore):
    def _open_writer(self, *args: Any, **kwargs: Any) -> PutWriter:  # type: ignore[override]
        return _SlowWriter(super()._open_writer(*args, **kwargs), delay=0.8)


def test_a_slow_store_is_not_taken_for_a_client_that_stalls(tmp_path: Path, live: LiveServer) -> None:
    """The body timeout counts only the time the upload waits on its client."""
    with _SlowDiskStore(tmp_path / "storage", base_url=f"{live.url}/storage") as store:
        live.serve(create_app(store, body_timeout=0.5))
        data = os.urandom(3 << 20)
        url = store.presigned_put_url("u/slow-disk", content_type="application/octet-stream")
        parts = urllib.parse.urlsplit(url)
        conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
        target = f"{parts.path}?{parts.query}"
        conn.request("PUT", target, body=data, headers={"Content-Type": "application/octet-stream"})
        response = conn.getresponse()
        assert (response.status, response.read()[:200]) == (200, b"")
        assert store.get("u/slow-disk").read() == data


def test_an_upload_that_stalls_gets_408_and_stores_nothing(tmp_path: Path, live: LiveServer) -> None:
    with vs.LocalFSStore(tmp_path / "storage", base_url=f"{live.url}/storage") as store:
        live.serve(create_app(store, body_timeout=0.5))
        store.put("u/s", b"old")
        for declared in (100, 8 * MiB):  # a small body, received whole; a large one, in pieces
            url = store.presigned_put_url("u/s", content_type="application/octet-stream")
            head = (
                f"PUT {_target(url)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
                f"Content-Length: {declared}\r\n\r\n"
            ).encode()
            answer = _raw(live.port, head, b"x" * min(declared - 1, 2 * MiB + 7), wait=10)
            assert answer.startswith(b"HTTP/1.1 408 "), answer[:200]
            assert b"connection: close" in answer.lower()
        with store.get("u/s") as reader:
            assert reader.read() == b"old"
        names = [name for _, _, found in os.walk(tmp_path / "storage") for name in found]
        assert [name for name in names if name.endswith(".vs-tmp")] == []


def test_stalled_uploads_hold_no_thread_that_downloads_need(tmp_path: Path, live: LiveServer) -> None:
    with vs.LocalFSStore(tmp_path / "storage", base_url=f"{live.url}/storage", fsync=False) as store:
        live.serve(create_app(store))
        big = os.urandom(3 * MiB)
        store.put("u/big", big)
        url = store.presigned_put_url("u/stall", content_type="application/octet-stream")
        head = (
            f"PUT {_target(url)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {64 * MiB}\r\n\r\n"
        ).encode()
        stalled = []
        try:
            for _ in range(60):  # more than anyio's 40 worker threads
                sock = socket.create_connection(("127.0.0.1", live.port), timeout=10)
                sock.sendall(head + b"x" * (MiB + 1))
                stalled.append(sock)
            for _ in range(3):  # streamed through worker threads, 1 MiB at a time
                status, _, body = request("GET", store.presigned_get_url("u/big"))
                assert (status, body == big) == (200, True)
            small_put = store.presigned_put_url("u/small", content_type="application/octet-stream")
            octets = {"Content-Type": "application/octet-stream"}
            assert request("PUT", small_put, b"k" * 1000, octets)[0] == 200
        finally:
            for sock in stalled:
                sock.close()
        with pytest.raises(vs.NotFoundError):
            store.stat("u/stall")


def test_an_upload_that_trickles_a_byte_at_a_time_is_cut_off(tmp_path: Path, live: LiveServer) -> None:
    """A byte now and then does not keep an upload open: it must send 16 KiB within
    each body timeout."""
    with vs.LocalFSStore(tmp_path / "storage", base_url=f"{live.url}/storage") as store:
        live.serve(create_app(store, body_timeout=0.5))
        url = store.presigned_put_url("u/trickle", content_type="application/octet-stream")
        head = (
            f"PUT {_target(url)} HTTP/1.1\r\nHost: x\r\nContent-Type: application/octet-stream\r\n"
            f"Content-Length: {3 << 20}\r\n\r\n"
        ).encode()
        with socket.create_connection(("127.0.0.1", live.port), timeout=5) as sock:
            sock.sendall(head)
            started = time.monotonic()
            answer = b""
            sock.settimeout(0.2)
            while time.monotonic() - started < 4 and not answer:
                with contextlib.suppress(OSError):
                    sock.sendall(b"x")
                with contextlib.suppress(TimeoutError):
                    answer = sock.recv(65536)
            took = time.monotonic() - started
        assert answer.startswith(b"HTTP/1.1 408 ")
        assert took < 2
        with pytest.raises(vs.NotFoundError):
            store.stat("u/trickle")


def test_if_range_of_another_version_gets_the_whole_object(store: vs.LocalFSStore) -> None:
    """A resumed download whose validator is stale gets 200 and all of the new
    version, never the new version's tail under the old one's head."""
    old = store.put("r/model", b"a" * 1000)
    new = store.put("r/model", b"b" * 1000)
    url = store.presigned_get_url("r/model", ttl=60)
    for validator, expected in (
        (f'"{old.etag}"', 200),
        (f'W/"{new.etag}"', 200),
        (_http_date(old.last_modified - timedelta(seconds=5)), 200),
        (f'"{new.etag}"', 206),
        (_http_date(new.last_modified), 200),  # under a second old: another version may share it
    ):
        status, _, body = request("GET", url, headers={"Range": "bytes=500-", "If-Range": validator})
        assert status == expected, validator
        assert body == (b"b" * 1000 if expected == 200 else b"b" * 500)
    time.sleep(1.1)  # a second on, the date names one version only
    status, _, body = request(
        "GET", url, headers={"Range": "bytes=500-", "If-Range": _http_date(new.last_modified)}
    )
    assert (status, body) == (206, b"b" * 500)


def test_if_match_on_a_get_compares_strongly(store: vs.LocalFSStore) -> None:
    info = store.put("r/strong", b"x")
    url = store.presigned_get_url("r/strong", ttl=60)
    assert request("GET", url, headers={"If-Match": f'W/"{info.etag}"'})[0] == 412
    assert request("GET", url, headers={"If-Match": f'"other", "{info.etag}"'})[0] == 200


@pytest.mark.parametrize("pause", [0.0, 0.05], ids=["keeps-up", "waits"])
def test_a_download_grows_its_pieces_only_for_a_client_that_keeps_up(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, pause: float
) -> None:
    """Pieces start at STREAM_CHUNK (a client that never reads holds little) and grow
    to FAST_CHUNK once FAST_AFTER bytes were each taken at once."""
    import anyio  # noqa: PLC0415

    from visiona_storage.http import _app  # noqa: PLC0415
    from visiona_storage.http._malloc_trim import MemoryReturner  # noqa: PLC0415

    assert _app.FAST_CHUNK > _app.STREAM_CHUNK
    monkeypatch.setattr(_app, "WAITED", 0.02 if pause else 1.0)
    size = _app.FAST_AFTER + 5 * _app.FAST_CHUNK + 7
    with vs.LocalFSStore(tmp_path, fsync=False) as store:
        store.put("big", os.urandom(size))

        async def sizes() -> list[int]:
            got = []
            reader = store.get("big")
            async for piece in _app._stream(reader, anyio.CapacityLimiter(1), MemoryReturner()):
                got.append(len(piece))
                await anyio.sleep(pause)
            assert reader.closed
            return got

        got = anyio.run(sizes)
    assert sum(got) == size
    small = _app.FAST_AFTER // _app.STREAM_CHUNK
    if pause:
        assert set(got[:-1]) == {_app.STREAM_CHUNK}
    else:
        assert got[:small] == [_app.STREAM_CHUNK] * small
        assert got[small:-1] == [_app.FAST_CHUNK] * 5


def test_uploads_share_a_bounded_budget_of_pieces_and_give_it_all_back() -> None:
    """However many uploads come at once, the pieces they hold waiting or being
    written stay within the budget, and every piece gives its room back: written,
    dropped after the body failed, or left queued by an upload that was cancelled."""
    import anyio  # noqa: PLC0415
    from starlette.requests import ClientDisconnect  # noqa: PLC0415

    from visiona_storage.http._upload_body import PIECE, IdleWatch, PieceBudget, push_body  # noqa: PLC0415

    budget_size = 3
    most = [0]

    class SlowWriter(PutWriter):
        def write(self, data: bytes) -> None:
            self.write_pieces([data])

        def write_pieces(self, pieces: Sequence[bytes]) -> None:
            most[0] = max(most[0], budget_size - budget.value)
            time.sleep(0.01)

        def commit(self) -> vs.ObjectInfo:
            raise NotImplementedError

        def abort(self) -> None:
            pass

    async def body(pieces: int, fail_at: int | None) -> AsyncIterator[bytes]:
        for index in range(pieces):
            if index == fail_at:
                raise ClientDisconnect
            yield b"x" * PIECE
            await anyio.sleep(0)

    async def upload(pieces: int, fail_at: int | None = None) -> None:
        with contextlib.suppress(ClientDisconnect):
            await push_body(body(pieces, fail_at), SlowWriter(), limiter, IdleWatch(30), budget)

    async def main() -> None:
        async with anyio.create_task_group() as group:
            for _ in range(4):
                group.start_soon(upload, 8)
            group.start_soon(upload, 8, 3)
            with anyio.move_on_after(0.05):
                await upload(40)  # cancelled with pieces queued
        assert budget.value == budget_size

    budget = PieceBudget(budget_size)
    limiter = anyio.CapacityLimiter(4)
    anyio.run(main)
    assert 1 <= most[0] <= budget_size


def test_a_cancelled_upload_whose_writes_never_started_gives_its_room_back() -> None:
    """An upload cancelled while its queued pieces still wait for a worker thread
    (every token of the limiter taken) gives their room in the shared budget back:
    a leak would shrink the budget for good, one cancelled upload at a time."""
    import anyio  # noqa: PLC0415

    from visiona_storage.http._upload_body import PIECE, IdleWatch, PieceBudget, push_body  # noqa: PLC0415

    written: list[int] = []

    class Writer(PutWriter):
        def write(self, data: bytes) -> None:
            written.append(len(data))

        def write_pieces(self, pieces: Sequence[bytes]) -> None:
            written.extend(len(piece) for piece in pieces)

        def commit(self) -> vs.ObjectInfo:
            raise NotImplementedError

        def abort(self) -> None:
            pass

    async def body() -> AsyncIterator[bytes]:
        for _ in range(3):
            yield b"x" * PIECE
        await anyio.sleep_forever()  # the client stalls after three pieces

    async def main() -> None:
        limiter = anyio.CapacityLimiter(1)
        await limiter.acquire_on_behalf_of("busy")  # no thread for the upload's writes
        with anyio.move_on_after(5):
            async with anyio.create_task_group() as group:
                group.start_soon(push_body, body(), Writer(), limiter, IdleWatch(30), budget)
                while budget.value > budget.size - 3:
                    await anyio.sleep(0.001)
                group.cancel_scope.cancel()
        limiter.release_on_behalf_of("busy")
        assert budget.value == budget.size

    budget = PieceBudget(8)
    anyio.run(main)
    assert written == []
