"""The benchmark harness keeps working: a tiny run of its local groups writes a table
and JSON with every figure. No timing is judged here; see bench/run.py for figures."""

from __future__ import annotations

import http.client
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from servers import LiveServer, S3Server

ROOT = Path(__file__).resolve().parent.parent


def test_the_harness_runs_and_writes_every_figure(tmp_path: Path) -> None:
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "run.py"),
            "--only",
            "localfs,obstore",
            "--runs",
            "1",
            "--mib",
            "4",
            "--objects",
            "50",
            "--listed",
            "200",
            "--dir",
            str(tmp_path),
            "--json",
            str(tmp_path / "results.json"),
        ],
        check=True,
        capture_output=True,
        text=True,
        timeout=300,
    ).stdout
    results = json.loads((tmp_path / "results.json").read_text())
    names = [f["name"] for f in results["figures"]]
    assert names
    for name in names:
        assert f"| {name} |" in out
    assert "| figure | ours | baseline |" in out
    for figure in results["figures"]:
        assert figure["ours"]
        assert len(figure["ours"]) == len(figure["theirs"])
    assert results["machine"]["cpu"]
    compared = _compare(tmp_path / "results.json", tmp_path / "results.json")
    assert len(compared) == 2 + len(names)
    assert compared[0].count("| run at ") == 2
    for name, line in zip(names, compared[2:], strict=True):
        assert line.startswith(f"| {name} |")
        assert line.rstrip().endswith(("| yes |", "| no |", "|  |"))
    older = dict(results, figures=results["figures"][1:])  # an older harness lacked the first figure
    (tmp_path / "older.json").write_text(json.dumps(older))
    compared = _compare(tmp_path / "older.json", tmp_path / "results.json")
    assert len(compared) == 2 + len(names)
    assert compared[2].startswith(f"| {names[0]} | {results['figures'][0]['baseline']} | - | ")


def _compare(*results: Path) -> list[str]:
    """The lines bench/compare.py prints for these JSON files."""
    return subprocess.run(
        [sys.executable, str(ROOT / "bench" / "compare.py"), *map(str, results)],
        check=True,
        capture_output=True,
        text=True,
        timeout=60,
    ).stdout.splitlines()


def test_the_upload_ceiling_app_receives_the_whole_body(live: LiveServer) -> None:
    """bench/_sink_asgi.py, the bound beside PUT through serve, reads every message
    of a chunked upload before it answers (it must not answer early)."""
    sink = _bench_module("_sink_asgi")
    received = 0

    async def counting(scope: Any, receive: Any, send: Any) -> None:
        async def counted() -> Any:
            nonlocal received
            message = await receive()
            received += len(message.get("body", b""))
            return message

        await sink.app(scope, counted, send)

    live.serve(counting)
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
    try:
        chunks = (b"x" * (256 << 10) for _ in range(12))  # 3 MiB, sent chunked
        conn.request("PUT", "/", body=chunks, encode_chunked=True)
        response = conn.getresponse()
        assert (response.status, response.read()) == (200, b"ok")
    finally:
        conn.close()
    assert received == 3 << 20


def test_the_s3_harness_measures_each_client_and_curl_on_ceph(ceph: S3Server) -> None:
    """bench/s3_vs_boto3.py, in a tiny run on the suite's Ceph cluster, gives every
    row: ours against boto3 and obstore, curl's get, and peak RSS."""
    env = {
        **os.environ,
        "CEPH_RGW_ENDPOINT": ceph.endpoint,
        "CEPH_RGW_ACCESS_KEY": ceph.access_key,
        "CEPH_RGW_SECRET_KEY": ceph.secret_key,
    }
    try:
        out = subprocess.run(
            [sys.executable, str(ROOT / "bench" / "s3_vs_boto3.py"), "--runs", "1", "--sizes", "1"],
            env=env,
            check=True,
            capture_output=True,
            text=True,
            timeout=600,
        ).stdout
    finally:
        ceph.drop_bucket("bench")
    rows = [line.split(" | ")[0].removeprefix("| ") for line in out.splitlines() if line.startswith("| S3 ")]
    assert rows == [
        "S3 put 1 MiB on Ceph",
        "S3 put 1 MiB on Ceph",
        "S3 put 1 MiB on Ceph: peak RSS",
        "S3 get 1 MiB on Ceph",
        "S3 get 1 MiB on Ceph",
        "S3 get 1 MiB on Ceph by curl on a presigned URL (no Python client: what the server gives)",
        "S3 get 1 MiB on Ceph: peak RSS",
    ]


