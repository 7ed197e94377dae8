"""The wheel ships what users import: the package, its type marker and the suite."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_wheel_ships_the_conformance_suite_and_py_typed(tmp_path: Path) -> None:
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--quiet",
            "--no-deps",
            "--no-build-isolation",
            "--wheel-dir",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
    )
    (wheel,) = tmp_path.glob("visiona_storage-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert "visiona_storage/testing/__init__.py" in names
    assert "visiona_storage/testing/_suite.py" in names
    assert "visiona_storage/py.typed" in names
    assert not any(name.startswith("tests/") for name in names)
