"""Promises of the S3 backend beyond the conformance suite, on moto's real server."""

from __future__ import annotations

import asyncio
import json
import logging
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import visiona_storage as vs
from servers import S3Server, free_port
from visiona_storage._headers import decode_value, encode_value
from visiona_storage.backends.s3._timestamps import parse_timestamp

MiB = 1 << 20
WORKERS = str(Path(__file__).with_name("workers.py"))


@pytest.fixture
def bucket(moto: S3Server) -> Iterator[str]:
    name = moto.new_bucket()
    yield name
    moto.drop_bucket(name)


@pytest.fixture
def server_bucket(server: S3Server) -> Iterator[str]:
    name = server.new_bucket()
    yield name
    server.drop_bucket(name)


def _store(server: S3Server, bucket: str, **options: Any) -> vs.S3Store:
    return vs.S3Store(
        bucket,
        endpoint=server.endpoint,
        access_key=server.access_key,
        secret_key=server.secret_key,
        **options,
    )


def _uploads(server: S3Server, bucket: str) -> list[Any]:
    uploads: list[Any] = server.client().list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return uploads


@pytest.mark.parametrize("failure", ["size-mismatch", "caller-error", "bad-part"])
def test_a_failed_multipart_put_leaves_no_upload_behind(
    server: S3Server, server_bucket: str, failure: str
) -> None:
    moto, bucket = server, server_bucket
    store = _store(moto, bucket, part_size=5 * MiB, concurrency=2)
    store.put("k", b"old")

    class CallerError(Exception):
        pass

    def body() -> Iterator[bytes]:
        for _ in range(4):
            yield b"x" * (3 * MiB)
        if failure == "caller-error":
            raise CallerError
        if failure == "bad-part":
            yield "not bytes"  # type: ignore[misc]

    expected: type[Exception] = {
        "size-mismatch": vs.SizeMismatchError,
        "caller-error": CallerError,
        "bad-part": vs.InvalidArgumentError,
    }[failure]
    with pytest.raises(expected):
        store.put("k", body(), size=20 * MiB if failure == "size-mismatch" else -1)
    assert _uploads(moto, bucket) == []
    with store.get("k") as reader:
        assert reader.read() == b"old"


def test_large_bodies_go_up_in_parallel_parts(moto: S3Server, bucket: str) -> None:
    store = _store(moto, bucket, part_size=5 * MiB, concurrency=3)
    calls: list[str] = []
    store._client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    data = bytes(range(256)) * (64 * 1024)  # 16 MiB
    info = store.put("big", iter([data[i : i + MiB] for i in range(0, len(data), MiB)]))
    assert calls.count("UploadPart") == 4
    assert calls[0] == "CreateMultipartUpload"
    assert "CompleteMultipartUpload" in calls
    assert info.size == len(data)
    with store.get("big") as reader:
        assert reader.read() == data


@pytest.mark.parametrize(
    ("length", "uploads"),
    [(0, 0), (5 * MiB - 1, 0), (5 * MiB, 1), (5 * MiB + 1, 2), (10 * MiB, 2), (11 * MiB, 3)],
)
@pytest.mark.parametrize("declared", [True, False], ids=["size-given", "size-unknown"])
def test_a_file_body_is_read_straight_into_its_parts(
    moto: S3Server, bucket: str, tmp_path: Path, length: int, uploads: int, declared: bool
) -> None:
    store = _store(moto, bucket, part_size=5 * MiB, concurrency=2)
    calls: list[str] = []
    store._client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    data = os.urandom(length)
    path = tmp_path / "source.bin"
    path.write_bytes(data)
    with open(path, "rb") as source:
        info = store.put("f", source, size=length if declared else -1)
    assert calls.count("UploadPart") == uploads
    assert ("PutObject" in calls) == (uploads == 0)
    assert info.size == length
    with store.get("f") as reader:
        assert reader.read() == data


def test_small_bodies_go_up_in_one_request(moto: S3Server, bucket: str) -> None:
    store = _store(moto, bucket)
    calls: list[str] = []
    store._client.meta.events.register("before-call.s3.*", lambda model, **_: calls.append(model.name))
    store.put("small", iter([b"a" * 1000, b"b" * 1000]))
    assert calls == ["PutObject", "HeadObject"]


def test_list_pages_lazily_through_more_than_1000_keys(server: S3Server, server_bucket: str) -> None:
    moto, bucket = server, server_bucket
    client = moto.client()
    keys = [f"page/{i:05d}" for i in range(1105)] + ["page-", "page0"]
    for key in keys:
        client.put_object(Bucket=bucket, Key=key, Body=b"")
    store = _store(moto, bucket, list_page_size=100)
    pages: list[Any] = []
    store._client.meta.events.register(
        "before-call.s3.ListObjectsV2", lambda params, **_: pages.append(params)
    )
    listing = store.list("page")
    assert next(listing).key == "page-"
    assert len(pages) == 1
    rest = [info.key for info in listing]
    assert ["page-", *rest] == sorted(keys, key=lambda k: k.encode())
    assert len(pages) == 12


