"""`MemoryStore`: the `Store` contract in a dict, for users' unit tests; written
with the public driver API alone (`visiona_storage.driver`), as a third party's
backend would be."""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, datetime

from ..driver import Body, NotFoundError, ObjectInfo, ObjectReader, Store, check_precondition, sort_key


@dataclass(frozen=True)
class _Object:
    info: ObjectInfo
    data: bytes


class MemoryStore(Store):
    """A `Store` that keeps every object in memory; thread-safe, lost on exit."""

    lists_details = True
    lists_metadata = True
    # identity stays None: what a store that ends with its process holds is never cached.

    def __init__(self) -> None:
        self._objects: dict[str, _Object] = {}
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"MemoryStore(<{len(self._objects)} objects>)"

    def _put(
        self,
        key: str,
        body: Body,
        metadata: dict[str, str],
        content_type: str,
        *,
        if_match: str | None,
        if_none_match: str | None,
    ) -> ObjectInfo:
        self._check_condition(key, if_match, if_none_match)
        digest = hashlib.sha256()
        parts = []
        for chunk in body:
            digest.update(chunk)
            parts.append(bytes(chunk))
        data = b"".join(parts)
        with self._lock:
            self._check_condition(key, if_match, if_none_match)
            info = ObjectInfo(
                key=key,
                size=len(data),
                content_type=content_type,
                last_modified=datetime.now(UTC),
                etag=digest.hexdigest(),
                metadata=dict(metadata),
                sha256=digest.hexdigest(),
            )
            self._objects[key] = _Object(info, data)
        return _copy(info)

    def _check_condition(self, key: str, if_match: str | None, if_none_match: str | None) -> None:
        current = self._objects.get(key)
        etag = current.info.etag if current is not None else None
        check_precondition(key, etag, if_match, if_none_match, exists=current is not None)

    def _get(self, key: str, start: int, end: int | None) -> ObjectReader:
        obj = self._lookup(key)
        stop = obj.info.size if end is None else min(end, obj.info.size)
        view = memoryview(obj.data)[min(start, stop) : stop]
        return _MemoryReader(_copy(obj.info), view)

    def _get_nowait(self, key: str, start: int, end: int | None) -> ObjectReader:
        return self._get(key, start, end)

    def _stat(self, key: str) -> ObjectInfo:
        return _copy(self._lookup(key).info)

    def _delete(self, key: str) -> None:
        with self._lock:
            self._objects.pop(key, None)

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        with self._lock:
            keys = sorted((k for k in self._objects if k.startswith(prefix)), key=sort_key)
        for key in keys:
            obj = self._objects.get(key)
            if obj is not None:
                yield _copy(obj.info)

    def _lookup(self, key: str) -> _Object:
        obj = self._objects.get(key)
        if obj is None:
            raise NotFoundError(f"no object at key {key!r}", key)
        return obj


def _copy(info: ObjectInfo) -> ObjectInfo:
    # ObjectInfo is frozen but its metadata dict is not: never hand out ours.
    return replace(info, metadata=dict(info.metadata))


class _MemoryReader(ObjectReader):
    def __init__(self, info: ObjectInfo, view: memoryview) -> None:
        super().__init__(info, len(view))
        self._view = view
        self._offset = 0

    def _read(self, size: int) -> bytes:
        data = self._view[self._offset : self._offset + size].tobytes()
        self._offset += len(data)
        return data
