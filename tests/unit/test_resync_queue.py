"""The resync queue: deadlines, jitter, pokes, bounded concurrency, one tick per key at a time, lag in order."""

from __future__ import annotations

import asyncio
import random
from collections import Counter

import pytest

from bucketwarden.k8s._scheduler import ResyncQueue


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def _queue(clock: FakeClock, *, interval: float = 10.0, jitter: float = 0.0, concurrency: int = 4) -> ResyncQueue:
    return ResyncQueue(interval=interval, jitter=jitter, concurrency=concurrency, clock=clock, rng=random.Random(7))


def test_a_tracked_key_is_due_one_interval_later_and_tracking_again_keeps_its_deadline() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    queue.track("a")
    clock.now += 5
    queue.track("a")  # a watch event for a known object: no new deadline
    assert queue._pop_due(clock.now) is None
    clock.now += 5
    assert queue._pop_due(clock.now) == ("a", 1010.0)
    assert queue._pop_due(clock.now) is None


def test_jitter_spreads_a_burst_of_new_keys_over_the_jitter_window() -> None:
    clock = FakeClock()
    queue = _queue(clock, jitter=6.0)
    for i in range(200):
        queue.track(f"k{i}")
    deadlines = sorted(queue._due.values())
    assert deadlines[0] >= 1010.0 and deadlines[-1] <= 1016.0
    assert deadlines[-1] - deadlines[0] > 5.0  # spread, not one burst


def test_poke_makes_a_key_due_now_and_forget_drops_it() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    queue.track("a")
    queue.track("b")
    queue.poke("b")
    assert queue._pop_due(clock.now) == ("b", 1000.0)
    queue.forget("a")
    clock.now += 100
    assert queue._pop_due(clock.now) is None
    assert "a" not in queue and len(queue) == 0


def test_stale_heap_entries_are_compacted() -> None:
    clock = FakeClock()
    queue = _queue(clock)
    queue.track("a")
    for _ in range(1000):
        queue.poke("a")
    assert len(queue._heap) < 200
    assert queue._pop_due(clock.now) == ("a", 1000.0)


def _run(queue: ResyncQueue, tick: object, seconds: float) -> None:
    async def main() -> None:
        task = asyncio.create_task(queue.run(tick))  # type: ignore[arg-type]
        await asyncio.sleep(seconds)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())


def test_runner_ticks_every_key_once_per_interval_and_reschedules_from_the_start_of_the_tick() -> None:
    queue = ResyncQueue(interval=0.2, jitter=0.0, concurrency=8)
    seen: Counter[str] = Counter()

    async def tick(key: str) -> bool:
        seen[key] += 1
        await asyncio.sleep(0.05)
        return True

    for i in range(20):
        queue.track(f"k{i}")
    _run(queue, tick, 0.95)  # due at 0.2, 0.4, 0.6, 0.8
    assert set(seen) == {f"k{i}" for i in range(20)}
    assert set(seen.values()) == {4}, seen


def test_runner_never_exceeds_its_concurrency_nor_runs_one_key_twice_at_once() -> None:
    queue = ResyncQueue(interval=0.01, jitter=0.0, concurrency=3)
    running: set[str] = set()
    peak = 0
    overlaps = 0

    async def tick(key: str) -> bool:
        nonlocal peak, overlaps
        if key in running:
            overlaps += 1
        running.add(key)
        peak = max(peak, len(running))
        queue.poke(key)  # poked while in flight: runs again after, never beside itself
        await asyncio.sleep(0.02)
        running.discard(key)
        return True

    for i in range(10):
        queue.track(f"k{i}")
    _run(queue, tick, 0.5)
    assert peak == 3
    assert overlaps == 0
    assert queue.ticks > 20