def test_the_s3_harness_counts_the_cpu_of_the_cluster_it_started(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The daemons are found by scripts/ceph-rgw's pid files; one that is gone counts
    nothing; the note gives each client's median CPU and wall seconds."""
    s3 = _bench_module("s3_vs_boto3", monkeypatch)
    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "mon.a.pid").write_text(f"{os.getpid()}\n")
    (tmp_path / "run" / "osd.0.pid").write_text("999999999\n")
    pids = s3.ceph_pids(str(tmp_path))
    assert pids == [os.getpid(), 999999999]
    before = s3.cpu_seconds(pids)
    start = time.process_time()
    while time.process_time() - start < 0.2:
        pass
    assert s3.cpu_seconds(pids) - before >= 0.1
    results = {
        "ours": [{"seconds": 0.5, "server_cpu": 0.75}, {"seconds": 0.7, "server_cpu": 0.85}],
        "boto3": [{"seconds": 0.6, "server_cpu": 0.8}, {"seconds": 0.6, "server_cpu": 0.9}],
    }
    assert s3._server_note(results) == (
        "; Ceph's CPU per transfer in wall time, median: ours 0.80 s in 0.60 s, boto3 0.85 s in 0.60 s"
    )
    unmeasured = {who: [dict(r, server_cpu=0.0) for r in rs] for who, rs in results.items()}
    assert s3._server_note(unmeasured) == ""


def test_the_serve_upload_bound_counts_serve_its_loop_and_the_client(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each upload's CPU is split into the server's process, its main thread (the
    event loop) and the client child; the bound spreads the parts over the cores."""
    bench = _bench_module("http_vs_nginx", monkeypatch)
    cpu = bench.UploadCPU(os.getpid())

    def upload() -> None:  # the "server" (this process's main thread) and a "client" both busy
        subprocess.run(
            [
                sys.executable,
                "-c",
                "import time\nt = time.process_time()\nwhile time.process_time() - t < 0.3: pass",
            ],
            check=True,
        )
        start = time.thread_time()
        while time.thread_time() - start < 0.2:
            pass

    cpu.around(upload)()
    [(serve, loop, client)] = cpu.uploads
    assert serve >= 0.1
    assert 0.15 <= loop <= serve + 0.02  # ticks against nanoseconds
    assert client >= 0.25
    cpu.uploads = [(0.5, 0.2, 0.1), (0.6, 0.1, 0.2), (0.4, 0.15, 0.15)]
    assert bench.upload_cpu_note(cpu, [0.3, 0.4, 0.5], 2) == (
        "CPU per upload, median: serve 0.50 s (its event loop 0.15 s), curl 0.15 s, "
        "in 0.40 s of wall time: 1.6 of 2 cores busy"
    )
    assert bench.least_upload_seconds(0.2, 0.1, 0.15, 0.15, 2) == pytest.approx(0.3)
    source = tmp_path / "source.bin"
    source.write_bytes(os.urandom(9 << 20))
    hashing, writing = bench.hash_and_write_cpu(str(source), str(tmp_path))
    assert hashing > 0
    assert writing > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["source.bin"]
    gone = subprocess.Popen([sys.executable, "-c", ""])
    gone.wait()
    assert bench.main_thread_cpu_seconds(gone.pid) == 0.0


def _bench_module(name: str, monkeypatch: pytest.MonkeyPatch | None = None) -> Any:
    """bench/`name`.py, imported (with bench/ on the path for its own imports if
    `monkeypatch` is given)."""
    if monkeypatch is not None:
        monkeypatch.syspath_prepend(str(ROOT / "bench"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "bench" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
