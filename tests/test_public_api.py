"""The public surface is a contract: changing it must be deliberate."""

from __future__ import annotations

import dataclasses
import errno
import pickle
from datetime import UTC, datetime
from typing import Any

import pytest

import visiona_storage as vs
from visiona_storage._models import object_info


def test_all_is_pinned_and_sorted() -> None:
    assert vs.__all__ == [
        "AsyncObjectReader",
        "AsyncPutData",
        "AsyncStore",
        "ChecksumMismatchError",
        "CleanupReport",
        "ConfigError",
        "DataReadError",
        "InvalidArgumentError",
        "InvalidKeyError",
        "KeyConflictError",
        "LocalFSStore",
        "MemoryStore",
        "MissingExtraError",
        "NotFoundError",
        "ObjectInfo",
        "ObjectReader",
        "PreconditionFailedError",
        "PutData",
        "S3Store",
        "SignatureError",
        "SizeMismatchError",
        "StorageConfig",
        "StorageError",
        "StorageFullError",
        "Store",
        "SyncEvent",
        "SyncReport",
        "URLSigner",
        "UnsupportedError",
        "__version__",
        "check_key",
        "guess_content_type",
        "load_config",
        "open_async_store",
        "open_store",
        "sync",
    ]
    assert vs.__all__ == sorted(vs.__all__)
    for name in vs.__all__:
        assert hasattr(vs, name), name


def test_the_error_tree() -> None:
    for error in (
        vs.NotFoundError,
        vs.InvalidKeyError,
        vs.InvalidArgumentError,
        vs.SizeMismatchError,
        vs.PreconditionFailedError,
        vs.KeyConflictError,
        vs.SignatureError,
        vs.ConfigError,
        vs.StorageFullError,
        vs.DataReadError,
        vs.UnsupportedError,
    ):
        assert issubclass(error, vs.StorageError)
    assert issubclass(vs.NotFoundError, FileNotFoundError)
    assert issubclass(vs.InvalidKeyError, ValueError)
    assert issubclass(vs.InvalidArgumentError, ValueError)
    assert issubclass(vs.SizeMismatchError, vs.InvalidArgumentError)
    assert issubclass(vs.UnsupportedError, NotImplementedError)
    assert issubclass(vs.DataReadError, OSError)


def test_errors_carry_the_key_and_a_message() -> None:
    error = vs.NotFoundError("no object at key 'a/b'", "a/b")
    assert error.key == "a/b"
    assert str(error) == "no object at key 'a/b'"
    assert error.errno == errno.ENOENT
    copy = pickle.loads(pickle.dumps(error))
    assert copy.key == "a/b"
    assert vs.StorageError("closed").key is None
    cause = OSError(errno.EIO, "Input/output error")
    unreadable = pickle.loads(pickle.dumps(vs.DataReadError("cannot read the data for 'k'", "k", cause)))
    assert (unreadable.key, unreadable.errno) == ("k", errno.EIO)
    assert str(unreadable) == "cannot read the data for 'k'"


def test_object_info_is_frozen_and_keyword_only() -> None:
    info = vs.ObjectInfo(key="k", size=1, content_type="x/y", last_modified=datetime.now(UTC), etag="e")
    assert info.metadata == {}
    try:
        info.size = 2  # type: ignore[misc]
    except dataclasses.FrozenInstanceError:
        pass
    else:
        raise AssertionError("ObjectInfo must be frozen")


def test_the_fast_object_info_builder_makes_the_same_frozen_record() -> None:
    fields: dict[str, Any] = {
        "key": "k",
        "size": 1,
        "content_type": "x/y",
        "last_modified": datetime.now(UTC),
        "etag": "e",
        "metadata": {"a": "b"},
    }
    built = object_info(**fields)
    made = vs.ObjectInfo(**fields)
    assert built == made
    assert hash(repr(built)) == hash(repr(made))
    assert dataclasses.asdict(built) == dataclasses.asdict(made)
    assert pickle.loads(pickle.dumps(built)) == made
    assert dataclasses.replace(built, size=2).size == 2
    with pytest.raises(dataclasses.FrozenInstanceError):
        built.size = 2  # type: ignore[misc]
