"""Lease-based leader election (k8s/_leader.py) against an in-memory Lease with the API server's conflict rules."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import pytest

from bucketwarden.k8s._leader import LeaderElector, LeaseConflictError, LeaseTiming


class Store:
    """One Lease with resourceVersion preconditions, as the API server keeps it."""

    def __init__(self) -> None:
        self.lease: dict[str, Any] | None = None
        self.version = 0
        self.writes = 0

    async def get(self) -> dict[str, Any] | None:
        return copy.deepcopy(self.lease)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        if self.lease is not None:
            raise LeaseConflictError("AlreadyExists")
        return self._store(body)

    async def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        assert self.lease is not None
        if body["metadata"].get("resourceVersion") != self.lease["metadata"]["resourceVersion"]:
            raise LeaseConflictError("Conflict")
        return self._store(body)

    def _store(self, body: dict[str, Any]) -> dict[str, Any]:
        self.version += 1
        self.writes += 1
        self.lease = copy.deepcopy(body)
        self.lease["metadata"]["resourceVersion"] = str(self.version)
        return copy.deepcopy(self.lease)

    @property
    def holder(self) -> str | None:
        holder = (self.lease or {}).get("spec", {}).get("holderIdentity")
        return str(holder) if holder is not None else None


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def elector(store: Store, clock: Clock, who: str) -> LeaderElector:
    return LeaderElector(store, name="bucketwarden", namespace="ops", identity=who, timing=LeaseTiming(), clock=clock)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_first_replica_takes_the_lease_and_the_second_waits_while_it_is_renewed() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    assert run(a.try_acquire_or_renew())
    for _ in range(20):  # 40 s of renewals every 2 s: b never takes over
        clock.now += 2.0
        assert not run(b.try_acquire_or_renew())
        assert run(a.try_acquire_or_renew())
    assert store.holder == "a"
    assert store.lease is not None and store.lease["spec"]["leaseTransitions"] == 0


def test_a_dead_leader_is_replaced_once_its_lease_is_unrenewed_for_the_lease_duration() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    run(a.try_acquire_or_renew())
    assert not run(b.try_acquire_or_renew())  # b first sees the record now
    clock.now += 14.0
    assert not run(b.try_acquire_or_renew())
    clock.now += 1.5
    assert run(b.try_acquire_or_renew())
    assert store.holder == "b"
    assert store.lease is not None and store.lease["spec"]["leaseTransitions"] == 1


def test_expiry_is_judged_by_the_standbys_clock_not_by_the_renew_time_written() -> None:
    store, clock = Store(), Clock()
    run(elector(store, clock, "a").try_acquire_or_renew())
    assert store.lease is not None
    store.lease["spec"]["renewTime"] = "2001-01-01T00:00:00.000000Z"  # a skewed (or hostile) clock
    assert not run(elector(store, clock, "b").try_acquire_or_renew())


def test_a_released_lease_is_taken_at_the_next_poll() -> None:
    store, clock = Store(), Clock()
    a, b = elector(store, clock, "a"), elector(store, clock, "b")
    run(a.try_acquire_or_renew())
    assert not run(b.try_acquire_or_renew())
    run(a.release())
    assert store.holder == ""
    assert run(b.try_acquire_or_renew())
    assert store.holder == "b"


def test_two_standbys_racing_for_an_expired_lease_make_one_leader() -> None:
    store, clock = Store(), Clock()
    run(elector(store, clock, "a").try_acquire_or_renew())
    b, c = elector(store, clock, "b"), elector(store, clock, "c")
    run(b.try_acquire_or_renew())
    run(c.try_acquire_or_renew())
    clock.now += 16.0

    async def race() -> list[bool]:
        return list(await asyncio.gather(b.try_acquire_or_renew(), c.try_acquire_or_renew()))

    assert sorted(run(race())) == [False, True]
    assert store.holder in ("b", "c")


def test_a_leader_whose_lease_another_replica_took_stops_holding() -> None:
    store = Store()
    timing = LeaseTiming(lease_duration_seconds=0.3, renew_deadline_seconds=0.2, retry_seconds=0.05)
    a = LeaderElector(store, name="l", namespace="ops", identity="a", timing=timing)
    run(a.try_acquire_or_renew())
    assert store.lease is not None
    store.lease["spec"]["holderIdentity"] = "b"  # b took it while a was partitioned
    store.lease["spec"]["renewTime"] = "later"

    async def held() -> bool:
        await asyncio.wait_for(a.hold(), 2.0)
        return a.leading

    assert run(held()) is False


@pytest.mark.parametrize("times", [(10.0, 10.0, 2.0), (15.0, 20.0, 2.0), (15.0, 10.0, 0.0)])
def test_timings_out_of_order_are_refused(times: tuple[float, float, float]) -> None:
    with pytest.raises(ValueError, match="retry < renew deadline < lease duration"):
        LeaseTiming(*times)
