"""The reconcile loop for one bucket: resolve -> observe -> render and merge -> verify -> plan -> apply.

It depends only on an abstract AWS port, so it runs and is tested without AWS or Kubernetes. The
operator (bucketwarden.k8s), the file-mode CLI and the demo all drive this same code.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal, NamedTuple, Protocol

from bucketwarden.aws import AwsPort as AwsPort  # re-exported: the port the reconciler is written against
from bucketwarden.aws import BucketPolicyPort
from bucketwarden.conditions import (  # the names stay importable from here too
    MSG_BOOTSTRAP as MSG_BOOTSTRAP,
)
from bucketwarden.conditions import (
    MSG_IN_SYNC as MSG_IN_SYNC,
)
from bucketwarden.conditions import (
    MSG_VERIFIED as MSG_VERIFIED,
)
from bucketwarden.conditions import (
    R_ADOPTION_REFUSED as R_ADOPTION_REFUSED,
)
from bucketwarden.conditions import (
    R_BUCKET_GONE as R_BUCKET_GONE,
)
from bucketwarden.conditions import (
    R_CONFLICT as R_CONFLICT,
)
from bucketwarden.conditions import (
    R_DELETED as R_DELETED,
)
from bucketwarden.conditions import (
    R_DELETING as R_DELETING,
)
from bucketwarden.conditions import (
    R_FOREIGN_DENY as R_FOREIGN_DENY,
)
from bucketwarden.conditions import (
    R_FOREIGN_DENY_OPERATOR as R_FOREIGN_DENY_OPERATOR,
)
from bucketwarden.conditions import (
    R_IN_SYNC as R_IN_SYNC,
)
from bucketwarden.conditions import (
    R_INCONCLUSIVE as R_INCONCLUSIVE,
)
from bucketwarden.conditions import (
    R_INVALID_SPEC as R_INVALID_SPEC,
)
from bucketwarden.conditions import (
    R_NOT_CHECKED as R_NOT_CHECKED,
)
from bucketwarden.conditions import (
    R_OBSERVING as R_OBSERVING,
)
from bucketwarden.conditions import (
    R_PROTECTED as R_PROTECTED,
)
from bucketwarden.conditions import (
    R_RETAINED as R_RETAINED,
)
from bucketwarden.conditions import (
    R_VERIFICATION_FAILED as R_VERIFICATION_FAILED,
)
from bucketwarden.conditions import (
    R_VERIFIED as R_VERIFIED,
)
from bucketwarden.conditions import (
    READY as READY,
)
from bucketwarden.conditions import (
    SYNCED as SYNCED,
)
from bucketwarden.conditions import (
    VERIFIED as VERIFIED,
)
from bucketwarden.conditions import (
    blocked_by_verification,
    condition,
    failed_conditions,
    in_sync_conditions,
    observing_conditions,
    unverifiable_conditions,
    verified_conditions,
    written_conditions,
)
from bucketwarden.errors import (
    AccessDeniedError,
    AwsError,
    BucketNotFoundError,
    BucketWardenError,
    PolicyParseError,
    PolicyTooLargeError,
)
from bucketwarden.policy import (
    MAX_POLICY_BYTES,
    OWNED_SID_FOREIGN_CONTENT,
    SOURCES_PENDING,
    AdoptionCheck,
    Plan,
    PolicyDocument,
    Statement,
    check_adoption,
    describe_exemptions,
    diff_policies,
    has_errors,
    lint_policy,
    lint_spec,
    merge_policy,
    narrow_to_live,
    partition_for_region,
    plan_change,
    remove_policy,
    render_statement,
    supersede_problems,
    verify_policy,
)
from bucketwarden.policy import Verification as Verification
from bucketwarden.policy import bucket_arns as bucket_arns_of
from bucketwarden.principals import BucketTarget as BucketTarget
from bucketwarden.principals import CallerIdentity, ResolvedRole, RoleAssumption, role_arn_of_session
from bucketwarden.readiness import ReadinessPort, check_readiness
from bucketwarden.spec import (
    RESERVED_SID_PREFIX,
    AdoptedStatement,
    Condition,
    DeletionPolicy,
    ExemptPrincipal,
    Finding,
    ManagementPolicy,
    ProtectedBucketSpec,
)

logger = logging.getLogger(__name__)

Outcome = Literal["InSync", "Updated", "Deleted", "Observed", "Blocked", "Failed", "Retained"]


@dataclass(frozen=True, slots=True)
class Claim:
    """What was decided about this resource before any AWS call: the admin's grant and the arbitration.

    ``assume_role`` is the role the grant lets it act through (with the grant's ExternalId and a session name
    naming the resource). ``may_write`` is False for a claimant that does not own its bucket: it writes nothing,
    and only removes the statement it recorded writing (a race it lost). ``owner`` names the owning resource;
    ``rivals`` maps each other claimant's Sid to its namespace/name, to name the owner of a bucketwarden
    statement found in force. File mode and the CLI use ``Claim.of(spec)``: the operator of the CLI is the admin.
    """

    assume_role: RoleAssumption | None = None
    may_write: bool = True
    owner: str | None = None
    owner_sid: str | None = None
    rivals: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, spec: ProtectedBucketSpec) -> Claim:
        return cls(assume_role=RoleAssumption.of(spec.assume_role_arn))


def target_of(spec: ProtectedBucketSpec, claim: Claim | None = None) -> BucketTarget:
    """Where ``spec``'s bucket policy lives, reached as the claim's role (or the spec's own, as file mode)."""
    assume_role = claim.assume_role if claim is not None else RoleAssumption.of(spec.assume_role_arn)
    return BucketTarget(spec.bucket_name, spec.region, spec.expected_bucket_owner, assume_role)


@dataclass(frozen=True, slots=True)
class PreviousState:
    """What the last reconcile reported (from the resource's status); used to tell drift from change."""

    statement_hash: str | None = None
    role_ids: Mapping[str, str | None] = field(default_factory=dict)  # role ref -> RoleId
    policy_hash: str | None = None  # the bucket policy in force after the last reconcile
    verified: bool = False  # and it passed verification
    owned: AdoptedStatement | None = None  # the statement this resource recorded writing (status.ownedStatement)


@dataclass(frozen=True, slots=True)
class RoleIdChange:
    ref: str
    old: str | None
    new: str | None


@dataclass(slots=True)
class ReconcileResult:
    """Everything one reconcile learned and did; the k8s layer turns it into status, events and metrics."""

    bucket: str
    outcome: Outcome
    conditions: list[Condition]
    findings: list[Finding] = field(default_factory=list)
    exempt_principals: list[ExemptPrincipal] = field(default_factory=list)
    operator_principal: str | None = None
    policy_hash: str | None = None
    statement_hash: str | None = None
    action: str = "none"
    applied: bool = False
    drift_corrected: bool = False
    role_id_changes: list[RoleIdChange] = field(default_factory=list)
    aws_calls: dict[str, int] = field(default_factory=dict)
    observed: PolicyDocument | None = None
    observed_text: str | None = None  # the policy exactly as GetBucketPolicy returned it (quiet resync ticks)
    desired: PolicyDocument | None = None
    verification: Verification | None = None
    error: BucketWardenError | None = None
    get_to_put_seconds: float | None = None
    duration_seconds: float = 0.0
    adopted: list[AdoptedStatement] = field(default_factory=list)  # replaced by ours in this pass's write
    # Ownership: the statement now in force that this resource wrote (None: keep what status records), and
    # whether this pass gave it up (removed it, or found it gone).
    owned: AdoptedStatement | None = None
    disowned: bool = False
    # Other claimants this pass found in the way (their statement in force): reconcile them now, not at resync.
    nudge: list[str] = field(default_factory=list)

    @property
    def diff(self) -> str:
        """A readable diff of what changed (or would change); computed only when shown."""
        return diff_policies(self.observed, self.desired) if self.action != "none" else ""

    @property
    def retryable(self) -> bool:
        return self.error is not None and self.error.retryable

    @property
    def ready(self) -> bool:
        return any(c.type == READY and c.status == "True" for c in self.conditions)

    def condition(self, kind: str) -> Condition | None:
        return next((c for c in self.conditions if c.type == kind), None)


def _error_message(exc: BucketWardenError) -> str:
    return exc.message


Identities = tuple[Sequence[ResolvedRole], CallerIdentity | None]


class _Rendered(NamedTuple):
    """Who is exempt, and the statement rendered for them."""

    roles: Sequence[ResolvedRole]
    operator: CallerIdentity | None
    ours: Statement


# Who the exempt roles and the operator are, for one spec; the default asks the AWS port (IAM and STS).
IdentitySource = Callable[[ProtectedBucketSpec, Claim], Identities]
# Told of every finished reconcile (the demo and the tests count them); never changes the result.
ResultListener = Callable[[ProtectedBucketSpec, "ReconcileResult"], None]


class Reconciles(Protocol):
    """What the operator needs of a reconciler: this module's ``Reconciler``, or one that runs it in worker
    processes (k8s/_processes.py)."""

    @property
    def aws(self) -> AwsPort: ...

    @property
    def readiness_checks(self) -> bool: ...

    def reconcile(
        self,
        spec: ProtectedBucketSpec,
        previous: PreviousState | None = None,
        claim: Claim | None = None,
        policy_store: BucketPolicyPort | None = None,
    ) -> ReconcileResult: ...

    def cleanup(
        self, spec: ProtectedBucketSpec, previous: PreviousState | None = None, claim: Claim | None = None
    ) -> ReconcileResult: ...

    def close(self) -> None: ...


class Reconciler:
    """Reconciles ProtectedBucket specs against AWS through an AwsPort. Thread-safe if the port is.

    Variants compose, they do not subclass: ``identities`` replaces where the roles and the operator come from
    (offline ``plan`` takes them from flags), ``on_result`` hears every finished reconcile.
    """

    def __init__(
        self,
        aws: AwsPort,
        *,
        readiness: ReadinessPort | None = None,
        identities: IdentitySource | None = None,
        on_result: ResultListener | None = None,
    ) -> None:
        self._aws = aws
        self._readiness = readiness  # AWS Backup readiness checks; None switches them off
        self._identities = identities
        self._on_result = on_result
        # One read-modify-write per bucket at a time in this process: the operator's resync timer and its
        # create/update handler can fire together for one object, and both would otherwise PUT.
        self._bucket_locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self._bucket_locks_guard = threading.Lock()

    @property
    def readiness_checks(self) -> bool:
        """Whether every reconcile also runs the AWS Backup readiness checks."""
        return self._readiness is not None

    @property
    def aws(self) -> AwsPort:
        """The port this reconciler calls (the operator's quiet resync ticks use it too)."""
        return self._aws

    def _bucket_lock(self, bucket: str) -> threading.Lock:
        with self._bucket_locks_guard:
            return self._bucket_locks[bucket]

    # --- the public operations -------------------------------------------------------------------------------

    # The shape of __init__'s signature (one required, three optional): parallel declarations, not shared logic;
    # k8s/_object.py and k8s/_effective.py call it positionally.
    def reconcile(
        self,
        spec: ProtectedBucketSpec,
        previous: PreviousState | None = None,
        claim: Claim | None = None,
        policy_store: BucketPolicyPort | None = None,
    ) -> ReconcileResult:
        """One pass. ``policy_store`` is the policy writer: S3 direct (None, the AWS port) or another store, such
        as an ACK Bucket's spec.policy. The document read from it is the one verified and written back to it."""
        claim = claim if claim is not None else Claim.of(spec)
        store = policy_store if policy_store is not None else self._aws
        with self._bucket_lock(spec.bucket_name):
            started = time.perf_counter()
            with self._aws.count_calls() as calls:
                if claim.may_write:
                    result = self._reconcile(spec, previous or PreviousState(), claim, store)
                    result.findings += self._readiness_findings(spec, result, claim)
                else:
                    result = self._release(spec, previous or PreviousState(), claim)
        result.aws_calls = dict(calls)
        result.duration_seconds = time.perf_counter() - started
        logger.debug(
            "reconcile %s: %s, action %s, AWS calls %s",
            spec.bucket_name,
            result.outcome,
            result.action,
            result.aws_calls,
        )
        if self._on_result is not None:
            self._on_result(spec, result)
        return result

    def cleanup(
        self, spec: ProtectedBucketSpec, previous: PreviousState | None = None, claim: Claim | None = None
    ) -> ReconcileResult:
        """Honour deletionPolicy: remove our statement (and the policy if nothing remains), or retain.

        Only what this resource recorded writing (``previous.owned``), and only while it is still ours by shape.
        A bucket that no longer exists has nothing to clean up, so deletion never hangs on it.
        """
        claim = claim if claim is not None else Claim.of(spec)
        if previous is None:
            # The CLI's caller is the admin: they vouch that our Sid is theirs to remove (its shape is still checked).
            previous = PreviousState(owned=AdoptedStatement(sid=spec.statement_sid, hash="unrecorded"))
        with self._bucket_lock(spec.bucket_name):
            started = time.perf_counter()
            with self._aws.count_calls() as calls:
                result = self._cleanup(spec, previous, claim)
        result.aws_calls = dict(calls)
        result.duration_seconds = time.perf_counter() - started
        return result

    def close(self) -> None:
        """Nothing to release: the AWS clients go with the process."""

    def _readiness_findings(self, spec: ProtectedBucketSpec, result: ReconcileResult, claim: Claim) -> list[Finding]:
        """AWS Backup readiness, after the write (never inside the GET-to-PUT window) and never blocking."""
        if self._readiness is None or result.statement_hash is None or isinstance(result.error, BucketNotFoundError):
            return []  # off, or the reconcile stopped before it knew the roles or the bucket (already reported)
        try:  # cache hits: the reconcile resolved every role a moment ago
            roles = [self._aws.resolve_role(r, assume_role=claim.assume_role) for r in spec.exempt_roles]
        except BucketWardenError:
            roles = []
        return check_readiness(self._readiness, spec, roles, assume_role=claim.assume_role)

    # --- steps -----------------------------------------------------------------------------------------------

    def _resolve(self, spec: ProtectedBucketSpec, claim: Claim) -> Identities:
        if self._identities is not None:
            return self._identities(spec, claim)
        operator = self._aws.caller_identity(claim.assume_role)
        roles = [self._aws.resolve_role(role, assume_role=claim.assume_role) for role in spec.exempt_roles]
        return roles, operator

    def _observe(
        self, target: BucketTarget, store: BucketPolicyPort | None = None
    ) -> tuple[str | None, PolicyDocument | None]:
        text = (store or self._aws).get(target)
        if text is None:
            return None, None
        return text, PolicyDocument.parse(text)

    def _reconcile(
        self, spec: ProtectedBucketSpec, previous: PreviousState, claim: Claim, store: BucketPolicyPort
    ) -> ReconcileResult:
        bucket = spec.bucket_name
        findings = lint_spec(spec)
        if has_errors(findings):
            errors = "; ".join(f.message for f in findings if f.severity == "Error")
            return ReconcileResult(bucket, "Failed", failed_conditions(R_INVALID_SPEC, errors), findings)

        # 1. Identities first: nothing slow may sit between our GET and our PUT.
        try:
            roles, operator = self._resolve(spec, claim)
        except BucketWardenError as exc:
            # Never write a policy that silently drops a requested exemption: keep the last good one.
            return ReconcileResult(
                bucket, "Failed", failed_conditions(exc.reason, _error_message(exc)), findings, error=exc
            )
        rendered = _Rendered(
            roles, operator, render_statement(spec, roles, operator, partition=partition_for_region(spec.region))
        )
        base = ReconcileResult(
            bucket,
            "Failed",
            [],
            findings,
            exempt_principals=describe_exemptions(spec, roles, operator),
            operator_principal=operator.arn if operator else None,
            statement_hash=PolicyDocument((rendered.ours,)).policy_hash,
            role_id_changes=[
                RoleIdChange(r.ref, previous.role_ids.get(r.ref), r.role_id)
                for r in roles
                if r.ref in previous.role_ids and previous.role_ids[r.ref] != r.role_id
            ],
        )

        # 2. Observe.
        target = target_of(spec, claim)
        try:
            text, observed = self._observe(target, store)
        except PolicyParseError as exc:
            msg = f"the existing bucket policy cannot be parsed and is left untouched: {exc.message}"
            base.conditions = failed_conditions(exc.reason, msg)
            base.error = exc
            return base
        except BucketWardenError as exc:
            return self._aws_failure(base, exc)
        got_at = time.perf_counter()
        base.observed, base.observed_text = observed, text
        arns = bucket_arns_of(bucket, partition_for_region(spec.region))
        in_the_way = self._not_ours(spec, observed, arns, claim)
        if in_the_way is not None:
            return self._conflict(base, *in_the_way)
        adoption = check_adoption(observed, spec.adopt_sids, arns)
        if not adoption.ok:
            return self._adoption_refused(base, adoption)
        return self._merge_verify_apply(spec, previous, base, rendered, (target, store), adoption, got_at)

    def _merge_verify_apply(
        self,
        spec: ProtectedBucketSpec,
        previous: PreviousState,
        base: ReconcileResult,
        rendered: _Rendered,
        where: tuple[BucketTarget, BucketPolicyPort],
        adoption: AdoptionCheck,
        got_at: float,
    ) -> ReconcileResult:
        """3. Merge; 4. verify; 5. plan; 6. apply. Pure and fast up to the PUT: this is the GET-to-PUT window."""
        observed, (roles, operator, ours), (target, store) = base.observed, rendered, where
        statement_hash = base.statement_hash
        desired = merge_policy(observed, ours, spec.owned_sids)
        base.desired = desired
        base.findings = base.findings + lint_policy(observed, desired, spec.owned_sids)
        plan = plan_change(observed, desired)
        base.action = plan.action
        unchanged = (
            plan.action == "none"
            and previous.verified
            and previous.policy_hash == desired.policy_hash
            and previous.statement_hash == statement_hash
            and spec.management_policy is ManagementPolicy.ENFORCE
            # Stated facts change the verdict without changing the statement: a spec that states any is judged
            # again every time (the status does not remember which facts the last verdict used).
            and spec.verification_context is None
        )
        if unchanged:
            # Verification is a pure function of the spec, the exemptions and the document; all three are
            # unchanged by meaning since the last reconcile verified them, so its verdict stands.
            base.outcome, base.policy_hash = "InSync", desired.policy_hash
            base.owned = _owned(spec, statement_hash)
            base.conditions = in_sync_conditions()
            return base
        try:
            verification = verify_policy(spec, roles, operator, desired)
        except BucketWardenError as exc:  # e.g. a foreign statement with a condition operator we cannot judge
            return self._unverifiable(base, exc)
        base.verification = verification
        base.findings += [f for f in verification.findings if f not in base.findings]

        if desired.size_bytes > MAX_POLICY_BYTES:
            too_large = PolicyTooLargeError(
                f"the merged bucket policy would be {desired.size_bytes} bytes, over S3's {MAX_POLICY_BYTES}-byte "
                "limit; nothing was written"
            )
            base.conditions = failed_conditions(too_large.reason, too_large.message)
            base.error = too_large
            return self._fail_closed(base, spec, roles, operator, where, too_large)

        if verification.blocking_failures:
            base.outcome = "Blocked"
            base.conditions = blocked_by_verification(verification)
            base.policy_hash = observed.policy_hash if observed else None
            return base

        if spec.management_policy is ManagementPolicy.OBSERVE:
            return self._observe_only(base, spec, roles, operator, observed, plan)

        # 6. Apply.
        if plan.action == "put":
            try:
                store.put(target, desired.to_json())
            except BucketWardenError as exc:
                base.get_to_put_seconds = time.perf_counter() - got_at
                return self._aws_failure(base, exc)
            base.get_to_put_seconds = time.perf_counter() - got_at
            base.applied = True
            base.drift_corrected = previous.statement_hash == statement_hash and not base.role_id_changes
            base.adopted = list(adoption.adopted)
        base.outcome = "Updated" if base.applied else "InSync"
        base.policy_hash = desired.policy_hash
        base.owned = _owned(spec, statement_hash)
        # The same Synced whether this pass wrote or not: the write is told by an Event, and a condition that
        # flipped PolicyUpdated -> InSync on the next pass would cost every change a second status write.
        base.conditions = written_conditions(verification)
        return base

    def _observe_only(
        self,
        base: ReconcileResult,
        spec: ProtectedBucketSpec,
        roles: Sequence[ResolvedRole],
        operator: CallerIdentity | None,
        observed: PolicyDocument | None,
        plan: Plan,
    ) -> ReconcileResult:
        """Observe mode: report what Enforce would do and verify the policy in force today; never write."""
        try:
            current = verify_policy(spec, roles, operator, observed)
        except BucketWardenError as exc:
            return self._unverifiable(base, exc)
        base.verification = current
        base.outcome = "Observed"
        base.policy_hash = observed.policy_hash if observed else None
        pending = f"Enforce would {plan.action} the bucket policy" if plan.changes else "bucket policy as desired"
        base.conditions = observing_conditions(current, pending)
        if plan.changes:
            base.findings.append(Finding(severity="Info", code="ChangesPending", message=pending))
        return base

    def _fail_closed(
        self,
        base: ReconcileResult,
        spec: ProtectedBucketSpec,
        roles: Sequence[ResolvedRole],
        operator: CallerIdentity | None,
        where: tuple[BucketTarget, BucketPolicyPort],
        too_large: PolicyTooLargeError,
    ) -> ReconcileResult:
        """The change does not fit in 20 KB. Removals must not wait for it: write the sources that both our
        statement in force and the new spec allow, and name the additions that wait. Nothing else changes."""
        observed = base.observed
        live = observed.find(spec.statement_sid) if observed is not None else []
        if len(live) != 1:
            return base  # nothing of ours in force (or duplicates): nothing to narrow, nothing written
        narrowing = narrow_to_live(spec, live[0])
        pending = ", ".join(narrowing.pending) or "none"
        if narrowing.pending:
            message = f"waiting until the policy fits in {MAX_POLICY_BYTES} bytes, the additions: {pending}"
            base.findings.append(Finding(severity="Warning", code=SOURCES_PENDING, message=message))
        if narrowing.empty:
            message = (
                "the statement in force and the new spec have no source in common: the removals are not written "
                "either (that would deny every client but the exempt principals); shorten the lists"
            )
            base.findings.append(Finding(severity="Error", code=SOURCES_PENDING, message=message))
            return base
        ours = render_statement(narrowing.spec, roles, operator, partition=partition_for_region(spec.region))
        desired = merge_policy(observed, ours, spec.owned_sids)
        plan = plan_change(observed, desired)
        if desired.size_bytes > MAX_POLICY_BYTES:
            return base
        try:
            verification = verify_policy(narrowing.spec, roles, operator, desired)
        except BucketWardenError:
            return base
        if verification.blocking_failures or (plan.changes and spec.management_policy is ManagementPolicy.OBSERVE):
            return base
        size = base.desired.size_bytes if base.desired is not None else 0
        if plan.action == "put":
            target, store = where
            try:
                store.put(target, desired.to_json())
            except BucketWardenError as exc:
                return self._aws_failure(base, exc)
            base.action, base.applied = plan.action, True
        if base.applied:
            done = (
                "only the sources both the statement in force and the spec allow are written, so the removals took "
                f"effect ({', '.join(narrowing.removed) or 'none'})"
            )
        else:
            done = "the statement in force allows only sources the spec allows (every removal is in effect)"
        message = (
            f"the merged bucket policy would be {size} bytes, over S3's {MAX_POLICY_BYTES}-byte limit: fail closed, "
            f"{done}, and the additions wait ({pending})"
        )
        base.desired, base.policy_hash, base.verification = desired, desired.policy_hash, verification
        verified = verified_conditions(verification)[1]
        base.conditions = failed_conditions(too_large.reason, message, verified=verified)
        return base

    def _adoption_refused(self, base: ReconcileResult, adoption: AdoptionCheck) -> ReconcileResult:
        """adoptSids names a statement ours does not supersede: write nothing, and say which and why."""
        msg = adoption.summary()
        base.outcome = "Blocked"
        base.findings = [*base.findings, *adoption.refused]
        base.conditions = failed_conditions(R_ADOPTION_REFUSED, msg)
        base.policy_hash = base.observed.policy_hash if base.observed else None
        return base

    def _unverifiable(self, base: ReconcileResult, exc: BucketWardenError) -> ReconcileResult:
        """A policy we cannot verify is never written: report why, and leave the bucket as it is."""
        msg = f"nothing was written: the policy cannot be verified: {exc.message}"
        base.outcome = "Blocked"
        base.error = exc
        base.conditions = unverifiable_conditions(exc.reason, msg)
        base.policy_hash = base.observed.policy_hash if base.observed else None
        return base

    def _aws_failure(self, base: ReconcileResult, exc: BucketWardenError) -> ReconcileResult:
        message = exc.message
        if isinstance(exc, AccessDeniedError) and AccessDeniedError.HINT not in message:
            message = f"{message}; {AccessDeniedError.HINT}"
        if isinstance(exc, AccessDeniedError) and exc.api in ("GetBucketPolicy", "PutBucketPolicy", None):
            role = role_arn_of_session(base.operator_principal) or "<the operator's role ARN>"
            message = f"{message}; {MSG_BOOTSTRAP.format(bucket=base.bucket, role=role)}"
        base.outcome = "Failed"
        base.error = exc
        base.conditions = failed_conditions(exc.reason, message)
        return base

    def _not_ours(
        self, spec: ProtectedBucketSpec, observed: PolicyDocument | None, arns: Sequence[str], claim: Claim
    ) -> tuple[str, list[Finding], list[str]] | None:
        """Why this resource must not write into ``observed``: (message, findings, claimants to nudge), or None.

        Another resource's bucketwarden statement in force means another claimant wrote first (a race this one
        may even win by age): writing beside it would stack two Denies, so write nothing and let the loser
        remove its own. Our Sid holding a statement that is not ours by shape means someone else put it there.
        """
        if observed is None:
            return None
        owned = set(spec.owned_sids)
        theirs = sorted({s.sid for s in observed.statements if s.sid and s.sid.startswith(RESERVED_SID_PREFIX)} - owned)
        if theirs:
            named = [f"{sid} (ProtectedBucket {claim.rivals[sid]})" for sid in theirs if sid in claim.rivals]
            orphans = [sid for sid in theirs if sid not in claim.rivals]
            parts = []
            if named:
                parts.append(f"bucketwarden statement {', '.join(named)} is in force on {spec.bucket_name}")
            if orphans:
                parts.append(
                    f"bucketwarden statement {', '.join(orphans)} is in force on {spec.bucket_name} and no "
                    "ProtectedBucket claims it (left by a resource with deletionPolicy Retain?): adopt it with "
                    "adoptSids or remove it"
                )
            message = "; ".join(parts) + "; this one writes nothing"
            return message, [], [claim.rivals[sid] for sid in theirs if sid in claim.rivals]
        for statement in observed.statements:
            if statement.sid != spec.statement_sid:
                continue
            problems = supersede_problems(statement, arns)
            if problems:
                message = (
                    f"statement {spec.statement_sid} in the bucket policy is not one bucketwarden writes "
                    f"({'; '.join(problems)}): it is kept, and nothing was written. Remove or rename it, or choose "
                    "another statementSid on a new ProtectedBucket"
                )
                finding = Finding(
                    severity="Error", code=OWNED_SID_FOREIGN_CONTENT, message=message, sid=spec.statement_sid
                )
                return message, [finding], []
        return None

    def _conflict(
        self, base: ReconcileResult, message: str, findings: list[Finding], nudge: list[str]
    ) -> ReconcileResult:
        base.outcome = "Blocked"
        base.findings = [*base.findings, *findings]
        base.conditions = failed_conditions(R_CONFLICT, message)
        base.policy_hash = base.observed.policy_hash if base.observed else None
        base.nudge = nudge
        return base

    def _release(self, spec: ProtectedBucketSpec, previous: PreviousState, claim: Claim) -> ReconcileResult:
        """A claimant that does not own its bucket: remove the statement it recorded writing, then write nothing.

        It wrote only if it lost a race (two claims in the same second). The owner's statement is never touched:
        not when it carries the same Sid (the owner rewrites it), and not when its shape is not ours.
        """
        owner = claim.owner or "another ProtectedBucket"
        message = f"bucket {spec.bucket_name} is owned by ProtectedBucket {owner}; this one writes nothing"
        result = ReconcileResult(spec.bucket_name, "Blocked", failed_conditions(R_CONFLICT, message))
        recorded = previous.owned
        # Only this resource's own Sid is ever released: a record naming another Sid (a status someone edited)
        # must not make it delete a rival's statement.
        if recorded is None or recorded.sid != spec.statement_sid or recorded.sid == claim.owner_sid:
            return result  # never wrote, or wrote under the owner's Sid (the owner's own statement now)
        target = target_of(spec, claim)
        arns = bucket_arns_of(spec.bucket_name, partition_for_region(spec.region))
        try:
            _text, observed = self._observe(target)
            ours = [s for s in (observed.statements if observed else ()) if s.sid == recorded.sid]
            removable = bool(ours) and all(not supersede_problems(s, arns) for s in ours)
            if removable:
                self._write(target, observed, remove_policy(observed, (recorded.sid,)), result)
        except BucketNotFoundError:
            removable = False
        except BucketWardenError as exc:
            return self._aws_failure(result, exc)
        result.disowned = True
        if removable:
            result.conditions = failed_conditions(
                R_CONFLICT, f"{message}; the statement {recorded.sid} it wrote in a race was removed"
            )
            result.nudge = [claim.owner] if claim.owner else []
        return result

    def _write(
        self,
        target: BucketTarget,
        observed: PolicyDocument | None,
        remaining: PolicyDocument | None,
        result: ReconcileResult,
    ) -> None:
        """PUT what remains, or DELETE the policy when nothing does (never an empty document)."""
        plan = plan_change(observed, remaining)
        result.action, result.observed, result.desired = plan.action, observed, remaining
        if plan.action == "delete":
            self._aws.delete(target)
        elif plan.action == "put" and remaining is not None:
            self._aws.put(target, remaining.to_json())
        result.applied = plan.changes

    def _cleanup(self, spec: ProtectedBucketSpec, previous: PreviousState, claim: Claim) -> ReconcileResult:
        bucket = spec.bucket_name
        if spec.deletion_policy is DeletionPolicy.RETAIN or spec.management_policy is ManagementPolicy.OBSERVE:
            why = "deletionPolicy Retain" if spec.deletion_policy is DeletionPolicy.RETAIN else "Observe mode"
            return ReconcileResult(
                bucket, "Retained", [condition(READY, False, R_RETAINED, f"{why}: policy left as is")]
            )
        result = ReconcileResult(bucket, "Deleted", [condition(READY, False, R_DELETING, "nothing of ours to remove")])
        if previous.owned is None or not claim.may_write:
            # Never wrote (a missing role, an invalid spec, a lost claim...): there is nothing of ours to remove,
            # whatever statement happens to carry our Sid.
            return result
        target = target_of(spec, claim)
        arns = bucket_arns_of(bucket, partition_for_region(spec.region))
        try:
            _text, observed = self._observe(target)
            removable, kept = self._removable_sids(spec, observed, arns)
            self._write(target, observed, remove_policy(observed, removable), result)
        except BucketNotFoundError:
            result.conditions = [
                condition(READY, False, R_BUCKET_GONE, "the bucket no longer exists; nothing to clean up")
            ]
            return result
        except BucketWardenError as exc:
            return self._aws_failure(result, exc)
        result.findings = kept
        result.disowned = True
        removed = "our statement was removed from the bucket policy" if result.applied else "nothing of ours remained"
        result.conditions = [condition(READY, False, R_DELETING, removed)]
        return result

    @staticmethod
    def _removable_sids(
        spec: ProtectedBucketSpec, observed: PolicyDocument | None, arns: Sequence[str]
    ) -> tuple[tuple[str, ...], list[Finding]]:
        """Our Sid and each adopted Sid, only while every statement bearing it is ours by shape.

        A statement under our Sid that bucketwarden would not write (someone's DenyDelete, an Allow) is not ours
        to delete on the way out, whatever the spec says: it is kept and reported as an Error finding.
        """
        statements = observed.statements if observed else ()
        removable: list[str] = []
        kept: list[Finding] = []
        for sid in spec.owned_sids:
            bearing = [s for s in statements if s.sid == sid]
            problems = [p for s in bearing for p in supersede_problems(s, arns)]
            if not problems:
                removable.append(sid)
            elif sid == spec.statement_sid:
                kept.append(
                    Finding(
                        severity="Error",
                        code=OWNED_SID_FOREIGN_CONTENT,
                        message=(
                            f"statement {sid} was kept: it is not one bucketwarden writes ({'; '.join(problems)})"
                        ),
                        sid=sid,
                    )
                )
        return tuple(removable), kept


def _owned(spec: ProtectedBucketSpec, statement_hash_: str | None) -> AdoptedStatement | None:
    """The ownership record of our statement in force (status.ownedStatement)."""
    return AdoptedStatement(sid=spec.statement_sid, hash=statement_hash_) if statement_hash_ else None


def iter_errors(results: Sequence[ReconcileResult]) -> Iterator[tuple[str, AwsError]]:
    for r in results:
        if isinstance(r.error, AwsError):
            yield r.bucket, r.error
