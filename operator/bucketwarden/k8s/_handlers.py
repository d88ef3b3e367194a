"""kopf handlers, kept thin: every path ends in the same level-based reconcile of one ProtectedBucket.

create, update and resume start a reconcile early; a timer at the resync interval catches drift; the
delete handler (kopf adds the finalizer) honours deletionPolicy.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import kopf
from pydantic import ValidationError

from bucketwarden.errors import BucketNotFoundError
from bucketwarden.k8s._ack import cleanup_beside_ack, register_ack
from bucketwarden.k8s._allowlists import ALLOW_LISTS_INDEX, register_allow_lists
from bucketwarden.k8s._effective import Surroundings, reconcile_effective, surroundings_from
from bucketwarden.k8s._events import CONFLICT, events_for
from bucketwarden.k8s._metrics import Metrics
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.k8s._status import blocked_result, build_status, read_status, role_ids_from_status
from bucketwarden.manifests import format_validation_error
from bucketwarden.reconciler import PreviousState, Reconciler, ReconcileResult
from bucketwarden.spec import GROUP, PLURAL, VERSION, ProtectedBucketSpec

ANNOTATION_PREFIX = GROUP
FINALIZER = f"{GROUP}/finalizer"
NOT_AUTHORIZED = "NotAuthorized"
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


def _claimant(entries: Any) -> tuple[str, str, str] | None:
    """The ProtectedBucket that holds a bucket: the oldest claim wins, ties by namespace/name."""
    claims = sorted(tuple(e) for e in entries)
    return claims[0] if claims else None


def _conflict(index: Any, bucket: str, namespace: str, name: str) -> str | None:
    holder = _claimant(index.get(bucket, []))
    if holder is None or (holder[1], holder[2]) == (namespace, name):
        return None
    return f"bucket {bucket} is already managed by ProtectedBucket {holder[1]}/{holder[2]}; this one writes nothing"


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
    surroundings: Surroundings | None = None,
) -> ReconcileResult:
    """One reconcile of one object, from the raw kopf arguments to the status patch and the events."""
    previous = read_status(status)
    extra: dict[str, Any] | None = None
    bucket = str(spec.get("bucketName", ""))
    try:
        parsed = ProtectedBucketSpec.model_validate(dict(spec))
    except ValidationError as exc:
        result = blocked_result(bucket, INVALID_SPEC, format_validation_error(exc))
    else:
        conflict = _conflict(index, parsed.bucket_name, namespace, name)
        if not runtime.settings.may_claim(namespace, parsed.bucket_name):
            msg = f"namespace {namespace} may not claim bucket {parsed.bucket_name} (operator setting bucketClaims)"
            result = blocked_result(parsed.bucket_name, NOT_AUTHORIZED, msg)
        elif conflict is not None:
            result = blocked_result(parsed.bucket_name, CONFLICT, conflict)
        else:
            prev = PreviousState(
                previous.statement_hash,
                role_ids_from_status(previous),
                policy_hash=previous.policy_hash,
                verified=any(c.type == "Verified" and c.status == "True" for c in previous.conditions),
            )
            around = surroundings or Surroundings(namespace=namespace)
            result, extra = reconcile_effective(runtime.reconciler, parsed, prev, previous, around)
    runtime.metrics.observe(f"{namespace}/{name}", result)
    update = build_status(
        result,
        previous,
        generation=meta.get("generation"),
        now=runtime.clock(),
        refresh_seconds=runtime.settings.status_refresh_seconds,
        extra=extra,
    )
    if update.due:
        for key, value in update.status.items():
            patch.status[key] = value
    for event in events_for(result, previous):
        kopf.event(body, type=event.type, reason=event.reason, message=event.message)
    ready = result.condition("Ready")
    logger.info(
        "reconciled %s/%s bucket=%s outcome=%s action=%s ready=%s reason=%s calls=%s",
        namespace,
        name,
        result.bucket,
        result.outcome,
        result.action,
        ready.status if ready else "-",
        ready.reason if ready else "-",
        sum(result.aws_calls.values()),
    )
    return result


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings, factory: ReconcilerFactory) -> None:
    """Attach every handler to ``registry``."""
    resource = (GROUP, VERSION, PLURAL)

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A fresh registry has none of kopf's default login handlers: log in as kubectl would, from the
        # in-cluster service account or the kubeconfig (KUBECONFIG, ~/.kube/config).
        try:
            info: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
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

    operator_settings = settings
    register_allow_lists(registry, settings)
    if settings.ack_coexistence:  # opt-in: it needs RBAC on ACK's Buckets, which the chart does not grant
        register_ack(registry)

    @kopf.index(*resource, id="claims_by_bucket", registry=registry)
    def claims_by_bucket(**kwargs: Any) -> Any:
        bucket = kwargs["spec"].get("bucketName")
        if not bucket:
            return None
        return {bucket: (str(kwargs["meta"].get("creationTimestamp") or ""), kwargs["namespace"], kwargs["name"])}

    @kopf.on.resume(*resource, id="reconcile", registry=registry)
    @kopf.on.create(*resource, id="reconcile", registry=registry)
    @kopf.on.update(*resource, id="reconcile", registry=registry)
    def reconcile_on_change(**kwargs: Any) -> None:
        result = reconcile_object(
            kwargs["memo"].runtime,
            index=kwargs["claims_by_bucket"],
            surroundings=surroundings_from(kwargs, ALLOW_LISTS_INDEX),
            **_object_args(kwargs),
        )
        if result.retryable:
            message = result.error.message if result.error else "retry"
            raise kopf.TemporaryError(message, delay=_backoff(kwargs["retry"]))

    def _initial_delay(**_: Any) -> float:
        # create/resume reconcile at once; the first drift check comes one interval later, spread by jitter.
        return operator_settings.resync_interval_seconds + random.uniform(0, operator_settings.jitter_seconds)

    @kopf.timer(
        *resource,
        id="resync",
        interval=settings.resync_interval_seconds,
        initial_delay=_initial_delay,
        registry=registry,
    )
    def resync(**kwargs: Any) -> None:
        # Level-based: the timer never raises; a failure is in status and the next tick tries again.
        reconcile_object(
            kwargs["memo"].runtime,
            index=kwargs["claims_by_bucket"],
            surroundings=surroundings_from(kwargs, ALLOW_LISTS_INDEX),
            **_object_args(kwargs),
        )

    @kopf.on.delete(*resource, id="cleanup", registry=registry)
    def finalize(**kwargs: Any) -> None:
        spec, namespace, name, body = kwargs["spec"], kwargs["namespace"], kwargs["name"], kwargs["body"]
        retry, claims_by_bucket = kwargs["retry"], kwargs["claims_by_bucket"]
        runtime: Runtime = kwargs["memo"].runtime
        runtime.metrics.forget(f"{namespace}/{name}")
        try:
            parsed = ProtectedBucketSpec.model_validate(dict(spec))
        except ValidationError:
            return  # an invalid spec never wrote anything
        if _conflict(claims_by_bucket, parsed.bucket_name, namespace, name) or not runtime.settings.may_claim(
            namespace, parsed.bucket_name
        ):
            return  # we never wrote for a resource that lost the claim
        if cleanup_beside_ack(kwargs, parsed):
            return  # ACK owns the policy: our statement left its spec.policy, or we never wrote
        result = runtime.reconciler.cleanup(parsed)
        if result.outcome != "Failed" or isinstance(result.error, BucketNotFoundError):
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


def _object_args(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    keys = ("body", "spec", "meta", "status", "namespace", "name", "patch")
    return {k: kwargs[k] for k in keys}


def _now() -> datetime:
    return datetime.now(UTC)
