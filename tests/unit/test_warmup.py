"""A restarted process: how each known object enters the resync queue, and the gauges it restores (k8s/_warmup.py)."""

from __future__ import annotations

from typing import Any

import pytest

from bucketwarden.k8s import Metrics
from bucketwarden.k8s._bookkeeping import LEGACY_DIFFBASE
from bucketwarden.k8s._warmup import Entry, Warmup, conditions_of, entry_of

READY = {"type": "Ready", "status": "True", "reason": "InSync"}


def body(
    *,
    handled: bool = True,
    generation: int = 2,
    observed: int | None = 2,
    deleting: bool = False,
    progress: bool = False,
    legacy: bool = False,
    forged: bool = False,
) -> Any:
    meta: dict[str, Any] = {"name": "pb", "namespace": "ns", "generation": generation}
    meta["annotations"] = {"team": "a", "sources.bucketwarden.io/allow-list": "l@1"}
    status: dict[str, Any] = {"observedGeneration": observed, "conditions": [READY]} if observed is not None else {}
    kopf: dict[str, Any] = {}
    if handled:
        kopf["lastHandledConfiguration"] = "{}"
    if progress:
        kopf["progress"] = {"reconcile": {"success": False, "purpose": "create", "retries": 1}}
    if kopf:
        status["kopf"] = kopf
    if legacy:  # where an earlier version kept kopf's diff base
        meta["annotations"][LEGACY_DIFFBASE] = "{}"
    if forged:  # what a tenant can write: kopf's old annotations, read by no one now
        meta["annotations"][LEGACY_DIFFBASE] = "{}"
        meta["annotations"]["bucketwarden.io/reconcile"] = '{"success": true, "purpose": "create"}'
    if deleting:
        meta["deletionTimestamp"] = "2026-12-06T00:00:00Z"
    return {"metadata": meta, "status": status}


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (body(), Entry.NOW),  # kopf handled it and runs nothing now: its first tick at once
        (body(observed=1), Entry.LATER),  # the spec changed while down: kopf's update handler has it first
        (body(observed=None), Entry.LATER),
        (body(handled=False), Entry.NEW),  # new: kopf's create handler
        (body(handled=False, progress=True), Entry.LATER),  # a retry pending across a restart: not new, tracked
        (body(deleting=True), Entry.KOPF),  # kopf's delete handler
        (body(handled=False, legacy=True), Entry.NOW),  # handled by an earlier version, this generation reconciled
        (body(handled=False, legacy=True, observed=1), Entry.NEW),  # spec changed since: kopf's create handler
        (body(handled=False, forged=True, observed=None), Entry.NEW),  # forged on create: kopf still creates
    ],
    ids=[
        "handled-in-sync",
        "spec-changed",
        "no-status",
        "new",
        "kopf-progress-only",
        "deleting",
        "earlier-version",
        "earlier-version-spec-changed",
        "forged-annotations",
    ],
)
def test_entry_of(raw: Any, expected: Entry) -> None:
    assert entry_of(raw) is expected


def test_warmup_counts_each_object_until_checked() -> None:
    warmup = Warmup()
    assert warmup.first_sight("ns/a") and warmup.first_sight("ns/b")
    assert not warmup.first_sight("ns/a")
    assert len(warmup) == 2
    warmup.checked("ns/a")
    warmup.forget("ns/b")
    assert len(warmup) == 0
    assert not warmup.first_sight("ns/a")  # checked objects stay seen


def test_ready_gauge_is_restored_from_status_but_never_over_a_reconcile() -> None:
    metrics = Metrics()
    gauge = metrics.registry.get_sample_value
    metrics.set_state("ns/a", {"Ready": "False"})  # this process reconciled it already
    metrics.restore("ns/a", conditions_of({"conditions": [READY]}))
    metrics.restore("ns/b", conditions_of({"conditions": [READY]}))
    assert gauge("bucketwarden_managed_buckets", {"condition": "Ready", "status": "True"}) == 1.0
    assert gauge("bucketwarden_managed_buckets", {"condition": "Ready", "status": "False"}) == 1.0


