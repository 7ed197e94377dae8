"""`AsyncStore` beyond the conformance suite: the event loop never runs a backend
call, the worker threads are bounded, a stalled source holds none of them, and a
cancelled call leaves nothing open. Backend behaviour is in the suite."""

from __future__ import annotations

import asyncio
import os
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

import visiona_storage as vs
from visiona_storage.driver import Body, ObjectInfo, ObjectReader, PutWriter


class Gate(vs.MemoryStore):
    """A memory store whose calls wait until the test opens the gate."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.waited_out = False
        self.running = 0
        self.most_running = 0
        self.opened: list[ObjectReader] = []
        self._count = threading.Lock()

    @classmethod
    def holding(cls, key: str, data: bytes) -> Gate:
        """A gate store with `data` at `key` already, its gate shut."""
        store = cls()
        store.gate.set()
        vs.MemoryStore.put(store, key, data)
        store.gate.clear()
        return store

    def _wait(self) -> None:
        with self._count:
            self.running += 1
            self.most_running = max(self.most_running, self.running)
        try:
            if not self.gate.wait(5):
                self.waited_out = True  # nothing opened it: the loop was blocked
        finally:
            with self._count:
                self.running -= 1

    def _stat(self, key: str) -> ObjectInfo:
        self._wait()
        return super()._stat(key)

    def _get(self, key: str, start: int, end: int | None) -> ObjectReader:
        self._wait()
        reader = super()._get(key, start, end)
        self.opened.append(reader)
        return reader

    def _put(
        self, key: str, body: Body, metadata: dict[str, str], content_type: str, **conditions: object
    ) -> ObjectInfo:
        self._wait()
        return super()._put(key, body, metadata, content_type, **conditions)  # type: ignore[arg-type]


def test_calls_run_in_worker_threads_while_the_loop_goes_on() -> None:
    store = Gate.holding("k", b"x")

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            calls = [
                asyncio.ensure_future(astore.stat("k")),
                asyncio.ensure_future(astore.put("k2", b"y")),
                asyncio.ensure_future(astore.get("k")),
            ]
            for _ in range(20):
                await asyncio.sleep(0.01)  # the loop runs while the calls wait in threads
            assert not any(call.done() for call in calls)
            store.gate.set()
            info, _, reader = await asyncio.gather(*calls)
            assert isinstance(info, vs.ObjectInfo)
            assert isinstance(reader, vs.AsyncObjectReader)
            assert info.key == "k"
            assert await reader.read() == b"x"
            await reader.close()

    asyncio.run(main())
    assert not store.waited_out


def test_at_most_max_threads_calls_run_at_once() -> None:
    store = Gate.holding("k", b"x")

    async def main() -> None:
        async with vs.AsyncStore(store, max_threads=2) as astore:
            calls = [asyncio.ensure_future(astore.stat("k")) for _ in range(6)]
            await asyncio.sleep(0.2)
            assert store.running == 2
            store.gate.set()
            await asyncio.gather(*calls)

    asyncio.run(main())
    assert store.most_running == 2


def test_a_stalled_async_source_holds_no_worker_thread(tmp_path: Path) -> None:
    async def main() -> None:
        async with vs.AsyncStore(vs.LocalFSStore(tmp_path, fsync=False), max_threads=1) as astore:
            await astore.put("other", b"o")
            sent = asyncio.Event()
            release = asyncio.Event()

            async def stalls() -> AsyncIterator[bytes]:
                yield b"a" * (3 << 20)
                sent.set()
                await release.wait()
                yield b"b"

            put = asyncio.ensure_future(astore.put("stalled", stalls()))
            await sent.wait()
            # the one thread is free for others while the source is quiet
            assert (await asyncio.wait_for(astore.stat("other"), 10)).size == 1
            release.set()
            assert (await put).size == (3 << 20) + 1

    asyncio.run(main())


def test_a_get_cancelled_while_opening_closes_what_it_opened() -> None:
    store = Gate.holding("k", b"x" * (1 << 20))

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            opening = asyncio.ensure_future(astore.get("k"))
            await asyncio.sleep(0.05)
            opening.cancel()
            with pytest.raises(asyncio.CancelledError):
                await opening
            store.gate.set()
            for _ in range(100):
                if store.opened and store.opened[0].closed:
                    break
                await asyncio.sleep(0.01)

    asyncio.run(main())
    assert len(store.opened) == 1
    assert store.opened[0].closed


def test_a_reader_still_closes_after_its_store(tmp_path: Path) -> None:
    async def main() -> vs.AsyncObjectReader:
        async with vs.AsyncStore(vs.LocalFSStore(tmp_path, fsync=False)) as astore:
            await astore.put("big", b"z" * (1 << 20))
            reader = await astore.get("big")
            assert await reader.read(10) == b"z" * 10
        await reader.close()
        return reader

    assert asyncio.run(main()).closed


@pytest.mark.parametrize("how", ["async for", "read(n)", "read()"])
def test_a_reader_open_at_close_reads_on_where_the_backend_allows(tmp_path: Path, how: str) -> None:
    """A local file outlives its store: so does an async reader of it, past the
    read-ahead the close found it with."""
    data = os.urandom(6 << 20)

    async def main() -> bytes:
        astore = vs.AsyncStore(vs.LocalFSStore(tmp_path, fsync=False))
        await astore.put("big", data)
        async with astore.get("big") as reader:
            first = await reader.read(10)
            await astore.close()
            assert astore.store.closed
            if how == "async for":
                rest = b"".join([chunk async for chunk in reader])
            elif how == "read(n)":
                rest = b"".join([chunk async for chunk in _reads(reader, 300_000)])
            else:
                rest = await reader.read()
        return first + rest

    assert asyncio.run(main()) == data


async def _reads(reader: vs.AsyncObjectReader, size: int) -> AsyncIterator[bytes]:
    while chunk := await reader.read(size):
        yield chunk


def test_a_cancelled_close_goes_on_and_a_second_close_waits_for_it() -> None:
    store = Gate.holding("k", b"x")

    async def main() -> None:
        astore = vs.AsyncStore(store)
        stat = asyncio.ensure_future(astore.stat("k"))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(astore.close(), 0.05)
        assert astore.closed
        assert not store.closed  # the stat still runs
        store.gate.set()
        await astore.close()
        assert store.closed
        assert (await stat).size == 1

    asyncio.run(main())


def test_a_close_left_unfinished_by_its_event_loop_is_finished_by_the_next_close() -> None:
    store = Gate.holding("k", b"x")
    astore = vs.AsyncStore(store)

    async def first() -> None:
        stat = asyncio.ensure_future(astore.stat("k"))
        await asyncio.sleep(0.05)
        with pytest.raises(TimeoutError):
            await asyncio.wait_for(astore.close(), 0.05)
        stat.cancel()  # the loop ends before the close could

    asyncio.run(first())
    store.gate.set()
    assert not store.closed
    asyncio.run(astore.close())
    assert store.closed


def test_a_reader_used_in_another_event_loop_says_so_and_closes_there(tmp_path: Path) -> None:
    astore = vs.AsyncStore(vs.LocalFSStore(tmp_path, fsync=False))

    async def open_one() -> vs.AsyncObjectReader:
        await astore.put("big", bytes(3 << 20))
        reader = await astore.get("big")
        await reader.read(10)
        return reader

    reader = asyncio.run(open_one())

    async def use(call: Callable[[], Any]) -> None:
        with pytest.raises(RuntimeError, match="event loop that opened it"):
            await asyncio.wait_for(call(), 5)

    asyncio.run(use(lambda: reader.read(10)))
    asyncio.run(use(lambda: reader.__aiter__().__anext__()))
    for _ in range(100):  # the read-ahead trip the first loop started ends
        if reader._ahead.idle:
            break
        threading.Event().wait(0.05)
    asyncio.run(reader.close())  # nothing of the first loop's to wait for: it closes
    assert reader.closed
    assert reader._reader.closed
    asyncio.run(astore.close())


def test_open_async_store_reads_a_configuration(tmp_path: Path) -> None:
    config = {"storage": {"backend": "localfs", "localfs": {"root": str(tmp_path / "root")}}}

    async def main() -> bytes:
        async with vs.open_async_store(config) as astore:
            assert isinstance(astore.store, vs.LocalFSStore)
            await astore.put("a/b.txt", b"hi")
            async with astore.get("a/b.txt") as reader:
                return await reader.read()

    assert asyncio.run(main()) == b"hi"
    assert (tmp_path / "root" / "a" / "b.txt").read_bytes() == b"hi"


def test_bad_constructor_arguments_are_refused() -> None:
    with pytest.raises(TypeError):
        vs.AsyncStore("not a store")  # type: ignore[arg-type]
    for bad in (0, -1, 1.5, None):
        with pytest.raises(ValueError, match="max_threads"):
            vs.AsyncStore(vs.MemoryStore(), max_threads=bad)  # type: ignore[arg-type]


def test_import_visiona_storage_does_not_import_asyncio() -> None:
    import subprocess  # noqa: PLC0415
    import sys  # noqa: PLC0415

    code = "import sys, visiona_storage; print('asyncio' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.fixture(autouse=True)
def _no_thread_left() -> Iterator[None]:
    before = {t.name for t in threading.enumerate()}
    yield
    for _ in range(100):
        left = {t.name for t in threading.enumerate() if t.name.startswith("vs-async")} - before
        if not left:
            return
        threading.Event().wait(0.05)
    raise AssertionError(f"worker threads left running: {sorted(left)}")


class SpyWriter(PutWriter):
    """A `PutWriter` over another that records its calls, and whose commit can be held."""

    def __init__(self, inner: PutWriter, hold: threading.Event) -> None:
        self.inner = inner
        self.hold = hold
        self.calls: list[str] = []
        self.piece_lengths: list[int] = []
        self.busy = False
        self.overlapped = False

    def _call(self, name: str) -> None:
        if self.busy:
            self.overlapped = True
        self.calls.append(name)

    def write(self, data: bytes) -> None:
        self.write_pieces([data])

    def write_pieces(self, pieces: Sequence[bytes]) -> None:
        self._call("write")
        self.piece_lengths.append(len(pieces))
        self.inner.write_pieces(pieces)

    def commit(self) -> ObjectInfo:
        self._call("commit")
        self.busy = True
        try:
            self.hold.wait(5)
            return self.inner.commit()
        finally:
            self.busy = False

    def abort(self) -> None:
        self._call("abort")
        self.inner.abort()


class Spied(vs.MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.hold = threading.Event()
        self.hold.set()
        self.writers: list[SpyWriter] = []

    def _open_writer(
        self, key: str, size: int, metadata: dict[str, str], content_type: str, **kw: Any
    ) -> PutWriter:
        writer = SpyWriter(super()._open_writer(key, size, metadata, content_type, **kw), self.hold)
        self.writers.append(writer)
        return writer


async def _chunks(*parts: bytes) -> AsyncIterator[bytes]:
    for part in parts:
        yield part


def test_tiny_chunks_are_gathered_not_kept_apart() -> None:
    store = Spied()

    async def one_byte_at_a_time() -> AsyncIterator[bytes]:
        for n in range(300_000):
            yield bytes([n % 251])

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            await astore.put("tiny", one_byte_at_a_time())
            reader = await astore.get("tiny")
            assert await reader.read() == bytes(n % 251 for n in range(300_000))
            await reader.close()

    asyncio.run(main())
    assert max(store.writers[0].piece_lengths) == 1  # one buffer, not 300,000 objects


def test_a_put_cancelled_while_publishing_never_aborts_during_the_commit() -> None:
    store = Spied()
    store.hold.clear()

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            put = asyncio.ensure_future(astore.put("k", _chunks(b"a" * 100, b"b")))
            while not store.writers or "commit" not in store.writers[0].calls:
                await asyncio.sleep(0.01)
            put.cancel()
            await asyncio.sleep(0.05)
            store.hold.set()
            with pytest.raises(asyncio.CancelledError):
                await put

    asyncio.run(main())
    writer = store.writers[0]
    assert writer.calls[-2:] == ["commit", "abort"]
    assert not writer.overlapped


def test_a_put_cancelled_while_starting_aborts_what_it_started() -> None:
    store = Gate.holding("k", b"x")

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            put = asyncio.ensure_future(astore.put("k", _chunks(b"y"), if_match="*"))  # stats first
            await asyncio.sleep(0.05)
            put.cancel()
            with pytest.raises(asyncio.CancelledError):
                await put
            store.gate.set()
            for _ in range(100):
                if not [t for t in threading.enumerate() if t.name == "vs-put"]:
                    break
                await asyncio.sleep(0.02)
            async with astore.get("k") as reader:
                assert await reader.read() == b"x"

    asyncio.run(main())
    assert not [t for t in threading.enumerate() if t.name == "vs-put"]  # the started put ended


def test_close_waits_for_calls_in_flight_and_refuses_new_ones() -> None:
    store = Gate.holding("k", b"x")

    async def main() -> None:
        astore = vs.AsyncStore(store)
        stat = asyncio.ensure_future(astore.stat("k"))
        await asyncio.sleep(0.05)
        closing = asyncio.ensure_future(astore.close())
        await asyncio.sleep(0.1)
        assert not closing.done()
        assert not store.closed
        with pytest.raises(vs.StorageError, match="closed"):
            await astore.put("new", _chunks(b"z"))
        store.gate.set()
        assert (await stat).size == 1
        await closing
        assert store.closed

    asyncio.run(main())


class WaitingReader(vs.ObjectReader):
    """A reader of `data` whose every read first calls `wait` (a gate the test opens,
    a delay); it counts its reads and notes a close during a read."""

    def __init__(self, info: ObjectInfo, data: bytes, wait: Callable[[], object]) -> None:
        super().__init__(info, len(data))
        self.data, self.wait, self.offset = data, wait, 0
        self.reads = 0
        self.reading = False
        self.closed_while_reading = False

    def _read(self, size: int) -> bytes:
        self.reading = True
        try:
            self.wait()
            self.reads += 1
            chunk = self.data[self.offset : self.offset + size]
            self.offset += len(chunk)
            return chunk
        finally:
            self.reading = False

    def _release(self) -> None:
        self.closed_while_reading = self.reading


class HeldReads(vs.MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.gate = threading.Event()
        self.readers: list[WaitingReader] = []

    def _get(self, key: str, start: int, end: int | None) -> ObjectReader:
        with super()._get(key, start, end) as whole:
            reader = WaitingReader(whole.info, whole.read(), lambda: self.gate.wait(5))
        self.readers.append(reader)
        return reader


def test_a_reader_closes_only_once_a_cancelled_read_ends() -> None:
    store = HeldReads()
    store.put("big", bytes(range(256)) * 4096)  # 1 MiB: streamed, not read while opening

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            reader = await astore.get("big")
            reading = asyncio.ensure_future(reader.read(10))
            await asyncio.sleep(0.05)
            reading.cancel()
            closing = asyncio.ensure_future(reader.close())
            await asyncio.sleep(0.05)
            assert not closing.done()
            store.gate.set()
            await closing

    asyncio.run(main())
    assert store.readers[0].closed
    assert not store.readers[0].closed_while_reading


def test_reads_from_two_tasks_take_turns() -> None:
    data = bytes(range(256)) * 4096 * 3
    store = HeldReads()
    store.gate.set()
    store.put("big", data)

    async def main() -> list[bytes]:
        async with vs.AsyncStore(store) as astore, astore.get("big") as reader:

            async def drain() -> list[bytes]:
                got = []
                while chunk := await reader.read(65536):
                    got.append(chunk)
                return got

            first, second = await asyncio.gather(drain(), drain())
            return sorted(first + second, key=data.index)

    assert b"".join(asyncio.run(main())) == data


def test_the_bytes_of_a_cancelled_read_come_with_the_next_read() -> None:
    data = bytes(range(256)) * 4096
    store = HeldReads()
    store.put("big", data)

    async def main() -> bytes:
        async with vs.AsyncStore(store) as astore, astore.get("big") as reader:
            reading = asyncio.ensure_future(reader.read(100))
            await asyncio.sleep(0.05)
            reading.cancel()
            store.gate.set()
            return await reader.read(10) + await reader.read()

    assert asyncio.run(main()) == data


class FailingSecondPiece(SpyWriter):
    def write_pieces(self, pieces: Sequence[bytes]) -> None:
        if self.calls.count("write") == 1:
            self._call("write")
            raise vs.StorageFullError("no room for the second piece")
        super().write_pieces(pieces)


def test_no_piece_is_written_after_one_fails_and_the_put_is_aborted() -> None:
    store = Spied()

    def failing(key: str, size: int, metadata: dict[str, str], content_type: str, **kw: Any) -> PutWriter:
        inner = vs.MemoryStore._open_writer(store, key, size, metadata, content_type, **kw)
        writer = FailingSecondPiece(inner, store.hold)
        store.writers.append(writer)
        return writer

    store._open_writer = failing  # type: ignore[method-assign]

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            with pytest.raises(vs.StorageFullError):
                await astore.put("k", _chunks(*[b"x" * (1 << 20)] * 6))
            with pytest.raises(vs.NotFoundError):
                await astore.stat("k")

    asyncio.run(main())
    assert store.writers[0].calls == ["write", "write", "abort"]


def test_reads_and_iteration_mix_in_order(tmp_path: Path) -> None:
    """`async for` reads ahead, more per trip as it goes; reads between its chunks
    and after it still return the bytes in order."""
    data = os.urandom(20 << 20) + b"tail"

    async def main() -> bytes:
        async with vs.AsyncStore(vs.LocalFSStore(tmp_path, fsync=False)) as astore:
            await astore.put("big", data)
            async with astore.get("big") as reader:
                got = [await reader.read(10)]
                async for chunk in reader:
                    got.append(chunk)
                    got.append(await reader.read(3))
                    if sum(map(len, got)) > (12 << 20):
                        break
                got.append(await reader.read())
                got.append(await reader.read())
                return b"".join(got)

    assert asyncio.run(main()) == data


class SlowWriter(SpyWriter):
    """A `SpyWriter` whose pieces take `delay` seconds each, noting the thread of each."""

    delay = 0.02

    def write_pieces(self, pieces: Sequence[bytes]) -> None:
        threading.Event().wait(self.delay)
        super().write_pieces(pieces)


class SlowWrites(Spied):
    def _open_writer(
        self, key: str, size: int, metadata: dict[str, str], content_type: str, **kw: Any
    ) -> PutWriter:
        inner = vs.MemoryStore._open_writer(self, key, size, metadata, content_type, **kw)
        writer = SlowWriter(inner, self.hold)
        self.writers.append(writer)
        return writer


def _count_trips(astore: vs.AsyncStore) -> list[int]:
    """Count the calls `astore` hands to its worker threads from now on."""
    trips = [0]
    submit = astore._pool.submit

    def counting(*arguments: Any, **keywords: Any) -> Any:
        trips[0] += 1
        return submit(*arguments, **keywords)

    astore._pool.submit = counting  # type: ignore[method-assign]
    return trips


def test_a_steady_put_writes_its_pieces_in_few_thread_trips() -> None:
    store = SlowWrites()

    async def main() -> int:
        async with vs.AsyncStore(store) as astore:
            trips = _count_trips(astore)
            await astore.put("k", _chunks(*[bytes([n]) * (1 << 20) for n in range(32)]))
            return trips[0]

    trips = asyncio.run(main())
    assert len(store.writers[0].piece_lengths) == 32
    assert trips < 16  # not one per piece


def test_a_put_holds_at_most_four_pieces_waiting_besides_the_one_written() -> None:
    store = SlowWrites()
    store.hold.clear()
    produced: list[int] = []

    async def source() -> AsyncIterator[bytes]:
        for n in range(40):
            produced.append(n)
            yield bytes([n]) * (1 << 20)

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            put = asyncio.ensure_future(astore.put("k", source()))
            await asyncio.sleep(0.3)
            written = len(store.writers[0].piece_lengths)
            # written, one being written, four waiting, one on the event loop (and the
            # source's next chunk, asked for as that one was handed over)
            assert len(produced) <= written + 1 + 4 + 1 + 1
            store.hold.set()
            info = await put
            assert info.size == 40 << 20

    asyncio.run(main())


def test_a_put_cancelled_with_pieces_queued_stores_nothing_and_writes_no_more() -> None:
    store = SlowWrites()
    SlowWriter.delay = 0.1

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            await astore.put("k", b"previous")
            put = asyncio.ensure_future(astore.put("k", _chunks(*[b"x" * (1 << 20)] * 20)))
            while not store.writers or not store.writers[-1].calls:
                await asyncio.sleep(0.01)
            put.cancel()
            with pytest.raises(asyncio.CancelledError):
                await put
            async with astore.get("k") as reader:
                assert await reader.read() == b"previous"

    try:
        asyncio.run(main())
    finally:
        SlowWriter.delay = 0.02
    writer = store.writers[-1]
    assert writer.calls[-1] == "abort"
    assert writer.calls.count("write") <= 2  # the queued pieces were dropped
    assert not writer.overlapped


def test_a_source_reusing_its_buffer_stores_exactly_what_it_yielded() -> None:
    """Pieces wait in a queue while the source goes on: what it yields must be
    copied before it refills its buffer, large chunks and small ones alike."""
    expected = bytearray()

    async def refilling(size: int) -> AsyncIterator[Any]:
        buffer = bytearray(size)
        for n in range(12 * (1 << 20) // size):
            buffer[:] = bytes([n % 251]) * size
            expected.extend(buffer)
            yield memoryview(buffer) if n % 2 else buffer

    async def main() -> None:
        async with vs.AsyncStore(SlowWrites()) as astore:
            for size in (256 << 10, 1000):
                expected.clear()
                await astore.put("k", refilling(size))
                async with astore.get("k") as reader:
                    assert await reader.read() == expected

    asyncio.run(main())


class CountedReads(vs.MemoryStore):
    def __init__(self, delay: float = 0.0) -> None:
        super().__init__()
        self.delay = delay
        self.readers: list[WaitingReader] = []

    def _get(self, key: str, start: int, end: int | None) -> ObjectReader:
        with super()._get(key, start, end) as whole:
            reader = WaitingReader(whole.info, whole.read(), lambda: threading.Event().wait(self.delay))
        self.readers.append(reader)
        return reader


def test_a_reader_reads_ahead_at_most_2_mib_of_1_mib_chunks() -> None:
    store = CountedReads()
    store.put("big", os.urandom(20 << 20))

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            async with astore.get("big") as reader:
                assert len(await reader.read(10)) == 10
                await asyncio.sleep(0.3)
                # read ahead (not 10 bytes at a time), but no more than the chunk
                # returned from and two waiting
                assert 2 << 20 <= store.readers[0].offset <= 3 << 20
            async with astore.get("big") as reader:
                assert len(await reader.read(4 << 20)) == 4 << 20
                await asyncio.sleep(0.3)
                assert 5 << 20 <= store.readers[1].offset <= 8 << 20  # one 4 MiB chunk waits

    asyncio.run(main())


def test_async_for_and_reads_take_few_thread_trips() -> None:
    data = os.urandom(32 << 20)
    store = CountedReads()
    store.put("big", data)

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            async with astore.get("big") as reader:
                trips = _count_trips(astore)
                got = [chunk async for chunk in reader]
                assert trips[0] < 24  # not one per MiB
                assert max(map(len, got)) == 1 << 20
                assert b"".join(got) == data
            async with astore.get("big") as reader:
                trips = _count_trips(astore)
                got = []
                while chunk := await reader.read(300_000):
                    got.append(chunk)
                assert trips[0] < 24
                assert b"".join(got) == data

    asyncio.run(main())


def test_closing_a_reader_early_stops_reading_ahead() -> None:
    store = CountedReads(delay=0.05)
    store.put("big", bytes(100 << 20))

    async def main() -> None:
        async with vs.AsyncStore(store) as astore:
            reader = await astore.get("big")
            async for _ in reader:
                break
            started = asyncio.get_running_loop().time()
            await reader.close()
            assert asyncio.get_running_loop().time() - started < 1
            reads = store.readers[0].reads
            await asyncio.sleep(0.3)
            assert store.readers[0].reads == reads <= 6

    asyncio.run(main())
    assert store.readers[0].closed
    assert not store.readers[0].closed_while_reading


def test_a_failed_read_ahead_raises_its_typed_error_after_the_chunks_before_it() -> None:
    class FailingThird(WaitingReader):
        def _read(self, size: int) -> bytes:
            if self.reads == 2:
                raise vs.StorageError("the disk went away")
            return super()._read(size)

    class Failing(CountedReads):
        def _get(self, key: str, start: int, end: int | None) -> ObjectReader:
            with vs.MemoryStore._get(self, key, start, end) as whole:
                reader = FailingThird(whole.info, whole.read(), lambda: None)
            self.readers.append(reader)
            return reader

    store = Failing()
    data = os.urandom(8 << 20)
    store.put("big", data)

    got: list[bytes] = []

    async def take_all(reader: vs.AsyncObjectReader) -> None:
        async for chunk in reader:
            got.append(chunk)

    async def main() -> list[bytes]:
        async with vs.AsyncStore(store) as astore, astore.get("big") as reader:
            with pytest.raises(vs.StorageError, match="went away"):
                await take_all(reader)
        return got

    assert b"".join(asyncio.run(main())) == data[: 2 << 20]
    assert store.readers[0].closed


def test_closing_a_reader_while_a_read_waits_ends_that_read_without_reading_on() -> None:
    store = HeldReads()
    store.put("big", bytes(8 << 20))

    async def main() -> bytes:
        async with vs.AsyncStore(store) as astore:
            reader = await astore.get("big")
            reading = asyncio.ensure_future(reader.read(10))
            await asyncio.sleep(0.05)
            closing = asyncio.ensure_future(reader.close())
            await asyncio.sleep(0.05)
            store.gate.set()  # the chunk being read comes; no trip starts after it
            await closing
            return await reading

    assert asyncio.run(main()) in (b"", bytes(10))
    assert store.readers[0].closed
    assert not store.readers[0].closed_while_reading
