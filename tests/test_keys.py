"""The one key rule set."""

from __future__ import annotations

import pytest

import visiona_storage as vs
from visiona_storage._keys import key_problem, prefix_can_match
from visiona_storage.testing import BAD_KEYS, ODD_KEYS


@pytest.mark.parametrize("key", ODD_KEYS, ids=lambda k: repr(k)[:30])
def test_odd_keys_are_valid(key: str) -> None:
    assert vs.check_key(key) == key


@pytest.mark.parametrize("key", BAD_KEYS, ids=lambda k: repr(k)[:30])
def test_bad_keys_are_invalid_key_errors_and_value_errors(key: object) -> None:
    with pytest.raises(vs.InvalidKeyError) as caught:
        vs.check_key(key)
    assert isinstance(caught.value, ValueError)


def test_limits_are_counted_in_utf8_bytes() -> None:
    assert "segment" in (key_problem("a" * 1024) or "")  # one 1024-byte segment
    assert key_problem("/".join(["a" * 200] * 5) + "/" + "b" * 19) is None  # 1024 bytes
    assert key_problem("/".join(["a" * 200] * 5) + "/" + "b" * 20) is not None  # 1025 bytes
    assert key_problem("模" * 66) is None  # 198 bytes in one segment
    assert key_problem("模" * 67) is not None  # 201 bytes in one segment
    assert key_problem("x" * 200) is None
    assert key_problem("x" * 201) is not None


@pytest.mark.parametrize(
    ("key", "words"),
    [
        ("", "empty"),
        ("a//b", "empty segment"),
        ("a/..", "'..'"),
        ("a\\b", "backslash"),
        ("a\x00", "control"),
        ("/a", "starts with '/'"),
        ("a.meta.json", "reserved"),
    ],
)
def test_the_error_says_which_rule_is_broken(key: str, words: str) -> None:
    with pytest.raises(vs.InvalidKeyError, match=words.replace("(", r"\(")) as caught:
        vs.check_key(key)
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("prefix", "can_match"),
    [
        ("", True),
        ("models/", True),
        ("models/u1", True),
        ("a/..b", True),
        ("a" * 200, True),
        ("a" * 201, False),
        ("../", False),
        ("a/./", False),
        ("a//", False),
        ("/", False),
        ("a\\", False),
        ("x\x00", False),
        ("x.meta.json/", False),
        ("x.meta.json", True),  # could still become "x.meta.json5"
    ],
)
def test_a_prefix_no_valid_key_can_start_with_is_known(prefix: str, can_match: bool) -> None:
    assert prefix_can_match(prefix) is can_match
