"""Security: symlinks and path tricks never reach outside the root; secrets never
reach a message, a log line or a repr. Each test prints its figure (``-s``)."""

from __future__ import annotations

import http.client
import logging
import os
import random
import stat
import threading
import time
import urllib.parse
from pathlib import Path

import pytest

import visiona_storage as vs
from servers import LiveServer, S3Server
from visiona_storage._keys import key_problem
from visiona_storage.http import create_app


def _tree(folder: Path) -> dict[str, tuple[bytes | str, int]]:
    """Every entry under `folder`: its content (or link target) and its mtime."""
    found: dict[str, tuple[bytes | str, int]] = {}
    for path in sorted(folder.rglob("*")):
        info = path.lstat()
        if path.is_symlink():
            found[str(path.relative_to(folder))] = (os.readlink(path), info.st_mtime_ns)
        elif path.is_file():
            found[str(path.relative_to(folder))] = (path.read_bytes(), info.st_mtime_ns)
        else:
            found[str(path.relative_to(folder))] = ("dir", info.st_mtime_ns)
    return found


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    folder = tmp_path / "outside"
    (folder / "models").mkdir(parents=True)
    (folder / "secret.txt").write_bytes(b"outside secret")
    (folder / "models" / "model.bin").write_bytes(b"outside model")
    return folder


# 16. Symlinks


