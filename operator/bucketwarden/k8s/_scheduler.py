"""One resync queue for every ProtectedBucket a replica owns, instead of one kopf timer per object.

A kopf timer is an asyncio task per object that, on every tick, builds kopf's whole handler invocation (causes,
kwargs, a per-object logger) and hops to a thread. At 10,000 objects and a 60 s resync that machinery runs 167
times a second for ticks that, in steady state, do one GetBucketPolicy and find nothing to do. Here, as in
controller-runtime's work queue, there is one heap of deadlines and a bounded pool of workers:

- ``track(key)`` schedules a new key one interval from now, plus a random share of the jitter (objects created in
  one burst do not tick in one burst); a key already tracked keeps its deadline. O(log n).
- ``poke(key)`` makes a key due now (an event says it changed); a key in flight runs again when it finishes.
- The runner starts due keys, at most ``concurrency`` at once, never the same key twice at once. The next deadline
  of a key is one interval after its last deadline (a fixed rate: a tick that started late does not push the key's
  schedule later, so a round of ticks that queue behind each other, as after a failover, does not stretch the
  interval), or one interval after its tick started when that deadline has already passed (more than an interval
  late: no catch-up bursts). When the workers fall behind, keys wait in deadline order (the oldest first), so the
  lag is shared evenly and is visible as ``lag_seconds``.
- A tick returns False when its object is gone: the key is dropped.
- New objects first, then resync: while ``defer()`` says work of higher priority is waiting (objects kopf has not
  handled yet, in a burst), a tick starts only once it is ``max_defer`` seconds past its deadline (one interval by
  default). However long a burst lasts, no object waits longer than that for its drift repair, and an object
  handled early in a burst ticks every two intervals, not every one, until the burst is through.

Nothing here walks every key: each operation touches the heap's head or one key. The heap holds stale entries
(after a poke) that are skipped when they surface; it is rebuilt when they outnumber the live ones.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import logging
import random
import time
from collections.abc import Awaitable, Callable

Tick = Callable[[str], Awaitable[bool]]
DEFER_POLL_SECONDS = 0.25
DEFER_IDLE_POLL_SECONDS = 5.0

logger = logging.getLogger("bucketwarden")


class ResyncQueue:
    """Deadlines for resync ticks; ``run`` drives them in the event loop that calls it."""

    def __init__(
        self,
        *,
        interval: float,
        jitter: float,
        concurrency: int,
        clock: Callable[[], float] = time.monotonic,
        rng: random.Random | None = None,
        defer: Callable[[], bool] | None = None,
        max_defer: float | None = None,
    ) -> None:
        if interval <= 0 or concurrency < 1:
            raise ValueError("interval must be > 0 and concurrency >= 1")
        self.interval = interval
        self.jitter = max(0.0, jitter)
        self.concurrency = concurrency
        self._clock = clock
        self._rng = rng or random.Random()
        self._heap: list[tuple[float, int, str]] = []
        self._due: dict[str, float] = {}  # tracked keys not in flight -> deadline
        self._in_flight: set[str] = set()
        self._poked: set[str] = set()  # poked while in flight: due again as soon as it finishes
        self._dropped: set[str] = set()  # forgotten while in flight: not rescheduled when it finishes
        self._seq = itertools.count()
        self._wake: asyncio.Event | None = None
        self.ticks = 0
        self.lag_seconds = 0.0  # how late the last started tick was
        self._defer = defer
        self.max_defer = interval if max_defer is None else max_defer

    def __len__(self) -> int:
        return len(self._due) + len(self._in_flight - self._dropped)

    def __contains__(self, key: object) -> bool:
        return key in self._due or (key in self._in_flight and key not in self._dropped)

    def overdue(self) -> tuple[int, float]:
        """(keys due and not started, seconds the most overdue one has waited). For the metrics scrape only: it
        counts every deadline, which no tick ever does."""
        now = self._clock()
        late = [due for due in self._due.values() if due <= now]
        return len(late), (now - min(late)) if late else 0.0

    def track(self, key: str) -> None:
        """Schedule ``key`` one interval (plus jitter) from now, unless it is already tracked."""
        if key in self._in_flight:
            self._dropped.discard(key)  # tracked again while its tick runs: rescheduled when it finishes
            return
        if key in self._due:
            return
        self._push(key, self._clock() + self.interval + self._rng.uniform(0.0, self.jitter))

    def poke(self, key: str) -> None:
        """Make ``key`` due now (tracking it if new)."""
        if key in self._in_flight:
            self._dropped.discard(key)
            self._poked.add(key)
            return
        self._push(key, self._clock())

    def forget(self, key: str) -> None:
        """Stop ticking ``key`` (a tick in flight finishes, and is not rescheduled)."""
        self._due.pop(key, None)
        self._poked.discard(key)
        if key in self._in_flight:
            self._dropped.add(key)

    def _push(self, key: str, due: float) -> None:
        self._due[key] = due
        heapq.heappush(self._heap, (due, next(self._seq), key))
        if len(self._heap) > 2 * len(self._due) + 64:
            self._heap = [(d, next(self._seq), k) for k, d in self._due.items()]
            heapq.heapify(self._heap)
        if self._wake is not None and self._heap[0][2] == key:
            self._wake.set()  # an earlier deadline than the one the runner sleeps towards

    def _pop_due(self, now: float) -> tuple[str, float] | None:
        """The next live key due at ``now``, removed from the deadlines; None if none is due."""
        while self._heap:
            due, _, key = self._heap[0]
            if self._due.get(key) != due:
                heapq.heappop(self._heap)  # stale: forgotten, poked or rescheduled since
                continue
            if due > now:
                return None
            heapq.heappop(self._heap)
            del self._due[key]
            return key, due
        return None

    def _next_deadline(self) -> float | None:
        while self._heap and self._due.get(self._heap[0][2]) != self._heap[0][0]:
            heapq.heappop(self._heap)
        return self._heap[0][0] if self._heap else None

    def deferring(self) -> bool:
        """Whether ticks wait now for work of higher priority: yes, until the oldest due tick has waited
        ``max_defer`` past its deadline (O(1): the heap's head)."""
        if self._defer is None or not self._defer():
            return False
        head = self._next_deadline()
        return head is not None and self._clock() - head < self.max_defer

    async def run(self, tick: Tick) -> None:
        """Run due ticks forever (until cancelled), ``concurrency`` at most at once."""
        self._wake = asyncio.Event()
        slots = asyncio.Semaphore(self.concurrency)
        running: set[asyncio.Task[None]] = set()
        try:
            while True:
                await slots.acquire()
                if self.deferring():
                    slots.release()
                    await asyncio.sleep(DEFER_POLL_SECONDS)
                    continue
                popped = self._pop_due(self._clock())
                if popped is None:
                    slots.release()
                    await self._sleep()
                    continue
                key, due = popped
                started = self._clock()
                self.lag_seconds = max(0.0, started - due)
                self._in_flight.add(key)
                task = asyncio.create_task(self._one(tick, key, due, started, slots))
                running.add(task)
                task.add_done_callback(running.discard)
        finally:
            for task in running:
                task.cancel()
            self._wake = None

    async def _sleep(self) -> None:
        assert self._wake is not None
        self._wake.clear()
        deadline = self._next_deadline()
        timeout = None if deadline is None else max(0.0, deadline - self._clock())
        if self._defer is not None:
            # defer() also does the caller's periodic upkeep (k8s/_background.py): ask it now and then when idle
            timeout = DEFER_IDLE_POLL_SECONDS if timeout is None else min(timeout, DEFER_IDLE_POLL_SECONDS)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _one(self, tick: Tick, key: str, due: float, started: float, slots: asyncio.Semaphore) -> None:
        keep = True
        try:
            keep = await tick(key)
        except asyncio.CancelledError:
            raise
        except Exception:  # the key must keep ticking whatever one tick did
            logger.exception("resync of %s failed; it is retried at its next deadline", key)
        finally:
            slots.release()
            self.ticks += 1
            tracked = key not in self._dropped
            self._dropped.discard(key)
            self._in_flight.discard(key)
            poked = key in self._poked
            self._poked.discard(key)
            if keep and tracked and key not in self._due:
                now = self._clock()
                following = due + self.interval
                self._push(key, now if poked else following if following > now else started + self.interval)
