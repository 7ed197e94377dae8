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
