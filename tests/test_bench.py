"""The benchmark harness keeps working: a tiny run of its local groups writes a table
and JSON with every figure. No timing is judged here; see bench/run.py for figures."""

from __future__ import annotations

import http.client
import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from servers import LiveServer

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
    assert len(names) == 13
    assert [n for n in names if "puts of 1 KiB" in n] == [
        "localfs 50 puts of 1 KiB over objects written a moment before, fsync off",
        "localfs 50 puts of 1 KiB over objects on disk, fsync off",
    ]
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
    spec = importlib.util.spec_from_file_location("_sink_asgi", ROOT / "bench" / "_sink_asgi.py")
    assert spec is not None
    assert spec.loader is not None
    sink = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(sink)
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
