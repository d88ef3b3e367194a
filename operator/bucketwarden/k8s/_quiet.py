"""The quiet resync tick: one GET and a compare with the policy text the last full reconcile found in sync.

A resync of a bucket nobody touched is by far the most common thing the operator does (10,000 buckets at a 60 s
resync are 167 ticks a second). The full reconcile answers it correctly but parses, renders, merges, plans and
rebuilds the status every time. Here a tick whose inputs are all as they were when a full reconcile last said
InSync is answered from what that reconcile remembered: the same object (uid) and spec (by digest), the same
RoleIds and operator identity (from the identity cache, so a recreated role still falls through at the cache's
TTL), and byte-for-byte the same policy text from GetBucketPolicy. Anything else, including any AWS error, falls
through to the full reconcile, which decides exactly as before. The status the last full reconcile wrote is not
re-read: kopf's copy of the body can lag behind the API under load, and a stale status must not turn every tick
into a full one. lastSyncTime keeps its refresh rate: a quiet tick due to rewrite it writes the status that reconcile
left once more, with a new lastSyncTime, which also repairs a status someone else changed.

Two states know the policy by meaning only, not yet by its text: the one a reconcile that wrote leaves (AWS may
return the text we PUT in another form), and the one a restarted process reads back from a status that records an
in-sync reconcile (``cold_steady_state``). Their first quiet tick parses the text once, compares its hash of
meaning with the recorded ``policyHash`` and, if equal, learns the text's digest for the ticks after it. So a
restart costs one GetBucketPolicy per unchanged object and writes nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from bucketwarden.aws import AwsPort
from bucketwarden.errors import BucketWardenError
from bucketwarden.policy import PolicyDocument
from bucketwarden.principals import BucketTarget
from bucketwarden.reconciler import Claim, ReconcileResult, target_of
from bucketwarden.spec import ExemptRole, ManagementPolicy, PolicyWriter, ProtectedBucketSpec, ProtectedBucketStatus


def status_landed(meta: Mapping[str, Any] | None, status: Mapping[str, Any] | None) -> bool:
    """The status records the object's current generation: the last reconcile's status patch is in this body."""
    return bool(status) and (status or {}).get("observedGeneration") == (meta or {}).get("generation")


def spec_digest(spec: Mapping[str, Any]) -> str:
    """A cheap fingerprint of the raw spec (C-speed JSON and hash): equal digests mean the same spec."""
    text = json.dumps(dict(spec), sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.blake2b(text.encode(), digest_size=16).hexdigest()


def text_digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16).digest()


@dataclass(frozen=True, slots=True)
class SteadyState:
    """What a full reconcile that ended InSync saw, and the status it left behind."""

    uid: str
    spec_digest: str
    target: BucketTarget
    roles: tuple[ExemptRole, ...]
    role_ids: tuple[str | None, ...]
    operator_arn: str | None
    policy_digest: bytes | None  # None: known by meaning only (policy_hash); the first quiet tick learns it
    policy_hash: str | None
    refresh_due: datetime  # when lastSyncTime must be rewritten
    # The whole status that reconcile left in the API. With it, a tick that finds lastSyncTime due but nothing else
    # changed rewrites this status with a new lastSyncTime (which also repairs a status someone else edited)
    # instead of reconciling fully; without it, that tick takes the full path.
    status: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class Origin:
    """Whose steady state it is: the object (uid), its spec (by digest), the claim it writes under, and when its
    lastSyncTime is due. A full reconcile and a restarted process's status reading both start from one."""

    uid: str
    spec_digest: str
    refresh_due: datetime
    claim: Claim | None = None

    def state(
        self,
        spec: ProtectedBucketSpec,
        *,
        role_ids: tuple[str | None, ...],
        operator_arn: str | None,
        policy_digest: bytes | None,
        policy_hash: str | None,
        status: Mapping[str, Any] | None,
    ) -> SteadyState:
        return SteadyState(
            self.uid,
            self.spec_digest,
            target_of(spec, self.claim),
            tuple(spec.exempt_roles),
            role_ids,
            operator_arn,
            policy_digest,
            policy_hash,
            self.refresh_due,
            dict(status) if status is not None else None,
        )


@dataclass(frozen=True, slots=True)
class QuietTick:
    """A resync that found nothing to do."""

    bucket: str
    aws_calls: dict[str, int]
    duration_seconds: float
    refresh: bool = False  # lastSyncTime is due: write ``SteadyState.status`` again with a new lastSyncTime
    learned_digest: bytes | None = None  # the state knew the policy by meaning only; this is its text's digest