def test_conditions_of_ignores_what_is_not_a_condition() -> None:
    assert conditions_of({"conditions": [READY, "junk", {"status": "True"}]}) == {"Ready": "True"}
    assert conditions_of(None) == {}


def test_oldest_age_is_the_wait_of_the_first_object_still_unchecked() -> None:
    now = [100.0]
    warmup = Warmup(clock=lambda: now[0])
    assert warmup.oldest_age() == 0.0
    warmup.first_sight("ns/a")
    now[0] += 5
    warmup.first_sight("ns/b")
    now[0] += 5
    assert warmup.oldest_age() == 10.0
    warmup.checked("ns/a")
    assert warmup.oldest_age() == 5.0


def test_new_objects_are_counted_until_kopfs_create_handler_checks_them() -> None:
    warmup = Warmup()
    warmup.first_sight("ns/new")
    warmup.mark_new("ns/new")
    warmup.mark_new("ns/never-seen")  # only an unchecked object can be new
    assert warmup.new == 1
    warmup.checked("ns/new")
    assert warmup.new == 0


def test_start_up_work_waits_for_kopfs_indices() -> None:
    """The resync queue and the TenantPolicy status loop start only once kopf's indices are complete: a tick or a
    count judged against half-filled indices would refuse a granted bucket or write a partial count."""
    import asyncio

    from bucketwarden.k8s._background import when_indexed

    started: list[str] = []

    async def work() -> None:
        started.append("work")

    async def scenario() -> list[str]:
        indexed = asyncio.Event()
        task = asyncio.create_task(when_indexed(indexed, work()))
        await asyncio.sleep(0.05)
        before = list(started)
        indexed.set()
        await asyncio.wait_for(task, 1.0)
        return before

    assert asyncio.run(scenario()) == []
    assert started == ["work"]


def test_an_object_deleted_before_kopf_handled_it_is_pruned_not_waited_for_ever() -> None:
    now = [100.0]
    warmup = Warmup(clock=lambda: now[0])
    for key in ("ns/gone", "ns/kept", "ns/just-seen"):
        warmup.first_sight(key)
        warmup.mark_new(key)
    alive = {"ns/kept"}
    now[0] += 10
    warmup.first_sight("ns/later")  # seen a moment ago: its index entry may not be stored yet
    assert warmup.prune(lambda key: key in alive) == ["ns/gone", "ns/just-seen"]
    assert (len(warmup), warmup.new) == (2, 1)
    warmup.first_sight("ns/other-gone")
    now[0] += 1
    assert warmup.prune(lambda key: False) == []  # at most once per interval
    now[0] += 10
    assert warmup.prune(lambda key: False) == ["ns/kept", "ns/later", "ns/other-gone"]
    assert len(warmup) == 0


def test_an_object_kopf_does_not_reach_stops_being_new_and_is_handed_to_the_queue() -> None:
    """A forged kopf progress annotation makes kopf skip the create handler for ever: after ``older_than`` the
    object is no longer new (resync ticks stop giving way to it) and is returned for the queue, oldest first."""
    now = [100.0]
    warmup = Warmup(clock=lambda: now[0])
    for key in ("ns/first", "ns/second"):
        warmup.first_sight(key)
        warmup.mark_new(key)
    now[0] += 5
    warmup.first_sight("ns/third")
    warmup.mark_new("ns/third")
    warmup.first_sight("ns/not-new")
    now[0] += 5
    assert warmup.overdue_new(10.0) == ["ns/first", "ns/second"]
    assert warmup.new == 1 and len(warmup) == 4  # still unchecked until the queue reconciles them
    assert warmup.overdue_new(10.0) == []
    warmup.checked("ns/third")
    now[0] += 100
    assert warmup.overdue_new(10.0) == [] and warmup.new == 0
