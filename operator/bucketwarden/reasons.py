"""Every reason the Ready condition can carry, and what it means for a health check: the one list.

The Argo CD health check (examples/argocd/health.lua), the README's list of reasons and docs/argocd.md are
checked against this table by tests/chart/test_argocd_health.py, so none of them can drift from the code.
"""

from __future__ import annotations

from typing import Literal

ReasonKind = Literal["healthy", "progressing", "terminal"]

# healthy: Ready=True. terminal: Ready=False, and only a change (of the spec, of AWS, of the operator's
# configuration) helps, so Argo CD shows Degraded. progressing: Ready=False, and the operator keeps retrying.
READY_REASONS: dict[str, ReasonKind] = {
    "Protected": "healthy",
    "Observing": "healthy",
    "InvalidSpec": "terminal",
    "Conflict": "terminal",
    "NotAuthorized": "terminal",
    "AdoptionRefused": "terminal",
    "VerificationFailed": "terminal",
    "RoleNotFound": "terminal",
    "CrossAccountRole": "terminal",
    "BucketNotFound": "terminal",
    "AccessDenied": "terminal",
    "WrongBucketOwner": "terminal",
    "WrongRegion": "terminal",
    "NoRegion": "terminal",
    "NoCredentials": "terminal",
    "MalformedPolicy": "terminal",
    "PolicyTooLarge": "terminal",
    "UnsupportedCondition": "terminal",
    "InvalidRequest": "terminal",
    "AwsError": "terminal",
    "SourceListNotFound": "terminal",
    "Contended": "terminal",
    "ManagedByACK": "terminal",
    "ACKBucketNotFound": "terminal",
    "ACKBucketMismatch": "terminal",
    "ACKPatchFailed": "terminal",
    "AwsUnavailable": "progressing",
    "ACKPending": "progressing",
}

# Verified=Unknown with this reason never blocks Ready: the check stays Healthy and says so in its message.
VERIFIED_INCONCLUSIVE = "Inconclusive"


def reasons_of(kind: ReasonKind) -> list[str]:
    return [reason for reason, k in READY_REASONS.items() if k == kind]