def test_a_tick_that_says_gone_drops_the_key_and_a_failing_tick_keeps_it() -> None:
    queue = ResyncQueue(interval=0.05, jitter=0.0, concurrency=2)
    seen: Counter[str] = Counter()

    async def tick(key: str) -> bool:
        seen[key] += 1
        if key == "boom":
            raise RuntimeError("AWS is down")
        return key != "gone"

    for key in ("gone", "boom", "ok"):
        queue.track(key)
    _run(queue, tick, 0.33)
    assert seen["gone"] == 1
    assert seen["boom"] >= 4 and seen["ok"] >= 4
    assert "gone" not in queue and "boom" in queue


def test_a_tick_that_started_late_keeps_its_rate_and_one_an_interval_late_starts_again_from_its_start() -> None:
    """Fixed rate: after a failover's round of 10,000 ticks queued behind each other, each key's next deadline is
    one interval after its last one, not after its late start (that stretched the interval to 63.5 s in one B10)."""
    clock = FakeClock()
    queue = _queue(clock, interval=10.0)

    async def tick(key: str) -> bool:
        clock.now += 0.5  # the tick itself takes time
        return True

    def run_due() -> None:
        popped = queue._pop_due(clock.now)
        assert popped is not None
        asyncio.run(queue._one(tick, popped[0], popped[1], clock.now, asyncio.Semaphore(0)))

    queue.track("a")  # due at 1010
    clock.now = 1013.0  # the runner reached it 3 s late
    run_due()
    assert queue._next_deadline() == 1020.0  # not 1023
    clock.now = 1035.0  # now 15 s late: more than an interval, so no catch-up tick right away
    run_due()
    assert queue._next_deadline() == 1045.0


def test_a_late_queue_serves_keys_oldest_deadline_first() -> None:
    clock = FakeClock()
    queue = _queue(clock, interval=10.0)
    for i in range(5):
        queue.track(f"k{i}")
        clock.now += 1
    clock.now += 60  # the workers fell far behind
    order = []
    while (popped := queue._pop_due(clock.now)) is not None:
        order.append(popped[0])
    assert order == [f"k{i}" for i in range(5)]


def test_a_new_earlier_deadline_wakes_a_sleeping_runner() -> None:
    queue = ResyncQueue(interval=30.0, jitter=0.0, concurrency=1)
    seen: list[str] = []

    async def tick(key: str) -> bool:
        seen.append(key)
        return True

    async def main() -> None:
        queue.track("late")  # due in 30 s: the runner sleeps towards it
        task = asyncio.create_task(queue.run(tick))
        await asyncio.sleep(0.05)
        queue.poke("now")
        await asyncio.sleep(0.05)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(main())
    assert seen == ["now"]
    assert queue.lag_seconds < 0.05


def test_one_queue_replaces_kopf_timers_unless_kopf_peering_must_pause_a_standby() -> None:
    from bucketwarden.k8s import OperatorSettings, build_registry
    from bucketwarden.k8s._fleet_index import CLAIMS, TARGETS
    from tests.shared import fleet_entries

    def handlers(peering: bool) -> tuple[set[str], set[str]]:
        registry = build_registry(OperatorSettings(peering=peering, metrics_port=0, health_port=0))
        timers = {str(h.id) for h in registry._spawning.get_all_handlers()}
        return timers, {tag for tag, _ in fleet_entries(registry, "ns", "x")}

    timers, parts = handlers(peering=False)
    assert "resync" not in timers and parts == {CLAIMS, TARGETS}
    timers, parts = handlers(peering=True)
    assert "resync" in timers and parts == {CLAIMS}


def test_a_key_forgotten_and_tracked_again_during_its_tick_never_runs_twice_at_once() -> None:
    queue = ResyncQueue(interval=0.05, jitter=0.0, concurrency=4)
    running: set[str] = set()
    overlaps = 0
    seen: Counter[str] = Counter()

    async def tick(key: str) -> bool:
        nonlocal overlaps
        overlaps += key in running
        running.add(key)
        seen[key] += 1
        if seen[key] == 1:
            queue.forget(key)  # deleted ...
            queue.track(key)  # ... and recreated under the same name while this tick runs
            await asyncio.sleep(0.12)  # longer than the interval: a second run would start beside this one
        else:
            await asyncio.sleep(0.01)
        running.discard(key)
        return True

    queue.track("a")
    _run(queue, tick, 0.4)
    assert overlaps == 0
    assert seen["a"] >= 3  # still ticking after the recreate
    assert "a" in queue


