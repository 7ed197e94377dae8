"""The conformance suite over the backends that need no server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from visiona_storage import LocalFSStore, MemoryStore, Store
from visiona_storage.testing import StoreConformance


class TestMemoryStore(StoreConformance):
    supports_presigned_urls = False

    @pytest.fixture
    def store(self) -> Iterator[Store]:
        with MemoryStore() as store:
            yield store


class TestLocalFSStore(StoreConformance):
    supports_presigned_urls = False
    allows_object_as_prefix = False

    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        with LocalFSStore(tmp_path / "storage") as store:
            yield store


class TestLocalFSStoreWithoutFsync(TestLocalFSStore):
    @pytest.fixture
    def store(self, tmp_path: Path) -> Iterator[Store]:
        with LocalFSStore(tmp_path / "storage", fsync=False) as store:
            yield store
