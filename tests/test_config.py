"""Configuration: YAML with ${VAR}, the environment alone, and open_store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import visiona_storage as vs

SECRET = "s3cr3t-VALUE-never-shown"


def _write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "storage.yaml"
    path.write_text(text)
    return path


def test_the_design_example_loads_with_variables(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
storage:
  backend: s3
  localfs:
    root: ./data/storage
    base_url: http://localhost:3001/storage
  s3:
    endpoint: "${S3_ENDPOINT:-http://127.0.0.1:7480}"
    bucket: visiona-models
    region: us-east-1
    access_key: ${S3_ACCESS_KEY}
    secret_key: ${S3_SECRET_KEY}
""",
    )
    config = vs.load_config(path, {"S3_ACCESS_KEY": "AK", "S3_SECRET_KEY": SECRET})
    assert config.backend == "s3"
    assert config.s3.endpoint == "http://127.0.0.1:7480"
    assert (config.s3.access_key, config.s3.secret_key) == ("AK", SECRET)
    assert SECRET not in repr(config)


def test_no_file_and_no_environment_means_localfs_at_data_storage() -> None:
    config = vs.load_config(None, {})
    assert config.backend == "localfs"
    assert config.localfs.root == "./data/storage"
    assert config.localfs.base_url == "http://localhost:3001/storage"


def test_the_environment_alone_configures_s3() -> None:
    env = {
        "STORAGE_BACKEND": "s3",
        "S3_ENDPOINT": "http://127.0.0.1:9000",
        "S3_BUCKET": "b1",
        "S3_REGION": "eu-west-1",
        "S3_ACCESS_KEY": "AK",
        "S3_SECRET_KEY": SECRET,
    }
    config = vs.load_config(None, env)
    assert (config.backend, config.s3.endpoint, config.s3.bucket, config.s3.region) == (
        "s3",
        "http://127.0.0.1:9000",
        "b1",
        "eu-west-1",
    )


def test_open_store_defaults_to_localfs_in_the_working_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("STORAGE_BACKEND", "S3_BUCKET", "STORAGE_ROOT"):
        monkeypatch.delenv(name, raising=False)
    with vs.open_store() as store:
        assert isinstance(store, vs.LocalFSStore)
        store.put("k", b"x")
    assert (tmp_path / "data/storage/k").read_bytes() == b"x"


def test_open_store_from_a_file_and_from_a_loaded_config(tmp_path: Path) -> None:
    path = _write(tmp_path, f"storage:\n  localfs:\n    root: {tmp_path / 'r'}\n    fsync: false\n")
    with vs.open_store(path) as store:
        assert isinstance(store, vs.LocalFSStore)
        assert store.fsync is False
    with vs.open_store(vs.load_config(path)) as store:
        assert isinstance(store, vs.LocalFSStore)
    with vs.open_store(
        {"storage": {"backend": "localfs", "localfs": {"root": str(tmp_path / "m")}}}
    ) as store:
        assert isinstance(store, vs.LocalFSStore)
        assert store.root == str(tmp_path / "m")


