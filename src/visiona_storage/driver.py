"""What a backend is written with: the public face of the `Store` hook contract.

A backend subclasses `Store` and implements five hooks; the public methods check
every argument first (keys, sizes, metadata, conditions, TTLs), so a hook never
sees a bad one, and errors must be the ones each hook's docstring names:

    from visiona_storage.driver import Body, ObjectInfo, ObjectReader, Store, check_precondition

    class MyStore(Store):
        def _put(self, key, body: Body, metadata, content_type, *, if_match, if_none_match) -> ObjectInfo:
            ...  # iterate `body` (chunks, size-checked); store all or nothing
        def _get(self, key, start, end) -> ObjectReader: ...   # NotFoundError if missing
        def _stat(self, key) -> ObjectInfo: ...                # NotFoundError if missing
        def _delete(self, key) -> None: ...                    # a missing key is no error
        def _list(self, prefix) -> Iterator[ObjectInfo]: ...   # ascending `sort_key` order

Optional hooks: `_presigned_url` (else `UnsupportedError`), `_close`,
`_open_writer` (a `PutWriter` that takes a body pushed in pieces; the default runs
`_put` in a thread), `_get_nowait` (a read that needs no waiting), and the
`url_signer` property (for URLs that the HTTP endpoint, not the backend, verifies).
`encode_metadata_headers` and `decode_metadata_headers` carry any unicode
metadata through ``x-amz-meta-*`` headers as S3 does; a backend with no place of
its own for an object's SHA-256 (`Body.sha256`, `ObjectInfo.sha256`) records it
under the reserved metadata name `RECORDED_SHA256`. `MemoryStore` is the
shortest complete backend, written with this module alone;
`visiona_storage.testing.StoreConformance` proves a backend keeps the contract.
"""

from ._arguments import MAX_METADATA_BYTES, RECORDED_SHA256, check_precondition, check_sha256
from ._body import Body, BytesLike, PutData
from ._errors import (
    ChecksumMismatchError,
    ConfigError,
    DataReadError,
    InvalidArgumentError,
    InvalidKeyError,
    KeyConflictError,
    NotFoundError,
    PreconditionFailedError,
    SignatureError,
    SizeMismatchError,
    StorageError,
    StorageFullError,
    UnsupportedError,
)
from ._headers import decode as decode_metadata_headers
from ._headers import decode_value as decode_metadata_value
from ._headers import encode as encode_metadata_headers
from ._headers import encode_value as encode_metadata_value
from ._keys import key_problem, sort_key
from ._models import DEFAULT_CHUNK_SIZE, ObjectInfo, ObjectReader
from ._signing import SignedRequest, URLSigner
from ._store import Store
from ._writer import PutWriter, ThreadedPutWriter

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "MAX_METADATA_BYTES",
    "RECORDED_SHA256",
    "Body",
    "BytesLike",
    "ChecksumMismatchError",
    "ConfigError",
    "DataReadError",
    "InvalidArgumentError",
    "InvalidKeyError",
    "KeyConflictError",
    "NotFoundError",
    "ObjectInfo",
    "ObjectReader",
    "PreconditionFailedError",
    "PutData",
    "PutWriter",
    "SignatureError",
    "SignedRequest",
    "SizeMismatchError",
    "StorageError",
    "StorageFullError",
    "Store",
    "ThreadedPutWriter",
    "URLSigner",
    "UnsupportedError",
    "check_precondition",
    "check_sha256",
    "decode_metadata_headers",
    "decode_metadata_value",
    "encode_metadata_headers",
    "encode_metadata_value",
    "key_problem",
    "sort_key",
]
