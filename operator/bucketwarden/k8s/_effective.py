"""Between a ProtectedBucket's spec and the reconciler: resolve allowedSourcesFrom and honour a writer fight.

The reconciler stays as it is. It receives the effective spec (the union of the inline sources and the
referenced SourceAllowLists) and, while a writer fight backs off, the same spec in Observe mode, so it
verifies and reports the live policy without writing. The status fields this adds come back as ``extra``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from bucketwarden.contention import (
    CONTENDED,
    DEFAULT_POLICY,
    ContentionPolicy,
    advance,
    contended_message,
    is_contended,
    should_write,
)
from bucketwarden.k8s._status import blocked_result
from bucketwarden.reconciler import R_PROTECTED, READY, SYNCED, PreviousState, Reconciler, ReconcileResult
from bucketwarden.sources import SOURCE_LIST_NOT_FOUND, resolve_sources
from bucketwarden.spec import (
    Condition,
    ManagementPolicy,
    ProtectedBucketSpec,
    ProtectedBucketStatus,
    SourceAllowListSpec,
)


def allow_lists_from_index(index: Mapping[str, Iterable[Any]] | None) -> dict[str, SourceAllowListSpec]:
    """name -> spec of every SourceAllowList in kopf's index; a list admission should have refused is absent."""
    out: dict[str, SourceAllowListSpec] = {}
    for name, entries in (index or {}).items():
        for raw in entries:
            try:
                out[name] = SourceAllowListSpec.model_validate(dict(raw))
            except (ValidationError, TypeError, ValueError):
                continue
    return out


def _replace(conditions: list[Condition], new: Condition) -> list[Condition]:
    return [new if c.type == new.type else c for c in conditions]


def reconcile_effective(
    reconciler: Reconciler,
    spec: ProtectedBucketSpec,
    prev: PreviousState,
    previous: ProtectedBucketStatus,
    allow_lists: Mapping[str, SourceAllowListSpec],
    policy: ContentionPolicy = DEFAULT_POLICY,
) -> tuple[ReconcileResult, dict[str, Any]]:
    """One reconcile of the effective spec, and the status fields it adds (resolvedSourcesHash, contention)."""
    extra: dict[str, Any] = {"resolvedSourcesHash": None}
    if spec.allowed_sources_from:
        resolved = resolve_sources(spec, allow_lists)
        if not resolved.complete:
            # Keep the last good policy: nothing is written, and the last resolved hash stays on the status.
            result = blocked_result(spec.bucket_name, SOURCE_LIST_NOT_FOUND, resolved.missing_message)
            return result, {"resolvedSourcesHash": previous.resolved_sources_hash}
        spec = resolved.spec
        extra["resolvedSourcesHash"] = resolved.sources_hash

    enforce = spec.management_policy is ManagementPolicy.ENFORCE
    state = previous.contention
    writing = should_write(state)
    run = spec if writing or not enforce else spec.model_copy(update={"management_policy": ManagementPolicy.OBSERVE})
    result = reconciler.reconcile(run, prev)
    if not enforce:
        extra["contention"] = None
        return result, extra

    pending = any(f.code == "ChangesPending" for f in result.findings)
    in_sync = result.outcome == "InSync" or (result.outcome == "Observed" and not pending)
    state = advance(state, repaired=result.applied and result.drift_corrected, in_sync=in_sync, policy=policy)
    extra["contention"] = state.to_k8s() if state is not None else None
    if state is not None and is_contended(state, policy) and result.error is None:
        message = contended_message(state, policy)
        result.conditions = _replace(
            result.conditions, Condition(type=SYNCED, status="False", reason=CONTENDED, message=message)
        )
        if not in_sync:
            result.conditions = _replace(
                result.conditions, Condition(type=READY, status="False", reason=CONTENDED, message=message)
            )
        elif not writing:  # an observe-only pass found our statement in force: say so, not "Observing"
            ready = Condition(type=READY, status="True", reason=R_PROTECTED, message="bucket policy protected")
            result.conditions = _replace(result.conditions, ready)
    return result, extra
