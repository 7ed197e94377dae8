"""RequestBody: an upload's body received in the event loop and read by a thread."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import TypeVar

import anyio
import anyio.lowlevel
import anyio.to_thread
import pytest

from visiona_storage._request_body import AHEAD, FILL, RequestBody, UploadCancelledError

T = TypeVar("T")


class _TooLarge(Exception):
    pass


async def _messages(pieces: list[bytes], sent: list[int], error: Exception | None) -> AsyncIterator[bytes]:
    for piece in pieces:
        sent.append(len(piece))
        yield piece
        await anyio.sleep(0)  # let the reader run, as a socket would
    if error is not None:
        raise error


def _read_while_pumping(
    pieces: list[bytes],
    read: Callable[[RequestBody], T],
    *,
    limit: int | None = None,
    error: Exception | None = None,
    sent: list[int] | None = None,
) -> T:
    """Run `read(body)` in a thread while the body's pump receives `pieces`;
    `sent` gets the size of each piece the pump took."""
    sent = [] if sent is None else sent

    async def main() -> T:
        body = RequestBody(_messages(pieces, sent, error), anyio.lowlevel.current_token(), limit, _TooLarge)
        outcome: T | BaseException
        async with anyio.create_task_group() as group:
            group.start_soon(body.pump)
            try:
                outcome = await anyio.to_thread.run_sync(read, body)
            except Exception as exc:
                outcome = exc
            group.cancel_scope.cancel()
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    return anyio.run(main)


def _readinto_sizes(body: RequestBody, size: int) -> list[int]:
    buffer = bytearray(size)
    sizes = []
    while got := body.readinto(buffer):
        sizes.append(got)
    return sizes


def test_readinto_fills_the_buffer_from_many_small_messages() -> None:
    pieces = [os.urandom(1000) for _ in range(300)]  # 300,000 bytes in 1,000-byte messages
    sizes = _read_while_pumping(pieces, lambda body: _readinto_sizes(body, 64 * 1024))
    assert sizes == [65536] * 4 + [300_000 - 4 * 65536]


def test_readinto_waits_for_at_most_fill_bytes() -> None:
    pieces = [os.urandom(256 * 1024) for _ in range(3 * FILL // (256 * 1024))]
    sizes = _read_while_pumping(pieces, lambda body: _readinto_sizes(body, 3 * FILL))
    assert all(size >= FILL for size in sizes[:-1])
    assert sum(sizes) == 3 * FILL


def test_read_returns_the_bytes_in_order_and_empty_at_the_end() -> None:
    pieces = [os.urandom(n) for n in (1, 7, 4096, 3, 70_000, 1)]

    def read_all(body: RequestBody) -> list[bytes]:
        parts = [body.read(5000) for _ in range(20)]
        return [*parts, body.read(), body.read(1)]

    parts = _read_while_pumping(pieces, read_all)
    assert b"".join(parts) == b"".join(pieces)
    assert parts[-2:] == [b"", b""]
    assert all(len(part) == 5000 for part in parts[:14])
    assert len(parts[14]) == 74_108 - 14 * 5000


def test_the_pump_stays_at_most_ahead_bytes_in_front_of_the_reader() -> None:
    piece = 512 * 1024
    pieces = [os.urandom(piece) for _ in range(4 * AHEAD // piece)]

    def slow_reader(body: RequestBody) -> int:
        buffer = bytearray(FILL)
        body.readinto(buffer)
        anyio.from_thread.run(anyio.sleep, 0.2)  # the pump would run far ahead if it could
        ahead = sum(sent) - FILL
        while body.readinto(buffer):
            pass
        return ahead

    sent: list[int] = []
    ahead = _read_while_pumping(pieces, slow_reader, sent=sent)
    assert ahead <= AHEAD + piece
    assert sum(sent) == 4 * AHEAD


def test_a_body_over_the_limit_raises_for_the_reader() -> None:
    pieces = [b"x" * 1000] * 20
    with pytest.raises(_TooLarge):
        _read_while_pumping(pieces, lambda body: body.read(), limit=10_000)


def test_the_stream_error_reaches_the_reader_after_the_bytes_before_it() -> None:
    pieces = [b"a" * 3000, b"b" * 3000]

    def read_until_error(body: RequestBody) -> tuple[bytes, BaseException | None]:
        got = b""
        try:
            while chunk := body.read(1000):
                got += chunk
        except OSError as exc:
            return got, exc
        return got, None

    got, error = _read_while_pumping(pieces, read_until_error, error=ConnectionResetError("client gone"))
    assert got == b"a" * 3000 + b"b" * 3000
    assert isinstance(error, ConnectionResetError)


def test_a_cancelled_pump_ends_the_reader_with_upload_cancelled() -> None:
    async def forever() -> AsyncIterator[bytes]:
        yield b"first"
        await anyio.sleep_forever()
        yield b""  # pragma: no cover

    async def main() -> None:
        body = RequestBody(forever(), anyio.lowlevel.current_token(), None, _TooLarge)
        async with anyio.create_task_group() as group:
            group.start_soon(body.pump)
            assert await anyio.to_thread.run_sync(body.read, 5) == b"first"
            group.cancel_scope.cancel()
        with pytest.raises(UploadCancelledError):
            body.read(1)

    anyio.run(main)
