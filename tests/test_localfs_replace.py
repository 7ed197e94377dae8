"""Publishing a file over another without fsync swaps the two names and unlinks the
old file (`_tree.replace`), so that ext4 does not start writing the new file out
inside the ``rename``; with fsync, or where names cannot be swapped, it renames."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

import visiona_storage as vs
from visiona_storage.backends.localfs import _linux, _tree

pytestmark = pytest.mark.skipif(_linux._libc_renameat2 is None, reason="no renameat2 on this system")


@pytest.fixture
def folder(tmp_path: Path) -> Any:
    fd = os.open(tmp_path, os.O_RDONLY | os.O_DIRECTORY)
    yield fd
    os.close(fd)


Calls = list[tuple[Any, ...]]


@pytest.fixture
def renames(monkeypatch: pytest.MonkeyPatch) -> Calls:
    """Every ``os.rename`` from here on, still carried out."""
    calls: Calls = []
    real = os.rename

    def recording(*args: Any, **kwargs: Any) -> None:
        calls.append(args)
        real(*args, **kwargs)

    monkeypatch.setattr(os, "rename", recording)
    return calls


def test_exchange_swaps_two_names(tmp_path: Path, folder: int) -> None:
    (tmp_path / "a").write_bytes(b"old")
    (tmp_path / "b").write_bytes(b"new")
    assert _linux.exchange(folder, "b", "a")
    assert (tmp_path / "a").read_bytes() == b"new"
    assert (tmp_path / "b").read_bytes() == b"old"


def test_exchange_with_a_missing_name_does_nothing(tmp_path: Path, folder: int) -> None:
    (tmp_path / "b").write_bytes(b"new")
    assert not _linux.exchange(folder, "b", "a")
    assert sorted(os.listdir(tmp_path)) == ["b"]


def test_a_lazy_replace_swaps_and_unlinks(tmp_path: Path, folder: int, renames: Calls) -> None:
    (tmp_path / "a").write_bytes(b"old")
    (tmp_path / "b").write_bytes(b"new")
    with open(tmp_path / "a", "rb") as reader:  # a reader of the old file keeps it
        _tree.replace(folder, "b", "a", lazy=True)
        assert reader.read() == b"old"
    assert renames == []
    assert os.listdir(tmp_path) == ["a"]
    assert (tmp_path / "a").read_bytes() == b"new"


def test_a_lazy_replace_of_nothing_renames(tmp_path: Path, folder: int, renames: Calls) -> None:
    (tmp_path / "b").write_bytes(b"new")
    _tree.replace(folder, "b", "a", lazy=True)
    assert len(renames) == 1
    assert os.listdir(tmp_path) == ["a"]


def test_a_durable_replace_renames(tmp_path: Path, folder: int, renames: Calls) -> None:
    (tmp_path / "a").write_bytes(b"old")
    (tmp_path / "b").write_bytes(b"new")
    _tree.replace(folder, "b", "a", lazy=False)
    assert len(renames) == 1
    assert os.listdir(tmp_path) == ["a"]
    assert (tmp_path / "a").read_bytes() == b"new"


def test_without_renameat2_a_lazy_replace_renames(
    tmp_path: Path, folder: int, renames: Calls, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_linux, "_libc_renameat2", None)
    (tmp_path / "a").write_bytes(b"old")
    (tmp_path / "b").write_bytes(b"new")
    _tree.replace(folder, "b", "a", lazy=True)
    assert len(renames) == 1
    assert (tmp_path / "a").read_bytes() == b"new"


def test_a_put_over_an_object_without_fsync_renames_nothing(tmp_path: Path, renames: Calls) -> None:
    with vs.LocalFSStore(tmp_path, fsync=False) as store:
        store.put("m/a.json", b"1", metadata={"v": "1"})
        renames.clear()
        info = store.put("m/a.json", b"22", metadata={"v": "2"})
        assert renames == []  # data and sidecar were swapped in
        assert store.stat("m/a.json") == info
        assert store.get("m/a.json").read() == b"22"
        assert info.metadata == {"v": "2"}
    assert sorted(os.listdir(tmp_path / "m")) == ["a.json", "a.json.meta.json"]


def test_a_durable_put_over_an_object_renames(tmp_path: Path, renames: Calls) -> None:
    with vs.LocalFSStore(tmp_path) as store:
        store.put("m/a.json", b"1")
        renames.clear()
        store.put("m/a.json", b"22")
        assert len(renames) == 2  # the sidecar, then the data
        assert store.get("m/a.json").read() == b"22"


def _put_at_once(store: vs.Store, keys: tuple[str, ...]) -> dict[str, str]:
    """Put each of `keys` (its own name as its bytes) from its own thread, all
    released at once; how each ended: "stored", "conflict: ..." or the error."""
    import threading  # noqa: PLC0415

    barrier = threading.Barrier(len(keys))
    outcome: dict[str, str] = {}

    def put(key: str) -> None:
        barrier.wait()
        try:
            store.put(key, key.encode())
            outcome[key] = "stored"
        except vs.KeyConflictError as exc:
            outcome[key] = f"conflict: {exc}"
        except Exception as exc:
            outcome[key] = f"{type(exc).__name__}: {exc}"

    threads = [threading.Thread(target=put, args=(key,)) for key in keys]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return outcome


@pytest.mark.parametrize("fsync", [False, True], ids=["lazy", "durable"])
def test_an_object_and_a_folder_at_one_name_at_once_never_swap(tmp_path: Path, fsync: bool) -> None:
    """``x/b`` put while ``x/b/c`` makes the folder ``x/b``: one of them wins and the
    other gets `KeyConflictError`. A lazy replace swaps names, and swapping the
    object with a folder made an instant after the check moved that folder, with
    the objects in it, to a temp name."""
    with vs.LocalFSStore(tmp_path, fsync=fsync) as store:
        for round_ in range(150):
            folder = f"r{round_}"
            outcome = _put_at_once(store, (f"{folder}/b", f"{folder}/b/c"))
            stored = [key for key, how in outcome.items() if how == "stored"]
            assert len(stored) == 1, outcome
            other = ({f"{folder}/b", f"{folder}/b/c"} - set(stored)).pop()
            assert outcome[other].startswith("conflict: "), outcome
            assert "folder" in outcome[other]
            assert store.get(stored[0]).read() == stored[0].encode()
            assert sorted(os.listdir(tmp_path / folder)) in (["b"], ["b", "b.meta.json"])
