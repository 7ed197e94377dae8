"""The conformance suite over the backends that need no server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import LiveServer
from visiona_storage import LocalFSStore, MemoryStore, Store
from visiona_storage.http import create_app
from visiona_storage.testing import StoreConformance


class TestMemoryStore(StoreConformance):
    supports_presigned_urls = False

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        with MemoryStore() as store:
            yield store


class TestLocalFSStore(StoreConformance):
    """Presigned URLs go through the /storage app on a real uvicorn on loopback."""

    allows_object_as_prefix = False
    fsync = True

    @pytest.fixture
    def store(self, tmp_path: Path, live: LiveServer) -> Iterator[Store]:
        with LocalFSStore(tmp_path / "storage", base_url=f"{live.url}/storage", fsync=self.fsync) as store:
            live.serve(create_app(store))
            yield store


class TestLocalFSStoreWithoutFsync(TestLocalFSStore):
    fsync = False