def test_a_key_forgotten_during_its_tick_is_not_rescheduled() -> None:
    queue = ResyncQueue(interval=0.05, jitter=0.0, concurrency=1)
    seen: Counter[str] = Counter()

    async def tick(key: str) -> bool:
        seen[key] += 1
        queue.forget(key)
        assert key not in queue and len(queue) == 0
        return True

    queue.track("a")
    _run(queue, tick, 0.3)
    assert seen["a"] == 1 and "a" not in queue


def test_overdue_counts_the_keys_due_and_not_started_and_the_longest_wait() -> None:
    clock = FakeClock()
    queue = _queue(clock, interval=10.0)
    for key in ("a", "b", "c"):
        queue.track(key)
    clock.now += 5
    queue.poke("d")
    assert queue.overdue() == (1, 0.0)
    clock.now += 7  # a, b, c due 2 s ago, d 7 s ago
    assert queue.overdue() == (4, 7.0)
    queue._pop_due(clock.now)
    assert queue.overdue()[0] == 3


def test_ticks_give_way_to_new_objects_but_none_waits_longer_than_max_defer() -> None:
    """However long a burst lasts: each tick waits at most max_defer past its deadline, then runs; the next one
    due waits again (before, the first max_defer seconds of a burst deferred everything, then nothing)."""
    clock = FakeClock()
    waiting = [True]
    queue = ResyncQueue(interval=10.0, jitter=0.0, concurrency=1, clock=clock, defer=lambda: waiting[0], max_defer=30.0)
    assert not queue.deferring()  # nothing tracked: nothing to hold back
    queue.poke("a")
    assert queue.deferring()
    clock.now += 29
    assert queue.deferring()
    clock.now += 2
    assert not queue.deferring()  # a has waited longer than max_defer: drift repair goes first
    assert queue._pop_due(clock.now) == ("a", clock.now - 31)
    queue.track("b")  # due one interval from now
    clock.now += 10 + 29
    assert queue.deferring()  # the burst goes on, 31 s after it began, and b has waited only 29 s
    waiting[0] = False
    assert not queue.deferring()


def test_the_runner_starts_no_tick_while_deferring() -> None:
    waiting = [True]
    ticked: list[str] = []

    async def tick(key: str) -> bool:
        ticked.append(key)
        return True

    async def scenario() -> None:
        queue = ResyncQueue(interval=60.0, jitter=0.0, concurrency=2, defer=lambda: waiting[0], max_defer=60.0)
        queue.poke("a")
        runner = asyncio.create_task(queue.run(tick))
        await asyncio.sleep(0.6)
        assert ticked == []
        waiting[0] = False
        await asyncio.sleep(0.6)
        runner.cancel()

    asyncio.run(scenario())
    assert ticked == ["a"]


def test_an_idle_queue_with_a_defer_callback_still_asks_it_now_and_then(monkeypatch: pytest.MonkeyPatch) -> None:
    """defer() carries the caller's upkeep (objects kopf never reaches are handed to the queue): an idle queue,
    with nothing tracked, must not sleep for ever without asking it."""
    from bucketwarden.k8s import _scheduler

    monkeypatch.setattr(_scheduler, "DEFER_IDLE_POLL_SECONDS", 0.05)
    asked: list[int] = []

    async def tick(key: str) -> bool:
        return True

    def defer() -> bool:
        asked.append(1)
        return False

    async def scenario() -> None:
        queue = ResyncQueue(interval=60.0, jitter=0.0, concurrency=1, defer=defer)
        runner = asyncio.create_task(queue.run(tick))
        await asyncio.sleep(0.5)
        runner.cancel()

    asyncio.run(scenario())
    assert len(asked) >= 3
