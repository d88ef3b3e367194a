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
from bucketwarden.reconciler import BucketTarget, Claim, ReconcileResult
from bucketwarden.spec import ExemptRole, ProtectedBucketSpec


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
    policy_digest: bytes
    policy_hash: str | None
    refresh_due: datetime  # when lastSyncTime must be rewritten
    # The whole status that reconcile left in the API. With it, a tick that finds lastSyncTime due but nothing else
    # changed rewrites this status with a new lastSyncTime (which also repairs a status someone else edited)
    # instead of reconciling fully; without it, that tick takes the full path.
    status: Mapping[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class QuietTick:
    """A resync that found nothing to do."""

    bucket: str
    aws_calls: dict[str, int]
    duration_seconds: float
    refresh: bool = False  # lastSyncTime is due: write ``SteadyState.status`` again with a new lastSyncTime


def steady_state_of(
    result: ReconcileResult,
    spec: ProtectedBucketSpec,
    *,
    uid: str,
    digest: str,
    refresh_due: datetime,
    status: Mapping[str, Any] | None = None,
    claim: Claim | None = None,
) -> SteadyState | None:
    """The state to answer quiet ticks from, if ``result`` is a clean, verified InSync with nothing written."""
    if (
        result.outcome != "InSync"
        or result.applied
        or result.error is not None
        or not result.ready
        or result.observed_text is None
    ):
        return None
    # describe_exemptions lists the resolved roles in the spec's order, then the operator.
    resolved = [e.role_id for e in result.exempt_principals if e.kind == "Role"]
    roles = tuple(spec.exempt_roles)
    if len(resolved) != len(roles):
        return None
    return SteadyState(
        uid=uid,
        spec_digest=digest,
        target=BucketTarget.of(spec, claim),
        roles=roles,
        role_ids=tuple(resolved),
        operator_arn=result.operator_principal,
        policy_digest=text_digest(result.observed_text),
        policy_hash=result.policy_hash,
        refresh_due=refresh_due,
        status=dict(status) if status is not None else None,
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
            operator = aws.caller_identity(target.assume_role)
            if operator.arn != state.operator_arn:
                return None
            for role, role_id in zip(state.roles, state.role_ids, strict=True):
                if aws.resolve_role(role, assume_role=target.assume_role).role_id != role_id:
                    return None
            text = aws.get(target.bucket, **target.options)
    except BucketWardenError:
        return None  # the full reconcile reports it, with its conditions and events
    if text is None or text_digest(text) != state.policy_digest:
        return None
    return QuietTick(target.bucket, dict(calls), time.perf_counter() - started, refresh=refresh)
