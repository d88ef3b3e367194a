"""Between a ProtectedBucket's spec and the reconciler: resolve allowedSourcesFrom and honour a writer fight.

The reconciler stays as it is. It receives the effective spec (the union of the inline sources and the
referenced SourceAllowLists) and, while a writer fight backs off, the same spec in Observe mode, so it
verifies and reports the live policy without writing. The status fields this adds come back as ``extra``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
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
from bucketwarden.errors import PolicyParseError
from bucketwarden.k8s._ack import ACK_INDEX, AckBucket, ack_by_ref, ack_owner, patch_ack_policy
from bucketwarden.k8s._status import blocked_result
from bucketwarden.policy import PolicyDocument, merge_policy
from bucketwarden.reconciler import (
    R_PROTECTED,
    READY,
    SYNCED,
    VERIFIED,
    Claim,
    PreviousState,
    Reconciler,
    ReconcileResult,
)
from bucketwarden.sources import SOURCE_LIST_NOT_FOUND, resolve_sources
from bucketwarden.spec import (
    Condition,
    ManagementPolicy,
    PolicyWriter,
    ProtectedBucketSpec,
    ProtectedBucketStatus,
    SourceAllowListSpec,
)


def allow_lists_from_index(
    index: Mapping[str, Iterable[Any]] | None, names: Iterable[str] | None = None
) -> dict[str, SourceAllowListSpec]:
    """name -> spec of the SourceAllowLists in kopf's index (only ``names``, when given: parsing every list on
    every reconcile of every bucket would cost more than the reconcile); one admission should refuse is absent."""
    out: dict[str, SourceAllowListSpec] = {}
    index = index or {}
    wanted = list(index) if names is None else [n for n in names if n in index]
    for name in wanted:
        entries = index[name]
        for raw in entries:
            try:
                out[name] = SourceAllowListSpec.model_validate(dict(raw))
            except (ValidationError, TypeError, ValueError):
                continue
    return out


MANAGED_BY_ACK = "ManagedByACK"
ACK_BUCKET_NOT_FOUND = "ACKBucketNotFound"
ACK_BUCKET_MISMATCH = "ACKBucketMismatch"
ACK_PATCH_FAILED = "ACKPatchFailed"
ACK_PENDING = "ACKPending"
WRITTEN_THROUGH_ACK = "WrittenThroughACK"
CHANGES_PENDING = "ChangesPending"

AckPatcher = Callable[[AckBucket, str], None]


@dataclass(frozen=True, slots=True)
class Surroundings:
    """What a ProtectedBucket's reconcile sees of the cluster beyond itself (from kopf's indices)."""

    namespace: str = ""
    allow_lists: Mapping[str, SourceAllowListSpec] = field(default_factory=dict)
    ack_index: Mapping[Any, Iterable[AckBucket]] = field(default_factory=dict)
    patch_ack: AckPatcher | None = None
    ack_watched: bool = True  # False: the operator does not watch ACK Buckets (BUCKETWARDEN_ACK_COEXISTENCE off)
    generation: int | None = None  # metadata.generation of the ProtectedBucket being reconciled
    claim: Claim | None = None  # the grant and the arbitration (None: the spec's own role, as file mode)


def surroundings_from(kwargs: Mapping[str, Any], allow_lists_index: str) -> Surroundings:
    """From a kopf handler's kwargs: the indices, and the ACK patcher bound to the operator's loop."""
    memo = kwargs.get("memo")
    refs = (kwargs.get("spec") or {}).get("allowedSourcesFrom") or []
    names = [r["name"] for r in refs if isinstance(r, Mapping) and isinstance(r.get("name"), str)]

    def patch(entry: AckBucket, text: str) -> None:
        patch_ack_policy(memo, entry, text)

    return Surroundings(
        namespace=str(kwargs.get("namespace") or ""),
        allow_lists=allow_lists_from_index(kwargs.get(allow_lists_index), names),
        ack_index=kwargs.get(ACK_INDEX) or {},
        patch_ack=patch,
        ack_watched=ACK_INDEX in kwargs,
        generation=(kwargs.get("meta") or {}).get("generation"),
    )


def _replace(conditions: list[Condition], new: Condition) -> list[Condition]:
    return [new if c.type == new.type else c for c in conditions]


def _observe_only(spec: ProtectedBucketSpec) -> ProtectedBucketSpec:
    return spec.model_copy(update={"management_policy": ManagementPolicy.OBSERVE})


def _in_force(result: ReconcileResult) -> bool:
    """An Observe pass found the policy in force as Enforce would write it."""
    return result.outcome == "Observed" and not any(f.code == CHANGES_PENDING for f in result.findings)


def _verified(result: ReconcileResult) -> bool:
    verified = result.condition(VERIFIED)
    return verified is not None and verified.status == "True"


def _beside_ack(
    reconciler: Reconciler, spec: ProtectedBucketSpec, prev: PreviousState, owner: AckBucket, around: Surroundings
) -> ReconcileResult:
    """An ACK Bucket owns this bucket's policy and the user did not choose to write through it: verify only."""
    result = reconciler.reconcile(_observe_only(spec), prev, around.claim)
    if result.outcome not in ("Observed",):
        return result
    message = (
        f"ACK Bucket {owner.ref} manages the whole policy of bucket {spec.bucket_name} (its spec.policy): "
        "bucketwarden writes nothing here, it only verifies. Set policyWriter: ACK and bucketRef: "
        f"{{name: {owner.name}}} to merge our statement through it"
    )
    result.conditions = _replace(
        result.conditions, Condition(type=SYNCED, status="False", reason=MANAGED_BY_ACK, message=message)
    )
    ready = (
        Condition(
            type=READY, status="True", reason=R_PROTECTED, message="bucket policy protected and verified; " + message
        )
        if _in_force(result) and _verified(result)
        else Condition(type=READY, status="False", reason=MANAGED_BY_ACK, message=message)
    )
    result.conditions = _replace(result.conditions, ready)
    return result


