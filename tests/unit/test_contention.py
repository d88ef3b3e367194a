"""Writer-fight detection: Contended after N repairs each undone within the window, writes backing off."""

from __future__ import annotations

import itertools

import pytest

from bucketwarden.contention import ContentionPolicy, advance, contended_message, is_contended, should_write
from bucketwarden.spec import Contention

POLICY = ContentionPolicy(window=3, threshold=3, max_backoff=8)


def fight(reconciles: int, *, policy: ContentionPolicy = POLICY) -> tuple[list[int], Contention | None]:
    """Another writer removes our statement right after every write; returns the reconciles that wrote."""
    state: Contention | None = None
    writes = []
    for n in range(reconciles):
        if should_write(state):
            writes.append(n)
            state = advance(state, repaired=True, in_sync=True, policy=policy)
        else:
            state = advance(state, repaired=False, in_sync=False, policy=policy)
    return writes, state


def test_contention_becomes_contended_after_threshold_repairs() -> None:
    state: Contention | None = None
    for repair in range(1, POLICY.threshold + 1):
        assert not is_contended(state, POLICY)
        state = advance(state, repaired=True, in_sync=True, policy=POLICY)
        assert state is not None and state.repairs == repair
    assert is_contended(state, POLICY)


def test_contention_backs_off_exponentially_up_to_the_cap() -> None:
    writes, state = fight(60)
    gaps = [b - a for a, b in itertools.pairwise(writes)]
    # First repairs back to back, then 1, 2, 4, 8 reconciles skipped, then capped at 8.
    assert gaps[: POLICY.threshold - 1] == [1] * (POLICY.threshold - 1)
    assert gaps[POLICY.threshold - 1 : POLICY.threshold + 3] == [2, 3, 5, 9]
    assert set(gaps[POLICY.threshold + 3 :]) == {POLICY.max_backoff + 1}
    assert is_contended(state, POLICY)
    assert len(writes) < 60 // 4  # a fight without back-off would have written 60 times


def test_contention_ends_when_our_statement_stays_for_a_window() -> None:
    _, state = fight(10)
    while not should_write(state):
        state = advance(state, repaired=False, in_sync=False, policy=POLICY)
    state = advance(state, repaired=True, in_sync=True, policy=POLICY)  # the other writer stopped
    for _ in range(POLICY.window):
        state = advance(state, repaired=False, in_sync=True, policy=POLICY)
        assert state is not None
    assert advance(state, repaired=False, in_sync=True, policy=POLICY) is None


@pytest.mark.parametrize("in_sync", [True, False], ids=["in-sync", "not-in-sync"])
def test_contention_without_a_repair_has_no_state(in_sync: bool) -> None:
    assert advance(None, repaired=False, in_sync=in_sync, policy=POLICY) is None
    assert should_write(None)


def test_contention_a_single_drift_repair_long_ago_is_not_a_fight() -> None:
    state = advance(None, repaired=True, in_sync=True, policy=POLICY)
    for _ in range(POLICY.window + 2):
        state = advance(state, repaired=False, in_sync=False, policy=POLICY)
    state = advance(state, repaired=True, in_sync=True, policy=POLICY)
    assert state is not None and state.repairs == 1


def test_contended_message_names_the_count_and_the_likely_writers() -> None:
    _, state = fight(10)
    assert state is not None
    message = contended_message(state, POLICY)
    assert f"last {state.repairs} repairs" in message
    for writer in ("Terraform", "Crossplane", "ACK"):
        assert writer in message
