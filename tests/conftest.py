"""Session-wide servers for the S3 tests."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from servers import S3Server, moto_server


@pytest.fixture(scope="session")
def moto(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    yield from moto_server(Path(tmp_path_factory.mktemp("moto")))