def steady_state_of(
    result: ReconcileResult, spec: ProtectedBucketSpec, origin: Origin, status: Mapping[str, Any] | None = None
) -> SteadyState | None:
    """The state to answer quiet ticks from, if ``result`` is a clean, verified InSync, or a write of ours.

    After a write the policy is known by meaning (its hash) only: the next tick compares by meaning once and learns
    the text, so a fresh object's first resync is quiet and writes no status again.
    """
    written = result.outcome == "Updated" and result.applied
    if (
        not (written or (result.outcome == "InSync" and not result.applied))
        or result.error is not None
        or not result.ready
        or (result.observed_text is None and not written)
        or result.policy_hash is None
    ):
        return None
    # describe_exemptions lists the resolved roles in the spec's order, then the operator.
    resolved = tuple(e.role_id for e in result.exempt_principals if e.kind == "Role")
    if len(resolved) != len(spec.exempt_roles):
        return None
    return origin.state(
        spec,
        role_ids=resolved,
        operator_arn=result.operator_principal,
        policy_digest=None if written or result.observed_text is None else text_digest(result.observed_text),
        policy_hash=result.policy_hash,
        status=status,
    )


class SteadyStates:
    """The last steady state of every object this process reconciled, by namespace/name. Thread-safe."""

    def __init__(self) -> None:
        self._states: dict[str, SteadyState] = {}
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return len(self._states)

    def get(self, key: str) -> SteadyState | None:
        return self._states.get(key)

    def remember(self, key: str, state: SteadyState | None) -> None:
        with self._lock:
            if state is None:
                self._states.pop(key, None)
            else:
                self._states[key] = state

    def forget(self, key: str) -> None:
        self.remember(key, None)


def quiet_tick(
    aws: AwsPort,
    state: SteadyState | None,
    *,
    uid: str,
    digest: str,
    now: datetime,
) -> QuietTick | None:
    """Answer a resync from ``state`` if nothing changed: one GetBucketPolicy, no parse. None: reconcile fully."""
    if state is None or state.uid != uid or state.spec_digest != digest:
        return None
    refresh = now >= state.refresh_due
    if refresh and state.status is None:
        return None
    started = time.perf_counter()
    target = state.target
    try:
        with aws.count_calls() as calls:
            text = aws.get(target) if _identities_unchanged(aws, state) else None
    except BucketWardenError:
        return None  # the full reconcile reports it, with its conditions and events
    if text is None:
        return None
    text_hash = text_digest(text)
    if state.policy_digest is None and not _same_meaning(text, state.policy_hash):
        return None
    if state.policy_digest is not None and text_hash != state.policy_digest:
        return None
    learned = text_hash if state.policy_digest is None else None
    return QuietTick(target.bucket, dict(calls), time.perf_counter() - started, refresh=refresh, learned_digest=learned)


def _identities_unchanged(aws: AwsPort, state: SteadyState) -> bool:
    """The operator's principal and every exempt role's RoleId are the ones the state was reached with (cached)."""
    assume_role = state.target.assume_role
    if aws.caller_identity(assume_role).arn != state.operator_arn:
        return False
    return all(
        aws.resolve_role(role, assume_role=assume_role).role_id == role_id
        for role, role_id in zip(state.roles, state.role_ids, strict=True)
    )


def _same_meaning(text: str, policy_hash: str | None) -> bool:
    try:
        return policy_hash is not None and PolicyDocument.parse(text).policy_hash == policy_hash
    except BucketWardenError:
        return False


def _in_sync(status: ProtectedBucketStatus, generation: object) -> bool:
    """The status records a reconcile of this generation that found (or left) the policy in sync, verified."""
    if status.observed_generation is None or status.observed_generation != generation or status.contention:
        return False
    true = {c.type for c in status.conditions if c.status == "True" and c.observed_generation in (None, generation)}
    return {"Ready", "Synced", "Verified"} <= true and bool(status.policy_hash) and status.statement_hash is not None


def cold_steady_state(
    spec: ProtectedBucketSpec, raw_status: Mapping[str, Any], origin: Origin, *, generation: object
) -> SteadyState | None:
    """The steady state a status records, for a process that has not reconciled the object yet (after a restart).

    Only a status of this very generation that says Ready, Synced and Verified, with the policy's hash of meaning,
    every exempt role's RoleId and the operator's principal, and only for a plain Enforce spec (no allow-list
    references, no stated facts, no ACK writer: their verdict depends on more than the status holds). Anything
    else: None, and the first tick reconciles fully.
    """
    status = ProtectedBucketStatus.model_validate(dict(raw_status))
    if (
        not _in_sync(status, generation)
        or spec.management_policy is not ManagementPolicy.ENFORCE
        or spec.verification_context is not None
        or spec.allowed_sources_from
        or spec.policy_writer is not PolicyWriter.DIRECT
        or not status.operator_principal
    ):
        return None
    role_ids: dict[str, str | None] = {}
    for principal in status.exempt_principals:
        if principal.kind == "Role":
            role_ids.update({ref: principal.role_id for ref in (principal.name, principal.arn) if ref})
    resolved = tuple(role_ids.get(role.ref) for role in spec.exempt_roles)
    if any(role_id is None for role_id in resolved):
        return None
    return origin.state(
        spec,
        role_ids=resolved,
        operator_arn=status.operator_principal,
        policy_digest=None,
        policy_hash=status.policy_hash,
        status=raw_status,
    )
