"""`visiona-storage setup` and `S3Store.setup`: the bucket made and its CORS rule put
in place, safely again and again, on moto and on Ceph; on Ceph, a browser's
preflight and response headers follow the rule, and a user the bucket's owner has
not allowed gets one line naming the permission missing, the bucket untouched."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
import urllib.parse
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from botocore.exceptions import ClientError

import visiona_storage as vs
from servers import ROOT, S3Server
from visiona_storage.backends.s3._setup import cors_rule

ORIGIN = "http://127.0.0.1:8765"
ADMINS_RULE = {"ID": "admin", "AllowedOrigins": ["https://admin.example"], "AllowedMethods": ["GET"]}


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
            _, headers = _request(
                store.presigned_get_url("m.onnx", 60), "GET", {"Origin": "http://evil.example"}
            )
            assert "access-control-allow-origin" not in headers
    finally:
        ceph.drop_bucket(bucket)


def test_the_setup_command(server: S3Server, bucket: str, tmp_path: Path) -> None:
    config = _s3_config(tmp_path, server, bucket)
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


def _policy_statement(bucket: str) -> str:
    """The policy statement docs/backends.md gives for setup, for `bucket`."""
    docs = (ROOT / "docs" / "backends.md").read_text()
    line = next(line for line in docs.splitlines() if line.startswith('{"Effect": "Allow"'))
    return line.replace("arn:aws:s3:::visiona-models", f"arn:aws:s3:::{bucket}")


def _denied(action: str, bucket: str, permission: str) -> str:
    return (
        f"cannot {action} bucket {bucket!r}: access denied, the key lacks {permission}; ask whoever "
        f"administers the bucket to allow the key this policy statement: {_policy_statement(bucket)}"
    )


@pytest.fixture
def owned(ceph: S3Server) -> Iterator[str]:
    """A bucket of Ceph's first user, with a CORS rule of its admin's."""
    name = ceph.new_bucket()
    ceph.client().put_bucket_cors(Bucket=name, CORSConfiguration={"CORSRules": [ADMINS_RULE]})
    yield name
    ceph.drop_bucket(name)


def test_on_ceph_setup_by_a_user_who_may_not_read_the_bucket_is_one_line(
    ceph: S3Server, owned: str, tmp_path: Path
) -> None:
    stranger = ceph.new_user()
    expected = _denied("read the CORS rules of", owned, "s3:GetBucketCORS")
    with stranger.store(owned) as store, pytest.raises(vs.StorageError) as caught:
        store.setup([ORIGIN], ["framework"])
    assert str(caught.value) == expected
    done = _setup_command(_s3_config(tmp_path, stranger, owned))
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"visiona-storage: {expected}\n")
    assert ceph.client().get_bucket_cors(Bucket=owned)["CORSRules"] == [ADMINS_RULE]


def test_on_ceph_setup_by_a_user_who_may_read_but_not_change_cors_hands_over_the_rules(
    ceph: S3Server, owned: str, tmp_path: Path
) -> None:
    reader = ceph.new_user()
    uid = reader.access_key.removesuffix("-access")
    may_read = {
        "Effect": "Allow",
        "Principal": {"AWS": [f"arn:aws:iam:::user/{uid}"]},
        "Action": ["s3:GetBucketCORS"],
        "Resource": [f"arn:aws:s3:::{owned}"],
    }
    policy = {"Version": "2012-10-17", "Statement": [may_read]}
    ceph.client().put_bucket_policy(Bucket=owned, Policy=json.dumps(policy))
    with reader.store(owned) as store, pytest.raises(vs.StorageError) as caught:
        store.setup([ORIGIN], ["framework"])
    message = str(caught.value)
    head, _, wanted = message.partition(" or to apply this CORS configuration: ")
    assert head == _denied("set the CORS rules of", owned, "s3:PutBucketCORS")
    assert json.loads(wanted) == {"CORSRules": [ADMINS_RULE, cors_rule([ORIGIN], ["framework"])]}
    done = _setup_command(_s3_config(tmp_path, reader, owned))
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"visiona-storage: {message}\n")
    assert ceph.client().get_bucket_cors(Bucket=owned)["CORSRules"] == [ADMINS_RULE]


def test_on_ceph_setup_by_a_user_who_may_not_create_buckets_is_one_line(
    ceph: S3Server, tmp_path: Path
) -> None:
    no_buckets = ceph.new_user(max_buckets=-1)
    bucket = f"setup-{uuid.uuid4().hex[:12]}"
    expected = _denied("create", bucket, "s3:CreateBucket")
    with no_buckets.store(bucket) as store, pytest.raises(vs.StorageError) as caught:
        store.setup([ORIGIN])
    assert str(caught.value) == expected
    done = _setup_command(_s3_config(tmp_path, no_buckets, bucket))
    assert (done.returncode, done.stdout, done.stderr) == (1, "", f"visiona-storage: {expected}\n")
    assert no_buckets.client().list_buckets()["Buckets"] == []
    with pytest.raises(ClientError, match="NoSuchBucket"):
        ceph.client().get_bucket_cors(Bucket=bucket)


def _s3_config(tmp_path: Path, server: S3Server, bucket: str) -> Path:
    """A configuration file for `bucket` of `server` as its user, asking for the CORS rule."""
    config = tmp_path / "storage.yaml"
    config.write_text(
        "storage:\n"
        "  backend: s3\n"
        f"  s3: {{endpoint: '{server.endpoint}', bucket: {bucket}, region: {server.region},\n"
        f"       access_key: '{server.access_key}', secret_key: '{server.secret_key}',\n"
        f"       cors_origins: ['{ORIGIN}'], cors_expose_metadata: [framework]}}\n"
    )
    return config


def _setup_command(config: Path) -> subprocess.CompletedProcess[str]:
    """`python -m visiona_storage --config CONFIG setup`, run to its end."""
    command = [sys.executable, "-m", "visiona_storage", "--config", str(config), "setup"]
    return subprocess.run(command, capture_output=True, text=True, check=False, timeout=120)
