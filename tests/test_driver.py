"""`visiona_storage.driver`: everything a backend needs is public there, and the
project's own portable backends are written with it alone."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import pytest

import visiona_storage as vs
from visiona_storage import driver

PACKAGE = Path(vs.__file__).parent
ON_THE_DRIVER = [PACKAGE / "backends" / "memory.py", *sorted((PACKAGE / "backends" / "s3").glob("*.py"))]


@pytest.mark.parametrize("path", ON_THE_DRIVER, ids=lambda p: p.name)
def test_portable_backends_import_only_the_driver_from_the_library(path: Path) -> None:
    """memory and S3 use no private module of the library: what they need, a third
    party's backend can have too."""
    tree = ast.parse(path.read_text())
    outside = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level > 0:
            module = node.module or ""
            own_package = node.level == 1
            if not own_package and module not in ("driver", "_extras"):
                outside.append(f"{'.' * node.level}{module}")
    assert outside == []


def test_every_driver_name_is_documented_and_importable() -> None:
    for name in driver.__all__:
        value = getattr(driver, name)
        if inspect.isclass(value) or inspect.isfunction(value):
            assert (value.__doc__ or "").strip(), name


def test_a_store_without_a_signer_says_so_and_a_local_one_has_one(tmp_path: Path) -> None:
    assert vs.MemoryStore().url_signer is None
    with vs.LocalFSStore(tmp_path) as store:
        signer = store.url_signer
        assert isinstance(signer, driver.URLSigner)
        url = store.presigned_get_url("a/b", ttl=60)
        query = dict(part.split("=", 1) for part in url.split("?", 1)[1].split("&"))
        assert signer.verify("GET", "a/b", query, None).max_size is None


def test_the_precondition_check_follows_rfc_9110() -> None:
    check = driver.check_precondition
    check("k", None, None, "*", exists=False)
    check("k", "e1", "*", None, exists=True)
    check("k", "e1", "e1", None, exists=True)
    for current, if_match, if_none_match, exists in [
        ("e1", None, "*", True),
        (None, "*", None, False),
        ("e1", "e2", None, True),
        (None, "e1", None, True),  # exists, but no ETag known
    ]:
        with pytest.raises(vs.PreconditionFailedError):
            check("k", current, if_match, if_none_match, exists=exists)
