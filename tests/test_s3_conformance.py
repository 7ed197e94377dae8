"""The conformance suite over `S3Store` on real S3 servers on loopback."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from servers import S3Server
from visiona_storage import S3Store, Store
from visiona_storage.testing import StoreConformance


def open_s3_store(server: S3Server, **options: object) -> Iterator[Store]:
    bucket = server.new_bucket()
    store = S3Store(
        bucket,
        endpoint=server.endpoint,
        region=server.region,
        access_key=server.access_key,
        secret_key=server.secret_key,
        verify=server.verify,
        **options,  # type: ignore[arg-type]
    )
    try:
        yield store
    finally:
        store.close()
        server.drop_bucket(bucket)


class TestS3StoreOnMoto(StoreConformance):
    """moto checks no signatures, so presigned URL tampering cannot be tested there."""

    verifies_presigned_urls = False
    supports_large_conditional_writes = False  # moto ignores IfMatch on CompleteMultipartUpload

    @pytest.fixture
    def store(self, moto: S3Server) -> Iterator[Store]:
        yield from open_s3_store(moto)


class TestS3StoreOnCeph(StoreConformance):
    """Ceph RGW 16, the real distributed engine, over plain HTTP."""

    supports_large_conditional_writes = False  # RGW 16 does not check conditions on multipart completion

    @pytest.fixture
    def store(self, ceph: S3Server) -> Iterator[Store]:
        yield from open_s3_store(ceph)


class TestS3StoreOnCephOverHTTPS(TestS3StoreOnCeph):
    """The same over TLS, where boto3's default streaming checksums would fail on RGW."""

    @pytest.fixture
    def store(self, ceph_https: S3Server) -> Iterator[Store]:
        yield from open_s3_store(ceph_https)