def test_every_kind_of_symlink_under_the_root_is_refused(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "root"
    store = vs.LocalFSStore(root)
    store.put("real/kept.bin", b"inside")
    (root / "to-folder").symlink_to(outside, target_is_directory=True)
    (root / "to-parent").symlink_to(tmp_path, target_is_directory=True)
    (root / "real" / "to-file.bin").symlink_to(outside / "secret.txt")
    (root / "real" / "dangling.bin").symlink_to(outside / "missing.bin")
    (root / "real" / "relative").symlink_to("../../outside", target_is_directory=True)
    before = _tree(outside)
    keys = [
        "to-folder/secret.txt",
        "to-folder/models/model.bin",
        "to-folder/new.bin",
        "to-parent/outside/secret.txt",
        "real/to-file.bin",
        "real/dangling.bin",
        "real/relative/secret.txt",
        "real/relative/models/new.bin",
    ]
    refused = 0
    for key in keys:
        for call in (
            lambda key=key: store.get(key).read(),
            lambda key=key: store.stat(key),
            lambda key=key: store.put(key, b"escape"),
            lambda key=key: store.put(key, iter([b"escape"] * 3)),
            lambda key=key: store.delete(key),
        ):
            with pytest.raises(vs.StorageError):
                call()
            refused += 1
    for prefix in ("", "to-folder/", "to-parent/", "real/", "real/relative/"):
        assert [info.key for info in store.list(prefix)] == (
            ["real/kept.bin"] if prefix in ("", "real/") else []
        )
    store.cleanup(min_age_seconds=0)
    assert _tree(outside) == before
    assert (root / "real" / "to-file.bin").is_symlink()
    print(f"\n{len(keys)} keys through 5 kinds of symlink: {refused} calls refused, 0 bytes outside touched")


def test_a_symlinked_internal_folder_neither_plants_nor_leaks_a_signing_key(
    tmp_path: Path, outside: Path
) -> None:
    root = tmp_path / "root"
    root.mkdir()
    (outside / "signing-keys.json").write_text('{"active": "k1", "keys": {"k1": "' + "ab" * 32 + '"}}')
    (root / ".visiona-storage").symlink_to(outside, target_is_directory=True)
    before = _tree(outside)
    with pytest.raises(vs.ConfigError, match="symlink"):
        vs.LocalFSStore(root).presigned_get_url("k")
    (root / ".visiona-storage").unlink()
    (root / ".visiona-storage").mkdir()
    (root / ".visiona-storage" / "signing-keys.json").symlink_to(outside / "signing-keys.json")
    with pytest.raises(vs.ConfigError, match="symlink"):
        vs.LocalFSStore(root).presigned_get_url("k")
    assert _tree(outside) == before


@pytest.mark.slow
def test_folders_swapped_for_symlinks_while_puts_and_gets_run(tmp_path: Path, outside: Path) -> None:
    root = tmp_path / "root"
    store = vs.LocalFSStore(root, fsync=False)
    store.put("swap/seed.bin", b"seed")
    before = _tree(outside)
    stop = threading.Event()
    swaps = 0

    def swapper() -> None:
        nonlocal swaps
        while not stop.is_set():
            try:
                (root / "swap").rename(root / "parked")
            except FileNotFoundError:  # the store removed the emptied folder
                (root / "swap").mkdir(exist_ok=True)
                continue
            try:
                (root / "swap").symlink_to(outside, target_is_directory=True)
                time.sleep(0.0005)
                (root / "swap").unlink()
                swaps += 1
            except FileExistsError:  # a put made the folder again meanwhile
                pass
            while True:
                try:
                    (root / "parked").rename(root / "swap")
                    break
                except OSError:  # ... or just now: move that one aside
                    (root / "swap").rename(root / f"made-meanwhile-{swaps}-{time.monotonic_ns()}")
            time.sleep(0.001)  # leave the real folder in place a while too

    thread = threading.Thread(target=swapper)
    thread.start()
    rng = random.Random(16)
    done = refused = 0
    deadline = time.monotonic() + 5
    try:
        while time.monotonic() < deadline:
            key = rng.choice(["swap/a.bin", "swap/models/model.bin", "swap/secret.txt", "swap/seed.bin"])
            data = rng.randbytes(rng.randrange(1, 300_000))
            try:
                store.put(key, iter([data[: len(data) // 2], data[len(data) // 2 :]]))
                with store.get(key) as r:
                    got = r.read()
                assert got not in (b"outside secret", b"outside model")
                store.stat(key)
                list(store.list("swap/"))
                done += 1
            except (vs.StorageError, vs.NotFoundError):
                refused += 1
    finally:
        stop.set()
        thread.join()
    assert _tree(outside) == before
    print(
        f"\nfolder swapped for a symlink {swaps} times under {done + refused} put/get/stat/list rounds "
        f"({done} completed, {refused} refused): 0 bytes read or written outside the root"
    )
    assert swaps > 100
    assert done > 0


# 17. Path tricks over HTTP

TRICKS = [
    "../outside/secret.txt",
    "..%2foutside%2fsecret.txt",
    "%2e%2e/outside/secret.txt",
    "%2E%2E%2Foutside%2Fsecret.txt",
    "%252e%252e/outside/secret.txt",
    "%252e%252e%252foutside%252fsecret.txt",
    "..%5coutside%5csecret.txt",
    "..\\outside\\secret.txt",
    "%5c..%5coutside%5csecret.txt",
    "/outside/secret.txt",
    "%2foutside%2fsecret.txt",
    "a/../../outside/secret.txt",
    "a/%2e%2e/%2e%2e/outside/secret.txt",
    "./../outside/secret.txt",
    "..;/outside/secret.txt",
    "%c0%ae%c0%ae/outside/secret.txt",
    "%e0%80%ae%e0%80%ae/outside/secret.txt",
    "secret.txt%00.png",
    "%00",
    "a%00/../../outside/secret.txt",
    "....//outside/secret.txt",
    "%2e",
    "..",
    ".visiona-storage/signing-keys.json",
    "%2evisiona-storage/signing-keys.json",
    "kept.bin.meta.json",
    "kept.bin%2emeta.json",
    "x.vs-tmp",
    "%ff%fe",
]


def _send(port: int, method: str, path: str, body: bytes = b"") -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        conn.putrequest(method, path, skip_accept_encoding=True)
        conn.putheader("Content-Length", str(len(body)))
        conn.putheader("Content-Type", "application/octet-stream")
        conn.endheaders(body)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def test_path_tricks_over_http_never_reach_outside_the_root(
    tmp_path: Path, outside: Path, live: LiveServer
) -> None:
    """Each trick path is sent unsigned, signed for the key the server decodes it to,
    and signed for its raw text. Only a validly signed URL for a valid key (a
    double-encoded name is the literal key ``%2e%2e/...``) may succeed, and then
    only as that literal key under the root."""
    root = tmp_path / "root"
    store = vs.LocalFSStore(root, base_url=f"{live.url}/storage")
    store.put("kept.bin", b"inside")
    live.serve(create_app(store))
    outside_before = _tree(outside)
    statuses: dict[int, int] = {}
    accepted: set[str] = set()
    sent = 0
    for trick in TRICKS:
        decoded = urllib.parse.unquote(trick, errors="replace")
        queries = [("", "")]
        for name in {decoded, trick}:
            for method in ("GET", "PUT"):
                content_type = "application/octet-stream" if method == "PUT" else None
                params = store.signer.sign(method, name, 600, content_type, None)
                queries.append(("?" + urllib.parse.urlencode(params), method if name == decoded else ""))
        for query, valid_for in queries:
            for method in ("GET", "HEAD", "PUT", "DELETE"):
                status, body = _send(live.port, method, f"/storage/{trick}{query}", b"escape" * 10)
                sent += 1
                statuses[status] = statuses.get(status, 0) + 1
                may_succeed = key_problem(decoded) is None and method in (valid_for, valid_for and "HEAD")
                allowed = {400, 403, 404, 405} | ({200} if may_succeed else set())
                assert status in allowed, (method, trick, query, status, body)
                assert b"outside secret" not in body
                assert b'"active"' not in body  # the signing key file
                if status == 200 and method == "PUT":
                    accepted.add(decoded)
    assert _tree(outside) == outside_before
    assert {info.key for info in store.list()} == {"kept.bin", *accepted}
    for key in accepted:
        assert (root / key).read_bytes() == b"escape" * 10
    assert sorted(p.name for p in tmp_path.iterdir()) == ["outside", "root"]
    print(
        f"\n{len(TRICKS)} path tricks, {sent} requests: statuses {dict(sorted(statuses.items()))}; "
        f"nothing outside the root touched; {len(accepted)} signed literal keys stored inside it"
    )


# 18. Secrets

SIGNING_SECRET = "f00dfeed" * 8
S3_SECRET = "s3-secret-never-shown-0123456789abcdef"


def test_signing_key_file_is_private(tmp_path: Path) -> None:
    vs.LocalFSStore(tmp_path / "root").presigned_get_url("k")
    folder = tmp_path / "root" / ".visiona-storage"
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE((folder / "signing-keys.json").stat().st_mode) == 0o600


def test_no_secret_in_any_message_log_line_or_repr(
    tmp_path: Path,
    moto: S3Server,
    live: LiveServer,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger, botocore's and uvicorn's included
    seen: list[str] = []
    local = vs.LocalFSStore(
        tmp_path / "root", signing_keys={"k1": SIGNING_SECRET}, base_url=f"{live.url}/storage"
    )
    live.serve(create_app(local))
    local.put("k", b"data")
    url = local.presigned_get_url("k")
    forged = url.replace("X-VS-Signature=", "X-VS-Signature=0")
    for target in (url, forged, url.replace("/k?", "/missing?"), url + "&X-VS-Key-Id=k9"):
        _, body = _send(live.port, "GET", target.removeprefix(live.url))
        seen.append(body.decode(errors="replace"))
    for bad in ({"k1": "short"}, {"": SIGNING_SECRET}):
        with pytest.raises(vs.ConfigError) as caught:
            vs.LocalFSStore(tmp_path / "r2", signing_keys=bad)
        seen.append(str(caught.value))
    bucket = moto.new_bucket()
    s3 = vs.S3Store(bucket, endpoint=moto.endpoint, access_key="testing", secret_key=S3_SECRET)
    wrong = vs.S3Store(bucket, endpoint=moto.endpoint, access_key="nobody", secret_key=S3_SECRET)
    down = vs.S3Store(
        bucket, endpoint="http://127.0.0.1:1", secret_key=S3_SECRET, access_key="a", max_attempts=1
    )
    s3.put("k", b"data")
    seen.append(s3.presigned_get_url("k"))
    for call in (lambda: s3.stat("missing"), lambda: wrong.get("k"), lambda: down.put("k", b"x")):
        try:
            call()
        except vs.StorageError as exc:
            seen.extend([str(exc), repr(exc)])
    config_file = tmp_path / "storage.yaml"
    config_file.write_text(
        f"storage:\n  backend: s3\n  s3:\n    bucket: b\n    endpoint: {moto.endpoint}\n"
        f"    access_key: a\n    secret_key: {S3_SECRET}\n"
        f"  localfs:\n    signing_keys:\n      k1: {SIGNING_SECRET}\n"
    )
    config = vs.load_config(config_file)
    seen += [repr(local), repr(s3), repr(config), str(config), repr(vs.open_store(config))]
    out, err = capfd.readouterr()
    seen += [out, err, caplog.text]
    text = "\n".join(seen)
    for secret in (SIGNING_SECRET, S3_SECRET):
        assert secret not in text
    print(f"\n{len(caplog.records)} log records, {len(seen)} messages and reprs: 0 secrets")