def test_unicode_metadata_round_trips_and_reads_as_rfc2047_elsewhere(moto: S3Server, bucket: str) -> None:
    store = _store(moto, bucket)
    store.put("m", b"x", metadata={"title": "模型 v2", "plain": "ascii value"})
    assert store.stat("m").metadata == {"title": "模型 v2", "plain": "ascii value"}
    raw = moto.client().head_object(Bucket=bucket, Key="m")["Metadata"]
    assert raw["plain"] == "ascii value"
    assert raw["title"].startswith("=?UTF-8?B?")


@pytest.mark.parametrize(
    "value",
    [
        *["", " ", "模型", "=?UTF-8?B?5qih5Z6L?=", "=?x", "a\nb", " pad ", "tab\t", "ok", "\x00", "é"],
        "a =?utf-8?q?x?= b",
    ],
)
def test_metadata_header_encoding_round_trips(value: str) -> None:
    encoded = encode_value(value)
    assert encoded.isascii()
    assert encoded == encoded.strip()
    assert all(32 <= ord(c) < 127 for c in encoded)
    assert decode_value(encoded) == value


def test_a_non_aws_endpoint_gets_path_style_and_checksums_only_when_required(moto: S3Server) -> None:
    store = _store(moto, "b")
    config = store._client.meta.config
    assert config.s3["addressing_style"] == "path"
    assert config.request_checksum_calculation == "when_required"
    assert config.response_checksum_validation == "when_required"
    aws = vs.S3Store("b", access_key="a", secret_key="s")
    assert aws._client.meta.config.request_checksum_calculation == "when_supported"
    assert aws.multipart_conditions is True
    assert store.multipart_conditions is False


def test_an_unreachable_endpoint_is_a_storage_error_naming_it() -> None:
    endpoint = f"http://127.0.0.1:{free_port()}"
    store = vs.S3Store("b", endpoint=endpoint, access_key="a", secret_key="s", max_attempts=1)
    for call in (lambda: store.stat("k"), lambda: store.put("k", b"x"), lambda: list(store.list())):
        with pytest.raises(vs.StorageError) as caught:
            call()
        assert endpoint in str(caught.value)
        assert type(caught.value).__module__.startswith("visiona_storage")


@pytest.mark.parametrize(
    "options",
    [
        {"endpoint": "not a url"},
        {"endpoint": "ftp://x"},
        {"part_size": 1024},
        {"region": "bad region!"},
        {"max_connections": 0},
    ],
)
def test_a_bad_configuration_is_a_config_error(options: dict[str, Any]) -> None:
    with pytest.raises(vs.ConfigError):
        vs.S3Store("b", access_key="a", secret_key="s", **options)


def test_a_missing_bucket_is_a_storage_error_naming_it(server: S3Server) -> None:
    store = _store(server, "no-such-bucket-here")
    with pytest.raises(vs.StorageError, match="no-such-bucket-here"):
        store.put("k", b"x")
    with pytest.raises(vs.StorageError, match="no-such-bucket-here"):
        list(store.list())


def test_a_wrong_secret_key_is_a_storage_error_that_says_access_denied(ceph: S3Server) -> None:
    bucket = ceph.new_bucket()
    try:
        secret = "WRONG-SECRET-0123456789"
        store = vs.S3Store(bucket, endpoint=ceph.endpoint, access_key=ceph.access_key, secret_key=secret)
        for call in (lambda: store.put("k", b"x"), lambda: store.stat("k"), lambda: list(store.list())):
            with pytest.raises(vs.StorageError, match="access denied") as caught:
                call()
            assert ceph.endpoint in str(caught.value)
            assert secret not in str(caught.value)
    finally:
        ceph.drop_bucket(bucket)


def test_errors_never_show_the_secret_key(moto: S3Server) -> None:
    secret = "SUPER-SECRET-KEY-0123456789"
    store = vs.S3Store("missing-bucket", endpoint=moto.endpoint, access_key="a", secret_key=secret)
    with pytest.raises(vs.StorageError) as caught:
        store.put("k", b"x")
    assert secret not in str(caught.value)
    assert secret not in repr(caught.value)
    assert secret not in repr(store)


def test_presigned_put_cannot_promise_a_max_size_on_s3(moto: S3Server, bucket: str) -> None:
    with pytest.raises(vs.UnsupportedError):
        _store(moto, bucket).presigned_put_url("k", max_size=100)


def test_put_returns_a_stat_even_when_the_object_was_replaced_meanwhile(moto: S3Server, bucket: str) -> None:
    store = _store(moto, bucket)
    info = store.put("k", b"mine", metadata={"who": "me"})
    assert info == store.stat("k")


@pytest.mark.slow
def test_streaming_1gib_to_s3_keeps_memory_bounded(moto: S3Server, bucket: str) -> None:
    out = subprocess.run(
        [sys.executable, WORKERS, "s3-memory", moto.endpoint, bucket, "512"],
        check=True,
        capture_output=True,
        text=True,
        timeout=600,
    ).stdout
    result = json.loads(out)
    print(f"\nS3 put+get of 512 MiB on moto: peak RSS {result['peak_rss_kib'] / 1024:.1f} MiB")
    assert result["intact"]
    assert result["peak_rss_kib"] / 1024 < 128


