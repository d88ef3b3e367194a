"""Every status condition a ProtectedBucket can carry, built here: "why is this bucket not Ready" is one module.

The reasons themselves, and what each means to a health check, are the table in reasons.py; the reconciler,
file mode and the k8s glue (allow-lists, ACK, writer fights) call the builders below and build none of their own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from bucketwarden._table import failure_line
from bucketwarden.policy import ADOPTION_REFUSED, Verification
from bucketwarden.spec import Condition

# Condition types and reasons. Reasons are API: the Argo CD health check and alerts match on them.
READY, SYNCED, VERIFIED = "Ready", "Synced", "Verified"
R_PROTECTED = "Protected"
R_IN_SYNC = "InSync"
R_DELETED = "PolicyDeleted"
R_VERIFIED = "Verified"
R_OBSERVING = "Observing"
R_INVALID_SPEC = "InvalidSpec"
R_VERIFICATION_FAILED = "VerificationFailed"
R_FOREIGN_DENY = "ForeignDenyBlocksExemptRole"
R_FOREIGN_DENY_OPERATOR = "ForeignDenyBlocksOperator"  # a foreign Deny locks the operator out (not AWS Backup)
R_NOT_CHECKED = "NotChecked"
# Verified=Unknown: no promise is broken as far as bucketwarden can know, but a Deny hangs on a key it cannot
# know (aws:PrincipalOrgID, a tag...). Ready is not blocked; the message names the keys.
R_INCONCLUSIVE = "Inconclusive"
# Another claimant owns the bucket, a bucketwarden statement this resource does not own is in force, or our Sid
# holds a statement that is not ours: nothing is written.
R_CONFLICT = "Conflict"
R_ADOPTION_REFUSED = ADOPTION_REFUSED
R_RETAINED = "Retained"
R_DELETING = "Deleting"
R_BUCKET_GONE = "BucketGone"
# Living beside ACK (k8s/_effective.py).
R_MANAGED_BY_ACK = "ManagedByACK"
R_ACK_BUCKET_NOT_FOUND = "ACKBucketNotFound"
R_ACK_BUCKET_MISMATCH = "ACKBucketMismatch"
R_ACK_PENDING = "ACKPending"
R_WRITTEN_THROUGH_ACK = "WrittenThroughACK"

MSG_IN_SYNC = "the bucket policy carries the desired statement"
MSG_VERIFIED = "every scenario of the verification matrix came out as expected"
MSG_PROTECTED = "bucket policy protected and verified"
MSG_BOOTSTRAP = (
    "if the bucket policy locks the operator out (a hand-written IP Deny denies its NAT or VPC endpoint "
    "address), let it in once from an allowed network or as the account root: "
    "bucketwarden bootstrap -f <manifest of bucket {bucket}> --operator-role {role}"
)

_ORDER = (READY, SYNCED, VERIFIED)


def condition(kind: str, ok: bool | None, reason: str, message: str = "") -> Condition:
    """One condition; ``ok`` None is status Unknown."""
    status: Literal["True", "False", "Unknown"] = "Unknown" if ok is None else ("True" if ok else "False")
    return Condition(type=kind, status=status, reason=reason, message=message)


def failed_conditions(reason: str, message: str, *, verified: Condition | None = None) -> list[Condition]:
    """Ready and Synced False for ``reason``; Verified as given, else Unknown (nothing was judged)."""
    return [
        condition(READY, False, reason, message),
        condition(SYNCED, False, reason, message),
        verified or condition(VERIFIED, None, R_NOT_CHECKED, "not verified: " + message),
    ]


def refused_conditions(reason: str, message: str) -> list[Condition]:
    """Refused before any AWS call (Conflict, NotAuthorized, a missing list or ACK Bucket): nothing was judged."""
    return failed_conditions(reason, message, verified=condition(VERIFIED, None, R_NOT_CHECKED, message))


def in_sync_conditions() -> list[Condition]:
    """Unchanged by meaning since a verified reconcile: its verdict stands."""
    return [
        condition(READY, True, R_PROTECTED, MSG_PROTECTED),
        condition(SYNCED, True, R_IN_SYNC, MSG_IN_SYNC),
        condition(VERIFIED, True, R_VERIFIED, MSG_VERIFIED),
    ]


def written_conditions(verification: Verification) -> list[Condition]:
    """After a write (or none needed): the same Synced either way, so a write costs one status change, not two."""
    out = [*verified_conditions(verification), condition(SYNCED, True, R_IN_SYNC, MSG_IN_SYNC)]
    return sorted(out, key=lambda c: _ORDER.index(c.type))


def observing_conditions(verification: Verification, pending: str) -> list[Condition]:
    """Observe mode: nothing is written; Verified judges the policy in force today."""
    return [
        condition(READY, True, R_OBSERVING, "observe only: nothing is written"),
        condition(SYNCED, True, R_OBSERVING, pending),
        verified_conditions(verification)[1],
    ]


def blocked_by_verification(verification: Verification) -> list[Condition]:
    """Verification of the merged document failed: nothing is written."""
    msg = "refusing to write: " + summarise_failures(verification)
    # A foreign Deny that locks only the operator out says so in Verified's reason (not "AWS Backup fails").
    codes = {f.code for f in verification.findings}
    locked = R_FOREIGN_DENY_OPERATOR in codes and R_FOREIGN_DENY not in codes
    reason = R_FOREIGN_DENY_OPERATOR if locked else R_VERIFICATION_FAILED
    return failed_conditions(R_VERIFICATION_FAILED, msg, verified=condition(VERIFIED, False, reason, msg))


def unverifiable_conditions(reason: str, message: str) -> list[Condition]:
    """A policy we cannot verify is never written."""
    return failed_conditions(reason, message, verified=condition(VERIFIED, False, reason, message))


def verified_conditions(verification: Verification) -> list[Condition]:
    """Ready and Verified once the policy in force is ours; a foreign Deny can still break backups."""
    foreign = [f for f in verification.findings if f.code in (R_FOREIGN_DENY, R_FOREIGN_DENY_OPERATOR)]
    if verification.ok and not foreign:
        if verification.verdict == "Unknown":
            message = f"{verdict_line(verification)}; {inconclusive_message(verification)}"
            return [
                condition(READY, True, R_PROTECTED, "bucket policy protected; verification inconclusive"),
                condition(VERIFIED, None, R_INCONCLUSIVE, message),
            ]
        return [condition(READY, True, R_PROTECTED, MSG_PROTECTED), condition(VERIFIED, True, R_VERIFIED, MSG_VERIFIED)]
    msg = "; ".join(f.message for f in foreign) or summarise_failures(verification)
    # The role's code wins when both apply: AWS Backup failing is the product's promise broken.
    codes = {f.code for f in foreign}
    reason = next((c for c in (R_FOREIGN_DENY, R_FOREIGN_DENY_OPERATOR) if c in codes), R_VERIFICATION_FAILED)
    verified = f"{verdict_line(verification)}; {msg}"
    return [condition(READY, False, R_VERIFICATION_FAILED, msg), condition(VERIFIED, False, reason, verified)]


def summarise_failures(verification: Verification) -> str:
    failed = verification.blocking_failures or [r for r in verification.results if not r.passed]
    return "; ".join(failure_line(r) for r in failed[:5])


def verdict_line(verification: Verification) -> str:
    """Each promise's own verdict (backup and restore are different promises): "backup Pass, restore Fail"."""
    return ", ".join(f"{promise} {verdict}" for promise, verdict in verification.verdicts.items())