def _through_ack(
    reconciler: Reconciler, spec: ProtectedBucketSpec, prev: PreviousState, around: Surroundings
) -> ReconcileResult:
    """policyWriter: ACK: merge our statement into the ACK Bucket's spec.policy; ACK writes it; verify the live one."""
    ref = spec.bucket_ref.name if spec.bucket_ref else ""
    entry = ack_by_ref(around.ack_index, around.namespace, ref)
    if not around.ack_watched:
        msg = "policyWriter: ACK needs the operator setting BUCKETWARDEN_ACK_COEXISTENCE=true; nothing was written"
        return blocked_result(spec.bucket_name, ACK_BUCKET_NOT_FOUND, msg)
    if entry is None:
        msg = f"ACK Bucket {around.namespace}/{ref} (bucketRef) not found; nothing was written"
        return blocked_result(spec.bucket_name, ACK_BUCKET_NOT_FOUND, msg)
    if entry.bucket != spec.bucket_name:
        msg = f"ACK Bucket {entry.ref} manages bucket {entry.bucket}, not {spec.bucket_name}; nothing was written"
        return blocked_result(spec.bucket_name, ACK_BUCKET_MISMATCH, msg)
    result = reconciler.reconcile(_observe_only(spec), prev, around.claim)
    mine = result.desired.find(spec.statement_sid) if result.desired is not None else []
    if result.outcome != "Observed" or not mine:
        return result  # a failure or a refusal (e.g. it would lock someone out): nothing goes to ACK either
    try:
        base = PolicyDocument.parse(entry.policy) if entry.policy else None
    except PolicyParseError as exc:
        msg = f"the ACK Bucket {entry.ref} spec.policy cannot be parsed and is left untouched: {exc.message}"
        return blocked_result(spec.bucket_name, exc.reason, msg)
    merged = merge_policy(base, mine[0], spec.owned_sids)
    patched = base is None or not merged.same_meaning(base)
    try:
        if patched and around.patch_ack is not None:
            around.patch_ack(entry, merged.to_json())
    except Exception as exc:  # kopf's API errors, a timeout, a lost connection: report, never crash the reconcile
        msg = f"could not patch ACK Bucket {entry.ref} spec.policy: {exc}"
        return blocked_result(spec.bucket_name, ACK_PATCH_FAILED, msg)
    in_force = _in_force(result) and _verified(result)
    result.findings = [f for f in result.findings if f.code != CHANGES_PENDING]
    done = "merged our statement into" if patched else "our statement is in"
    synced = f"{done} ACK Bucket {entry.ref} spec.policy (every other statement kept); ACK writes it to S3"
    result.conditions = _replace(
        result.conditions, Condition(type=SYNCED, status="True", reason=WRITTEN_THROUGH_ACK, message=synced)
    )
    if in_force:
        ready = Condition(type=READY, status="True", reason=R_PROTECTED, message="bucket policy protected and verified")
    else:
        ready = Condition(type=READY, status="False", reason=ACK_PENDING, message=f"waiting for ACK to write: {synced}")
    result.conditions = _replace(result.conditions, ready)
    return result


def reconcile_effective(
    reconciler: Reconciler,
    spec: ProtectedBucketSpec,
    prev: PreviousState,
    previous: ProtectedBucketStatus,
    around: Surroundings | Mapping[str, SourceAllowListSpec],
    policy: ContentionPolicy = DEFAULT_POLICY,
) -> tuple[ReconcileResult, dict[str, Any]]:
    """One reconcile of the effective spec, and the status fields it adds (resolvedSourcesHash, contention).

    ``around`` is what the cluster holds beyond this resource; a plain mapping means allow-lists only.
    """
    if not isinstance(around, Surroundings):
        around = Surroundings(allow_lists=around)
    extra: dict[str, Any] = {"resolvedSourcesHash": None}
    if spec.allowed_sources_from:
        resolved = resolve_sources(spec, around.allow_lists)
        if not resolved.complete:
            # Keep the last good policy: nothing is written, and the last resolved hash stays on the status.
            result = blocked_result(spec.bucket_name, SOURCE_LIST_NOT_FOUND, resolved.missing_message)
            return result, {"resolvedSourcesHash": previous.resolved_sources_hash}
        spec = resolved.spec
        extra["resolvedSourcesHash"] = resolved.sources_hash

    enforce = spec.management_policy is ManagementPolicy.ENFORCE
    if enforce and spec.policy_writer is PolicyWriter.ACK:
        return _through_ack(reconciler, spec, prev, around), {**extra, "contention": None}
    owner = ack_owner(around.ack_index, spec.bucket_name)
    if enforce and owner is not None:
        return _beside_ack(reconciler, spec, prev, owner, around), {**extra, "contention": None}
    state = previous.contention
    if state is not None and around.generation is not None and around.generation != previous.observed_generation:
        state = None  # the spec changed: the user asked for a write now, and the fight's count starts over
    writing = should_write(state)
    run = spec if writing or not enforce else spec.model_copy(update={"management_policy": ManagementPolicy.OBSERVE})
    result = reconciler.reconcile(run, prev, around.claim)
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
