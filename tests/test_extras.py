"""The core install (``pip install visiona-storage``) holds the Store, localfs, memory,
the configuration and the CLI's store verbs; S3 and the HTTP server are extras. A
missing extra is one line naming the ``pip install`` that adds it, never a traceback.

The extras' packages are hidden from a child interpreter (``sys.modules[name] =
None`` makes both ``import`` and ``importlib.util.find_spec`` see them missing).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SERVER = ("starlette", "uvicorn", "anyio", "httptools", "uvloop")
S3 = ("boto3", "botocore", "s3transfer")


def _run(code: str, hidden: tuple[str, ...], cwd: Path) -> subprocess.CompletedProcess[str]:
    prelude = f"import sys\nfor name in {hidden!r}:\n    sys.modules[name] = None\n"
    return subprocess.run(
        [sys.executable, "-c", prelude + code],
        check=False,
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=60,
    )


def test_importing_the_library_loads_neither_boto3_nor_a_web_server(tmp_path: Path) -> None:
    code = (
        "import visiona_storage as vs, visiona_storage.driver, visiona_storage.testing\n"
        f"print(sorted(m for m in sys.modules if m.split('.')[0] in {(*SERVER, *S3)!r}))"
    )
    result = _run(code, (), tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_the_core_install_puts_and_gets_on_localfs_from_python_and_the_cli(tmp_path: Path) -> None:
    code = (
        "import visiona_storage as vs\n"
        "with vs.open_store({'storage': {'localfs': {'root': 'data'}}}) as s:\n"
        "    s.put('a/b', b'hi')\n"
        "    assert s.get('a/b').read() == b'hi'\n"
        "    print(s.presigned_get_url('a/b', ttl=60))\n"
        "from visiona_storage.cli import main\n"
        "sys.exit(main(['ls']))\n"
    )
    result = _run(code, (*SERVER, *S3), tmp_path)
    assert result.returncode == 0, result.stderr
    assert "http://localhost:3001/storage/a/b?" in result.stdout


def test_serve_without_the_server_extra_is_one_line_naming_it(tmp_path: Path) -> None:
    code = "from visiona_storage.cli import main\nsys.exit(main(['serve']))\n"
    result = _run(code, SERVER, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "visiona-storage: the HTTP endpoint (and serve) needs starlette, uvicorn, anyio, httptools:"
        " pip install 'visiona-storage[server]' (from a clone: pip install '.[server]')"
    ]


def test_s3_without_its_extra_is_one_line_from_the_cli_and_a_typed_error_in_python(tmp_path: Path) -> None:
    (tmp_path / "s3.yaml").write_text("storage:\n  backend: s3\n  s3:\n    bucket: b\n")
    cli = "from visiona_storage.cli import main\nsys.exit(main(['--config', 's3.yaml', 'ls']))"
    result = _run(cli, S3, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "visiona-storage: the S3 backend needs boto3: pip install 'visiona-storage[s3]'"
        " (from a clone: pip install '.[s3]')"
    )
    code = (
        "import visiona_storage as vs\n"
        "for attempt in (lambda: vs.open_store('s3.yaml'), lambda: vs.S3Store):\n"
        "    try:\n"
        "        attempt()\n"
        "    except vs.MissingExtraError as exc:\n"
        "        assert isinstance(exc, ImportError) and isinstance(exc, vs.ConfigError)\n"
        "        print(exc)\n"
    )
    result = _run(code, S3, tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.count("pip install 'visiona-storage[s3]'") == 2


def test_python_m_and_version(tmp_path: Path) -> None:
    import visiona_storage as vs  # noqa: PLC0415

    result = subprocess.run(
        [sys.executable, "-m", "visiona_storage", "--version"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
    )
    assert result.returncode == 0
    assert result.stdout.strip() == f"visiona-storage {vs.__version__}"
