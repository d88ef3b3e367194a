"""Prometheus metrics. One registry per operator instance, so tests and the demo can run several."""

from __future__ import annotations

import threading
from collections import Counter as _Counter
from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from bucketwarden.reconciler import ReconcileResult

_TRACKED = ("Ready", "Synced", "Verified")
_STATUSES = ("True", "False", "Unknown")


class Metrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.reconciles = Counter("bucketwarden_reconciles", "Reconciles by result.", ["result"], registry=r)
        self.duration = Histogram(
            "bucketwarden_reconcile_duration_seconds",
            "Time of one reconcile, AWS calls included.",
            buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
            registry=r,
        )
        self.aws_calls = Counter(
            "bucketwarden_aws_calls", "AWS API calls by API and outcome.", ["api", "outcome"], registry=r
        )
        self.drift = Counter("bucketwarden_drift_corrections", "Out-of-band changes undone.", registry=r)
        self.role_id_changes = Counter(
            "bucketwarden_role_id_changes", "Exempt roles seen with a new RoleId.", registry=r
        )
        self.buckets = Gauge(
            "bucketwarden_managed_buckets",
            "Managed buckets by condition and status.",
            ["condition", "status"],
            registry=r,
        )
        self.drift_events = Counter(
            "bucketwarden_drift_events",
            "Bucket policy events from the drift queue, by what was done with them.",
            ["verdict"],
            registry=r,
        )
        self.resync_ticks = Counter(
            "bucketwarden_resync_ticks",
            "Resync ticks by path: quiet (one GetBucketPolicy, nothing changed) or full (a whole reconcile).",
            ["path"],
            registry=r,
        )
        self.resync_lag = Gauge(
            "bucketwarden_resync_lag_seconds",
            "How late the resync queue started its latest tick (grows when one replica has too many objects).",
            registry=r,
        )
        self.resync_queued = Gauge(
            "bucketwarden_resync_queue_objects", "Objects in this replica's resync queue.", registry=r
        )
        self.posting_context_missing = Counter(
            "bucketwarden_posting_context_missing",
            "Resync-queue work without kopf's posting context (k8s/_kopf_private.py): where=capture in an index "
            "handler, where=tick for a resync tick skipped for want of it. Anything above 0 means drift waits.",
            ["where"],
            registry=r,
        )
        self.unchecked = Gauge(
            "bucketwarden_objects_unchecked",
            "Objects this process knows and has not checked yet (no reconcile, no quiet tick since it started): "
            "above 0 only while a new process warms up. The Ready gauge meanwhile holds what each status says.",
            registry=r,
        )
        self.rereads = Counter(
            "bucketwarden_resync_rereads",
            "Resync ticks that re-read their object from the API because kopf's copy lagged behind the status this "
            "process last wrote (a burst).",
            registry=r,
        )
        self.queue_depth = Gauge(
            "bucketwarden_reconcile_queue_depth",
            "Work waiting: objects known and not reconciled yet (new, or a new process's fleet), plus resync ticks "
            "due and not started.",
            registry=r,
        )
        self.queue_oldest = Gauge(
            "bucketwarden_reconcile_queue_oldest_seconds",
            "How long the oldest waiting item (of bucketwarden_reconcile_queue_depth) has waited.",
            registry=r,
        )
        self._lock = threading.Lock()
        self._states: dict[str, dict[str, str]] = {}
        self._counts: _Counter[tuple[str, str]] = _Counter()
        for kind in _TRACKED:
            for status in _STATUSES:
                self.buckets.labels(condition=kind, status=status).set(0)

    def observe(self, key: str, result: ReconcileResult) -> None:
        self.reconciles.labels(result=result.outcome).inc()
        self.duration.observe(result.duration_seconds)
        if result.drift_corrected:
            self.drift.inc()
        if result.role_id_changes:
            self.role_id_changes.inc(len(result.role_id_changes))
        self.set_state(key, {c.type: c.status for c in result.conditions})

    def observe_quiet(self, duration_seconds: float) -> None:
        """A resync the quiet path answered: InSync, and no condition moved."""
        self.reconciles.labels(result="InSync").inc()
        self.duration.observe(duration_seconds)

    def count_resync(self, path: str) -> None:
        self.resync_ticks.labels(path=path).inc()

    def watch_resync_queue(self, lag: Callable[[], float], objects: Callable[[], int]) -> None:
        """Read the queue's lag and size at scrape time (no work per tick)."""
        self.resync_lag.set_function(lag)
        self.resync_queued.set_function(lambda: float(objects()))

    def watch_warmup(self, unchecked: Callable[[], int]) -> None:
        self.unchecked.set_function(lambda: float(unchecked()))

    def watch_work(self, waiting: Callable[[], tuple[int, float]]) -> None:
        """The work queue's depth and oldest age, read at scrape time: ``waiting`` returns (items, oldest seconds)."""
        self.queue_depth.set_function(lambda: float(waiting()[0]))
        self.queue_oldest.set_function(lambda: waiting()[1])

    def restore(self, key: str, conditions: dict[str, str]) -> None:
        """An object's conditions from its status, before this process has reconciled it (a restart)."""
        self.set_state(key, conditions, only_new=True)

    def count_reread(self) -> None:
        self.rereads.inc()

    def count_missing_posting_context(self, where: str) -> None:
        self.posting_context_missing.labels(where=where).inc()

    def count_drift_event(self, verdict: str) -> None:
        self.drift_events.labels(verdict=verdict).inc()

    def count_aws_call(self, api: str, outcome: str) -> None:
        self.aws_calls.labels(api=api, outcome=outcome).inc()

    def set_state(self, key: str, conditions: dict[str, str], *, only_new: bool = False) -> None:
        # Incremental: only the labels this object leaves and enters move, so a reconcile costs the same at
        # 10 objects and at 10,000 (recounting every object on every reconcile made each tick O(N)).
        with self._lock:
            before = self._states.get(key)
            if before == conditions or (only_new and before is not None):
                return
            self._states[key] = conditions
            self._shift(before, -1)
            self._shift(conditions, +1)

    def forget(self, key: str) -> None:
        with self._lock:
            self._shift(self._states.pop(key, None), -1)

    def _shift(self, conditions: dict[str, str] | None, delta: int) -> None:
        for kind, status in (conditions or {}).items():
            if kind in _TRACKED and status in _STATUSES:
                self._counts[(kind, status)] += delta
                self.buckets.labels(condition=kind, status=status).set(self._counts[(kind, status)])

    def serve(self, port: int) -> None:
        if port:
            start_http_server(port, registry=self.registry)
