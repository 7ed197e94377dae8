"""Browser uploads, in a real browser: Debian's Chromium driven by Playwright. A page
on one loopback origin PUTs a file with an ``x-amz-meta-*`` header to a presigned
URL, reads the ETag and the metadata header from JavaScript, downloads the object
and compares its SHA-256: against `serve` with CORS for that origin, and against
Ceph after `S3Store.setup`. A page on another origin is refused. The test saves a
screenshot of the page (``test-artifacts/browser-upload.png``).

CI installs Chromium (``bash scripts/test`` as root); elsewhere the test is skipped
when Chromium or Playwright is missing.
"""

from __future__ import annotations

import hashlib
import http.server
import shutil
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

import visiona_storage as vs
from servers import LiveServer, S3Server, free_port
from visiona_storage.http import create_app

ROOT = Path(__file__).resolve().parent.parent
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SCREENSHOT = ROOT / "test-artifacts" / "browser-upload.png"
SIZE = 3 * (1 << 20) + 12345
"""Bytes the page uploads: past 1 MiB, so `serve` receives it in pieces."""

playwright = pytest.importorskip("playwright.sync_api", reason="needs Playwright (the dev extra)")
if not Path(CHROMIUM).exists():
    pytest.skip("needs Debian's chromium (bash scripts/test installs it as root)", allow_module_level=True)

# Runs in the page: upload, read back, and report what the page could see.
ROUND_TRIP = """
async ({put, get, size}) => {
  const data = new Uint8Array(size);
  for (let i = 0; i < size; i++) data[i] = (i * 31 + 7) & 255;
  const hex = (buffer) => [...new Uint8Array(buffer)].map((b) => b.toString(16).padStart(2, "0")).join("");
  try {
    const sent = await fetch(put, {
      method: "PUT",
      body: data,
      headers: {"Content-Type": "application/octet-stream", "x-amz-meta-framework": "onnx"},
    });
    const got = await fetch(get);
    const body = await got.arrayBuffer();
    return {
      put: sent.status,
      etag: sent.headers.get("ETag"),
      get: got.status,
      framework: got.headers.get("x-amz-meta-framework"),
      size: body.byteLength,
      sha256: hex(await crypto.subtle.digest("SHA-256", body)),
    };
  } catch (error) {
    return {error: String(error)};
  }
}
"""


def what_the_page_should_see(info: vs.ObjectInfo) -> dict[str, Any]:
    """The round trip's result for the object `info` describes, stored whole."""
    return {
        "put": 200,
        "etag": f'"{info.etag}"',
        "get": 200,
        "framework": "onnx",
        "size": SIZE,
        "sha256": expected_sha256(),
    }


def expected_sha256() -> str:
    return hashlib.sha256(bytes((i * 31 + 7) & 255 for i in range(SIZE))).hexdigest()


class PageServer:
    """A blank page on a loopback origin of its own."""

    def __init__(self) -> None:
        self.port = free_port()
        self.origin = f"http://127.0.0.1:{self.port}"

        class Page(http.server.BaseHTTPRequestHandler):
            def do_GET(self) -> None:
                body = b"<!doctype html><title>upload</title><pre id=out>waiting</pre>"
                self.send_response(200)
                self.send_header("Content-Type", "text/html")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Page)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def __enter__(self) -> PageServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._server.shutdown()
        self._server.server_close()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    with playwright.sync_playwright() as driver:
        launched = driver.chromium.launch(
            executable_path=CHROMIUM,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield launched
        launched.close()


@pytest.fixture
def pages() -> Iterator[tuple[PageServer, PageServer]]:
    """The allowed page's origin, and another one."""
    with PageServer() as allowed, PageServer() as other:
        yield allowed, other


def round_trip(browser: Any, origin: str, put_url: str, get_url: str) -> dict[str, Any]:
    page = browser.new_page()
    try:
        page.goto(origin + "/")
        result: dict[str, Any] = page.evaluate(ROUND_TRIP, {"put": put_url, "get": get_url, "size": SIZE})
        return result
    finally:
        page.close()


def test_a_page_uploads_to_serve_and_reads_etag_and_metadata(
    browser: Any, pages: tuple[PageServer, PageServer], tmp_path: Path
) -> None:
    allowed, other = pages
    with (
        LiveServer() as live,
        vs.LocalFSStore(tmp_path / "storage", base_url=f"{live.url}/storage", fsync=False) as store,
    ):
        live.serve(create_app(store, cors_origins=[allowed.origin]))
        put_url = store.presigned_put_url("browser/model.onnx", 300, "application/octet-stream")
        get_url = store.presigned_get_url("browser/model.onnx", 300)
        seen = round_trip(browser, allowed.origin, put_url, get_url)
        info = store.stat("browser/model.onnx")
        assert seen == what_the_page_should_see(info)
        assert info.metadata == {"framework": "onnx"}
        elsewhere = store.presigned_put_url("browser/other.bin", 300)
        refused = round_trip(browser, other.origin, elsewhere, get_url)
        assert "Failed to fetch" in refused.get("error", ""), refused
        with pytest.raises(vs.NotFoundError):
            store.stat("browser/other.bin")  # the preflight was refused: nothing was sent


def test_a_page_uploads_to_ceph_after_setup(
    browser: Any, pages: tuple[PageServer, PageServer], ceph: S3Server
) -> None:
    allowed, other = pages
    bucket = f"browser-{uuid.uuid4().hex[:12]}"
    store = ceph.store(bucket)
    try:
        store.setup([allowed.origin], ["framework"])
        put_url = store.presigned_put_url("browser/model.onnx", 300, "application/octet-stream")
        get_url = store.presigned_get_url("browser/model.onnx", 300)
        page = browser.new_page()
        try:
            page.goto(allowed.origin + "/")
            seen = page.evaluate(ROUND_TRIP, {"put": put_url, "get": get_url, "size": SIZE})
            page.evaluate("(seen) => { document.getElementById('out').textContent = seen; }", _report(seen))
            SCREENSHOT.parent.mkdir(exist_ok=True)
            page.screenshot(path=str(SCREENSHOT))
        finally:
            page.close()
        info = store.stat("browser/model.onnx")
        assert seen == what_the_page_should_see(info)
        elsewhere = store.presigned_put_url("browser/other.bin", 300)
        refused = round_trip(browser, other.origin, elsewhere, get_url)
        assert "Failed to fetch" in refused.get("error", ""), refused
        with pytest.raises(vs.NotFoundError):
            store.stat("browser/other.bin")
    finally:
        store.close()
        ceph.drop_bucket(bucket)


def _report(seen: dict[str, Any]) -> str:
    lines = [f"Chromium on {CHROMIUM}: a page uploaded {SIZE} bytes to Ceph with a presigned PUT URL"]
    lines += [f"  {name}: {value}" for name, value in seen.items()]
    lines.append(f"  expected sha256: {expected_sha256()}")
    return "\n".join(lines)
