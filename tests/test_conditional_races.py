"""Conditional writes raced by many processes: exactly one creator, no lost update."""

from __future__ import annotations

import time

import pytest

import visiona_storage as vs
from processes import run_all


@pytest.mark.slow
def test_16_processes_racing_to_create_one_key_exactly_one_wins(shared_store: tuple[str, vs.Store]) -> None:
    spec, store = shared_store
    start_at = str(time.time() + 1.5)  # all start together, after their imports
    results = run_all([["create-once", spec, "lock/job-7", start_at] for _ in range(16)])
    winners = sum(r["won"] for r in results)
    print(f"\n16 processes put(if_none_match='*') on one key: {winners} succeeded, {16 - winners} refused")
    assert winners == 1
    with store.get("lock/job-7") as r:
        assert r.read().isdigit()


@pytest.mark.slow
def test_16_processes_incrementing_a_counter_lose_no_update(shared_store: tuple[str, vs.Store]) -> None:
    spec, store = shared_store
    store.put("counter", b"0")
    results = run_all([["increment", spec, "counter", "10"] for _ in range(16)])
    with store.get("counter") as r:
        final = int(r.read())
    retries = sum(r["retries"] for r in results)
    print(f"\n16 processes x 10 if_match increments: counter {final} (expected 160), {retries} retries")
    assert final == 160