def inconclusive_message(verification: Verification) -> str:
    keys = ", ".join(verification.unknown_keys)
    details = "; ".join(u.describe() for u in verification.unknowns[:3])
    return f"verification is inconclusive: the outcome depends on {keys}: {details}"


def with_condition(conditions: Sequence[Condition], new: Condition) -> list[Condition]:
    """``conditions`` with the one of ``new``'s type replaced by ``new``."""
    return [new if c.type == new.type else c for c in conditions]


# --- the k8s glue's overrides: ACK and writer fights --------------------------------------------------------


def managed_by_ack(conditions: Sequence[Condition], message: str, *, in_force: bool) -> list[Condition]:
    """An ACK Bucket owns the whole policy and we only verify: Synced False; Ready only if ours is in force."""
    out = with_condition(conditions, condition(SYNCED, False, R_MANAGED_BY_ACK, message))
    if in_force:
        return with_condition(out, condition(READY, True, R_PROTECTED, f"{MSG_PROTECTED}; {message}"))
    return with_condition(out, condition(READY, False, R_MANAGED_BY_ACK, message))


def written_through_ack(conditions: Sequence[Condition], message: str, *, live: bool) -> list[Condition]:
    """Our statement is in the ACK Bucket's spec.policy; Ready waits until live S3 carries that document."""
    out = with_condition(conditions, condition(SYNCED, True, R_WRITTEN_THROUGH_ACK, message))
    if live:
        return out
    return with_condition(out, condition(READY, False, R_ACK_PENDING, f"waiting for ACK to write: {message}"))


def contended(
    conditions: Sequence[Condition], reason: str, message: str, *, in_sync: bool, writing: bool
) -> list[Condition]:
    """A writer fight backs off: Synced False; Ready False unless ours is in force, which an observe pass says."""
    out = with_condition(conditions, condition(SYNCED, False, reason, message))
    if not in_sync:
        return with_condition(out, condition(READY, False, reason, message))
    if not writing:  # an observe-only pass found our statement in force: say so, not "Observing"
        return with_condition(out, condition(READY, True, R_PROTECTED, "bucket policy protected"))
    return out
