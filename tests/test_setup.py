"""`visiona-storage setup` and `S3Store.setup`: the bucket made and its CORS rule put
in place, safely again and again, on moto and on Ceph; on Ceph, a browser's
preflight and response headers follow the rule."""

from __future__ import annotations

import http.client
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import S3Server

ORIGIN = "http://127.0.0.1:8765"


@pytest.fixture
def bucket(server: S3Server) -> Iterator[str]:
    name = f"setup-{uuid.uuid4().hex[:12]}"  # not made yet: setup makes it
    yield name
    server.drop_bucket(name)


def test_setup_creates_the_bucket_and_its_cors_rule_once(server: S3Server, bucket: str) -> None:
    with server.store(bucket) as store:
        assert store.setup([ORIGIN], ["framework"]) == [
            f"bucket {bucket!r}: created",
            f"CORS for {ORIGIN}: applied",
        ]
        assert store.setup([ORIGIN], ["framework"]) == [
            f"bucket {bucket!r}: exists",
            f"CORS for {ORIGIN}: already in place",
        ]
        client = server.client()
        admins = {"ID": "admin", "AllowedOrigins": ["https://admin.example"], "AllowedMethods": ["GET"]}
        rules = client.get_bucket_cors(Bucket=bucket)["CORSRules"]
        client.put_bucket_cors(Bucket=bucket, CORSConfiguration={"CORSRules": [admins, *rules]})
        two = [ORIGIN, "https://app.example"]
        assert store.setup(two)[1] == f"CORS for {ORIGIN}, https://app.example: applied"
        rules = client.get_bucket_cors(Bucket=bucket)["CORSRules"]
        assert [rule.get("ID") for rule in rules] == ["admin", "visiona-storage"]
        assert rules[1]["AllowedOrigins"] == [ORIGIN, "https://app.example"]
        assert store.setup([]) == [f"bucket {bucket!r}: exists", "CORS: our rule removed"]
        assert [rule.get("ID") for rule in client.get_bucket_cors(Bucket=bucket)["CORSRules"]] == ["admin"]
        store.put("after-setup.bin", b"works")


def _request(url: str, method: str, headers: dict[str, str]) -> tuple[int, dict[str, str]]:
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        connection.request(method, f"{parts.path}?{parts.query}", headers=headers)
        response = connection.getresponse()
        response.read()
        return response.status, {name.lower(): value for name, value in response.getheaders()}
    finally:
        connection.close()


def test_on_ceph_a_page_of_the_origin_may_put_and_read_the_metadata(ceph: S3Server) -> None:
    bucket = f"setup-{uuid.uuid4().hex[:12]}"
    try:
        with ceph.store(bucket) as store:
            store.setup([ORIGIN], ["framework"])
            store.put("m.onnx", b"model", metadata={"framework": "onnx"})
            put_url = store.presigned_put_url("up.bin", 60, "application/octet-stream")
            status, headers = _request(
                put_url,
                "OPTIONS",
                {
                    "Origin": ORIGIN,
                    "Access-Control-Request-Method": "PUT",
                    "Access-Control-Request-Headers": "content-type,x-amz-meta-framework",
                },
            )
            assert status == 200
            assert headers["access-control-allow-origin"] == ORIGIN
            status, headers = _request(store.presigned_get_url("m.onnx", 60), "GET", {"Origin": ORIGIN})
            assert status == 200
            exposed = {name.strip().lower() for name in headers["access-control-expose-headers"].split(",")}
            assert {"etag", "x-amz-meta-framework"} <= exposed
            _, headers = _request(store.presigned_get_url("m.onnx", 60), "GET", {"Origin": "http://evil.example"})
            assert "access-control-allow-origin" not in headers
    finally:
        ceph.drop_bucket(bucket)


def test_the_setup_command(server: S3Server, bucket: str, tmp_path: Path) -> None:
    config = tmp_path / "storage.yaml"
    config.write_text(
        "storage:\n"
        "  backend: s3\n"
        f"  s3: {{endpoint: '{server.endpoint}', bucket: {bucket}, region: {server.region},\n"
        f"       access_key: '{server.access_key}', secret_key: '{server.secret_key}',\n"
        f"       cors_origins: ['{ORIGIN}'], cors_expose_metadata: [framework]}}\n"
    )
    first = _setup_command(config)
    assert (first.returncode, first.stderr) == (0, "")
    assert first.stdout.splitlines() == [f"bucket {bucket!r}: created", f"CORS for {ORIGIN}: applied"]
    again = _setup_command(config)
    assert again.stdout.splitlines()[1] == f"CORS for {ORIGIN}: already in place"


def test_setup_of_a_local_store_says_it_is_ready(tmp_path: Path) -> None:
    config = tmp_path / "storage.yaml"
    config.write_text(
        f"storage:\n  localfs: {{root: {tmp_path / 'root'}}}\n  server: {{cors_origins: ['{ORIGIN}']}}\n"
    )
    done = _setup_command(config)
    assert done.returncode == 0
    assert done.stdout.splitlines() == [
        f"localfs root {tmp_path / 'root'}: ready",
        f"serve's CORS origins: {ORIGIN}",
    ]
    assert (tmp_path / "root").is_dir()


def test_setup_against_an_unreachable_endpoint_is_one_line(tmp_path: Path) -> None:
    config = tmp_path / "storage.yaml"
    config.write_text(
        "storage:\n  backend: s3\n"
        "  s3: {endpoint: 'http://127.0.0.1:1', bucket: b, access_key: a, secret_key: s}\n"
    )
    done = _setup_command(config)
    assert done.returncode == 1
    assert done.stderr.count("\n") == 1, done.stderr
    assert "no connection to http://127.0.0.1:1" in done.stderr


def _setup_command(config: Path) -> subprocess.CompletedProcess[str]:
    """`python -m visiona_storage --config CONFIG setup`, run to its end."""
    command = [sys.executable, "-m", "visiona_storage", "--config", str(config), "setup"]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
