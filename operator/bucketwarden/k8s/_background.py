"""Background work beside the per-object handlers: the resync ticks (kopf timers or one queue) and the drift poller."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable, Coroutine, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import kopf

from bucketwarden.errors import BucketWardenError
from bucketwarden.k8s._drift import DRIFT_ANNOTATION, DriftPoller, claimant_from_index
from bucketwarden.k8s._fleet_index import CLAIMS, TARGETS, FleetIndex, view
from bucketwarden.k8s._kopf_private import patch_object
from bucketwarden.k8s._object import resync_from_kwargs
from bucketwarden.k8s._resync import QueueTicker, target_key
from bucketwarden.k8s._runtime import Runtime
from bucketwarden.k8s._scheduler import ResyncQueue
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.k8s._warmup import Entry, conditions_of, entry_of
from bucketwarden.spec import GROUP, PLURAL, VERSION

# How long an object may wait for kopf's create handler before the resync queue reconciles it instead (intervals).
# Longer than any burst measured (B9: 206 s at the 60 s interval), so a burst is not reconciled twice.
NEW_FOR_INTERVALS = 5

logger = logging.getLogger("bucketwarden")


def register_resync(registry: kopf.OperatorRegistry, settings: OperatorSettings, mine: Any, fleet: FleetIndex) -> None:
    """A resync tick per object at the interval: kopf's own timers under peering, else one queue (whose targets
    are a part of ``fleet``)."""
    if settings.peering:
        # A standby replica must stop ticking, and only kopf knows when: with peering, kopf's own per-object timers.
        _register_kopf_timers(registry, settings, mine)
    else:
        _register_resync_queue(registry, settings, mine, fleet)


def register_drift_queue(registry: kopf.OperatorRegistry, operator_settings: OperatorSettings) -> None:
    """The SQS drift-event poller, when BUCKETWARDEN_DRIFT_QUEUE_URL is set."""

    @kopf.on.startup(id="drift-queue", registry=registry)
    async def start_drift_queue(memo: kopf.Memo, settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        # async: the poller is a task of kopf's own loop
        if operator_settings.drift_queue_url and getattr(memo, "drift_task", None) is None:
            memo.drift_task = start_drift_poller(
                memo.runtime, operator_settings.drift_queue_url, view(kwargs, CLAIMS), settings
            )

    @kopf.on.cleanup(id="drift-queue", registry=registry)
    async def stop_drift_queue(memo: kopf.Memo, **_: Any) -> None:
        await _stop_task(memo, "drift_task")


async def _stop_task(memo: kopf.Memo, attribute: str) -> None:
    """Cancel a background task kept in kopf's memo (started by a startup handler) and wait for it to end."""
    task = getattr(memo, attribute, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        setattr(memo, attribute, None)


def _register_kopf_timers(registry: kopf.OperatorRegistry, settings: OperatorSettings, mine: Any) -> None:
    def _initial_delay(**_: Any) -> float:
        # create/resume reconcile at once; the first drift check comes one interval later, spread by jitter.
        return settings.resync_interval_seconds + random.uniform(0, settings.jitter_seconds)

    @kopf.timer(
        GROUP,
        VERSION,
        PLURAL,
        id="resync",
        interval=settings.resync_interval_seconds,
        initial_delay=_initial_delay,
        when=mine,
        registry=registry,
    )
    def resync(**kwargs: Any) -> None:
        resync_from_kwargs(kwargs)


def _register_resync_queue(
    registry: kopf.OperatorRegistry, operator_settings: OperatorSettings, mine: Any, fleet: FleetIndex
) -> None:
    """One queue of resync deadlines for all objects (``_scheduler``), fed by an index of kopf's latest bodies."""

    @kopf.on.startup(id="resync-queue", registry=registry)
    async def start_resync_queue(memo: kopf.Memo, settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        runtime: Runtime = memo.runtime
        if runtime.ticker is not None:
            return
        indices = {k: v for k, v in kwargs.items() if isinstance(v, kopf.Index)}
        targets = view(indices, TARGETS)  # kopf's live index (never a copy)

        def new_objects_wait() -> bool:
            # An object deleted before kopf handled it (no finalizer yet) leaves no handler call behind: prune what
            # kopf's index no longer holds (rate-limited inside), or it would stay "new" and "unchecked" for ever.
            for key in runtime.warmup.prune(lambda key: key in targets):
                runtime.metrics.forget(key)
            # Not reached by kopf's create handler for five intervals (a long burst, or a record that makes kopf skip
            # it for ever): the queue reconciles it, and ticks stop giving way to it.
            for key in runtime.warmup.overdue_new(NEW_FOR_INTERVALS * operator_settings.resync_interval_seconds):
                queue.poke(key)
            return runtime.warmup.new > 0

        queue = ResyncQueue(
            interval=operator_settings.resync_interval_seconds,
            jitter=operator_settings.jitter_seconds,
            concurrency=operator_settings.max_concurrent_reconciles,
            defer=new_objects_wait,  # new objects first, then resync
        )
        executor = ThreadPoolExecutor(operator_settings.max_concurrent_reconciles, thread_name_prefix="bw-resync")
        runtime.ticker = QueueTicker(
            queue, resync_from_kwargs, executor, settings, memo, asyncio.get_running_loop(), runtime.metrics, indices
        )
        runtime.metrics.watch_resync_queue(lambda: queue.lag_seconds, lambda: len(queue))
        runtime.metrics.watch_warmup(lambda: len(runtime.warmup))

        def waiting() -> tuple[int, float]:
            new_objects_wait()  # prunes objects gone unhandled
            late, late_s = queue.overdue()
            return len(runtime.warmup) + late, max(runtime.warmup.oldest_age(), late_s)

        runtime.metrics.watch_work(waiting)
        memo.resync_task = asyncio.create_task(
            when_indexed(runtime.indexed, queue.run(runtime.ticker)), name="bucketwarden-resync-queue"
        )

    @kopf.on.cleanup(id="resync-queue", registry=registry)
    async def stop_resync_queue(memo: kopf.Memo, **_: Any) -> None:
        await _stop_task(memo, "resync_task")
        ticker = memo.runtime.ticker
        if ticker is not None:
            ticker.executor.shutdown(wait=False, cancel_futures=True)

    fleet.add(TARGETS, _targets_part(mine))


def _targets_part(mine: Any) -> Callable[[Mapping[str, Any]], Any]:
    """The resync queue's part of the fleet index: the latest body of each object this shard owns."""

    def resync_targets(kwargs: Mapping[str, Any]) -> Any:
        # In kopf's loop, O(1) per watch event. An object seen for the first time enters the queue.
        if mine is not None and not mine(**kwargs):
            return None
        key = target_key(kwargs.get("namespace"), kwargs.get("name"))
        runtime: Runtime = kwargs["memo"].runtime
        ticker = runtime.ticker
        raw = dict(kwargs["body"])
        if ticker is not None:
            ticker.observed(kwargs["resource"])
            if runtime.warmup.first_sight(key):
                enter_queue(runtime, ticker.queue, key, raw)
        return {key: raw}

    return resync_targets


def register_indices_ready(registry: kopf.OperatorRegistry) -> None:
    """Set ``Runtime.indexed`` once kopf's indices are complete (for the work that must not judge before)."""

    @kopf.on.event("", "v1", "namespaces", id="indices-ready", registry=registry)
    async def indices_ready(memo: kopf.Memo, **_: Any) -> None:
        # kopf runs no handler before every index is filled (the grants, the namespaces' labels, the claims), so
        # the first call of any handler says they are; a namespace handler is the cheapest (there is always one).
        runtime = getattr(memo, "runtime", None)
        if runtime is not None:
            runtime.indexed.set()


async def when_indexed(indexed: asyncio.Event, work: Coroutine[Any, Any, None]) -> None:
    """Run ``work`` once kopf's indices are complete: a tick judged against half-filled grants would refuse."""
    try:
        await indexed.wait()
    except asyncio.CancelledError:
        work.close()
        raise
    await work


def enter_queue(runtime: Runtime, queue: ResyncQueue, key: str, body: Mapping[str, Any]) -> None:
    """An object this process sees for the first time: restore its Ready gauge, and queue it (k8s/_warmup.py)."""
    runtime.metrics.restore(key, conditions_of(body.get("status")))
    entry = entry_of(body)
    if entry is Entry.NOW:
        queue.poke(key)
    elif entry is Entry.LATER:
        queue.track(key)
    elif entry is Entry.NEW:
        runtime.warmup.mark_new(key)


def start_drift_poller(
    runtime: Runtime, url: str, index: Any, kopf_settings: kopf.OperatorSettings
) -> asyncio.Task[None]:
    """The SQS poller as a task of kopf's loop (so it patches with kopf's credentials); needs an AwsGateway."""
    from bucketwarden.aws import AwsGateway, DriftQueue

    aws = runtime.reconciler.aws
    if not isinstance(aws, AwsGateway):
        raise kopf.PermanentError("BUCKETWARDEN_DRIFT_QUEUE_URL needs the AWS gateway (not a test double)")
    queue = DriftQueue(aws.factory, url, wait_seconds=runtime.settings.drift_queue_wait_seconds)
    resource = kopf.Resource(GROUP, VERSION, PLURAL, namespaced=True)

    async def nudge(namespace: str, name: str, event_id: str) -> None:
        # An object in this replica's resync queue is made due now: the tick finds the new text and reconciles
        # fully. Anything else (kopf timers under peering, another shard's object) gets the event id in an
        # annotation, a change kopf sees, so whichever replica owns the object reconciles it.
        ticker, key = runtime.ticker, target_key(namespace, name)
        if ticker is not None and key in ticker.queue:
            ticker.queue.poke(key)
            return
        patch = kopf.Patch({"metadata": {"annotations": {DRIFT_ANNOTATION: event_id or "unknown"}}})
        await patch_object(
            settings=kopf_settings, resource=resource, namespace=namespace, name=name, patch=patch, logger=logger
        )

    poller = DriftPoller(
        queue,
        claimant=claimant_from_index(index),
        whoami=aws.caller_identity,
        nudge=nudge,
        on_verdict=runtime.metrics.count_drift_event,
    )
    return asyncio.create_task(poller.run(), name="bucketwarden-drift-queue")


def whoami(aws: Any) -> tuple[str, str]:
    """The operator's AWS principal and region for the start-up line; a failure is reported, not raised."""
    from bucketwarden.aws import AwsSettings

    settings = getattr(aws, "settings", None)
    region = settings.region if isinstance(settings, AwsSettings) else AwsSettings().region
    try:
        identity = aws.caller_identity().arn
    except BucketWardenError as exc:
        identity = f"unknown ({exc.reason}: {exc.message})"
    return str(identity), region
