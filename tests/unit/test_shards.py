"""Shard ownership: a stable hash of namespace/name; every object has exactly one owning shard."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bucketwarden.k8s import OperatorSettings
from bucketwarden.k8s._shards import shard_filter, shard_of

NAMES = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-", min_size=1, max_size=63)


@given(namespace=NAMES, name=NAMES, count=st.integers(min_value=2, max_value=16))
def test_shard_filter_every_object_has_exactly_one_owner(namespace: str, name: str, count: int) -> None:
    filters = [shard_filter(count, i) for i in range(count)]
    owners = [i for i, f in enumerate(filters) if f is not None and f(namespace=namespace, name=name)]
    assert owners == [shard_of(namespace, name, count)]


@pytest.mark.parametrize("seed", ["0", "12345"], ids=["hashseed-0", "hashseed-12345"])
def test_shard_of_is_stable_across_processes(seed: str) -> None:
    # Every replica must compute the same owner: Python's hash() is salted per process, the shard hash must not be.
    code = "from bucketwarden.k8s._shards import shard_of; print([shard_of('team-a', f'pb-{i}', 7) for i in range(50)])"
    env = {**os.environ, "PYTHONHASHSEED": seed}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True).stdout
    assert out.strip() == str([shard_of("team-a", f"pb-{i}", 7) for i in range(50)])


def test_shard_of_spreads_objects_evenly() -> None:
    counts = Counter(shard_of("bench", f"bench-{i:05d}", 4) for i in range(4000))
    assert set(counts) == {0, 1, 2, 3}
    assert max(counts.values()) - min(counts.values()) < 200  # ~1000 each; binomial spread is ~30


def test_shard_filter_off_for_one_shard() -> None:
    assert shard_filter(1, 0) is None


@pytest.mark.parametrize(("count", "index"), [(2, 2), (1, 1)], ids=["index-equals-count", "one-shard-index-1"])
def test_operator_settings_reject_a_shard_out_of_range(count: int, index: int) -> None:
    with pytest.raises(ValueError, match="shard_index"):
        OperatorSettings(shard_count=count, shard_index=index)
