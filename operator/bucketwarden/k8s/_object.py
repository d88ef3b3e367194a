"""Per-object handling: one ProtectedBucket from kopf's arguments to its status patch and events.

A change (create, update, resume), a resync tick (quiet when nothing changed, else the full reconcile) and a
deletion (deletionPolicy, the claim handed over). The grant check and the arbitration come first, every time.
"""

from __future__ import annotations

import dataclasses
import logging
import random
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import kopf
from pydantic import ValidationError

from bucketwarden.errors import BucketNotFoundError
from bucketwarden.k8s._ack import cleanup_beside_ack
from bucketwarden.k8s._allowlists import ALLOW_LISTS_INDEX
from bucketwarden.k8s._claims import (
    NAMESPACE_LABELS_INDEX,
    TENANT_POLICIES_INDEX,
    Arbitration,
    arbitrate,
    tenancy_from,
)
from bucketwarden.k8s._effective import Surroundings, reconcile_effective, surroundings_from
from bucketwarden.k8s._events import events_for
from bucketwarden.k8s._fleet_index import CLAIMS, view
from bucketwarden.k8s._logs import log_fields, log_reconcile
from bucketwarden.k8s._nudge import nudge as _nudge
from bucketwarden.k8s._quiet import (
    Origin,
    SteadyState,
    cold_steady_state,
    quiet_tick,
    spec_digest,
    status_landed,
    steady_state_of,
)
from bucketwarden.k8s._resync import target_key
from bucketwarden.k8s._runtime import Runtime
from bucketwarden.k8s._status import (
    blocked_result,
    build_status,
    format_time,
    parse_time,
    read_status,
    role_ids_from_status,
)
from bucketwarden.manifests import format_validation_error
from bucketwarden.reconciler import Claim, PreviousState, ReconcileResult
from bucketwarden.spec import AdoptedStatement, ProtectedBucketSpec, ProtectedBucketStatus
from bucketwarden.tenancy import NOT_AUTHORIZED, Decision, Request, Tenancy

INVALID_SPEC = "InvalidSpec"
CLEANUP_RETRIES = 10

logger = logging.getLogger("bucketwarden")


def _tenancy(kwargs: Mapping[str, Any]) -> Tenancy:
    """The tenancy in force, from the handler's indices."""
    return tenancy_from(kwargs.get(TENANT_POLICIES_INDEX), kwargs.get(NAMESPACE_LABELS_INDEX))


def _arbitration(index: Any, bucket: str, tenancy: Tenancy, namespace: str, name: str, **kw: bool) -> Arbitration:
    # ``is None``, never truthiness: the index is a view of kopf's (k8s/_fleet_index.py), and its emptiness is a walk.
    return arbitrate(({} if index is None else index).get(bucket, ()), tenancy, namespace, name, **kw)


def _previous_owned(status: ProtectedBucketStatus, spec: ProtectedBucketSpec) -> AdoptedStatement | None:
    """What this resource recorded writing. A status from before ownedStatement existed: Synced means it wrote."""
    if status.owned_statement is not None:
        # Only our own Sid can be ours: a record naming any other Sid is not believed.
        return status.owned_statement if status.owned_statement.sid == spec.statement_sid else None
    synced = any(c.type == "Synced" and c.status == "True" and c.reason == "InSync" for c in status.conditions)
    if synced and status.statement_hash is not None and status.policy_hash:
        return AdoptedStatement(sid=spec.statement_sid, hash=status.statement_hash)
    return None


def backoff(retry: int) -> float:
    """Exponential backoff with full jitter, capped: retries of many buckets don't stampede."""
    return random.uniform(1.0, min(300.0, 5.0 * 2 ** min(retry, 6)))


def _claim(decision: Decision, arbitration: Arbitration, namespace: str, name: str) -> Claim:
    """The grant's role and the arbitration's verdict, as the reconciler takes them."""
    owner = arbitration.owner
    return Claim(
        assume_role=decision.assume_role,
        may_write=arbitration.owned_by(namespace, name),
        owner=owner.key if owner is not None else None,
        owner_sid=owner.sid if owner is not None else None,
        rivals=arbitration.rivals,
    )