def test_a_body_known_to_need_parts_is_read_while_the_upload_is_created(moto: S3Server, bucket: str) -> None:
    """The first part is read while CreateMultipartUpload is under way, not before it."""
    store = _store(moto, bucket, part_size=5 * MiB, concurrency=2)
    creating = threading.Event()
    store._client.meta.events.register("before-call.s3.CreateMultipartUpload", lambda **_: creating.set())
    seen_while_reading: list[bool] = []

    def body() -> Iterator[bytes]:
        yield b"a" * MiB
        seen_while_reading.append(creating.wait(10))  # still inside the first part
        for _ in range(10):
            yield b"b" * MiB

    info = store.put("overlap", body(), size=11 * MiB)
    assert seen_while_reading == [True]
    assert info.size == 11 * MiB
    with store.get("overlap") as reader:
        assert reader.read() == b"a" * MiB + b"b" * (10 * MiB)


@pytest.mark.parametrize("failure", ["size-mismatch", "caller-error"])
def test_a_body_that_fails_in_its_first_part_leaves_no_upload_behind(
    server: S3Server, server_bucket: str, failure: str
) -> None:
    """The upload was created while the first part was read: it is aborted."""
    store = _store(server, server_bucket, part_size=5 * MiB, concurrency=2)
    created = threading.Event()
    store._client.meta.events.register("after-call.s3.CreateMultipartUpload", lambda **_: created.set())

    class CallerError(Exception):
        pass

    def body() -> Iterator[bytes]:
        yield b"x" * MiB
        assert created.wait(10)  # fail only once the upload exists
        if failure == "caller-error":
            raise CallerError

    expected: type[Exception] = vs.SizeMismatchError if failure == "size-mismatch" else CallerError
    with pytest.raises(expected):
        store.put("k", body(), size=20 * MiB)
    assert _uploads(server, server_bucket) == []
    with pytest.raises(vs.NotFoundError):
        store.stat("k")


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-01-02T03:04:05.678Z", datetime(2026, 1, 2, 3, 4, 5, 678000, tzinfo=UTC)),
        ("2026-01-02T03:04:05Z", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T04:04:05+01:00", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("2026-01-02T03:04:05", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("Fri, 02 Jan 2026 03:04:05 GMT", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
        ("1767323045", datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)),
    ],
)
def test_listing_and_head_timestamps_parse_to_aware_utc(text: str, expected: datetime) -> None:
    """A listing's ISO 8601 and a HEAD's HTTP date of one version give the same
    instant in UTC (what `sync`'s state cache keys on); other forms go to botocore."""
    parsed = parse_timestamp(text)
    assert parsed == expected
    assert parsed.tzinfo is UTC


def test_the_client_parses_timestamps_with_our_parser(
    moto: S3Server, bucket: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    from visiona_storage.backends.s3 import _store  # noqa: PLC0415

    parsed: list[str] = []

    def counting(value: Any) -> datetime:
        parsed.append(value)
        return parse_timestamp(value)

    monkeypatch.setattr(_store, "parse_timestamp", counting)
    with moto.store(bucket) as store:
        store.put("t", b"x")
        (listed,) = store.list()
        info = store.stat("t")
    assert len(parsed) >= 2  # the listing's and the HEAD's at least
    assert listed.last_modified.tzinfo is UTC
    assert listed.last_modified.replace(microsecond=0) == info.last_modified


def test_async_store_threads_fit_in_the_connection_pool(
    moto: S3Server, bucket: str, caplog: pytest.LogCaptureFixture
) -> None:
    """`AsyncStore`'s 16 worker threads each hold a connection at once: the pool
    keeps them all, rather than closing the extras after each request."""
    store = _store(moto, bucket)

    async def main() -> None:
        astore = vs.AsyncStore(store)
        await asyncio.gather(*(astore.put(f"k/{n}", b"x" * 4096) for n in range(200)))
        await asyncio.gather(*(astore.stat(f"k/{n}") for n in range(200)))

    with caplog.at_level(logging.WARNING, logger="urllib3"):
        asyncio.run(main())
    store.close()
    assert not [r for r in caplog.records if "pool is full" in r.getMessage()]


def test_max_connections_reaches_the_client_from_the_configuration(moto: S3Server, bucket: str) -> None:
    def config(connections: int) -> dict[str, Any]:
        s3 = {
            "endpoint": moto.endpoint,
            "bucket": bucket,
            "access_key": moto.access_key,
            "secret_key": moto.secret_key,
            "max_connections": connections,
        }
        return {"storage": {"backend": "s3", "s3": s3}}

    with vs.open_store(config(300)) as store:
        assert isinstance(store, vs.S3Store)
        assert store._client.meta.config.max_pool_connections == 300
    with pytest.raises(vs.ConfigError, match="max_connections"):
        vs.open_store(config(0))
