"""Translation of botocore and urllib3 failures into the `StorageError` tree: the one place."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    ParamValidationError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)
from urllib3.exceptions import HTTPError as Urllib3Error

from ...driver import (
    ConfigError,
    InvalidArgumentError,
    NotFoundError,
    PreconditionFailedError,
    StorageError,
    StorageFullError,
)

_NOT_FOUND = {"NoSuchKey", "NotFound", "404"}
_PRECONDITION = {"PreconditionFailed", "ConditionalRequestConflict", "412"}
_DENIED = {
    "AccessDenied",
    "SignatureDoesNotMatch",
    "InvalidAccessKeyId",
    "InvalidToken",
    "ExpiredToken",
    "403",
}
_FULL = {"QuotaExceeded", "InsufficientStorage", "507"}


def error_code(exc: ClientError) -> tuple[str, int]:
    """The S3 error code and HTTP status of a `ClientError`."""
    code = str(exc.response.get("Error", {}).get("Code", ""))
    status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0) or 0)
    return code, status


def translate(exc: Exception, *, key: str | None, endpoint: str, bucket: str, action: str) -> Exception:
    """The `StorageError` for `exc`; anything that is not a botocore or urllib3 error is returned as is."""
    what = f"{key!r}" if key is not None else f"bucket {bucket!r}"
    if isinstance(exc, ClientError):
        code, status = error_code(exc)
        message = str(exc.response.get("Error", {}).get("Message", "")) or code
        if code == "NoSuchBucket":
            return StorageError(
                f"cannot {action} {what}: bucket {bucket!r} does not exist at {endpoint}", key
            )
        if code in _NOT_FOUND or status == 404:
            return NotFoundError(f"no object at key {key!r}", key)
        if code in _PRECONDITION or status == 412:
            return PreconditionFailedError(f"cannot {action} {what}: the condition failed ({code})", key)
        if code in _DENIED or status == 403:
            return StorageError(
                f"cannot {action} {what}: access denied by {endpoint} ({code}); "
                f"check the access key, secret key and the bucket's policy",
                key,
            )
        if code in _FULL or status == 507:
            return StorageFullError(f"cannot {action} {what}: {endpoint} is out of space ({code})", key)
        return StorageError(f"cannot {action} {what}: {endpoint} answered {status} {code}: {message}", key)
    if isinstance(exc, (NoCredentialsError, PartialCredentialsError)):
        return ConfigError(f"no usable S3 credentials for {endpoint}: set access_key and secret_key", key)
    if isinstance(exc, ParamValidationError):
        return InvalidArgumentError(f"cannot {action} {what}: {exc}", key)
    if isinstance(exc, (BotoConnectionError, HTTPClientError, Urllib3Error)):
        return StorageError(f"cannot {action} {what}: no connection to {endpoint} ({exc})", key)
    if isinstance(exc, BotoCoreError):
        return StorageError(f"cannot {action} {what} at {endpoint}: {exc}", key)
    return exc


@contextmanager
def s3_errors(*, key: str | None, endpoint: str, bucket: str, action: str) -> Iterator[None]:
    """Re-raise botocore and urllib3 failures inside the block as `StorageError`s."""
    try:
        yield
    except StorageError:
        raise
    except (BotoCoreError, ClientError, Urllib3Error) as exc:
        raise translate(exc, key=key, endpoint=endpoint, bucket=bucket, action=action) from exc
