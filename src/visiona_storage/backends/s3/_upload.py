"""Uploads: one PutObject for a small body, a multipart upload with parallel parts
for a large or unknown-size one, with memory bounded by the parts in flight."""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from typing import Any

from ...driver import Body, StorageError

log = logging.getLogger("visiona_storage.s3")

MAX_PARTS = 10_000
MIN_PART_SIZE = 5 << 20


def parts(body: Body, part_size: int) -> Iterator[bytearray]:
    """The body in parts of exactly `part_size` bytes (the last may be shorter).

    Each part is a buffer of its own that the consumer keeps (no copy is made to
    hand it over). A file is read straight into each part (``readinto``); other
    bodies are regrouped. Yields at least one part, empty for an empty body.
    """
    if body.is_file:
        return _file_parts(body, part_size)
    return _regrouped(body, part_size)


def _file_parts(body: Body, part_size: int) -> Iterator[bytearray]:
    first = True
    done = 0
    while True:
        # A body of known size needs no buffer bigger than what is left of it, plus
        # the byte that shows it ends there (a 1 MiB put does not take 8 MiB).
        capacity = part_size if body.size < 0 else min(part_size, body.size - done + 1)
        part = bytearray(capacity)
        with memoryview(part) as view:
            filled = body.read_into(view)
        done += filled
        if filled < capacity:
            del part[filled:]
            if filled or first:
                yield part
            return
        yield part
        first = False


def _regrouped(chunks: Iterable[bytes | bytearray | memoryview], part_size: int) -> Iterator[bytearray]:
    buffer = bytearray()
    yielded = False
    for chunk in chunks:
        view = memoryview(chunk)
        while len(buffer) + len(view) >= part_size:
            take = part_size - len(buffer)
            buffer += view[:take]
            view = view[take:]
            yield buffer
            yielded = True
            buffer = bytearray()
        buffer += view
    if buffer or not yielded:
        yield buffer


def part_size_for(size: int, preferred: int) -> int:
    """The part size that fits `size` bytes into at most 10,000 parts."""
    if size < 0:
        return preferred
    needed = -(-size // MAX_PARTS)
    return max(preferred, needed, MIN_PART_SIZE)


class MultipartUpload:
    """One multipart upload: parts go up in parallel; any failure aborts it."""

    def __init__(self, client: Any, bucket: str, key: str, create_args: dict[str, Any]) -> None:
        self._client = client
        self._bucket = bucket
        self._key = key
        self.size = 0
        """Bytes handed to `upload_part` so far."""
        self.upload_id: str = client.create_multipart_upload(Bucket=bucket, Key=key, **create_args)[
            "UploadId"
        ]

    def upload(self, first: bytearray, rest: Iterator[bytearray], concurrency: int) -> list[dict[str, Any]]:
        """Upload `first` and every part of `rest`; return the parts for completion.

        At most `concurrency` parts are in flight and one more is being read, so
        memory stays at about ``(concurrency + 1) * part_size``.
        """
        done: list[dict[str, Any]] = []
        with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="vs-s3-part") as pool:
            inflight: set[Future[dict[str, Any]]] = set()
            try:
                for number, data in enumerate(_chain(first, rest), start=1):
                    if number > MAX_PARTS:
                        raise StorageError(
                            f"{self._key!r} needs more than {MAX_PARTS} parts: raise part_size", self._key
                        )
                    if len(inflight) >= concurrency:
                        finished, inflight = wait(inflight, return_when=FIRST_COMPLETED)
                        done.extend(f.result() for f in finished)
                    inflight.add(pool.submit(self._upload_part, number, data))
                    self.size += len(data)
                finished, inflight = wait(inflight)
                done.extend(f.result() for f in finished)
            finally:
                for future in inflight:
                    future.cancel()
        return sorted(done, key=lambda part: int(part["PartNumber"]))

    def _upload_part(self, number: int, data: bytearray) -> dict[str, Any]:
        response = self._client.upload_part(
            Bucket=self._bucket, Key=self._key, UploadId=self.upload_id, PartNumber=number, Body=data
        )
        return {"PartNumber": number, "ETag": response["ETag"]}

    def complete(self, parts_done: list[dict[str, Any]], conditions: dict[str, str]) -> dict[str, Any]:
        response: dict[str, Any] = self._client.complete_multipart_upload(
            Bucket=self._bucket,
            Key=self._key,
            UploadId=self.upload_id,
            MultipartUpload={"Parts": parts_done},
            **conditions,
        )
        return response

    def abort(self) -> None:
        """Abort the upload so that no part is left behind; never raises."""
        try:
            self._client.abort_multipart_upload(Bucket=self._bucket, Key=self._key, UploadId=self.upload_id)
        except Exception as exc:  # the original failure matters more
            log.warning("could not abort multipart upload of %r: %s", self._key, exc)


def _chain(first: bytearray, rest: Iterator[bytearray]) -> Iterator[bytearray]:
    yield first
    yield from rest


def create_while_reading(
    client: Any, bucket: str, key: str, create_args: dict[str, Any], pieces: Iterator[bytearray]
) -> tuple[MultipartUpload, bytearray]:
    """Create a multipart upload in a helper thread while this one reads the first
    part from `pieces`; the upload and that part. Each takes a few milliseconds (a
    round trip; 8 MiB read), about 1% of a 64 MiB put. If the read fails, the
    upload is aborted once it exists and the read's error is raised; otherwise a
    failed creation raises."""
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="vs-s3-create") as helper:
        creating = helper.submit(MultipartUpload, client, bucket, key, create_args)
        try:
            first = next(pieces)
        except BaseException:
            _abort_once_created(creating)
            raise
        return creating.result(), first


def _abort_once_created(creating: Future[MultipartUpload]) -> None:
    try:
        upload = creating.result()
    except Exception:
        return  # never created: nothing to abort
    upload.abort()


def run_aborting(upload: MultipartUpload, action: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Run `action`; on any failure, abort `upload` and re-raise."""
    try:
        return action()
    except BaseException:
        upload.abort()
        raise
