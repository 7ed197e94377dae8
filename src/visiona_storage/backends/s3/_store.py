"""`S3Store`: the `Store` contract on any S3-compatible service, through boto3."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.session
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError

from ...driver import (
    MAX_METADATA_BYTES,
    RECORDED_SHA256,
    Body,
    ConfigError,
    InvalidArgumentError,
    NotFoundError,
    ObjectInfo,
    ObjectReader,
    PreconditionFailedError,
    Store,
    UnsupportedError,
    check_sha256,
    decode_metadata_headers,
    encode_metadata_headers,
)
from ._errors import error_code, s3_errors
from ._setup import set_up_bucket
from ._timestamps import parse_timestamp
from ._upload import MultipartUpload, create_while_reading, part_size_for, parts, run_aborting

log = logging.getLogger("visiona_storage.s3")

DEFAULT_PART_SIZE = 8 << 20

DEFAULT_MAX_CONNECTIONS = 64
"""Connections to the endpoint kept open for reuse, at most, by default: enough
for the 16 worker threads of an `AsyncStore` (or a caller's own threads) each
uploading 4 parts at a time. A connection is opened only when a request needs
one; beyond the pool, each extra one is closed after its request (and urllib3
logs "Connection pool is full")."""


class S3Store(Store):
    """A `Store` on an S3 bucket: AWS, or MinIO, R2, B2, Ceph RGW through `endpoint`.

    `endpoint` empty means AWS; any other endpoint gets path-style addressing
    and checksums only where the API requires them (Ceph RGW and B2 reject
    boto3's default streaming checksums). Bodies over `part_size`, or of
    unknown size, go up as multipart uploads of `part_size` parts, `concurrency`
    at a time, so memory stays near ``(concurrency + 1) * part_size``.
    `max_connections` connections are kept open for reuse, at most: as many as
    requests run at once (readers left open each hold one) spares reopening them.
    `access_key` and `secret_key` default to boto3's usual sources. `verify` is
    False to skip TLS verification or the path of a CA bundle.

    Conditional puts (`if_match`, `if_none_match`) are enforced by the server.
    For a body that needs a multipart upload, that takes a server that checks
    conditions on CompleteMultipartUpload: AWS does, Ceph RGW 16 and moto do
    not. `multipart_conditions` says whether the server does (default: only on
    AWS); where it does not, such a put raises `UnsupportedError` before
    anything is uploaded, rather than write unconditionally.

    Objects that other clients wrote at keys outside the key rules (``a//b``, a
    console's ``folder/`` marker, ``x.meta.json``) are listed, read and deleted
    like any other (`Store.reads_foreign_keys`); puts keep the rules.
    """

    reads_foreign_keys = True
    lists_details = True

    def __init__(
        self,
        bucket: str,
        endpoint: str = "",
        region: str = "us-east-1",
        access_key: str | None = None,
        secret_key: str | None = None,
        *,
        session_token: str | None = None,
        part_size: int = DEFAULT_PART_SIZE,
        concurrency: int = 4,
        max_connections: int = DEFAULT_MAX_CONNECTIONS,
        list_page_size: int = 1000,
        verify: bool | str = True,
        connect_timeout: float = 10,
        read_timeout: float = 60,
        max_attempts: int = 3,
        multipart_conditions: bool | None = None,
    ) -> None:
        if part_size < 5 << 20:
            raise ConfigError("part_size must be at least 5 MiB, S3's minimum")
        if max_connections < 1:
            raise ConfigError("max_connections must be at least 1")
        parsed = urlsplit(endpoint)
        if endpoint and (parsed.scheme not in ("http", "https") or not parsed.hostname):
            raise ConfigError(
                f"endpoint must be an http:// or https:// URL, or empty for AWS, not {endpoint!r}"
            )
        self.bucket = bucket
        self.endpoint = endpoint.rstrip("/")
        self.region = region
        self.part_size = part_size
        self.concurrency = max(1, concurrency)
        self.list_page_size = max(1, min(1000, list_page_size))
        custom = bool(self.endpoint)
        self.multipart_conditions = not custom if multipart_conditions is None else multipart_conditions
        config = Config(
            region_name=region,
            signature_version="s3v4",
            s3={"addressing_style": "path" if custom else "auto"},
            retries={"max_attempts": max_attempts, "mode": "standard"},
            max_pool_connections=max_connections,
            connect_timeout=connect_timeout,
            read_timeout=read_timeout,
            request_checksum_calculation="when_required" if custom else "when_supported",
            response_checksum_validation="when_required" if custom else "when_supported",
        )
        core = botocore.session.get_session()
        # Listings and HEADs give times in two formats: both become aware UTC, fast.
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=parse_timestamp)
        session = boto3.session.Session(
            botocore_session=core,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            aws_session_token=session_token,
            region_name=region,
        )
        try:
            self._client: Any = session.client(
                "s3", endpoint_url=self.endpoint or None, config=config, verify=verify
            )
        except (BotoCoreError, ValueError) as exc:
            raise ConfigError(
                f"cannot use S3 endpoint {self.endpoint!r} in region {region!r}: {exc}"
            ) from exc
        self._where = self.endpoint or f"AWS S3 ({region})"

    @property
    def identity(self) -> str:
        """``s3:``, the endpoint (``aws`` for AWS, where bucket names are global) and
        the bucket: ``s3:https://rgw.example:7480/models``."""
        return f"s3:{self.endpoint or 'aws'}/{self.bucket}"

    def __repr__(self) -> str:
        return f"S3Store(bucket={self.bucket!r}, endpoint={self._where!r})"

    def setup(self, cors_origins: Sequence[str] = (), expose_metadata: Sequence[str] = ()) -> list[str]:
        """Make the bucket ready, safe to run again: create it if missing, and put in
        place the CORS rule that lets pages on `cors_origins` GET, HEAD and PUT
        presigned URLs and read the ETag and the ``x-amz-meta-*`` headers named in
        `expose_metadata` (S3 exposes no other). Other CORS rules are kept. Returns
        a line per step, saying what it did or found done.

        Raises `StorageError`; where the key is denied a step (creating the bucket,
        reading or changing its CORS), its one line names the permission missing and
        holds the policy statement to hand whoever administers the bucket, and, where
        only the change of CORS is denied, the CORS configuration to apply instead.
        """
        self._check_open()
        with self._errors(None, "set up"):
            return set_up_bucket(
                self._client,
                self.bucket,
                self.region,
                on_aws=not self.endpoint,
                origins=cors_origins,
                metadata=expose_metadata,
                errors=self._errors,
            )

    def _errors(self, key: str | None, action: str) -> Any:
        return s3_errors(key=key, endpoint=self._where, bucket=self.bucket, action=action)

    # put

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
        if if_match == "*":
            if_match = self._current_etag(key)
        conditions = _conditions(if_match, if_none_match)
        headers = {"ContentType": content_type, "Metadata": encode_metadata_headers(metadata)}
        part_size = part_size_for(body.size, self.part_size)
        pieces = parts(body, part_size)
        with self._errors(key, "store"):
            try:
                # A body known to need parts does not wait for its first one: the
                # upload is created while that part is read.
                known_multipart = body.size > part_size and (not conditions or self.multipart_conditions)
                first = None if known_multipart else next(pieces)
                if first is not None and len(first) < part_size:
                    _record_sha256(headers, metadata, body.sha256 or hashlib.sha256(first).hexdigest())
                    response = self._client.put_object(
                        Bucket=self.bucket, Key=key, Body=first, **headers, **conditions
                    )
                    size = len(first)
                elif conditions and not self.multipart_conditions:
                    raise UnsupportedError(
                        f"cannot put {key!r} conditionally: it is over part_size ({part_size} bytes), "
                        f"and {self._where} is not known to enforce conditions on multipart uploads "
                        f"(set multipart_conditions=True if it does)",
                        key,
                    )
                else:
                    if body.sha256 is not None:
                        _record_sha256(headers, metadata, body.sha256)
                    response, size = self._put_multipart(key, first, pieces, headers, conditions)
            except ClientError as exc:
                if if_match is not None and error_code(exc)[1] == 404:
                    raise PreconditionFailedError(f"object {key!r} does not exist", key) from exc
                raise
            etag = str(response.get("ETag") or "").strip('"')
            return self._info_after_put(key, etag, size, metadata, content_type)

    def _current_etag(self, key: str) -> str:
        """The ETag in place, which a put with ``if_match="*"`` then requires: not every
        server reads ``If-Match: *`` (moto does not), but all compare ETags. A version
        replaced in between fails the put, which then stores nothing. Raises
        `PreconditionFailedError` if there is no object."""
        try:
            return self._head(key).etag
        except NotFoundError:
            raise PreconditionFailedError(f"object {key!r} does not exist", key) from None

    def _put_multipart(
        self,
        key: str,
        first: bytearray | None,
        rest: Iterator[bytearray],
        headers: dict[str, Any],
        conditions: dict[str, str],
    ) -> tuple[dict[str, Any], int]:
        """Upload as a multipart upload, `first` (if not yet read, the first part of
        `rest`) then the rest; return the completion's response and the size."""
        if first is None:
            upload, first = create_while_reading(self._client, self.bucket, key, headers, rest)
        else:
            upload = MultipartUpload(self._client, self.bucket, key, headers)
        response = run_aborting(
            upload,
            lambda: upload.complete(upload.upload(first, rest, self.concurrency), conditions),
        )
        return response, upload.size

    def _info_after_put(
        self, key: str, etag: str, size: int, metadata: dict[str, str], content_type: str
    ) -> ObjectInfo:
        """What `stat` returns for the object just written.

        The HEAD is conditional on the ETag the write returned, so a concurrent
        writer's object is never reported as ours. Some servers (Ceph RGW 16)
        return no ETag from CompleteMultipartUpload; then the HEAD is plain.
        """
        try:
            return self._head(key, IfMatch=f'"{etag}"') if etag else self._head(key)
        except (PreconditionFailedError, NotFoundError):
            # Overwritten or deleted already: describe what we wrote.
            return ObjectInfo(
                key=key,
                size=size,
                content_type=content_type,
                last_modified=datetime.now(UTC),
                etag=etag,
                metadata=dict(metadata),
            )

    # get, stat

    def _get(self, key: str, start: int, end: int | None) -> ObjectReader:
        with self._errors(key, "read"):
            if end is not None and end <= start:
                return _S3Reader(self._head(key), None, 0)
            params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
            if start > 0 or end is not None:
                params["Range"] = f"bytes={start}-{'' if end is None else end - 1}"
            try:
                response = self._client.get_object(**params)
            except ClientError as exc:
                if error_code(exc)[1] != 416:
                    raise
                # The range starts at or past the end: like a slice, it reads nothing.
                return _S3Reader(self._head(key), None, 0)
            info = self._info(key, response)
            return _S3Reader(info, response["Body"], int(response["ContentLength"]), self._where)

    def _stat(self, key: str) -> ObjectInfo:
        return self._head(key)

    def _head(self, key: str, **conditions: str) -> ObjectInfo:
        with self._errors(key, "stat"):
            return self._info(key, self._client.head_object(Bucket=self.bucket, Key=key, **conditions))

    def _info(self, key: str, response: Mapping[str, Any]) -> ObjectInfo:
        size = int(response["ContentLength"])
        metadata = decode_metadata_headers(response.get("Metadata") or {})
        content_range = response.get("ContentRange")
        if content_range:
            size = int(str(content_range).rsplit("/", 1)[1])
        return ObjectInfo(
            key=key,
            size=size,
            content_type=str(response.get("ContentType") or ""),
            last_modified=_utc(response["LastModified"]),
            etag=str(response.get("ETag") or "").strip('"'),
            metadata=metadata,
            sha256=_recorded_sha256(metadata),
        )

    # delete, list

    def _delete(self, key: str) -> None:
        try:
            with self._errors(key, "delete"):
                self._client.delete_object(Bucket=self.bucket, Key=key)
        except NotFoundError:  # S3 answers 204 for a missing key; some servers 404
            return

    def _list(self, prefix: str) -> Iterator[ObjectInfo]:
        params: dict[str, Any] = {"Bucket": self.bucket, "Prefix": prefix, "MaxKeys": self.list_page_size}
        while True:
            with self._errors(prefix or None, "list"):
                response = self._client.list_objects_v2(**params)
            for item in response.get("Contents", ()):
                key = str(item["Key"])
                yield ObjectInfo(
                    key=key,
                    size=int(item["Size"]),
                    content_type="",
                    last_modified=_utc(item["LastModified"]),
                    etag=str(item.get("ETag") or "").strip('"'),
                    metadata={},
                )
            token = response.get("NextContinuationToken")
            if not response.get("IsTruncated") or not token:
                return
            params["ContinuationToken"] = token

    # presigned URLs

    def _presigned_url(
        self, method: str, key: str, ttl_seconds: int, content_type: str | None, max_size: int | None
    ) -> str:
        if max_size is not None:
            raise UnsupportedError(
                "an S3 presigned PUT URL cannot limit the upload's size (only a POST policy can)", key
            )
        params: dict[str, Any] = {"Bucket": self.bucket, "Key": key}
        if method == "PUT" and content_type is not None:
            params["ContentType"] = content_type
        operation = "put_object" if method == "PUT" else "get_object"
        with self._errors(key, "presign"):
            url: str = self._client.generate_presigned_url(
                operation, Params=params, ExpiresIn=ttl_seconds, HttpMethod=method
            )
        return url

    def _close(self) -> None:
        self._client.close()


class _S3Reader(ObjectReader):
    def __init__(self, info: ObjectInfo, body: Any, length: int, where: str = "") -> None:
        super().__init__(info, length)
        self._body = body
        self._where = where

    def _read(self, size: int) -> bytes:
        with s3_errors(key=self.info.key, endpoint=self._where, bucket="", action="read"):
            data: bytes = self._body.read(size)
        return data

    def _release(self) -> None:
        if self._body is not None:
            self._body.close()


def _record_sha256(headers: dict[str, Any], metadata: dict[str, str], sha256: str) -> None:
    """Record `sha256` among the upload's metadata headers, where S3's 2 KB of user
    metadata leaves room for it (else the object goes without)."""
    used = sum(len(name) + len(value.encode()) for name, value in metadata.items())
    if used + len(RECORDED_SHA256) + len(sha256) <= MAX_METADATA_BYTES:
        headers["Metadata"] = {**headers["Metadata"], RECORDED_SHA256: sha256}


def _recorded_sha256(metadata: dict[str, str]) -> str | None:
    """Take the recorded SHA-256 out of `metadata`, if a well-formed one is there."""
    value = metadata.pop(RECORDED_SHA256, None)
    try:
        return check_sha256(value)
    except InvalidArgumentError:
        return None


def _conditions(if_match: str | None, if_none_match: str | None) -> dict[str, str]:
    if if_none_match is not None:
        return {"IfNoneMatch": if_none_match}
    if if_match is not None:
        # Bare, not quoted: Ceph RGW 16 compares If-Match on a PUT with the bare ETag,
        # and AWS and moto accept either form.
        return {"IfMatch": if_match}
    return {}


def _utc(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
