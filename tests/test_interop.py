"""Objects other S3 clients write read back as they meant them, on moto and on Ceph:
metadata in raw UTF-8 (as rclone sends it) and in RFC 2047 encoded words of either
kind and any charset (as SDKs and aws-cli send them)."""

from __future__ import annotations

import http.client
import urllib.parse
from collections.abc import Iterator

import pytest
from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

import visiona_storage as vs
from servers import S3Server


@pytest.fixture
def bucket(server: S3Server) -> Iterator[str]:
    name = server.new_bucket()
    yield name
    server.drop_bucket(name)


@pytest.fixture
def store(server: S3Server, bucket: str) -> Iterator[vs.S3Store]:
    with server.store(bucket) as store:
        yield store


def put_with_raw_utf8_metadata(server: S3Server, bucket: str, key: str, metadata: dict[str, str]) -> None:
    """A signed PUT whose x-amz-meta-* values go on the wire as raw UTF-8 bytes, as
    rclone sends them (boto3 cannot: http.client encodes header text as Latin-1)."""
    url = f"{server.endpoint}/{bucket}/{urllib.parse.quote(key)}"
    headers = {f"x-amz-meta-{name}": value for name, value in metadata.items()}
    request = AWSRequest(method="PUT", url=url, data=b"written by another client", headers=headers)
    S3SigV4Auth(Credentials(server.access_key, server.secret_key), "s3", server.region).add_auth(request)
    parts = urllib.parse.urlsplit(url)
    connection = http.client.HTTPConnection(parts.netloc, timeout=30)
    try:
        connection.putrequest("PUT", parts.path, skip_accept_encoding=True)
        for name, value in request.headers.items():
            connection.putheader(name, value.encode("utf-8"))
        body = request.body if isinstance(request.body, bytes) else str(request.body).encode()
        connection.putheader("Content-Length", str(len(body)))
        connection.endheaders(body)
        response = connection.getresponse()
        assert response.status == 200, response.read()[:500]
    finally:
        connection.close()


def test_raw_utf8_metadata_reads_as_the_text_it_spells(
    server: S3Server, bucket: str, store: vs.S3Store
) -> None:
    put_with_raw_utf8_metadata(server, bucket, "rclone.bin", {"title": "模型", "note": "café Ã© ok"})
    assert store.stat("rclone.bin").metadata == {"title": "模型", "note": "café Ã© ok"}
    with store.get("rclone.bin") as reader:
        assert reader.info.metadata["title"] == "模型"


@pytest.mark.parametrize(
    ("sent", "meant"),
    [
        ("=?utf-8?q?caf=C3=A9?=", "café"),
        ("=?UTF-8?Q?caf=C3=A9_au_lait?=", "café au lait"),
        ("=?iso-8859-1?q?caf=E9?=", "café"),
        ("=?utf-8?b?5qih5Z6L?=", "模型"),
        ("=?utf-8?q?caf=C3=A9?= au lait", "café au lait"),
        ("=?not-a-charset?q?x?=", "=?not-a-charset?q?x?="),
        ("a=?b", "a=?b"),
    ],
)
def test_encoded_word_metadata_is_decoded(
    server: S3Server, bucket: str, store: vs.S3Store, sent: str, meant: str
) -> None:
    server.client().put_object(Bucket=bucket, Key="sdk.bin", Body=b"x", Metadata={"title": sent})
    assert store.stat("sdk.bin").metadata == {"title": meant}


FOREIGN_KEYS = ["a//b", "folder/", "x.meta.json", "dir/./y", "/lead", "back\\slash", "ok/plain.bin"]
"""Keys aws-cli, a console or rclone may write that break the key rules (the last
keeps them)."""


def test_objects_at_foreign_keys_are_listed_read_and_deleted_but_not_written(
    server: S3Server, bucket: str, store: vs.S3Store
) -> None:
    client = server.client()
    for key in FOREIGN_KEYS:
        client.put_object(Bucket=bucket, Key=key, Body=key.encode(), Metadata={"by": "aws-cli"})
    listed = [info.key for info in store.list()]
    assert listed == sorted(FOREIGN_KEYS, key=lambda k: k.encode())
    assert [info.key for info in store.list("a//")] == ["a//b"]
    for key in FOREIGN_KEYS:
        assert store.stat(key).metadata == {"by": "aws-cli"}
        with store.get(key, 1) as reader:
            assert reader.read() == key.encode()[1:]
    for key in FOREIGN_KEYS[:-1]:
        with pytest.raises(vs.InvalidKeyError):
            store.put(key, b"overwrite")
        with pytest.raises(vs.InvalidKeyError):
            store.presigned_put_url(key)
        store.delete(key)
    assert [info.key for info in store.list()] == ["ok/plain.bin"]


def test_the_same_bytes_get_the_etag_aws_cli_gives_them(
    server: S3Server, bucket: str, store: vs.S3Store
) -> None:
    """aws-cli uploads through s3transfer in 8 MiB parts past 8 MiB, as S3Store does,
    so a file uploaded either way has one ETag: a sync can compare them."""
    import hashlib  # noqa: PLC0415
    import io  # noqa: PLC0415

    from boto3.s3.transfer import TransferConfig  # noqa: PLC0415

    data = hashlib.sha256(b"etag").digest() * (20 * (1 << 20) // 32 + 5)  # 20 MiB and a bit: 3 parts
    ours = store.put("ours.bin", data).etag
    part = 8 << 20
    aws_cli = TransferConfig(multipart_threshold=part, multipart_chunksize=part)  # its defaults
    server.client().upload_fileobj(io.BytesIO(data), bucket, "aws-cli.bin", Config=aws_cli)
    theirs = store.stat("aws-cli.bin").etag
    digests = b"".join(hashlib.md5(data[i : i + part]).digest() for i in range(0, len(data), part))
    assert ours == theirs == f"{hashlib.md5(digests).hexdigest()}-3"
