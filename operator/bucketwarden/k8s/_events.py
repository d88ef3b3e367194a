"""Which Kubernetes Events a reconcile deserves. Warnings are posted on transitions only, not every resync."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from bucketwarden.errors import AccessDeniedError
from bucketwarden.policy import OPERATOR_NOT_EXEMPT, STATEMENT_ADOPTED
from bucketwarden.reconciler import R_INCONCLUSIVE, READY, VERIFIED, ReconcileResult
from bucketwarden.spec import ProtectedBucketStatus

POLICY_UPDATED = "PolicyUpdated"
DRIFT_CORRECTED = "DriftCorrected"
ROLE_ID_CHANGED = "RoleIdChanged"
VERIFICATION_FAILED = "VerificationFailed"
CONFLICT = "Conflict"
ACCESS_DENIED = "AccessDenied"


@dataclass(frozen=True, slots=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def events_for(result: ReconcileResult, previous: ProtectedBucketStatus) -> list[Event]:  # noqa: C901 (over the size limit: to split (issue 23))
    out: list[Event] = []
    for change in result.role_id_changes:
        out.append(
            Event("Normal", ROLE_ID_CHANGED, f"role {change.ref} has a new RoleId {change.new} (was {change.old})")
        )
    if result.applied and result.action == "put":
        if result.drift_corrected:
            out.append(
                Event("Normal", DRIFT_CORRECTED, f"bucket policy of {result.bucket} was changed out of band; restored")
            )
        else:
            out.append(
                Event("Normal", POLICY_UPDATED, f"bucket policy of {result.bucket} updated ({result.policy_hash})")
            )
        for adopted in result.adopted:  # a statement someone else wrote is gone: say which, and what it was
            out.append(
                Event(
                    "Normal",
                    STATEMENT_ADOPTED,
                    f"statement {adopted.sid!r} ({adopted.hash}) of {result.bucket} was adopted and replaced by ours",
                )
            )
    elif result.applied and result.action == "delete":
        out.append(Event("Normal", POLICY_UPDATED, f"bucket policy of {result.bucket} deleted (nothing else remained)"))

    # exemptOperator: false is acknowledged in the spec, but Ready stays True: say it loudly, once, when it appears.
    lockout = next((f for f in result.findings if f.code == OPERATOR_NOT_EXEMPT), None)
    if lockout is not None and not any(f.code == OPERATOR_NOT_EXEMPT for f in previous.findings):
        out.append(Event("Warning", OPERATOR_NOT_EXEMPT, lockout.message))

    # Verification became inconclusive (Ready stays True): say so once, with the keys it hangs on.
    verified_now = result.condition(VERIFIED)
    verified_before = next((c for c in previous.conditions if c.type == VERIFIED), None)
    if (
        verified_now is not None
        and verified_now.reason == R_INCONCLUSIVE
        and (verified_before is None or verified_before.reason != R_INCONCLUSIVE)
    ):
        out.append(Event("Warning", R_INCONCLUSIVE, verified_now.message))

    ready = result.condition(READY)
    before = next((c for c in previous.conditions if c.type == READY), None)
    new_reason = ready is not None and ready.status != "True" and (before is None or before.reason != ready.reason)
    if not new_reason or ready is None:
        return out
    verified = result.condition(VERIFIED)
    if ready.reason == CONFLICT:
        out.append(Event("Warning", CONFLICT, ready.message))
    elif isinstance(result.error, AccessDeniedError):
        out.append(Event("Warning", ACCESS_DENIED, ready.message))
    elif verified is not None and verified.status == "False":
        out.append(Event("Warning", VERIFICATION_FAILED, verified.message))
    elif ready.status == "False":
        out.append(Event("Warning", ready.reason, ready.message))
    return out
