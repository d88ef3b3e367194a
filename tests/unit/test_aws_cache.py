"""TtlCache: expiry, single flight, negative entries and invalidation (no AWS)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from bucketwarden.aws import CacheStats, ManualClock, TtlCache
from bucketwarden.errors import AwsUnavailableError, RoleNotFoundError


class Loader:
    """Counts loads; each can be slowed down or made to fail."""

    def __init__(self, *, delay: float = 0.0, error: Exception | None = None) -> None:
        self.calls = 0
        self.delay = delay
        self.error = error
        self._lock = threading.Lock()

    def __call__(self) -> str:
        with self._lock:
            self.calls += 1
            n = self.calls
        time.sleep(self.delay)
        if self.error is not None:
            raise self.error
        return f"value-{n}"


def make_cache(clock: ManualClock, **kwargs: object) -> TtlCache[str, str]:
    return TtlCache(ttl=300.0, clock=clock, **kwargs)  # type: ignore[arg-type]


def test_cache_serves_until_ttl_then_reloads() -> None:
    clock = ManualClock()
    cache = make_cache(clock)
    load = Loader()

    assert cache.get("k", load) == "value-1"
    clock.advance(299.9)
    assert cache.get("k", load) == "value-1"
    clock.advance(0.2)
    assert cache.get("k", load) == "value-2"
    assert cache.stats() == CacheStats(hits=1, misses=2)


def test_cache_single_flight_shares_one_load_among_concurrent_callers() -> None:
    cache = make_cache(ManualClock())
    load = Loader(delay=0.2)
    start = threading.Barrier(50)

    def ask(_: int) -> str:
        start.wait()
        return cache.get("k", load)

    with ThreadPoolExecutor(max_workers=50) as pool:
        results = list(pool.map(ask, range(50)))

    assert results == ["value-1"] * 50
    assert load.calls == 1
    assert cache.stats() == CacheStats(hits=49, misses=1)


def test_cache_loads_different_keys_in_parallel() -> None:
    cache = make_cache(ManualClock())
    together = threading.Barrier(4, timeout=30)  # breaks unless all four loads are in flight at once

    def load(key: str) -> str:
        together.wait()
        return f"value-{key}"

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda key: cache.get(key, lambda: load(key)), ["a", "b", "c", "d"]))

    assert results == ["value-a", "value-b", "value-c", "value-d"]


def test_cache_shares_a_transient_error_with_waiters_but_does_not_keep_it() -> None:
    cache = make_cache(ManualClock(), negative_ttl=10.0, negative_types=(RoleNotFoundError,))
    load = Loader(delay=1.0, error=AwsUnavailableError("throttled"))  # slack for a loaded 2-core CI machine
    start = threading.Barrier(20)

    def ask(_: int) -> BaseException | None:
        start.wait()
        try:
            cache.get("k", load)
        except AwsUnavailableError as exc:
            return exc
        return None

    with ThreadPoolExecutor(max_workers=20) as pool:
        errors = list(pool.map(ask, range(20)))

    assert all(isinstance(e, AwsUnavailableError) for e in errors)
    assert load.calls == 1  # a throttled burst must not become 20 more calls
    with pytest.raises(AwsUnavailableError):
        cache.get("k", load)
    assert load.calls == 2  # but the error is not kept


def test_cache_keeps_a_negative_result_for_negative_ttl() -> None:
    clock = ManualClock()
    cache = make_cache(clock, negative_ttl=10.0, negative_types=(RoleNotFoundError,))
    load = Loader(error=RoleNotFoundError("role x not found"))

    for _ in range(3):
        with pytest.raises(RoleNotFoundError, match="role x not found"):
            cache.get("k", load)
    assert load.calls == 1

    clock.advance(10.1)
    load.error = None
    assert cache.get("k", load) == "value-2"


@pytest.mark.parametrize("predicate", [None, lambda key: key == "k"], ids=["all", "one-key"])
def test_cache_invalidate_drops_entries(predicate: object) -> None:
    cache = make_cache(ManualClock())
    load = Loader()
    cache.get("k", load)

    cache.invalidate(predicate)  # type: ignore[arg-type]

    assert cache.get("k", load) == "value-2"


def test_cache_does_not_keep_a_load_that_raced_an_invalidate() -> None:
    cache = make_cache(ManualClock())
    loading = threading.Event()
    release = threading.Event()

    def slow_load() -> str:
        loading.set()
        release.wait(5)
        return "stale"

    with ThreadPoolExecutor(max_workers=1) as pool:
        first = pool.submit(cache.get, "k", slow_load)
        loading.wait(5)
        cache.invalidate()
        release.set()
        assert first.result() == "stale"

    assert cache.get("k", lambda: "fresh") == "fresh"
