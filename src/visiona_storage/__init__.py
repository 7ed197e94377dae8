"""visiona-storage: one `Store` interface with S3 semantics, over local files, memory or S3.

import visiona_storage as vs

with vs.LocalFSStore("./data/storage") as store:
    store.put("models/u1/yolov5.nef", data, metadata={"framework": "onnx"})
    with store.get("models/u1/yolov5.nef") as reader:
        chunk = reader.read(1 << 20)
"""

from typing import TYPE_CHECKING, Any

from ._body import PutData
from ._config import StorageConfig, load_config, open_store
from ._content_types import guess_content_type
from ._errors import (
    ChecksumMismatchError,
    ConfigError,
    DataReadError,
    InvalidArgumentError,
    InvalidKeyError,
    KeyConflictError,
    MissingExtraError,
    NotFoundError,
    PreconditionFailedError,
    SignatureError,
    SizeMismatchError,
    StorageError,
    StorageFullError,
    UnsupportedError,
)
from ._keys import check_key
from ._models import ObjectInfo, ObjectReader
from ._signing import URLSigner
from ._store import Store
from ._sync import SyncEvent, SyncReport, sync
from .backends.localfs import CleanupReport, LocalFSStore
from .backends.memory import MemoryStore

if TYPE_CHECKING:
    from ._async_store import AsyncObjectReader, AsyncPutData, AsyncStore, open_async_store
    from .backends.s3 import S3Store

_ASYNC = ("AsyncObjectReader", "AsyncPutData", "AsyncStore", "open_async_store")

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    # S3Store needs boto3 (the "s3" extra): import it only when asked for.
    if name == "S3Store":
        from .backends.s3 import S3Store  # noqa: PLC0415

        return S3Store
    # The async API imports asyncio, which most scripts never need: load it when asked for.
    if name in _ASYNC:
        from . import _async_store  # noqa: PLC0415

        return getattr(_async_store, name)
    raise AttributeError(f"module 'visiona_storage' has no attribute {name!r}")


__all__ = [
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
