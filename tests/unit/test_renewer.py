"""The leader's Lease is renewed on a thread and loop of its own, not in kopf's busy one (k8s/_renewer.py)."""

from __future__ import annotations

import asyncio
import threading
import time
from typing import Any

from bucketwarden.k8s._renewer import Renewer


class FakeElector:
    """Renews every 20 ms until told to stop renewing (``lose``), recording the thread that uses the store."""

    def __init__(self, *, lose_at_once: bool = False) -> None:
        self.store: Any = None
        self.renewals = 0
        self.released = 0
        self.threads: set[int] = set()
        self.lose = threading.Event()
        if lose_at_once:
            self.lose.set()

    async def hold(self) -> None:
        while not self.lose.is_set():
            self.threads.add(threading.get_ident())
            assert self.store is not None and self.store["loop"] is asyncio.get_running_loop()
            self.renewals += 1
            await asyncio.sleep(0.02)

    async def release(self) -> None:
        self.released += 1


def renewer_for(elector: FakeElector, lost: list[bool], closed: list[Any]) -> Renewer:
    def make_store() -> dict[str, Any]:
        return {"loop": asyncio.get_running_loop(), "thread": threading.get_ident()}

    async def close(store: Any) -> None:
        closed.append(store)

    return Renewer(elector, make_store, lambda: lost.append(True), close)


def test_renewals_go_on_while_the_operators_own_loop_is_blocked() -> None:
    """kopf's loop busy for half a second (here: this thread, blocked): the Lease is renewed all the while."""
    elector, lost, closed = FakeElector(), list[bool](), list[Any]()
    renewer = renewer_for(elector, lost, closed)
    renewer.start()
    before = elector.renewals
    time.sleep(0.5)  # a loop that does not yield, as kopf's in a burst
    during = elector.renewals - before
    renewer.stop(release=True)
    assert during >= 10, during
    assert elector.threads and threading.get_ident() not in elector.threads
    assert elector.threads == {closed[0]["thread"]}  # the store was made and used on the renewer's own loop
    assert elector.released == 1 and lost == [] and not renewer.lost


def test_a_lost_lease_is_reported_and_not_released() -> None:
    elector, lost, closed = FakeElector(lose_at_once=True), list[bool](), list[Any]()
    renewer = renewer_for(elector, lost, closed)
    renewer.start()
    deadline = time.monotonic() + 5
    while not lost and time.monotonic() < deadline:
        time.sleep(0.01)
    renewer.stop(release=False)
    assert lost == [True] and renewer.lost
    assert elector.released == 0 and len(closed) == 1


def test_a_stop_without_release_keeps_the_lease_for_its_expiry() -> None:
    """Leadership lost on kopf's side (the operator failed): the Lease is not handed back, it expires."""
    elector, lost, closed = FakeElector(), list[bool](), list[Any]()
    renewer = renewer_for(elector, lost, closed)
    renewer.start()
    renewer.stop(release=False)
    assert elector.released == 0 and lost == [] and len(closed) == 1


class FailingElector(FakeElector):
    async def hold(self) -> None:
        raise RuntimeError("a bug in the renewal")


def test_a_renewer_that_fails_counts_as_a_lost_lease() -> None:
    """A renewer that died quietly would let the Lease expire while this replica still runs the operator, beside
    the next leader: a failure in the renewals, or in making their client, is reported as lost."""
    elector, lost, closed = FailingElector(), list[bool](), list[Any]()
    renewer = renewer_for(elector, lost, closed)
    renewer.start()
    renewer.stop(release=True)
    assert lost == [True] and renewer.lost and len(closed) == 1 and elector.released == 0

    def no_store() -> Any:
        raise OSError("no API client")

    async def never(store: Any) -> None:
        raise AssertionError("nothing to close")

    lost = []
    broken = Renewer(FakeElector(), no_store, lambda: lost.append(True), never)
    started = time.monotonic()
    broken.start()
    assert time.monotonic() - started < 5  # start() is not held up to its timeout
    broken.stop(release=True)
    assert lost == [True] and broken.lost
