"""Session-wide servers for the S3 tests: moto's server, and a Ceph cluster with its
RADOS Gateway over HTTP and HTTPS (skipped only outside CI where Ceph is not installed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

import visiona_storage as vs
from servers import FIGURES, LiveServer, S3Server, ceph_rgw, have_ceph, moto_server


@pytest.fixture(autouse=True)
def _own_cache_folder(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test's `sync` state cache (``$XDG_CACHE_HOME``) in a folder of its own,
    never the user's."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path_factory.mktemp("cache")))


@pytest.fixture(scope="session")
def live() -> Iterator[LiveServer]:
    """A real uvicorn on loopback; a test points it at its own app with ``live.serve(app)``."""
    with LiveServer() as server:
        yield server


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    yield from moto_server(Path(tmp_path_factory.mktemp("moto")))


@pytest.fixture(scope="session")
def ceph_servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[S3Server, S3Server]]:
    if not have_ceph() and not os.environ.get("CI"):
        pytest.skip("Ceph is not installed: run `scripts/ceph-rgw install` (CI always runs these)")
    yield from ceph_rgw(Path(tmp_path_factory.mktemp("ceph")))


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    """Keep what each test printed (its figure) for the summary, so that a plain
    run, as in CI, shows every figure without ``-s``."""
    if report.when == "call":
        for line in report.capstdout.splitlines():
            if line.strip():
                FIGURES.append(f"{report.nodeid.split('::', 1)[-1]}: {line.strip()}")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """Print the figures the tests and the server fixtures measured."""
    if FIGURES:
        terminalreporter.section("figures")
    for line in FIGURES:
        terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def ceph(ceph_servers: tuple[S3Server, S3Server]) -> S3Server:
    return ceph_servers[0]


@pytest.fixture(scope="session")
def ceph_https(ceph_servers: tuple[S3Server, S3Server]) -> S3Server:
    return ceph_servers[1]


@pytest.fixture(params=["localfs", "ceph"])
def shared_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, vs.Store]]:
    """A store shared across processes, on localfs and on Ceph: (how a `workers.py`
    command opens it, the store here)."""
    if request.param == "localfs":
        root = str(tmp_path / "storage")
        yield root, vs.LocalFSStore(root)
        return
    ceph: S3Server = request.getfixturevalue("ceph")
    bucket = ceph.new_bucket()
    spec = f"s3|{ceph.endpoint}|{bucket}|{ceph.access_key}|{ceph.secret_key}"
    yield (
        spec,
        vs.S3Store(bucket, endpoint=ceph.endpoint, access_key=ceph.access_key, secret_key=ceph.secret_key),
    )
    ceph.drop_bucket(bucket)


@pytest.fixture(params=["moto", "ceph"])
def server(request: pytest.FixtureRequest) -> S3Server:
    """Each real S3 server in turn: moto's, then Ceph's RADOS Gateway."""
    found: S3Server = request.getfixturevalue(request.param)
    return found
