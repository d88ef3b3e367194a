"""Lease-based leader election (``coordination.k8s.io/v1``), as controller-runtime and client-go do it.

With several replicas, one runs the operator and the others wait. A standby does not watch, index or reconcile:
it polls one Lease every ``retry_seconds``. When it takes the Lease it starts the operator, and the operator's start
is the cheap start (k8s/_warmup.py): every object checked from its recorded status, nothing written. The leader
renews the Lease every ``retry_seconds``; one that cannot renew for ``renew_deadline_seconds`` stops the operator
and exits non-zero (Kubernetes restarts the pod, which comes back as a standby), so two leaders never write at once
for longer than that. A leader stopped gracefully (SIGTERM: an upgrade, a drain) releases the Lease on its way
out, so its successor takes over at its next poll instead of waiting the Lease out.

As in client-go, expiry is judged by this process's own clock: a holder's Lease has expired when its record has not
changed for ``lease_duration_seconds`` since this process first saw it, whatever the (possibly skewed) renewTime
says.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

logger = logging.getLogger("bucketwarden")


class LeaseConflictError(Exception):
    """Another replica changed or created the Lease first (409): this round is lost, the next may win."""


class LeaseStore(Protocol):
    """The Lease as the elector reads and writes it (the API server, or a test double)."""

    async def get(self) -> dict[str, Any] | None: ...

    async def create(self, body: dict[str, Any]) -> dict[str, Any]: ...

    async def replace(self, body: dict[str, Any]) -> dict[str, Any]: ...


@dataclass(frozen=True, slots=True)
class LeaseTiming:
    """controller-runtime's defaults: a dead leader is replaced within lease + retry (about 17 s)."""

    lease_duration_seconds: float = 15.0
    renew_deadline_seconds: float = 10.0
    retry_seconds: float = 2.0

    def __post_init__(self) -> None:
        if not 0 < self.retry_seconds < self.renew_deadline_seconds < self.lease_duration_seconds:
            raise ValueError("leader election needs 0 < retry < renew deadline < lease duration")


def micro_time(now: datetime) -> str:
    """A Kubernetes MicroTime (RFC 3339 with microseconds, UTC)."""
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


class LeaderElector:
    """Takes, holds and releases one Lease for ``identity``."""

    def __init__(
        self,
        store: LeaseStore,
        *,
        name: str,
        namespace: str,
        identity: str,
        timing: LeaseTiming | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.store, self.name, self.namespace, self.identity = store, name, namespace, identity
        self.timing = timing or LeaseTiming()
        self._clock, self._wall = clock, wall
        self._observed: tuple[Any, ...] | None = None
        self._observed_at = 0.0
        self.leading = False

    def _spec(self, previous: dict[str, Any] | None) -> dict[str, Any]:
        now = micro_time(self._wall())
        spec = dict(previous or {})
        taking = spec.get("holderIdentity") != self.identity
        spec.update(
            holderIdentity=self.identity,
            leaseDurationSeconds=round(self.timing.lease_duration_seconds),
            renewTime=now,
        )
        if taking:
            spec["acquireTime"] = now
            spec["leaseTransitions"] = int(spec.get("leaseTransitions") or 0) + (1 if previous else 0)
        return spec

    def _held_by_another(self, spec: dict[str, Any]) -> bool:
        record = (spec.get("holderIdentity"), spec.get("renewTime"), spec.get("leaseTransitions"))
        if record != self._observed:
            self._observed, self._observed_at = record, self._clock()
        holder = spec.get("holderIdentity")
        alive = self._clock() < self._observed_at + self.timing.lease_duration_seconds
        return bool(holder) and holder != self.identity and alive

    async def try_acquire_or_renew(self) -> bool:
        """One round: take the Lease if it is free or expired, renew it if ours. True: we lead."""
        try:
            lease = await self.store.get()
            if lease is None:
                body = {
                    "apiVersion": "coordination.k8s.io/v1",
                    "kind": "Lease",
                    "metadata": {"name": self.name, "namespace": self.namespace},
                    "spec": self._spec(None),
                }
                await self.store.create(body)
            else:
                spec = dict(lease.get("spec") or {})
                if self._held_by_another(spec):
                    self.leading = False
                    return False
                await self.store.replace({**lease, "spec": self._spec(spec)})
        except LeaseConflictError:
            self.leading = False
            return False
        self.leading = True
        return True

    async def acquire(self, stop: asyncio.Event) -> bool:
        """Wait until this replica leads (True) or ``stop`` is set (False)."""
        announced = False
        while not stop.is_set():
            if await self._round():
                logger.info("leader election: %s took the Lease %s/%s", self.identity, self.namespace, self.name)
                return True
            if not announced:
                logger.info(
                    "leader election: %s is a standby for the Lease %s/%s", self.identity, self.namespace, self.name
                )
                announced = True
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), self.timing.retry_seconds)
        return False

    async def hold(self) -> None:
        """Renew the Lease until it cannot be renewed for the renew deadline; then return (leadership is lost)."""
        last = self._clock()
        while True:
            await asyncio.sleep(self.timing.retry_seconds)
            if await self._round():
                last = self._clock()
            elif self._clock() - last > self.timing.renew_deadline_seconds or self._observed_by_another():
                self.leading = False
                return

    def _observed_by_another(self) -> bool:
        return self._observed is not None and self._observed[0] not in (None, "", self.identity)

    async def _round(self) -> bool:
        try:
            return await asyncio.wait_for(self.try_acquire_or_renew(), self.timing.retry_seconds)
        except (TimeoutError, OSError, LeaseApiError) as exc:
            logger.warning(
                "leader election: the Lease %s/%s could not be read or written: %s", self.namespace, self.name, exc
            )
            return False

    async def release(self) -> None:
        """On a graceful stop: hand the Lease back (empty holder), so a standby takes it at its next poll."""
        if not self.leading:
            return
        self.leading = False
        try:
            lease = await self.store.get()
            spec = dict((lease or {}).get("spec") or {})
            if lease is None or spec.get("holderIdentity") != self.identity:
                return
            spec.update(holderIdentity="", leaseDurationSeconds=1, renewTime=micro_time(self._wall()))
            await self.store.replace({**lease, "spec": spec})
            logger.info("leader election: %s released the Lease %s/%s", self.identity, self.namespace, self.name)
        except (LeaseConflictError, LeaseApiError, OSError, TimeoutError) as exc:
            logger.warning("leader election: could not release the Lease (it expires on its own): %s", exc)


class LeaseApiError(Exception):
    """The API server answered the Lease request with an error other than a conflict."""
