"""Presigned URLs of the local backend: what is signed, rotation, and the kept key."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
import urllib.parse
from pathlib import Path

import pytest

import visiona_storage as vs
from visiona_storage._signing import EXPIRES, KEY_ID, MAX_SIZE, SIGNATURE, URLSigner

SECRET_A = "a" * 32
SECRET_B = "b" * 32


def _params(url: str) -> tuple[str, dict[str, str]]:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.unquote(parts.path), dict(urllib.parse.parse_qsl(parts.query))


def _mutations(
    params: dict[str, str], key: str, content_type: str
) -> list[tuple[str, str, dict[str, str], str]]:
    """Single-field changes: (method, key, params, content type) with exactly one field altered."""
    out: list[tuple[str, str, dict[str, str], str]] = []
    for method in ("GET", "DELETE", "POST", "HEAD", "get"):
        out.append((method, key, params, content_type))
    for other in (key + "x", key[:-1], key.upper(), "other/" + key, key.replace("/", "//"), key + "/"):
        out.append(("PUT", other, params, content_type))
    for ct in ("text/html", "", content_type + ";", content_type.upper(), content_type + " "):
        out.append(("PUT", key, params, ct))
    for name in (EXPIRES, KEY_ID, SIGNATURE, MAX_SIZE):
        value = params[name]
        variants = {value + "0", value[:-1], "", "x" + value, value.swapcase()}
        for position in range(len(value)):
            for replacement in "0123456789abcdefzZ-":
                variants.add(value[:position] + replacement + value[position + 1 :])
        for variant in variants - {value}:
            out.append(("PUT", key, {**params, name: variant}, content_type))
        out.append(("PUT", key, {k: v for k, v in params.items() if k != name}, content_type))
    return out


def test_a_thousand_single_field_mutations_are_all_refused() -> None:
    signer = URLSigner({"k1": SECRET_A})
    key, content_type = "models/u1/model.onnx", "application/octet-stream"
    params = signer.sign("PUT", key, 600, content_type, 1000)
    signer.verify("PUT", key, params, content_type)
    mutations = _mutations(params, key, content_type)
    refused = 0
    for method, other_key, other_params, other_type in mutations:
        with pytest.raises(vs.SignatureError):
            signer.verify(method, other_key, other_params, other_type)
        refused += 1
    print(f"\nsigned URL mutations: {len(mutations)} tried, {refused} refused")
    assert len(mutations) >= 1000
    assert refused == len(mutations)


def test_expiry_is_absolute_and_checked() -> None:
    signer = URLSigner({"k1": SECRET_A})
    params = signer.sign("GET", "k", 60, None, None)
    expires = int(params[EXPIRES])
    assert abs(expires - (time.time() + 60)) < 5
    signer.verify("GET", "k", params, None, now=expires)
    with pytest.raises(vs.SignatureError, match="expired"):
        signer.verify("GET", "k", params, None, now=expires + 1)


def test_rotation_one_key_signs_all_verify_and_a_retired_key_is_refused() -> None:
    old = URLSigner({"old": SECRET_A})
    old_url = old.sign("GET", "k", 600, None, None)
    rotated = URLSigner({"new": SECRET_B, "old": SECRET_A}, "new")
    rotated.verify("GET", "k", old_url, None)
    new_url = rotated.sign("GET", "k", 600, None, None)
    assert new_url[KEY_ID] == "new"
    retired = URLSigner({"new": SECRET_B})
    retired.verify("GET", "k", new_url, None)
    with pytest.raises(vs.SignatureError, match="unknown or retired"):
        retired.verify("GET", "k", old_url, None)


def test_a_key_id_signed_with_another_secret_is_refused() -> None:
    forged = URLSigner({"k1": "f" * 32}).sign("GET", "k", 600, None, None)
    with pytest.raises(vs.SignatureError):
        URLSigner({"k1": SECRET_A}).verify("GET", "k", forged, None)


@pytest.mark.parametrize(
    ("keys", "active"),
    [({}, None), ({"k": "short"}, None), ({"bad id!": SECRET_A}, None), ({"k": SECRET_A}, "missing")],
)
def test_bad_signing_keys_are_config_errors_that_hide_the_secret(
    keys: dict[str, str], active: str | None
) -> None:
    with pytest.raises(vs.ConfigError) as caught:
        URLSigner(keys, active)
    assert SECRET_A not in str(caught.value)


def test_the_signer_repr_shows_no_secret() -> None:
    assert SECRET_A not in repr(URLSigner({"k1": SECRET_A}))


def test_the_generated_key_is_kept_mode_0600_and_urls_survive_a_restart(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    with vs.LocalFSStore(root) as first:
        url = first.presigned_get_url("k", ttl=600)
    key_file = root / ".visiona-storage" / "signing-keys.json"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    with vs.LocalFSStore(root) as second:
        key, params = _params(url)
        second.signer.verify("GET", key.removeprefix("/storage/"), params, None)
    assert [i.key for i in vs.LocalFSStore(root).list()] == []


@pytest.mark.timeout(30)
def test_a_fifo_in_place_of_the_key_file_is_a_config_error_not_a_hang(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    (root / ".visiona-storage").mkdir(parents=True)
    os.mkfifo(root / ".visiona-storage" / "signing-keys.json")
    with vs.LocalFSStore(root) as store, pytest.raises(vs.ConfigError, match="damaged"):
        store.presigned_get_url("k", ttl=600)


def test_processes_starting_together_agree_on_one_key(tmp_path: Path) -> None:
    root = tmp_path / "storage"
    script = "import sys, visiona_storage as vs; print(vs.LocalFSStore(sys.argv[1]).signer.active)"
    procs = [
        subprocess.Popen([sys.executable, "-c", script, str(root)], stdout=subprocess.PIPE, text=True)
        for _ in range(6)
    ]
    ids = {p.communicate()[0].strip() for p in procs}
    assert len(ids) == 1
    assert os.listdir(root / ".visiona-storage") == ["signing-keys.json"]


def test_configured_keys_sign_and_no_key_file_is_made(tmp_path: Path) -> None:
    store = vs.LocalFSStore(
        tmp_path / "s", signing_keys={"k2": SECRET_B, "k1": SECRET_A}, signing_key_id="k2"
    )
    _, params = _params(store.presigned_put_url("a/b", ttl=60, content_type="x/y", max_size=10))
    assert params[KEY_ID] == "k2"
    assert params[MAX_SIZE] == "10"
    assert not (tmp_path / "s" / ".visiona-storage").exists()


def test_presigned_url_percent_encodes_the_key(tmp_path: Path) -> None:
    store = vs.LocalFSStore(tmp_path / "s", base_url="http://h:1/storage/")
    url = store.presigned_get_url("dir/a b%?#模型.nef")
    assert url.startswith("http://h:1/storage/dir/a%20b%25%3F%23%E6%A8%A1%E5%9E%8B.nef?")


@pytest.mark.parametrize("field", [EXPIRES, MAX_SIZE])
@pytest.mark.parametrize("digits", ["²", "①", "1796488013²", "\u0661\u0662", "\uff11\uff12"])
def test_unicode_digits_in_a_signed_field_are_refused(field: str, digits: str) -> None:
    signer = URLSigner({"k1": SECRET_A})
    params = signer.sign("PUT", "k", 900, "application/octet-stream", 10)
    params[field] = digits
    with pytest.raises(vs.SignatureError, match="malformed"):
        signer.verify("PUT", "k", params, "application/octet-stream")


def test_a_url_valid_for_more_than_7_days_is_refused_even_if_signed() -> None:
    signer = URLSigner({"k1": SECRET_A})
    params = signer.sign("GET", "k", 7 * 24 * 3600, None, None)
    assert signer.verify("GET", "k", params, None)  # 7 days is allowed
    later = int(params[EXPIRES]) + 3600  # as if signed by a signer that allows more
    forged = {**params, EXPIRES: str(later)}
    forged[SIGNATURE] = signer._mac(
        SECRET_A.encode(), method="GET", key="k", expires=later, key_id="k1", content_type=None, max_size=None
    )
    with pytest.raises(vs.SignatureError, match="7 days"):
        signer.verify("GET", "k", forged, None)


@pytest.mark.parametrize(("ttl", "max_size"), [(900, -1), (0, None), (7 * 24 * 3600 + 1, None), (900, True)])
def test_signing_a_url_nobody_could_use_is_refused(ttl: int, max_size: int | None) -> None:
    with pytest.raises(vs.InvalidArgumentError):
        URLSigner({"k1": SECRET_A}).sign("PUT", "k", ttl, None, max_size)


def test_presigned_put_url_with_a_negative_max_size_is_refused(tmp_path: Path) -> None:
    with vs.LocalFSStore(tmp_path) as store, pytest.raises(vs.InvalidArgumentError, match="max_size"):
        store.presigned_put_url("k", max_size=-1)


@pytest.mark.parametrize("secret", [32, 3.5, None, ["a" * 32], {"a": 1}, True])
def test_a_signing_key_that_is_not_text_is_a_config_error(secret: object) -> None:
    with pytest.raises(vs.ConfigError, match="must be text"):
        URLSigner({"k1": secret})  # type: ignore[dict-item]


@pytest.mark.parametrize(
    "content",
    [
        b'{"active": "k1", "keys": {"k1": 32}}',
        b'{"active": "k1", "keys": {"k1": null}}',
        b'{"active": 1, "keys": {"k1": "' + b"a" * 64 + b'"}}',
        b'{"active": "k1", "keys": ["k1"]}',
        b"[]",
        b"32",
        b"\xff\xfe",
        b'{"active": "k2", "keys": {"k1": "' + b"a" * 64 + b'"}}',
    ],
)
def test_a_damaged_signing_key_file_is_one_config_error(tmp_path: Path, content: bytes) -> None:
    (tmp_path / ".visiona-storage").mkdir()
    (tmp_path / ".visiona-storage/signing-keys.json").write_bytes(content)
    with vs.LocalFSStore(tmp_path) as store, pytest.raises(vs.ConfigError, match="damaged") as caught:
        store.presigned_get_url("k")
    assert "\n" not in str(caught.value)


def test_a_signing_key_file_others_can_read_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with vs.LocalFSStore(tmp_path) as store:
        store.presigned_get_url("k")
    os.chmod(tmp_path / ".visiona-storage/signing-keys.json", 0o644)
    with caplog.at_level("WARNING"), vs.LocalFSStore(tmp_path) as store:
        store.presigned_get_url("k")
    assert "can be read by others (mode 644)" in caplog.text
