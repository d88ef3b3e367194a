"""The leader keeps its Lease renewed on a thread and event loop of its own, not in kopf's.

kopf's event loop is the operator's busiest place: in a burst of thousands of new objects it has every watch event,
patch and handler hand-off to get through. A renewal queued behind them can miss its 2 s timeout again and again,
and a leader that cannot renew for the renew deadline (10 s) stops: in B10, the leader of a 10,000-object fleet
stopped during the fleet's first convergence (that starved renewals were the cause is inferred: the logs were not
kept; with this renewer B10 passed). client-go's leader election runs in a goroutine of its own for
the same reason. Here the renewals have their own loop, and the API client they use is made on it (an aiohttp
session belongs to the loop it is used on); kopf's loop is told only when leadership is lost.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import threading
from collections.abc import Awaitable, Callable
from typing import Any, Protocol

JOIN_SECONDS = 10.0

logger = logging.getLogger("bucketwarden")


class Holds(Protocol):
    """What the renewer needs of the elector (k8s/_leader.LeaderElector)."""

    store: Any

    async def hold(self) -> None: ...

    async def release(self) -> None: ...


class Renewer:
    """Runs ``elector.hold()`` on its own thread; ``on_lost`` is called (from that thread) if leadership is lost.

    Anything that ends the renewals other than ``stop`` counts as lost, a failure included: a renewer that died
    quietly would let the Lease expire while this replica still runs the operator, beside the next leader."""

    def __init__(
        self,
        elector: Holds,
        make_store: Callable[[], Any],
        on_lost: Callable[[], None],
        close_store: Callable[[Any], Awaitable[None]],
    ) -> None:
        self._elector = elector
        self._make_store = make_store
        self._on_lost = on_lost
        self._close_store = close_store
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping: asyncio.Event | None = None
        self._ready = threading.Event()
        self._release = False
        self.lost = False
        self._thread = threading.Thread(target=self._run, name="bucketwarden-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(JOIN_SECONDS)

    def stop(self, *, release: bool) -> None:
        """Stop renewing (and hand the Lease back when ``release``); blocks until the thread is done."""
        self._release = release
        if self._loop is not None and self._stopping is not None:
            with contextlib.suppress(RuntimeError):  # its loop has already finished
                self._loop.call_soon_threadsafe(self._stopping.set)
        self._thread.join(JOIN_SECONDS)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except Exception:
            logger.exception("leader election: the Lease renewer failed; leadership is lost")
            self.lost = True
            self._on_lost()
        finally:
            self._ready.set()  # start() must not wait out its timeout for a renewer that failed to start

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopping = asyncio.Event()
        store = self._make_store()
        try:
            self._elector.store = store
            self._ready.set()
            holder = asyncio.create_task(self._elector.hold())
            stopper = asyncio.create_task(self._stopping.wait())
            done, _ = await asyncio.wait({holder, stopper}, return_when=asyncio.FIRST_COMPLETED)
            stopper.cancel()
            if holder in done:
                holder.result()  # a failure is raised to _run: lost, and logged
                self.lost = True  # returned: the renew deadline passed, or another replica holds the Lease
                self._on_lost()
                return
            holder.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await holder
            if self._release:
                await self._elector.release()
        finally:
            await self._close_store(store)
