"""The one key rule set."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import visiona_storage as vs
from visiona_storage._keys import is_valid_key, key_problem, prefix_can_match
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


def _verdict(key: str) -> bool:
    try:
        vs.check_key(key)
    except vs.InvalidKeyError:
        valid = False
    else:
        valid = True
    assert is_valid_key(key) == valid
    return valid


EDGE_KEYS = [
    ".",
    "..",
    "...",
    "./a",
    "../a",
    "a/.",
    "a/..",
    "a/./b",
    "a/../b",
    ".a",
    "..a",
    "a..",
    "a/.b/..c",
    "a/",
    "/a",
    "a//b",
    "-",
    "_",
    "a.meta.json",
    "a.meta.json/b",
    "a.vs-tmp",
    ".visiona-storage",
    ".visiona-storage/k",
    "a/.visiona-storagex",
    "x.meta.jsonx",
    "a\n",
    "a\nb",
    "a b",
    "x" * 200,
    "x" * 201,
    "/".join(["x" * 200] * 5) + "/" + "y" * 19,
    "/".join(["x" * 200] * 5) + "/" + "y" * 20,
]


@pytest.mark.parametrize("key", EDGE_KEYS, ids=lambda k: repr(k)[:30])
def test_the_fast_check_of_plain_keys_agrees_with_the_rules(key: str) -> None:
    assert _verdict(key) == (key_problem(key) is None)


@settings(max_examples=3000, deadline=None)
@given(st.text(alphabet="a./-_\n", max_size=40) | st.text(alphabet="ab./", min_size=190, max_size=1100))
def test_check_key_agrees_with_the_rules_on_generated_plain_keys(key: str) -> None:
    assert _verdict(key) == (key_problem(key) is None)


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


@pytest.mark.parametrize(
    "key",
    [
        "X.META.JSON",
        "models/Model.Meta.Json",
        "a/x.VS-TMP",
        ".VISIONA-STORAGE/signing-keys.json",
        ".Visiona-Storage",
        "x.meta.j\u017fon",  # long s: casefolds to "s"
        "x.meta.\uff2a\uff33\uff2f\uff2e",  # fullwidth JSON
    ],
)
def test_reserved_names_are_refused_in_any_case_a_filesystem_may_fold(key: str) -> None:
    with pytest.raises(vs.InvalidKeyError, match="reserved"):
        vs.check_key(key)
    assert _verdict(key) is False


@pytest.mark.parametrize("key", ["META.JSON", "x.meta.jsonl", "Visiona-Storage", "a.vs-tmp.txt"])
def test_names_that_only_resemble_reserved_ones_are_keys(key: str) -> None:
    assert vs.check_key(key) == key
