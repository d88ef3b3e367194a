"""Which Kubernetes Events a reconcile deserves. Warnings are posted on transitions only, not every resync."""

from __future__ import annotations

from collections.abc import Iterator
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


# Named reasons, then a frozen record: the shape of audit/_model.py's codes and IpRestriction (parallel, not shared).
@dataclass(frozen=True, slots=True)
class Event:
    type: Literal["Normal", "Warning"]
    reason: str
    message: str


def events_for(result: ReconcileResult, previous: ProtectedBucketStatus) -> list[Event]:
    """The Events one reconcile deserves, given the status before it: what it changed, then each Warning whose
    cause is new since that status."""
    return [*_change_events(result), *_new_warnings(result, previous), *_not_ready_event(result, previous)]


def _change_events(result: ReconcileResult) -> Iterator[Event]:
    for change in result.role_id_changes:
        yield Event("Normal", ROLE_ID_CHANGED, f"role {change.ref} has a new RoleId {change.new} (was {change.old})")
    if result.applied and result.action == "put":
        if result.drift_corrected:
            yield Event(
                "Normal", DRIFT_CORRECTED, f"bucket policy of {result.bucket} was changed out of band; restored"
            )
        else:
            yield Event("Normal", POLICY_UPDATED, f"bucket policy of {result.bucket} updated ({result.policy_hash})")
        for adopted in result.adopted:  # a statement someone else wrote is gone: say which, and what it was
            yield Event(
                "Normal",
                STATEMENT_ADOPTED,
                f"statement {adopted.sid!r} ({adopted.hash}) of {result.bucket} was adopted and replaced by ours",
            )
    elif result.applied and result.action == "delete":
        yield Event("Normal", POLICY_UPDATED, f"bucket policy of {result.bucket} deleted (nothing else remained)")


def _new_warnings(result: ReconcileResult, previous: ProtectedBucketStatus) -> Iterator[Event]:
    """What Ready=True hides: said once, when it appears."""
    # exemptOperator: false is acknowledged in the spec, but Ready stays True: say it loudly.
    lockout = next((f for f in result.findings if f.code == OPERATOR_NOT_EXEMPT), None)
    if lockout is not None and not any(f.code == OPERATOR_NOT_EXEMPT for f in previous.findings):
        yield Event("Warning", OPERATOR_NOT_EXEMPT, lockout.message)
    # Verification became inconclusive: say so, with the keys it hangs on.
    verified_now = result.condition(VERIFIED)
    verified_before = next((c for c in previous.conditions if c.type == VERIFIED), None)
    if (
        verified_now is not None
        and verified_now.reason == R_INCONCLUSIVE
        and (verified_before is None or verified_before.reason != R_INCONCLUSIVE)
    ):
        yield Event("Warning", R_INCONCLUSIVE, verified_now.message)


def _not_ready_event(result: ReconcileResult, previous: ProtectedBucketStatus) -> Iterator[Event]:
    """A Warning when Ready turns False for a new reason, named after the cause."""
    ready = result.condition(READY)
    before = next((c for c in previous.conditions if c.type == READY), None)
    if ready is None or ready.status == "True" or (before is not None and before.reason == ready.reason):
        return
    verified = result.condition(VERIFIED)
    if ready.reason == CONFLICT:
        yield Event("Warning", CONFLICT, ready.message)
    elif isinstance(result.error, AccessDeniedError):
        yield Event("Warning", ACCESS_DENIED, ready.message)
    elif verified is not None and verified.status == "False":
        yield Event("Warning", VERIFICATION_FAILED, verified.message)
    elif ready.status == "False":
        yield Event("Warning", ready.reason, ready.message)
