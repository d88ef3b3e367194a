"""Turn a ReconcileResult into the resource's status, and decide whether anything needs writing at all.

Status is written only when it changed. lastSyncTime is the one field that moves on its own, and only at
a bounded rate (OperatorSettings.status_refresh_seconds): a status that changed every minute would make
Argo CD re-reconcile the owning Application every minute, for every bucket.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from bucketwarden.reconciler import READY, SYNCED, VERIFIED, ReconcileResult
from bucketwarden.spec import Condition, ProtectedBucketStatus


def format_time(now: datetime) -> str:
    return now.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        return datetime.strptime(text, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return None


def read_status(raw: Mapping[str, Any] | None) -> ProtectedBucketStatus:
    """The status as last written; anything unreadable counts as no status (it is rewritten whole)."""
    try:
        return ProtectedBucketStatus.model_validate(dict(raw or {}))
    except ValueError:
        return ProtectedBucketStatus()


def _merge_conditions(
    new: list[Condition], old: list[Condition], generation: int | None, now: str
) -> list[dict[str, Any]]:
    """Keep lastTransitionTime while a condition's status stays the same."""
    previous = {c.type: c for c in old}
    out = []
    for c in sorted(
        new, key=lambda c: (READY, SYNCED, VERIFIED).index(c.type) if c.type in (READY, SYNCED, VERIFIED) else 9
    ):
        before = previous.get(c.type)
        since = (
            before.last_transition_time if before and before.status == c.status and before.last_transition_time else now
        )
        out.append(c.model_copy(update={"last_transition_time": since, "observed_generation": generation}).to_k8s())
    return out


@dataclass(frozen=True, slots=True)
class StatusUpdate:
    status: dict[str, Any]
    changed: bool  # something other than lastSyncTime changed
    due: bool  # write it (changed, or lastSyncTime is due)


def build_status(
    result: ReconcileResult,
    previous: ProtectedBucketStatus,
    *,
    generation: int | None,
    now: datetime,
    refresh_seconds: float,
    extra: Mapping[str, Any] | None = None,
) -> StatusUpdate:
    stamp = format_time(now)
    keep_hash = result.policy_hash if result.policy_hash is not None else previous.policy_hash
    status: dict[str, Any] = {
        "observedGeneration": generation,
        "conditions": _merge_conditions(result.conditions, previous.conditions, generation, stamp),
        "exemptPrincipals": [e.to_k8s() for e in result.exempt_principals]
        or [e.to_k8s() for e in previous.exempt_principals],
        "exemptCount": sum(1 for e in (result.exempt_principals or previous.exempt_principals) if e.kind == "Role"),
        "operatorPrincipal": result.operator_principal or previous.operator_principal,
        "policyHash": keep_hash,
        "statementHash": result.statement_hash or previous.statement_hash,
        "driftCorrections": previous.drift_corrections + (1 if result.drift_corrected else 0),
        "findings": [f.to_k8s() for f in result.findings],
        "adoptedStatements": _adopted(result, previous),
        "ownedStatement": _owned(result, previous),
        # Set by k8s/_effective.py (allowedSourcesFrom, writer fights); kept as they were when not given.
        "resolvedSourcesHash": previous.resolved_sources_hash,
        "contention": previous.contention.to_k8s() if previous.contention else None,
        **(extra or {}),
    }
    old = previous.to_k8s()
    old.pop("lastSyncTime", None)
    changed = {k: v for k, v in status.items() if v is not None} != old
    last = parse_time(previous.last_sync_time)
    sync_due = last is None or (now - last).total_seconds() >= refresh_seconds
    touched = result.applied or changed or sync_due
    status["lastSyncTime"] = stamp if touched else previous.last_sync_time
    return StatusUpdate(status=status, changed=changed, due=changed or sync_due or result.applied)


def _owned(result: ReconcileResult, previous: ProtectedBucketStatus) -> dict[str, Any] | None:
    """What this resource wrote and found in force: set by a write or an InSync, cleared when given up."""
    if result.owned is not None:
        return result.owned.to_k8s()
    if result.disowned or previous.owned_statement is None:
        return None
    return previous.owned_statement.to_k8s()


def _adopted(result: ReconcileResult, previous: ProtectedBucketStatus) -> list[dict[str, Any]]:
    """Every statement ever adopted (it is gone from the policy afterwards, so only status remembers it)."""
    seen = {(a.sid, a.hash): a for a in [*previous.adopted_statements, *result.adopted]}
    return [a.to_k8s() for a in seen.values()]


def blocked_result(bucket: str, reason: str, message: str) -> ReconcileResult:
    """A result for a resource we refuse to act on before any AWS call (Conflict, NotAuthorized, InvalidSpec)."""
    return ReconcileResult(
        bucket,
        "Failed",
        [
            Condition(type=READY, status="False", reason=reason, message=message),
            Condition(type=SYNCED, status="False", reason=reason, message=message),
            Condition(type=VERIFIED, status="Unknown", reason="NotChecked", message=message),
        ],
    )


def role_ids_from_status(status: ProtectedBucketStatus) -> dict[str, str | None]:
    """RoleIds we last wrote, by the ref the spec used (name or ARN), to detect recreated roles."""
    out: dict[str, str | None] = {}
    for e in status.exempt_principals:
        if e.kind == "Role":
            if e.name:
                out[e.name] = e.role_id
            if e.arn:
                out[e.arn] = e.role_id
    return out