def reconcile_object(  # noqa: PLR0913 (kopf's handler arguments, by name)
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
        claim = _claim(decision, arbitration, namespace, name)
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
        origin = Origin(str(meta.get("uid") or ""), spec_digest(spec), refresh_due, claim)
        steady = steady_state_of(result, parsed, origin, update.status)
    runtime.steady.remember(key, steady)
    runtime.warmup.checked(key)
    # INFO is for changes and failures; a resync that found everything as it was is DEBUG.
    noteworthy = result.applied or update.changed or bool(events) or result.outcome in ("Failed", "Blocked")
    log_reconcile(result, namespace, name, level=logging.INFO if noteworthy else logging.DEBUG)
    return result


def _still_granted(state: Any, tenancy: Tenancy, index: Any, namespace: str, name: str) -> bool:
    """The grant and the ownership a steady state was reached under still hold (checked on every tick)."""
    entries = ({} if index is None else index).get(state.target.bucket, ())
    mine = next((e for e in entries if (e.namespace, e.name) == (namespace, name)), None)
    if mine is None or mine.request is None:
        return False
    decision = tenancy.authorize(mine.request)
    if not decision.allowed or decision.assume_role != state.target.assume_role:
        return False
    return _arbitration(index, state.target.bucket, tenancy, namespace, name).owned_by(namespace, name)


def _cold_state(runtime: Runtime, kwargs: Mapping[str, Any], tenancy: Tenancy, index: Any) -> SteadyState | None:
    """The steady state the object's status records, for its first tick in this process (k8s/_warmup.py)."""
    namespace, name, meta, spec = kwargs["namespace"], kwargs["name"], kwargs["meta"], kwargs["spec"]
    raw_status = kwargs.get("status") or {}
    if not raw_status:
        return None
    try:
        parsed = ProtectedBucketSpec.model_validate(dict(spec))
    except ValidationError:
        return None
    decision = tenancy.authorize(Request.of(namespace, name, parsed))
    arbitration = _arbitration(index, parsed.bucket_name, tenancy, namespace, name)
    if not decision.allowed or not arbitration.owned_by(namespace, name):
        return None
    synced_at = parse_time(raw_status.get("lastSyncTime")) or runtime.clock()
    refresh_due = synced_at + timedelta(seconds=runtime.settings.status_refresh_seconds)
    origin = Origin(
        str(meta.get("uid") or ""), spec_digest(spec), refresh_due, _claim(decision, arbitration, namespace, name)
    )
    try:
        return cold_steady_state(parsed, raw_status, origin, generation=meta.get("generation"))
    except ValidationError:
        return None  # a status nobody can read: the full reconcile rewrites it


def resync_object(runtime: Runtime, *, index: Any, tenancy: Tenancy | None = None, **kwargs: Any) -> None:
    """A resync tick: answered by the quiet path when nothing changed, otherwise the full reconcile."""
    namespace, name, meta, spec = kwargs["namespace"], kwargs["name"], kwargs["meta"], kwargs["spec"]
    key = f"{namespace}/{name}"
    state = runtime.steady.get(key)
    quiet = None
    tenancy = tenancy if tenancy is not None else Tenancy()
    if state is None:
        state = _cold_state(runtime, kwargs, tenancy, index)  # a restarted process: what the status records
    elif not status_landed(meta, kwargs.get("status")) or not _still_granted(state, tenancy, index, namespace, name):
        # A status patch kopf gave up on (or a status someone wiped): reconcile fully and write it again, rather
        # than answer quietly from a steady state the API does not show. (The queue re-reads a lagging body first.)
        state = None
    if state is not None:
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
    runtime.warmup.checked(key)
    if quiet.learned_digest is not None and state is not None:
        state = dataclasses.replace(state, policy_digest=quiet.learned_digest)
        runtime.steady.remember(key, state)
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


def handle_change(kwargs: Mapping[str, Any]) -> None:
    """create, update or resume: the same reconcile, early; a retryable failure retries with backoff."""
    runtime: Runtime = kwargs["memo"].runtime
    result = reconcile_object(
        runtime,
        index=view(kwargs, CLAIMS),
        tenancy=_tenancy(kwargs),
        surroundings=surroundings_from(kwargs, ALLOW_LISTS_INDEX),
        **object_args(kwargs),
    )
    if runtime.ticker is not None:
        # The first resync is one interval after kopf first handled the object, not after it appeared: when
        # thousands arrive at once, ticks must not race (and double) the creations kopf has not reached yet.
        runtime.ticker.track_soon(target_key(kwargs["namespace"], kwargs["name"]))
    if result.retryable:
        message = result.error.message if result.error else "retry"
        raise kopf.TemporaryError(message, delay=backoff(kwargs["retry"]))


def finalize_object(kwargs: Mapping[str, Any]) -> None:
    """delete: honour deletionPolicy for what this resource wrote, then hand the bucket to the next claimant."""
    spec, namespace, name, body = kwargs["spec"], kwargs["namespace"], kwargs["name"], kwargs["body"]
    retry, index = kwargs["retry"], view(kwargs, CLAIMS)
    runtime: Runtime = kwargs["memo"].runtime
    runtime.metrics.forget(f"{namespace}/{name}")
    runtime.steady.forget(f"{namespace}/{name}")
    runtime.refused.mark(f"{namespace}/{name}", False)
    runtime.warmup.forget(f"{namespace}/{name}")
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
        raise kopf.TemporaryError(message, delay=backoff(retry))
    # Never block deletion forever: release the finalizer, but say loudly what may remain.
    kopf.event(
        body,
        type="Warning",
        reason="CleanupFailed",
        message=f"gave up removing our statement from {parsed.bucket_name} after {retry} retries: {message}",
    )


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
    arbitration = _arbitration(view(kwargs, CLAIMS), parsed.bucket_name, tenancy, namespace, name)
    claim = _claim(decision, arbitration, namespace, name)
    prev = PreviousState(owned=owned)
    if not claim.may_write:
        return runtime.reconciler.reconcile(parsed, prev, claim) if owned is not None else None
    if cleanup_beside_ack(kwargs, parsed):
        return None  # ACK owns the policy: our statement left its spec.policy, or we never wrote
    return runtime.reconciler.cleanup(parsed, prev, claim)


def resync_from_kwargs(kwargs: Mapping[str, Any]) -> None:
    """A resync tick from kopf handler kwargs (a kopf timer's, or the resync queue's built from kopf's index)."""
    # Level-based: a tick never raises; a failure is in status and the next tick tries again.
    resync_object(
        kwargs["memo"].runtime,
        index=view(kwargs, CLAIMS),
        tenancy=_tenancy(kwargs),
        surroundings=surroundings_from(kwargs, ALLOW_LISTS_INDEX),
        **object_args(kwargs),
    )


def object_args(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("body", "spec", "meta", "status", "namespace", "name", "patch")
    return {k: kwargs[k] for k in keys}
