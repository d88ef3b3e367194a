"""Between a ProtectedBucket's spec and the reconciler: resolve allowedSourcesFrom and honour a writer fight.

The reconciler stays as it is. It receives the effective spec (the union of the inline sources and the
referenced SourceAllowLists) and, while a writer fight backs off, the same spec in Observe mode, so it
verifies and reports the live policy without writing. The status fields this adds come back as ``extra``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from bucketwarden.conditions import (
    R_ACK_BUCKET_MISMATCH,
    R_ACK_BUCKET_NOT_FOUND,
    R_ACK_PENDING,
    R_MANAGED_BY_ACK,
    R_WRITTEN_THROUGH_ACK,
    VERIFIED,
    contended,
    managed_by_ack,
    written_through_ack,
)
from bucketwarden.contention import (
    CONTENDED,
    DEFAULT_POLICY,
    ContentionPolicy,
    advance,
    contended_message,
    is_contended,
    should_write,
)
from bucketwarden.errors import AckPatchError, BucketWardenError, PolicyParseError
from bucketwarden.k8s._ack import (
    ACK_INDEX,
    AckBucket,
    AckPatcher,
    AckPolicyStore,
    ack_by_ref,
    ack_owner,
    patch_ack_policy,
)
from bucketwarden.k8s._status import blocked_result
from bucketwarden.policy import PolicyDocument
from bucketwarden.reconciler import (
    Claim,
    PreviousState,
    ReconcileResult,
    Reconciles,
    target_of,
)
from bucketwarden.sources import SOURCE_LIST_NOT_FOUND, resolve_sources
from bucketwarden.spec import (
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


MANAGED_BY_ACK = R_MANAGED_BY_ACK
ACK_BUCKET_NOT_FOUND = R_ACK_BUCKET_NOT_FOUND
ACK_BUCKET_MISMATCH = R_ACK_BUCKET_MISMATCH
ACK_PATCH_FAILED = AckPatchError.reason
ACK_PENDING = R_ACK_PENDING
WRITTEN_THROUGH_ACK = R_WRITTEN_THROUGH_ACK
CHANGES_PENDING = "ChangesPending"


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


def _observe_only(spec: ProtectedBucketSpec) -> ProtectedBucketSpec:
    return spec.model_copy(update={"management_policy": ManagementPolicy.OBSERVE})


def _in_force(result: ReconcileResult) -> bool:
    """An Observe pass found the policy in force as Enforce would write it."""
    return result.outcome == "Observed" and not any(f.code == CHANGES_PENDING for f in result.findings)


def _verified(result: ReconcileResult) -> bool:
    verified = result.condition(VERIFIED)
    return verified is not None and verified.status == "True"


def _beside_ack(
    reconciler: Reconciles, spec: ProtectedBucketSpec, prev: PreviousState, owner: AckBucket, around: Surroundings
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
    result.conditions = managed_by_ack(result.conditions, message, in_force=_in_force(result) and _verified(result))
    return result


def _through_ack(
    reconciler: Reconciles, spec: ProtectedBucketSpec, prev: PreviousState, around: Surroundings
) -> ReconcileResult:
    """policyWriter: ACK: the ACK Bucket's spec.policy is the policy store. Our statement is merged into it,
    verified there, and patched in only if it passes; Ready once live S3 carries that same document."""
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
    try:
        if entry.policy:
            PolicyDocument.parse(entry.policy)  # its own message: the reconciler's would say "the bucket policy"
    except PolicyParseError as exc:
        msg = f"the ACK Bucket {entry.ref} spec.policy cannot be parsed and is left untouched: {exc.message}"
        return blocked_result(spec.bucket_name, exc.reason, msg)
    store = AckPolicyStore(entry, around.patch_ack)
    result = reconciler.reconcile(spec, prev, around.claim, policy_store=store)
    if result.outcome not in ("Updated", "InSync") or result.desired is None:
        return result  # a failure or a refusal (e.g. it would lock someone out): nothing went to ACK
    result.observed_text = None  # ACK's text, not S3's: quiet resync ticks compare live S3, so none here
    done = "merged our statement into" if store.patched is not None else "our statement is in"
    synced = f"{done} ACK Bucket {entry.ref} spec.policy (every other statement kept); ACK writes it to S3"
    try:
        live_text = reconciler.aws.get(target_of(spec, around.claim))
        live = PolicyDocument.parse(live_text) if live_text else None
    except BucketWardenError as exc:
        live, synced = None, f"{synced}; the live bucket policy cannot be read: {exc.message}"
    in_force = live is not None and live.same_meaning(result.desired)
    result.conditions = written_through_ack(result.conditions, synced, live=in_force)
    return result


def reconcile_effective(
    reconciler: Reconciles,
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
        result.conditions = contended(result.conditions, CONTENDED, message, in_sync=in_sync, writing=writing)
    return result, extra
