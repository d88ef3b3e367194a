"""kopf handlers, kept thin: every path ends in the same level-based reconcile of one ProtectedBucket.

create, update and resume start a reconcile early; a timer at the resync interval catches drift; the
delete handler (kopf adds the finalizer) honours deletionPolicy.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import random
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from bucketwarden.errors import BucketNotFoundError, BucketWardenError
from bucketwarden.k8s._ack import cleanup_beside_ack, register_ack
from bucketwarden.k8s._allowlists import ALLOW_LISTS_INDEX, register_allow_lists
from bucketwarden.k8s._claims import (
    CLAIMS_INDEX,
    NAMESPACE_LABELS_INDEX,
    TENANT_POLICIES_INDEX,
    Arbitration,
    arbitrate,
    claim_entry,
    tenancy_from,
)
from bucketwarden.k8s._drift import DRIFT_ANNOTATION, DriftPoller, claimant_from_index
from bucketwarden.k8s._effective import Surroundings, reconcile_effective, surroundings_from
from bucketwarden.k8s._events import events_for
from bucketwarden.k8s._kopf_private import patch_object
from bucketwarden.k8s._login import login_as_kubectl
from bucketwarden.k8s._logs import log_fields, log_reconcile, log_startup, startup_fields
from bucketwarden.k8s._metrics import Metrics
from bucketwarden.k8s._nudge import KeySet
from bucketwarden.k8s._nudge import nudge as _nudge
from bucketwarden.k8s._quiet import SteadyStates, quiet_tick, spec_digest, steady_state_of
from bucketwarden.k8s._resync import TARGETS_INDEX, QueueTicker, target_key
from bucketwarden.k8s._scheduler import ResyncQueue
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.k8s._shards import shard_filter
from bucketwarden.k8s._status import (
    blocked_result,
    build_status,
    format_time,
    parse_time,
    read_status,
    role_ids_from_status,
)
from bucketwarden.k8s._tenants import register_tenant_policies
from bucketwarden.manifests import format_validation_error
from bucketwarden.reconciler import Claim, PreviousState, Reconciler, ReconcileResult
from bucketwarden.spec import GROUP, PLURAL, VERSION, AdoptedStatement, ProtectedBucketSpec, ProtectedBucketStatus
from bucketwarden.tenancy import NOT_AUTHORIZED, Request, Tenancy

ANNOTATION_PREFIX = GROUP
FINALIZER = f"{GROUP}/finalizer"
INVALID_SPEC = "InvalidSpec"
CLEANUP_RETRIES = 10

logger = logging.getLogger("bucketwarden")


@dataclass(slots=True)
class Runtime:
    """What every handler shares, kept in kopf's memo: built once at startup, never in module globals."""

    settings: OperatorSettings
    reconciler: Reconciler
    metrics: Metrics
    clock: Callable[[], datetime]
    steady: SteadyStates = field(default_factory=SteadyStates)
    ticker: QueueTicker | None = None  # the resync queue, when it replaces kopf's timers (no peering)
    # kopf's loop and settings, for nudging another claimant from a handler thread (set by an async startup handler)
    loop: asyncio.AbstractEventLoop | None = None
    kopf_settings: kopf.OperatorSettings | None = None
    refused: KeySet = field(default_factory=KeySet)  # NotAuthorized now: reconciled again when a grant appears


ReconcilerFactory = Callable[[OperatorSettings, Metrics], Reconciler]


def default_reconciler(settings: OperatorSettings, metrics: Metrics) -> Reconciler:
    from bucketwarden.aws import AwsCallCounter, AwsGateway

    counter = AwsCallCounter(on_call=metrics.count_aws_call)
    gateway = AwsGateway(
        counter=counter,
        ttl_seconds=settings.role_cache_ttl_seconds,
        readiness_ttl_seconds=settings.backup_readiness_ttl_seconds,
    )
    return Reconciler(gateway, readiness=gateway.readiness if settings.backup_readiness_checks else None)