def test_open_store_makes_an_s3_store(tmp_path: Path) -> None:
    store = vs.open_store(
        {"storage": {"backend": "s3", "s3": {"endpoint": "http://127.0.0.1:1", "bucket": "b"}}}
    )
    assert isinstance(store, vs.S3Store)
    assert store.bucket == "b"


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("storage:\n  backend: ftp\n", "storage.backend"),
        ("storage:\n  bakend: s3\n", "bakend"),
        ("storage:\n  localfs:\n    fsync: maybe\n", "storage.localfs.fsync"),
        ("storage:\n  localfs:\n    base_url: localhost\n", "storage.localfs.base_url"),
        ("storage:\n  s3:\n    bukcet: x\n", "bukcet"),
        ("storage:\n  server:\n    port: 99999\n", "storage.server.port"),
        ("storage:\n  server:\n    port: many\n", "storage.server.port"),
        ("storage:\n  server:\n    cors_origins: '*'\n", "storage.server.cors_origins"),
        ("storage:\n  server:\n    workers: 0\n", "storage.server.workers"),
        ("storage:\n  server:\n    workers: 65\n", "storage.server.workers"),
        ("storage:\n  server:\n    header_timeout: 0\n", "storage.server.header_timeout"),
        ("storage:\n  server:\n    body_timeout: -1\n", "storage.server.body_timeout"),
        ("storage:\n  server:\n    send_timeout: .nan\n", "storage.server.send_timeout"),
        ("storage:\n  server:\n    send_timeout: .inf\n", "storage.server.send_timeout"),
        ("storage:\n  server:\n    body_timeout: soon\n", "storage.server.body_timeout"),
        ("storage:\n  server:\n    body_timeout: true\n", "storage.server.body_timeout"),
        ("storage:\n  server:\n    header_timeout: 3601\n", "storage.server.header_timeout"),
        ("storage:\n  server:\n    max_header_bytes: 100\n", "storage.server.max_header_bytes"),
        ("storage:\n  server:\n    max_header_bytes: 2000000\n", "storage.server.max_header_bytes"),
        ("storage:\n  server:\n    max_connections: 0\n", "storage.server.max_connections"),
        ("storage:\n  server:\n    max_connections: 1.5\n", "storage.server.max_connections"),
        (
            "storage:\n  backend: s3\n  s3:\n    bucket: b\n    secret_key: ${NOT_SET_ANYWHERE}\n",
            "NOT_SET_ANYWHERE",
        ),
        ("storage:\n  localfs:\n    root: ${NOT_SET_ANYWHERE}\n", "NOT_SET_ANYWHERE"),
        ("storage:\n  backend: s3\n", "storage.s3.bucket"),
        ("storage:\n  backend: s3\n  s3:\n    bucket: ''\n", "storage.s3.bucket"),
        ("storage: [1, 2]\n", "storage"),
        ("other: 1\n", "storage"),
        ("storage:\n  backend: [unclosed\n", "YAML"),
    ],
)
def test_a_bad_config_is_a_config_error_naming_the_field(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(vs.ConfigError) as caught:
        vs.load_config(_write(tmp_path, text), {})
    assert field in str(caught.value)


def test_the_unused_backends_section_may_name_unset_variables(tmp_path: Path) -> None:
    text = (
        "storage:\n  backend: localfs\n  localfs:\n    root: ${ROOT:-./data}\n"
        "  s3:\n    bucket: models\n    access_key: ${S3_ACCESS_KEY}\n    secret_key: ${S3_SECRET_KEY}\n"
    )
    config = vs.load_config(_write(tmp_path, text), {})
    assert config.localfs.root == "./data"
    assert config.s3.bucket == "models"
    assert config.s3.access_key is None
    with pytest.raises(vs.ConfigError, match="S3_ACCESS_KEY"):
        vs.load_config(_write(tmp_path, text.replace("backend: localfs", "backend: s3")), {})
    with pytest.raises(vs.ConfigError, match="bakend"):  # a typo in the unused section still counts
        vs.load_config(_write(tmp_path, text + "    bakend: x\n"), {})


def test_presigned_urls_point_at_the_port_serve_listens_on(tmp_path: Path) -> None:
    config = vs.load_config(_write(tmp_path, "storage:\n  server:\n    port: 8080\n"), {})
    assert config.localfs.base_url == "http://localhost:8080/storage"
    config = vs.load_config(_write(tmp_path, "storage:\n  server:\n    host: 10.0.0.5\n"), {})
    assert config.localfs.base_url == "http://10.0.0.5:3001/storage"
    assert vs.load_config(_write(tmp_path, "storage: {}\n"), {}).localfs.base_url == (
        "http://localhost:3001/storage"
    )
    explicit = "storage:\n  localfs:\n    base_url: https://cdn.example.com/s\n  server:\n    port: 8080\n"
    assert vs.load_config(_write(tmp_path, explicit), {}).localfs.base_url == "https://cdn.example.com/s"


def test_s3_from_the_environment_needs_a_bucket() -> None:
    with pytest.raises(vs.ConfigError, match="S3_BUCKET"):
        vs.load_config(None, {"STORAGE_BACKEND": "s3"})
    assert vs.load_config(None, {"STORAGE_BACKEND": "s3", "S3_BUCKET": "m"}).s3.bucket == "m"


def test_server_limits_are_read_as_numbers(tmp_path: Path) -> None:
    text = (
        "storage:\n  server:\n    header_timeout: 2.5\n    body_timeout: '12'\n    send_timeout: 7\n"
        "    max_header_bytes: 8192\n    max_connections: '50'\n"
    )
    server = vs.load_config(_write(tmp_path, text), {}).server
    assert (server.header_timeout, server.body_timeout, server.send_timeout) == (2.5, 12.0, 7.0)
    assert isinstance(server.send_timeout, float)
    assert (server.max_header_bytes, server.max_connections) == (8192, 50)
    defaults = vs.load_config(_write(tmp_path, "storage: {}\n"), {}).server
    assert (defaults.header_timeout, defaults.body_timeout, defaults.send_timeout) == (10.0, 30.0, 30.0)
    assert (defaults.max_header_bytes, defaults.max_connections) == (65536, 1000)


def test_secrets_never_appear_in_config_errors(tmp_path: Path) -> None:
    for text in (
        f"storage:\n  s3:\n    secret_key: [{SECRET}]\n    access_key: AK\n",
        f"storage:\n  backend: s3\n  s3:\n    secret_key: {SECRET}\n",
        f"storage:\n  localfs:\n    signing_keys: {SECRET}\n",
    ):
        with pytest.raises(vs.ConfigError) as caught:
            vs.load_config(_write(tmp_path, text), {})
        assert SECRET not in str(caught.value)


def test_a_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(vs.ConfigError, match="cannot read"):
        vs.load_config(tmp_path / "nope.yaml")


def test_variables_with_defaults_and_signing_keys(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        """
storage:
  localfs:
    root: ${ROOT:-/tmp/x}
    signing_keys: {k1: "${SIGNING_KEY}"}
    signing_key_id: k1
  server:
    cors_origins: ["https://app.example.com"]
""",
    )
    config = vs.load_config(path, {"SIGNING_KEY": "k" * 32})
    assert config.localfs.root == "/tmp/x"
    assert config.localfs.signing_keys == {"k1": "k" * 32}
    assert config.server.cors_origins == ("https://app.example.com",)
    assert "k" * 32 not in repr(config)
    assert os.environ.get("SIGNING_KEY") is None
