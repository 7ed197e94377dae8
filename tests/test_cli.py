"""The visiona-storage command, run as a user would."""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from servers import free_port, stop_process, wait_for_port
from visiona_storage.backends.localfs._layout import temp_name

MiB = 1 << 20


def run(tmp_path: Path, *args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    config = tmp_path / "storage.yaml"
    if not config.exists():
        config.write_text(f"storage:\n  localfs:\n    root: {tmp_path / 'data'}\n    fsync: false\n")
    return subprocess.run(
        [sys.executable, "-m", "visiona_storage.cli", "--config", str(config), *args],
        input=stdin,
        capture_output=True,
        timeout=60,
        check=False,
    )


def test_put_get_stat_ls_rm_round_trip(tmp_path: Path) -> None:
    source = tmp_path / "model.onnx"
    source.write_bytes(os.urandom(100_000))
    put = run(tmp_path, "put", "models/u1/model.onnx", str(source), "--meta", "framework=onnx")
    assert put.returncode == 0, put.stderr
    assert json.loads(put.stdout)["size"] == 100_000
    got = run(tmp_path, "get", "models/u1/model.onnx")
    assert (got.returncode, got.stdout) == (0, source.read_bytes())
    dest = tmp_path / "copy.onnx"
    assert run(tmp_path, "get", "models/u1/model.onnx", str(dest)).returncode == 0
    assert dest.read_bytes() == source.read_bytes()
    info = json.loads(run(tmp_path, "stat", "models/u1/model.onnx").stdout)
    assert info["metadata"] == {"framework": "onnx"}
    listing = run(tmp_path, "ls", "models/").stdout.decode()
    assert "models/u1/model.onnx" in listing
    assert "100000" in listing
    assert run(tmp_path, "rm", "models/u1/model.onnx").returncode == 0
    assert run(tmp_path, "ls").stdout == b""


def test_stdin_and_stdout(tmp_path: Path) -> None:
    assert run(tmp_path, "put", "piped", "-", stdin=b"from stdin").returncode == 0
    assert run(tmp_path, "get", "piped", "-").stdout == b"from stdin"


def test_exit_codes_and_one_line_messages(tmp_path: Path) -> None:
    missing = run(tmp_path, "stat", "nope")
    assert missing.returncode == 1
    assert missing.stderr.decode().strip() == "visiona-storage: no object at key 'nope'"
    bad_key = run(tmp_path, "get", "a//b")
    assert bad_key.returncode == 2
    assert len(bad_key.stderr.decode().strip().splitlines()) == 1
    bad_meta = run(tmp_path, "put", "k", "-", "--meta", "no-equals", stdin=b"x")
    assert bad_meta.returncode == 2
    no_file = run(tmp_path, "put", "k", str(tmp_path / "absent.bin"))
    assert no_file.returncode == 2
    assert b"Traceback" not in no_file.stderr
    usage = run(tmp_path, "frobnicate")
    assert usage.returncode == 2
    (tmp_path / "bad.yaml").write_text("storage:\n  backend: ftp\n")
    bad_config = subprocess.run(
        [sys.executable, "-m", "visiona_storage.cli", "--config", str(tmp_path / "bad.yaml"), "ls"],
        capture_output=True,
        check=False,
    )
    assert bad_config.returncode == 2
    assert b"storage.backend" in bad_config.stderr
    conflict = run(tmp_path, "put", "k", "-", "--if-none-match", "*", stdin=b"1")
    assert conflict.returncode == 0
    again = run(tmp_path, "put", "k", "-", "--if-none-match", "*", stdin=b"2")
    assert again.returncode == 1


def test_a_progress_bar_on_large_transfers(tmp_path: Path) -> None:
    source = tmp_path / "big.bin"
    source.write_bytes(b"x" * (6 * MiB))
    put = run(tmp_path, "put", "big", str(source), "--progress")
    assert b"6.0 MiB / 6.0 MiB 100%" in put.stderr
    quiet = run(tmp_path, "put", "big", str(source))
    assert quiet.stderr == b""


def test_presign_prints_urls(tmp_path: Path) -> None:
    get_url = run(tmp_path, "presign", "k").stdout.decode().strip()
    put_url = run(
        tmp_path, "presign", "k", "--put", "--content-type", "x/y", "--max-size", "10"
    ).stdout.decode()
    assert get_url.startswith("http://localhost:3001/storage/k?X-VS-Expires=")
    assert "X-VS-Max-Size=10" in put_url
    guessed = run(tmp_path, "presign", "notes.txt", "--put").stderr.decode()
    assert guessed == "visiona-storage: the upload must carry Content-Type: text/plain; charset=utf-8\n"
    assert run(tmp_path, "presign", "k", "--ttl", "9999999").returncode == 2
    refused = run(tmp_path, "presign", "k", "--put", "--max-size", "-1")
    assert refused.returncode == 2
    assert refused.stderr.decode().count("\n") == 1
    assert "max_size" in refused.stderr.decode()


def test_serve_answers_presigned_urls_and_cleans_up_at_start(tmp_path: Path) -> None:
    port = free_port()
    root = tmp_path / "data"
    (tmp_path / "storage.yaml").write_text(
        f"storage:\n  localfs:\n    root: {root}\n    base_url: http://127.0.0.1:{port}/storage\n"
    )
    (root / "x").mkdir(parents=True)
    leftover = root / "x" / temp_name()
    leftover.write_bytes(b"left by a crash")
    os.utime(leftover, (1, 1))
    (root / "x" / "k.vs-tmp").write_bytes(b"a person's file")
    (root / "notes.meta.json").write_bytes(b"{}")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "visiona_storage.cli",
            "--config",
            str(tmp_path / "storage.yaml"),
            "serve",
            "--port",
            str(port),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        wait_for_port(port, proc, 30, "visiona-storage serve")
        assert not leftover.exists()
        assert (root / "x" / "k.vs-tmp").read_bytes() == b"a person's file"
        assert (root / "notes.meta.json").read_bytes() == b"{}"
        assert run(tmp_path, "put", "hello.txt", "-", stdin=b"hello").returncode == 0
        url = run(tmp_path, "presign", "hello.txt").stdout.decode().strip()
        with urllib.request.urlopen(url, timeout=10) as response:
            assert response.read() == b"hello"
    finally:
        stop_process(proc, signal.SIGINT)
    err = proc.stderr.read().decode() if proc.stderr else ""
    assert "removed 1 leftover files; left alone 2 files with reserved names" in err


def test_cleanup_counts_what_it_removed_and_what_it_left_alone(tmp_path: Path) -> None:
    root = tmp_path / "data"
    (tmp_path / "storage.yaml").write_text(f"storage:\n  localfs:\n    root: {root}\n")
    (root / "m").mkdir(parents=True)
    (root / "m" / "notes.meta.json").write_bytes(b"my notes" * 12_500)
    result = run(tmp_path, "cleanup")
    assert result.returncode == 0
    assert result.stdout.decode().strip() == (
        "removed 0 leftover files; left alone 1 files with reserved names that the store did not make"
        " (first: 'm/notes.meta.json')"
    )
    assert (root / "m" / "notes.meta.json").read_bytes() == b"my notes" * 12_500


def test_serve_with_two_workers_shares_the_port_and_stops_them_all(tmp_path: Path) -> None:
    """`serve --workers 2` runs two worker processes from the same configuration:
    both answer presigned URLs signed with the one key, and SIGINT stops them all."""
    port = free_port()
    root = tmp_path / "data"
    (tmp_path / "storage.yaml").write_text(
        f"storage:\n  localfs:\n    root: {root}\n    base_url: http://127.0.0.1:{port}/storage\n"
    )
    proc = subprocess.Popen(
        [
            *(sys.executable, "-m", "visiona_storage.cli", "--config", "storage.yaml"),
            *("serve", "--port", str(port), "--workers", "2"),
        ],
        cwd=tmp_path,  # a relative --config must reach the workers too
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    workers: set[int] = set()
    try:
        wait_for_port(port, proc, 30, "visiona-storage serve --workers 2")
        put_url = run(tmp_path, "presign", "a/b.bin", "--put", "--content-type", "x/y").stdout.decode()
        request = urllib.request.Request(put_url.strip(), b"x" * 1000, {"Content-Type": "x/y"}, method="PUT")
        with urllib.request.urlopen(request, timeout=10) as response:
            assert response.status == 200
        get_url = run(tmp_path, "presign", "a/b.bin").stdout.decode().strip()
        for _ in range(20):
            with urllib.request.urlopen(get_url, timeout=10) as response:
                assert response.read() == b"x" * 1000
        workers = _children_running(proc.pid, "spawn_main")
        assert len(workers) == 2
    finally:
        stop_process(proc, signal.SIGINT, seconds=20)
    assert proc.returncode == 0, proc.stderr.read() if proc.stderr else b""
    assert all(not Path(f"/proc/{pid}").exists() for pid in workers)


def _children_running(parent: int, marker: str) -> set[int]:
    """The PIDs of `parent`'s children whose command line contains `marker`."""
    found = set()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            command = (entry / "cmdline").read_bytes()
        except (OSError, ValueError):
            continue
        if ppid == parent and marker.encode() in command:
            found.add(int(entry.name))
    return found


def test_serve_refuses_a_bad_worker_count(tmp_path: Path) -> None:
    result = run(tmp_path, "serve", "--workers", "0")
    assert result.returncode == 2
    assert b"storage.server.workers" in result.stderr


def test_serve_refuses_the_s3_backend(tmp_path: Path) -> None:
    (tmp_path / "storage.yaml").write_text(
        "storage:\n  backend: s3\n  s3:\n    endpoint: http://127.0.0.1:1\n    bucket: b\n"
    )
    result = run(tmp_path, "serve")
    assert result.returncode == 2
    assert b"localfs" in result.stderr


@pytest.mark.parametrize("command", ["serve --help", "put --help", "--help"])
def test_help(tmp_path: Path, command: str) -> None:
    assert run(tmp_path, *command.split()).returncode == 0


def test_config_may_come_before_or_after_the_command(tmp_path: Path) -> None:
    first = tmp_path / "first.yaml"
    first.write_text(f"storage:\n  localfs:\n    root: {tmp_path / 'one'}\n")
    second = tmp_path / "second.yaml"
    second.write_text(f"storage:\n  localfs:\n    root: {tmp_path / 'two'}\n")
    (tmp_path / "x").write_bytes(b"x")
    cli = [sys.executable, "-m", "visiona_storage"]
    after = ["put", "k", str(tmp_path / "x"), "--config", str(first)]
    before = ["--config", str(second), "put", "k", "-"]
    for args in (after, before):
        done = subprocess.run([*cli, *args], input=b"y", capture_output=True, check=False, timeout=60)
        assert done.returncode == 0, done.stderr
    assert (tmp_path / "one" / "k").read_bytes() == b"x"
    assert (tmp_path / "two" / "k").read_bytes() == b"y"
    # Both given: the one after the command is the command's.
    both = [*cli, "--config", str(first), "stat", "k", "--config", str(second)]
    done = subprocess.run(both, capture_output=True, check=False, timeout=60)
    assert json.loads(done.stdout)["size"] == 1
    assert json.loads(done.stdout)["etag"] == hashlib.sha256(b"y").hexdigest()


def test_help_is_plain_text(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "visiona_storage", "--help"], capture_output=True, check=False, timeout=60
    )
    assert done.returncode == 0
    assert b"``" not in done.stdout
    assert b"--version" in done.stdout


def test_presign_points_at_the_configured_port(tmp_path: Path) -> None:
    (tmp_path / "storage.yaml").write_text(
        f"storage:\n  localfs:\n    root: {tmp_path / 'data'}\n  server:\n    port: 8123\n"
    )
    done = run(tmp_path, "presign", "a/b")
    assert done.stdout.decode().startswith("http://localhost:8123/storage/a/b?")


def test_serve_on_a_port_in_use_is_one_line(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = run(tmp_path, "serve", "--port", str(port))
    assert done.returncode == 1
    assert done.stderr.decode().strip() == (
        f"visiona-storage: cannot listen on 127.0.0.1:{port}: Address already in use"
    )


def test_a_yaml_error_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "storage.yaml").write_text("storage:\n  backend: [unclosed\n")
    done = run(tmp_path, "ls")
    assert done.returncode == 2
    assert len(done.stderr.decode().strip().splitlines()) == 1


def test_ls_quotes_a_key_with_control_characters() -> None:
    """S3 lists keys other clients wrote, which may hold a newline or an escape
    sequence: ls prints them quoted, so they cannot fake lines or drive the terminal."""
    from visiona_storage._sync_command import shown as _shown  # noqa: PLC0415

    assert _shown("models/with space/模型.onnx") == "models/with space/模型.onnx"
    assert _shown("evil\n   123  2026-01-01 00:00:00  fake") == '"evil\\n   123  2026-01-01 00:00:00  fake"'
    assert _shown("clear\x1b[2J") == '"clear\\u001b[2J"'