def _tenancy(kwargs: Mapping[str, Any]) -> Tenancy:
    """The tenancy in force, from the handler's indices."""
    return tenancy_from(kwargs.get(TENANT_POLICIES_INDEX), kwargs.get(NAMESPACE_LABELS_INDEX))


def _arbitration(index: Any, bucket: str, tenancy: Tenancy, namespace: str, name: str, **kw: bool) -> Arbitration:
    return arbitrate((index or {}).get(bucket, ()), tenancy, namespace, name, **kw)


def _previous_owned(status: ProtectedBucketStatus, spec: ProtectedBucketSpec) -> AdoptedStatement | None:
    """What this resource recorded writing. A status from before ownedStatement existed: Synced means it wrote."""
    if status.owned_statement is not None:
        return status.owned_statement
    synced = any(c.type == "Synced" and c.status == "True" and c.reason == "InSync" for c in status.conditions)
    if synced and status.statement_hash is not None and status.policy_hash:
        return AdoptedStatement(sid=spec.statement_sid, hash=status.statement_hash)
    return None


def _backoff(retry: int) -> float:
    """Exponential backoff with full jitter, capped: retries of many buckets don't stampede."""
    return random.uniform(1.0, min(300.0, 5.0 * 2 ** min(retry, 6)))


def reconcile_object(
    runtime: Runtime,
    *,
    body: kopf.Body,
    spec: Mapping[str, Any],
    meta: Mapping[str, Any],
    status: Mapping[str, Any],
    namespace: str,
    name: str,
    patch: kopf.Patch,
    index: Any,
    tenancy: Tenancy | None = None,
    surroundings: Surroundings | None = None,
) -> ReconcileResult:
    """One reconcile of one object, from the raw kopf arguments to the status patch and the events.

    In order: a valid spec, a TenantPolicy granting everything it asks (else NotAuthorized, no AWS call), the
    arbitration between the bucket's claimants, then the reconcile itself (a non-owner only releases what it
    recorded writing).
    """
    previous = read_status(status)
    extra: dict[str, Any] | None = None
    bucket = str(spec.get("bucketName", ""))
    key = f"{namespace}/{name}"
    parsed: ProtectedBucketSpec | None = None
    claim: Claim | None = None
    tenancy = tenancy if tenancy is not None else Tenancy()
    try:
        parsed = ProtectedBucketSpec.model_validate(dict(spec))
    except ValidationError as exc:
        result = blocked_result(bucket, INVALID_SPEC, format_validation_error(exc))
    else:
        decision = tenancy.authorize(Request.of(namespace, name, parsed))
        arbitration = _arbitration(index, parsed.bucket_name, tenancy, namespace, name)
        owned = _previous_owned(previous, parsed)
        prev = PreviousState(
            previous.statement_hash,
            role_ids_from_status(previous),
            policy_hash=previous.policy_hash,
            verified=any(c.type == "Verified" and c.status == "True" for c in previous.conditions),
            owned=owned,
        )
        owner = arbitration.owner
        claim = Claim(
            assume_role=decision.assume_role,
            may_write=arbitration.owned_by(namespace, name),
            owner=owner.key if owner is not None else None,
            owner_sid=owner.sid if owner is not None else None,
            rivals=arbitration.rivals,
        )
        if not decision.allowed:
            result = blocked_result(parsed.bucket_name, NOT_AUTHORIZED, decision.message)
        elif not claim.may_write:
            # A non-owner writes nothing; it makes AWS calls only to remove what it recorded writing in a race.
            result = runtime.reconciler.reconcile(parsed, prev, claim)
        else:
            around = dataclasses.replace(surroundings or Surroundings(namespace=namespace), claim=claim)
            result, extra = reconcile_effective(runtime.reconciler, parsed, prev, previous, around)
    if result.nudge:
        _nudge(runtime, result.nudge)
    ready = result.condition("Ready")
    runtime.refused.mark(key, ready is not None and ready.reason == NOT_AUTHORIZED)
    runtime.metrics.observe(key, result)
    update = build_status(
        result,
        previous,
        generation=meta.get("generation"),
        now=runtime.clock(),
        refresh_seconds=runtime.settings.status_refresh_seconds,
        extra=extra,
    )
    if update.due:
        for field_name, value in update.status.items():
            patch.status[field_name] = value
    events = events_for(result, previous)
    for event in events:
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    synced_at = parse_time(update.status.get("lastSyncTime")) or runtime.clock()
    refresh_due = synced_at + timedelta(seconds=runtime.settings.status_refresh_seconds)
    steady = None
    # A writer fight in progress is counted by full reconciles only (contention.py): no quiet ticks until it ends.
    if parsed is not None and not (extra or {}).get("contention"):
        steady = steady_state_of(
            result,
            parsed,
            uid=str(meta.get("uid") or ""),
            digest=spec_digest(spec),
            refresh_due=refresh_due,
            status=update.status,
            claim=claim,
        )
    runtime.steady.remember(key, steady)
    # INFO is for changes and failures; a resync that found everything as it was is DEBUG.
    noteworthy = result.applied or update.changed or bool(events) or result.outcome in ("Failed", "Blocked")
    log_reconcile(result, namespace, name, level=logging.INFO if noteworthy else logging.DEBUG)
    return result


