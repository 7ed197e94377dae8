"""`Store` validates every argument once, before any backend hook runs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

import visiona_storage as vs
from visiona_storage._body import Body
from visiona_storage.testing import BAD_KEYS


class SpyStore(vs.MemoryStore):
    """A backend that records every hook call it receives."""

    def __init__(self) -> None:
        super().__init__()
        self.calls: list[tuple[str, Any]] = []

    def _put(
        self, key: str, body: Body, metadata: dict[str, str], content_type: str, **kw: Any
    ) -> vs.ObjectInfo:
        self.calls.append(("put", key))
        return super()._put(key, body, metadata, content_type, **kw)

    def _get(self, key: str, start: int, end: int | None) -> vs.ObjectReader:
        self.calls.append(("get", key))
        return super()._get(key, start, end)

    def _stat(self, key: str) -> vs.ObjectInfo:
        self.calls.append(("stat", key))
        return super()._stat(key)

    def _delete(self, key: str) -> None:
        self.calls.append(("delete", key))
        super()._delete(key)

    def _list(self, prefix: str) -> Iterator[vs.ObjectInfo]:
        self.calls.append(("list", prefix))
        return super()._list(prefix)


@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: repr(k)[:30])
def test_a_backend_never_sees_an_invalid_key(key: Any) -> None:
    store = SpyStore()
    calls: list[Callable[[], object]] = [
        lambda: store.put(key, b"x"),
        lambda: store.get(key),
        lambda: store.stat(key),
        lambda: store.delete(key),
    ]
    for call in calls:
        with pytest.raises(vs.InvalidKeyError):
            call()
    assert store.calls == []


def test_a_backend_never_sees_bad_arguments() -> None:
    store = SpyStore()
    bad_calls: list[Callable[[], object]] = [
        lambda: store.put("k", b"x", metadata={"bad key": "v"}),
        lambda: store.put("k", b"x", size=-5),
        lambda: store.put("k", b"x", size=3),
        lambda: store.put("k", "text"),  # type: ignore[arg-type]
        lambda: store.put("k", b"x", content_type="a\nb"),
        lambda: store.put("k", b"x", if_none_match="etag"),
        lambda: store.get("k", start=-1),
        lambda: store.get("k", start=5, end=1),
        lambda: store.presigned_get_url("k", ttl=0),
    ]
    for call in bad_calls:
        with pytest.raises(vs.InvalidArgumentError):
            call()
    assert store.calls == []


def test_metadata_is_lowercased_before_the_backend_sees_it() -> None:
    store = SpyStore()
    assert store.put("k", b"x", metadata={"Camel-Case": "V"}).metadata == {"camel-case": "V"}


def test_a_closed_store_refuses_every_call() -> None:
    store = SpyStore()
    store.close()
    calls: list[Callable[[], object]] = [lambda: store.put("k", b"x"), lambda: store.stat("k"), store.list]
    for call in calls:
        with pytest.raises(vs.StorageError, match="closed"):
            call()
    assert store.calls == []


def test_data_longer_than_its_size_stops_being_read_early() -> None:
    consumed = []

    def chunks() -> Iterator[bytes]:
        for i in range(100):
            consumed.append(i)
            yield b"x" * 10

    with pytest.raises(vs.SizeMismatchError):
        vs.MemoryStore().put("k", chunks(), size=25)
    assert len(consumed) == 3
