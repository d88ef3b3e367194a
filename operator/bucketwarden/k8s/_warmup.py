"""A restarted process: which objects it has not checked yet, and how each known object enters the resync queue.

A new process (a restart, an upgrade, a new leader) finds the fleet already there. It must neither reconcile every
object again nor wait for kopf to do so: an object whose status records an in-sync reconcile of its current
generation is made due at once in the resync queue, where its first tick is the quiet path from that status (one
GetBucketPolicy, compared by meaning with the recorded ``policyHash``; ``_quiet.cold_steady_state``) and writes
nothing. What kopf will handle itself (a new object, a spec changed while the operator was down, a deletion) is
left to kopf, whose handler tracks the key once it has reconciled it. The Ready gauge is restored from each status
as it is first seen, so it never reads 0 only because the process restarted; ``bucketwarden_objects_unchecked``
says how many known objects this process has not checked yet (0 once warmed up).
"""

from __future__ import annotations

import enum
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from typing import Any

from bucketwarden.k8s._bookkeeping import handled_before, retrying


class Entry(enum.Enum):
    """How an object first seen by this process enters the resync queue."""

    NOW = "now"  # kopf handled it before and will not run a handler now: tick at once (quiet if in sync)
    LATER = "later"  # kopf is likely to handle it (its spec changed while we were down): one interval from now
    NEW = "new"  # kopf's create handler has it (and tracks the key itself); resync ticks give way meanwhile
    KOPF = "kopf"  # being deleted: kopf's delete handler has it


def entry_of(body: Mapping[str, Any]) -> Entry:
    """Decide from the raw body alone (cheap: called for the first watch event of every object)."""
    meta = body.get("metadata") or {}
    if meta.get("deletionTimestamp"):
        return Entry.KOPF
    if not handled_before(body):
        if retrying(body):
            # kopf's progress without its diff base (both in status, the operator's alone: k8s/_bookkeeping.py): a
            # handler retrying across a restart. Not new (no resync tick gives way to it): tracked, its first tick
            # one interval from now reconciles it fully.
            return Entry.LATER
        return Entry.NEW
    status = body.get("status") or {}
    if status.get("observedGeneration") != meta.get("generation"):
        # Either kopf's update handler runs now (and tracks it), or a process stopped between kopf's annotation
        # and our status: tracked anyway, its first tick one interval from now reconciles it fully.
        return Entry.LATER
    return Entry.NOW


def conditions_of(status: Mapping[str, Any] | None) -> dict[str, str]:
    """{type: status} of a raw status's conditions, as the metrics keep them."""
    out: dict[str, str] = {}
    for condition in (status or {}).get("conditions") or ():
        if isinstance(condition, Mapping) and isinstance(condition.get("type"), str):
            out[condition["type"]] = str(condition.get("status"))
    return out


class Warmup:
    """The objects this process knows and has not checked yet (no reconcile, no quiet tick), oldest first: new
    objects waiting for kopf's create handler, and a restarted process's fleet waiting for its first tick.
    Thread-safe; every operation touches one key (the oldest is the head of an ordered dict)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._seen: set[str] = set()
        self._unchecked: OrderedDict[str, float] = OrderedDict()  # key -> when first seen, in that order
        self._new: OrderedDict[str, float] = OrderedDict()  # waiting for kopf's create handler: first seen, in order
        self._lock = threading.Lock()
        self._clock = clock
        self._pruned_at = float("-inf")

    def __len__(self) -> int:
        return len(self._unchecked)

    @property
    def new(self) -> int:
        """Unchecked objects that kopf's create handler has not reached yet."""
        return len(self._new)

    def first_sight(self, key: str) -> bool:
        """True the first time this process sees ``key`` (then it counts as unchecked until ``checked``)."""
        with self._lock:
            if key in self._seen:
                return False
            self._seen.add(key)
            self._unchecked[key] = self._clock()
            return True

    def mark_new(self, key: str) -> None:
        """``key`` waits for kopf's create handler (resync ticks give way meanwhile)."""
        with self._lock:
            if key in self._unchecked:
                self._new[key] = self._unchecked[key]

    def checked(self, key: str) -> None:
        with self._lock:
            self._seen.add(key)
            self._unchecked.pop(key, None)
            self._new.pop(key, None)

    def forget(self, key: str) -> None:
        with self._lock:
            self._seen.discard(key)
            self._unchecked.pop(key, None)
            self._new.pop(key, None)

    def overdue_new(self, older_than: float) -> list[str]:
        """Objects kopf's create handler has not reached ``older_than`` seconds after their first sight: no longer
        new (resync ticks stop giving way to them), returned for the caller to queue. A burst that long, or a
        handler kopf will never run (its record says so: an earlier version kept it in annotations, which a tenant
        could forge). O(1) when none is overdue: the oldest comes first."""
        now = self._clock()
        overdue: list[str] = []
        with self._lock:
            while self._new and now - next(iter(self._new.values())) >= older_than:
                overdue.append(self._new.popitem(last=False)[0])
        return overdue

    def prune(self, alive: Callable[[str], bool], *, every: float = 5.0) -> list[str]:
        """Forget unchecked objects that ``alive`` says are gone (deleted before any handler ran: kopf calls
        none for an object without its finalizer). At most once per ``every`` seconds, and only objects first seen
        more than ``every`` seconds ago (a key's index entry is stored after its first sight). The keys dropped."""
        now = self._clock()
        with self._lock:
            if now - self._pruned_at < every:
                return []
            self._pruned_at = now
            gone = [key for key, seen in self._unchecked.items() if now - seen >= every and not alive(key)]
            for key in gone:
                self._seen.discard(key)
                self._unchecked.pop(key, None)
                self._new.pop(key, None)
        return gone

    def oldest_age(self) -> float:
        """Seconds the longest-waiting unchecked object has waited (0 when none waits)."""
        with self._lock:
            first = next(iter(self._unchecked.values()), None)
        return 0.0 if first is None else max(0.0, self._clock() - first)