def _still_granted(state: Any, tenancy: Tenancy, index: Any, namespace: str, name: str) -> bool:
    """The grant and the ownership a steady state was reached under still hold (checked on every tick)."""
    entries = (index or {}).get(state.target.bucket, ())
    mine = next((e for e in entries if (e.namespace, e.name) == (namespace, name)), None)
    if mine is None or mine.request is None:
        return False
    decision = tenancy.authorize(mine.request)
    if not decision.allowed or decision.assume_role != state.target.assume_role:
        return False
    return _arbitration(index, state.target.bucket, tenancy, namespace, name).owned_by(namespace, name)


def resync_object(runtime: Runtime, *, index: Any, tenancy: Tenancy | None = None, **kwargs: Any) -> None:
    """A resync tick: answered by the quiet path when nothing changed, otherwise the full reconcile."""
    namespace, name, meta, spec = kwargs["namespace"], kwargs["name"], kwargs["meta"], kwargs["spec"]
    key = f"{namespace}/{name}"
    state = runtime.steady.get(key)
    quiet = None
    tenancy = tenancy if tenancy is not None else Tenancy()
    if state is not None and _still_granted(state, tenancy, index, namespace, name):
        quiet = quiet_tick(
            runtime.reconciler.aws,
            state,
            uid=str(meta.get("uid") or ""),
            digest=spec_digest(spec),
            now=runtime.clock(),
        )
    if quiet is None:
        runtime.metrics.count_resync("full")
        reconcile_object(runtime, index=index, tenancy=tenancy, **kwargs)
        return
    runtime.metrics.count_resync("quiet")
    runtime.metrics.observe_quiet(quiet.duration_seconds)
    if quiet.refresh and state is not None and state.status is not None:
        now = runtime.clock()
        refreshed = {**state.status, "lastSyncTime": format_time(now)}
        patch = kwargs["patch"]
        for field_name, value in refreshed.items():
            patch.status[field_name] = value
        due = now + timedelta(seconds=runtime.settings.status_refresh_seconds)
        runtime.steady.remember(key, dataclasses.replace(state, refresh_due=due, status=refreshed))
    if logger.isEnabledFor(logging.DEBUG):
        fields = log_fields(
            bucket=quiet.bucket,
            namespace=namespace,
            name=name,
            outcome="InSync",
            reason="Unchanged",
            action="none",
            calls=sum(quiet.aws_calls.values()),
            duration=quiet.duration_seconds,
        )
        logger.debug("resync %s/%s: bucket %s unchanged", namespace, name, quiet.bucket, extra=fields)


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings, factory: ReconcilerFactory) -> None:
    """Attach every handler to ``registry``."""
    resource = (GROUP, VERSION, PLURAL)

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A fresh registry has none of kopf's default login handlers: log in as kubectl would, from the
        # in-cluster service account or the kubeconfig (KUBECONFIG, ~/.kube/config).
        try:
            info = login_as_kubectl(**kwargs)
        except Exception as exc:  # no kubeconfig here: another login handler may still succeed
            logger.debug("kubeconfig/in-cluster login unavailable: %s", exc)
            return None
        return info

    @kopf.on.startup(id="configure", registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # kopf's bookkeeping lives in annotations, not status: the CRD's structural schema would prune an
        # unknown status.kopf, and a clean status keeps Argo CD's diffs and health checks quiet.
        settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=ANNOTATION_PREFIX)
        settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(
            prefix=ANNOTATION_PREFIX, key="last-handled-configuration"
        )
        settings.persistence.finalizer = FINALIZER
        settings.posting.level = logging.WARNING  # our own kopf.event() calls are always posted
        settings.execution.max_workers = operator_settings.max_concurrent_reconciles
        if operator_settings.namespaces:
            # Namespaced installs hold Roles only: kopf must not list or watch namespaces and CRDs cluster-wide
            # (each would be 403 nine times at start-up). It watches exactly the named namespaces instead, and
            # picks up CRD changes on restart (docs/multi-tenant.md, "Namespaced mode and RBAC").
            settings.scanning.disabled = True
        if getattr(memo, "runtime", None) is None:
            metrics = Metrics()
            memo.runtime = Runtime(operator_settings, factory(operator_settings, metrics), metrics, _now)
            metrics.serve(operator_settings.metrics_port)
            identity, region = _whoami(memo.runtime.reconciler.aws)
            log_startup(startup_fields(operator_settings, identity=identity, region=region))

    operator_settings = settings
    register_allow_lists(registry, settings)
    if settings.ack_coexistence:  # opt-in: it needs RBAC on ACK's Buckets, which the chart does not grant
        register_ack(registry)

    @kopf.on.startup(id="drift-queue", registry=registry)
    async def start_drift_queue(memo: kopf.Memo, settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        # async: the poller is a task of kopf's own loop
        if operator_settings.drift_queue_url and getattr(memo, "drift_task", None) is None:
            memo.drift_task = start_drift_poller(
                memo.runtime, operator_settings.drift_queue_url, kwargs[CLAIMS_INDEX], settings
            )

    @kopf.on.cleanup(id="drift-queue", registry=registry)
    async def stop_drift_queue(memo: kopf.Memo, **_: Any) -> None:
        await _stop_task(memo, "drift_task")

    @kopf.index(*resource, id=CLAIMS_INDEX, registry=registry)
    def claims_by_bucket(**kwargs: Any) -> Any:
        return claim_entry(kwargs["namespace"], kwargs["name"], kwargs["meta"], kwargs["spec"])

    register_tenant_policies(registry, settings)

    @kopf.on.startup(id="nudge-loop", registry=registry)
    async def keep_loop(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
        # async: captures kopf's own loop, so a handler thread can nudge another claimant through it
        memo.runtime.loop = asyncio.get_running_loop()
        memo.runtime.kopf_settings = settings

    # The claims index stays unfiltered: every shard must see every claim to decide conflicts alike.
    mine = shard_filter(settings.shard_count, settings.shard_index)

    @kopf.on.resume(*resource, id="reconcile", when=mine, registry=registry)
    @kopf.on.create(*resource, id="reconcile", when=mine, registry=registry)
    @kopf.on.update(*resource, id="reconcile", when=mine, registry=registry)
    def reconcile_on_change(**kwargs: Any) -> None:
        runtime: Runtime = kwargs["memo"].runtime
        result = reconcile_object(
            runtime,
            index=kwargs[CLAIMS_INDEX],
            tenancy=_tenancy(kwargs),
            surroundings=surroundings_from(kwargs, ALLOW_LISTS_INDEX),
            **_object_args(kwargs),
        )
        if runtime.ticker is not None:
            # The first resync is one interval after kopf first handled the object, not after it appeared: when
            # thousands arrive at once, ticks must not race (and double) the creations kopf has not reached yet.
            runtime.ticker.track_soon(target_key(kwargs["namespace"], kwargs["name"]))
        if result.retryable:
            message = result.error.message if result.error else "retry"
            raise kopf.TemporaryError(message, delay=_backoff(kwargs["retry"]))

    if settings.peering:
        # A standby replica must stop ticking, and only kopf knows when: with peering, kopf's own per-object timers.
        _register_kopf_timers(registry, settings, mine)
    else:
        _register_resync_queue(registry, settings, mine)

    @kopf.on.delete(*resource, id="cleanup", when=mine, registry=registry)
    def finalize(**kwargs: Any) -> None:
        spec, namespace, name, body = kwargs["spec"], kwargs["namespace"], kwargs["name"], kwargs["body"]
        retry, index = kwargs["retry"], kwargs[CLAIMS_INDEX]
        runtime: Runtime = kwargs["memo"].runtime
        runtime.metrics.forget(f"{namespace}/{name}")
        runtime.steady.forget(f"{namespace}/{name}")
        runtime.refused.mark(f"{namespace}/{name}", False)
        if runtime.ticker is not None:
            runtime.ticker.queue.forget(target_key(namespace, name))
        try:
            parsed = ProtectedBucketSpec.model_validate(dict(spec))
        except ValidationError:
            return  # an invalid spec never wrote anything
        result = _finalize_claim(runtime, kwargs, parsed)
        if result is None or result.outcome != "Failed" or isinstance(result.error, BucketNotFoundError):
            # Done (or nothing of ours was there): the next claimant takes the bucket over now, not at its resync.
            tenancy = _tenancy(kwargs)
            successor = _arbitration(index, parsed.bucket_name, tenancy, namespace, name, leaving=True).owner
            if successor is not None:
                _nudge(runtime, [successor.key])
            return
        message = result.error.message if result.error else "cleanup failed"
        if retry < CLEANUP_RETRIES:
            raise kopf.TemporaryError(message, delay=_backoff(retry))
        # Never block deletion forever: release the finalizer, but say loudly what may remain.
        kopf.event(
            body,
            type="Warning",
            reason="CleanupFailed",
            message=f"gave up removing our statement from {parsed.bucket_name} after {retry} retries: {message}",
        )


async def _stop_task(memo: kopf.Memo, attribute: str) -> None:
    """Cancel a background task kept in kopf's memo (started by a startup handler) and wait for it to end."""
    task = getattr(memo, attribute, None)
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task
        setattr(memo, attribute, None)


def _finalize_claim(runtime: Runtime, kwargs: Mapping[str, Any], parsed: ProtectedBucketSpec) -> ReconcileResult | None:
    """On deletion: remove what this resource recorded writing, if a grant still covers it and it owns the bucket.

    A non-owner only releases a statement it wrote in a race. Without a grant nothing is touched (no AWS call),
    and a Warning says what may be left behind. None: nothing to do.
    """
    namespace, name = kwargs["namespace"], kwargs["name"]
    tenancy = _tenancy(kwargs)
    previous = read_status(kwargs.get("status"))
    owned = _previous_owned(previous, parsed)
    decision = tenancy.authorize(Request.of(namespace, name, parsed))
    if not decision.allowed:
        if owned is not None:
            kopf.event(
                kwargs["body"],
                type="Warning",
                reason=NOT_AUTHORIZED,
                message=f"statement {owned.sid} was left in the policy of {parsed.bucket_name}: {decision.message}",
            )
        return None
    arbitration = _arbitration(kwargs[CLAIMS_INDEX], parsed.bucket_name, tenancy, namespace, name)
    owner = arbitration.owner
    claim = Claim(
        assume_role=decision.assume_role,
        may_write=arbitration.owned_by(namespace, name),
        owner=owner.key if owner is not None else None,
        owner_sid=owner.sid if owner is not None else None,
        rivals=arbitration.rivals,
    )
    prev = PreviousState(owned=owned)
    if not claim.may_write:
        return runtime.reconciler.reconcile(parsed, prev, claim) if owned is not None else None
    if cleanup_beside_ack(kwargs, parsed):
        return None  # ACK owns the policy: our statement left its spec.policy, or we never wrote
    return runtime.reconciler.cleanup(parsed, prev, claim)


def _resync_from_kwargs(kwargs: Mapping[str, Any]) -> None:
    """A resync tick from kopf handler kwargs (a kopf timer's, or the resync queue's built from kopf's index)."""
    # Level-based: a tick never raises; a failure is in status and the next tick tries again.
    resync_object(
        kwargs["memo"].runtime,
        index=kwargs[CLAIMS_INDEX],
        tenancy=_tenancy(kwargs),
        surroundings=surroundings_from(kwargs, ALLOW_LISTS_INDEX),
        **_object_args(kwargs),
    )


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
        _resync_from_kwargs(kwargs)


def _register_resync_queue(registry: kopf.OperatorRegistry, settings: OperatorSettings, mine: Any) -> None:
    """One queue of resync deadlines for all objects (``_scheduler``), fed by an index of kopf's latest bodies."""

    @kopf.on.startup(id="resync-queue", registry=registry)
    async def start_resync_queue(memo: kopf.Memo, settings: kopf.OperatorSettings, **kwargs: Any) -> None:
        runtime: Runtime = memo.runtime
        if runtime.ticker is not None:
            return
        queue = ResyncQueue(
            interval=operator_settings.resync_interval_seconds,
            jitter=operator_settings.jitter_seconds,
            concurrency=operator_settings.max_concurrent_reconciles,
        )
        executor = ThreadPoolExecutor(operator_settings.max_concurrent_reconciles, thread_name_prefix="bw-resync")
        indices = {k: v for k, v in kwargs.items() if isinstance(v, kopf.Index)}
        runtime.ticker = QueueTicker(
            queue, _resync_from_kwargs, executor, settings, memo, asyncio.get_running_loop(), runtime.metrics, indices
        )
        runtime.metrics.watch_resync_queue(lambda: queue.lag_seconds, lambda: len(queue))
        memo.resync_task = asyncio.create_task(queue.run(runtime.ticker), name="bucketwarden-resync-queue")

    @kopf.on.cleanup(id="resync-queue", registry=registry)
    async def stop_resync_queue(memo: kopf.Memo, **_: Any) -> None:
        await _stop_task(memo, "resync_task")
        ticker = memo.runtime.ticker
        if ticker is not None:
            ticker.executor.shutdown(wait=False, cancel_futures=True)

    @kopf.index(GROUP, VERSION, PLURAL, id=TARGETS_INDEX, when=mine, registry=registry)
    async def resync_targets(body: kopf.Body, memo: kopf.Memo, resource: kopf.Resource, **kwargs: Any) -> Any:
        # async: runs in kopf's loop; O(1) per watch event. The latest body of each object, for its resync ticks.
        key = target_key(kwargs.get("namespace"), kwargs.get("name"))
        ticker = memo.runtime.ticker
        if ticker is not None:
            ticker.observed(resource)
        return {key: dict(body)}

    operator_settings = settings


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


def _whoami(aws: Any) -> tuple[str, str]:
    """The operator's AWS principal and region for the start-up line; a failure is reported, not raised."""
    from bucketwarden.aws import AwsSettings

    settings = getattr(aws, "settings", None)
    region = settings.region if isinstance(settings, AwsSettings) else AwsSettings().region
    try:
        identity = aws.caller_identity().arn
    except BucketWardenError as exc:
        identity = f"unknown ({exc.reason}: {exc.message})"
    return str(identity), region


def _object_args(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("body", "spec", "meta", "status", "namespace", "name", "patch")
    return {k: kwargs[k] for k in keys}


def _now() -> datetime:
    return datetime.now(UTC)
