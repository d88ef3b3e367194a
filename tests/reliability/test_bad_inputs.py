"""The bad-input catalogue (docs/bad-inputs.md), one table row per case, each backed here by its row id.

Where each is caught: admission (the CRD's schema and CEL rules, emulated offline by tests/unit/test_crd.py), a
status reason (the reconciler, against InMemoryAws or moto through AwsFaultProxy), or a CLI error. Then one
operator on the Kubernetes emulator (which, like a cluster without CEL, admits anything) gets every case at once,
and must keep running, report each, write nothing for the invalid ones, and lose no foreign statement.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pytest
from botocore.exceptions import ClientError, NoCredentialsError

from bucketwarden import cli
from bucketwarden.aws import AwsGateway, AwsSettings, map_client_error
from bucketwarden.contention import is_contended
from bucketwarden.crd import build_allow_list_crd
from bucketwarden.errors import AwsUnavailableError
from bucketwarden.exitcodes import ExitCode
from bucketwarden.k8s import OperatorSettings
from bucketwarden.k8s._ack import AckBucket
from bucketwarden.k8s._effective import Surroundings, reconcile_effective
from bucketwarden.k8s._events import events_for
from bucketwarden.policy import PolicyDocument, statement_hash
from bucketwarden.reconciler import PreviousState, Reconciler, ReconcileResult
from bucketwarden.spec import (
    AllowListRef,
    ManagementPolicy,
    ProtectedBucketSpec,
    ProtectedBucketStatus,
    SourceAllowListSpec,
)
from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    AwsFaultProxy,
    ErrorReply,
    KubeEmulator,
    MotoServer,
    ResourceSpec,
    load_crds,
    wait_until,
)
from tests.reliability._kit import (
    ACCOUNT,
    ADOPT_SID,
    ROLE,
    RecordingAws,
    create_pb,
    delete_all,
    foreign_of,
    foreign_statements,
    hand_written_deny,
    operator_on,
    policy_problems,
    policy_text,
    wait_for_reason,
)
from tests.shared import OUR_SID, REPO_ROOT, TRUST_POLICY, unique
from tests.unit.test_crd import INVALID_FILES, InvalidFixture, admit, pydantic_errors
from tests.unit.test_crd import OPENAPI as ADMISSION_OPENAPI

pytestmark = pytest.mark.timeout(120)

CATALOGUE = REPO_ROOT / "docs" / "bad-inputs.md"
OTHER_ACCOUNT = "210987654321"
CIDRS = ["192.0.2.0/24", "2001:db8::/32"]


def bucket_of(case_id: str) -> str:
    return f"bw-bad-{case_id.lower()}"


def base_spec(bucket: str, **extra: Any) -> dict[str, Any]:
    return {"bucketName": bucket, "allowedSourceIps": list(CIDRS), "exemptRoles": [{"name": ROLE}], **extra}


# --- admission: schema and CEL ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdmissionCase:
    id: str
    spec: dict[str, Any] | None = None  # inline, or a fixture from tests/fixtures/invalid
    fixture: str | None = None
    expect: str | None = None  # a fixture carries its own
    old: dict[str, Any] | None = None  # an update: the stored object's spec
    kind: str = "ProtectedBucket"  # or SourceAllowList

    def docs(self) -> tuple[dict[str, Any], dict[str, Any] | None, str]:
        """(the object, the stored object for an update or None, the admission error expected)."""
        if self.fixture is not None:
            loaded = InvalidFixture.load(next(p for p in INVALID_FILES if p.stem == self.fixture))
            old = loaded.docs[0] if loaded.is_update else None
            return loaded.docs[-1], old, loaded.expect
        assert self.spec is not None and self.expect is not None
        doc = {"apiVersion": "bucketwarden.io/v1alpha1", "kind": self.kind, "metadata": {"name": "x"}}
        old = None if self.old is None else {**doc, "spec": self.old}
        return {**doc, "spec": self.spec}, old, self.expect

    @property
    def update_only(self) -> bool:
        return self.old is not None or self.fixture == "bucket-name-change"

    @property
    def schema(self) -> dict[str, Any]:
        crd = build_allow_list_crd() if self.kind == "SourceAllowList" else None
        return crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"] if crd else ADMISSION_OPENAPI


ADMISSION_CASES = [
    AdmissionCase("S01", fixture="bad-cidr"),
    AdmissionCase("S02", fixture="ipv4-mapped-ipv6"),
    AdmissionCase(
        "S03",
        spec={"bucketName": "bw-bad-s03", "allowedSourceIps": ["192.0.2.0/255.255.255.0"]},
        expect="spec.allowedSourceIps[0]: must be an IPv4 or IPv6 CIDR",
    ),
    AdmissionCase(
        "S04",
        spec={"bucketName": "bw-bad-s04", "allowedSourceIps": ["office-network"]},
        expect="spec.allowedSourceIps[0]: must be an IPv4 or IPv6 CIDR",
    ),
    AdmissionCase("S09", fixture="empty-allow-lists"),
    AdmissionCase("S11", fixture="role-name-and-arn"),
    AdmissionCase("S12", fixture="role-neither"),
    AdmissionCase("S13", fixture="duplicate-role"),
    AdmissionCase("S16", fixture="bad-role-arn"),
    AdmissionCase(
        "S17",
        spec={**base_spec("bw-bad-s17"), "exemptRoles": [{"arn": f"arn:aws:iam::{ACCOUNT}:user/backup"}]},
        expect="spec.exemptRoles[0].arn in body should match",
    ),
    AdmissionCase("S19", fixture="bad-bucket-name"),
    AdmissionCase("S20", fixture="bucket-name-ip"),
    AdmissionCase("S21", fixture="bucket-name-reserved"),
    AdmissionCase("S22", spec=base_spec("b" * 64), expect="spec.bucketName: Too long: may not be more than 63 bytes"),
    AdmissionCase("S23", fixture="bucket-name-change"),
    AdmissionCase("S25", fixture="lockout-without-ack"),
    AdmissionCase("S27", fixture="statement-sid-adopted"),
    AdmissionCase("S28", fixture="duplicate-adopt-sid"),
    AdmissionCase("S29", fixture="unknown-field"),
    AdmissionCase("S30", fixture="too-many-cidrs"),
    AdmissionCase("S31", fixture="bool-as-string"),
    AdmissionCase("S32", fixture="bad-enum"),
    AdmissionCase(
        "S33",
        spec=base_spec("bw-bad-s33", statementSid="Bucket Warden"),
        expect="spec.statementSid in body should match",
    ),
    AdmissionCase(
        "S34",
        spec=base_spec("bw-bad-s34", allowedSourcesFrom=[{"name": "corp"}, {"name": "corp"}]),
        expect="spec.allowedSourcesFrom[1]: Duplicate value",
    ),
    AdmissionCase(
        "S38",
        spec=base_spec("bw-bad-s38", policyWriter="ACK"),
        expect="spec.bucketRef: policyWriter: ACK needs bucketRef",
    ),
    AdmissionCase("S41", fixture="statement-sid-hijack"),
    AdmissionCase("S42", fixture="cidr-slash-zero"),
    AdmissionCase(
        "S36",
        kind="SourceAllowList",
        spec={"cidrs": ["192.0.2.0/24", "198.51.100.0/33"]},
        expect="spec.cidrs[1]: must be an IPv4 or IPv6 CIDR",
    ),
    AdmissionCase(
        "S37",
        kind="SourceAllowList",
        spec={"cidrs": [], "owner": "network-team"},
        expect="spec: give at least one of cidrs, vpcEndpoints and vpcs",
    ),
]


@pytest.mark.parametrize("case", ADMISSION_CASES, ids=lambda c: c.id)
def test_bad_spec_is_refused_at_admission(case: AdmissionCase) -> None:
    doc, old, expect = case.docs()
    result = admit(doc, old=old, schema=case.schema)
    assert any(expect in error for error in result.errors), result.errors
    if case.kind == "SourceAllowList":  # the operator skips such a list; its users report it missing
        with pytest.raises(ValueError, match=r"CIDR|give at least one"):
            SourceAllowListSpec.model_validate(doc["spec"])
    elif not case.update_only:  # the operator refuses it too, if admission is missing (emulator, no CEL)
        assert pydantic_errors(doc) != []


# --- status: the reconciler's verdicts ------------------------------------------------------------------------

PolicyExpectation = Literal["unchanged", "merged", "none"]


@dataclass(frozen=True)
class StatusCase:
    """``setup(aws, bucket)`` prepares the fake AWS and returns the spec. Then one reconcile (or ``run``)."""

    id: str
    setup: Callable[[RecordingAws, str], dict[str, Any]]
    reason: str  # of the Ready condition
    ready: bool = False
    policy: PolicyExpectation = "unchanged"
    findings: tuple[str, ...] = ()
    message: str = ""  # a piece of the Ready message
    no_aws_calls: bool = False
    shared: bool = True  # can run beside the other cases in one fake AWS (the operator run)
    run: Callable[[Reconciler, RecordingAws, ProtectedBucketSpec], ReconcileResult] | None = None
    extra: dict[str, Any] = field(default_factory=dict)


def with_policy(*statements: dict[str, Any], version: str | None = "2012-10-17") -> Callable[..., dict[str, Any]]:
    """Setup: the bucket holds these statements (plus the usual foreign ones); the spec is the usual one."""

    def setup(aws: RecordingAws, bucket: str) -> dict[str, Any]:
        policy = [
            *foreign_statements(bucket),
            *(json.loads(json.dumps(s).replace("BUCKET", bucket)) for s in statements),
        ]
        aws.create_bucket(bucket, policy=policy_text(*policy, version=version))
        return base_spec(bucket, adoptSids=[ADOPT_SID])

    return setup


def adopting(sids: list[str], *statements: dict[str, Any]) -> Callable[..., dict[str, Any]]:
    """Setup: the bucket holds these statements (plus the usual foreign ones); the spec adopts ``sids``."""

    def setup(aws: RecordingAws, bucket: str) -> dict[str, Any]:
        return {**with_policy(*statements)(aws, bucket), "adoptSids": sids}

    return setup


def with_raw_policy(text: str) -> Callable[..., dict[str, Any]]:
    def setup(aws: RecordingAws, bucket: str) -> dict[str, Any]:
        aws.create_bucket(bucket, policy=text.replace("BUCKET", bucket))
        return base_spec(bucket)

    return setup


def with_spec(**extra: Any) -> Callable[..., dict[str, Any]]:
    def setup(aws: RecordingAws, bucket: str) -> dict[str, Any]:
        aws.create_bucket(bucket, policy=policy_text(*foreign_statements(bucket)))
        return {**base_spec(bucket), **extra}

    return setup


def failing(api: str, error: Exception, **extra: Any) -> Callable[..., dict[str, Any]]:
    """Setup: calls of ``api`` on this bucket fail with ``error`` (built by the real botocore error mapping)."""

    def setup(aws: RecordingAws, bucket: str) -> dict[str, Any]:
        spec = with_spec(**extra)(aws, bucket)
        aws.fail_bucket(bucket, api, error)
        return spec

    return setup


def client_error(api: str, code: str, status: int, message: str = "", **fields: str) -> Exception:
    error = {"Code": code, "Message": message or code, **fields}
    exc = ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": status}}, api)  # type: ignore[typeddict-item]
    return map_client_error(exc, api=api, bucket="(bucket)")


def failing_identity(error: Exception) -> Callable[..., dict[str, Any]]:
    def setup(aws: RecordingAws, bucket: str) -> dict[str, Any]:
        spec = with_spec()(aws, bucket)
        aws.fail_next("GetCallerIdentity", error)
        return spec

    return setup


def other_owner(aws: RecordingAws, bucket: str) -> dict[str, Any]:
    aws.create_bucket(bucket, owner=OTHER_ACCOUNT, policy=policy_text(*foreign_statements(bucket)))
    return base_spec(bucket, expectedBucketOwner=ACCOUNT)


def no_bucket(aws: RecordingAws, bucket: str) -> dict[str, Any]:
    return base_spec(bucket)


def too_large(aws: RecordingAws, bucket: str) -> dict[str, Any]:
    """A 19.9 KB policy (compact JSON, as S3 stores it): valid as it is, over S3's 20 KB once ours is merged in."""
    statements = foreign_statements(bucket)
    arns = ["arn:aws:iam::444455556666:role/reader"]

    def text() -> str:
        filler = {"Sid": "Readers", "Effect": "Allow", "Principal": {"AWS": arns}, "Action": "s3:GetObject"}
        filler["Resource"] = f"arn:aws:s3:::{bucket}/*"
        return PolicyDocument.from_obj({"Version": "2012-10-17", "Statement": [*statements, filler]}).to_json()

    while len(text().encode()) < int(19.9 * 1024) - 60:
        arns.append(f"arn:aws:iam::4444555566{len(arns) % 100:02d}:role/reader-{len(arns)}")
    assert int(19.8 * 1024) < len(text().encode()) < 20 * 1024
    aws.create_bucket(bucket, policy=text())
    return base_spec(bucket)


def switch_modes(reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec) -> ReconcileResult:
    """S24: Enforce, then Observe while someone edits our statement (not corrected), then Enforce (corrected)."""
    first = reconciler.reconcile(spec)
    assert first.ready and first.applied
    observe = spec.model_copy(update={"management_policy": ManagementPolicy.OBSERVE})
    doc = json.loads(aws.policy_of(spec.bucket_name) or "")
    for statement in doc["Statement"]:
        if statement.get("Sid") == OUR_SID:
            statement["Condition"]["NotIpAddress"]["aws:SourceIp"] = "0.0.0.0/0"
    aws.put_foreign(spec.bucket_name, json.dumps(doc))
    observed = reconciler.reconcile(observe)
    assert (observed.outcome, observed.applied) == ("Observed", False)
    assert "ChangesPending" in {f.code for f in observed.findings}
    assert "0.0.0.0/0" in (aws.policy_of(spec.bucket_name) or "")
    cleanup = reconciler.cleanup(observe)
    assert cleanup.outcome == "Retained"
    again = reconciler.reconcile(spec)
    assert again.applied and "0.0.0.0/0" not in (aws.policy_of(spec.bucket_name) or "")
    return again


def rename_bucket(reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec) -> ReconcileResult:
    """S23 without admission: the new bucket is managed; the old one keeps our statement (a leftover)."""
    first = reconciler.reconcile(spec)
    assert first.ready
    renamed = spec.model_copy(update={"bucket_name": spec.bucket_name + "-new"})
    aws.create_bucket(renamed.bucket_name, policy=policy_text(*foreign_statements(renamed.bucket_name)))
    result = reconciler.reconcile(renamed)
    assert result.ready
    assert len(PolicyDocument.parse(aws.policy_of(spec.bucket_name) or "").find(OUR_SID)) == 1  # leftover
    return first


def operator_not_exempt(reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec) -> ReconcileResult:
    """S26: accepted, and said loudly: a Warning event OperatorNotExempt, once."""
    result = reconciler.reconcile(spec)
    [event] = [e for e in events_for(result, ProtectedBucketStatus()) if e.reason == "OperatorNotExempt"]
    assert event.type == "Warning" and "root user" in event.message
    again = ProtectedBucketStatus(findings=result.findings)
    assert [e for e in events_for(reconciler.reconcile(spec), again) if e.reason == "OperatorNotExempt"] == []
    return result


def bucket_deleted(reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec) -> ReconcileResult:
    """E08: managed, then the bucket goes: reported; and deleting the resource does not hang on it."""
    assert reconciler.reconcile(spec).ready
    aws.delete_bucket(spec.bucket_name)
    result = reconciler.reconcile(spec)
    cleanup = reconciler.cleanup(spec)
    assert cleanup.outcome == "Deleted" and cleanup.conditions[0].reason == "BucketGone"
    return result


def role_deleted(reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec) -> ReconcileResult:
    """E11: the exempt role is deleted: reported, and the last good policy stays (never rewritten without it)."""
    assert reconciler.reconcile(spec).ready
    good = aws.policy_of(spec.bucket_name)
    aws.delete_role(ROLE)
    aws.advance(400)  # past the RoleId cache
    result = reconciler.reconcile(spec)
    assert aws.policy_of(spec.bucket_name) == good
    return result


def policy_deleted(reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec) -> ReconcileResult:
    """E12: someone deletes the whole policy: restored at the next reconcile, as drift."""
    first = reconciler.reconcile(spec)
    aws.put_foreign(spec.bucket_name, None)
    result = reconciler.reconcile(spec, PreviousState(first.statement_hash))
    assert result.applied and result.drift_corrected
    return result


SECURITY_TEAM_DENY_DELETE = {
    "Sid": "SecurityTeamDenyDelete",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:DeleteBucket",
    "Resource": "arn:aws:s3:::BUCKET",
    "Condition": {"ArnNotLike": {"aws:PrincipalArn": f"arn:aws:iam::{ACCOUNT}:role/security"}},
}
DENY_INSECURE_TRANSPORT = {
    "Sid": "DenyInsecureTransport",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": ["arn:aws:s3:::BUCKET", "arn:aws:s3:::BUCKET/*"],
    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
}
OTHER_BUCKETS_RESTRICTION = hand_written_deny("some-other-bucket", sid="OtherBucketIpRestriction")


def adopt_then_delete(reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec) -> ReconcileResult:
    """P19: the IP restriction is adopted (an Event, its hash in the result), and cleanup keeps the safeguards."""
    before = PolicyDocument.parse(aws.policy_of(spec.bucket_name) or "")
    [adopted] = before.find(ADOPT_SID)
    result = reconciler.reconcile(spec)
    assert [(a.sid, a.hash) for a in result.adopted] == [(ADOPT_SID, statement_hash(adopted))]
    assert "StatementAdopted" in {e.reason for e in events_for(result, ProtectedBucketStatus())}
    greedy = spec.model_copy(update={"adopt_sids": [ADOPT_SID, "SecurityTeamDenyDelete"]})
    reconciler.cleanup(greedy)
    after = PolicyDocument.parse(aws.policy_of(spec.bucket_name) or "")
    assert after.find(OUR_SID) == [] and len(after.find("SecurityTeamDenyDelete")) == 1
    return result


def missing_list(reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec) -> ReconcileResult:
    """S35: a referenced SourceAllowList does not exist: reported, nothing written (the operator does the same)."""
    before = aws.policy_of(spec.bucket_name)
    result, extra = reconcile_effective(reconciler, spec, PreviousState(), ProtectedBucketStatus(), {})
    assert aws.policy_of(spec.bucket_name) == before and aws.calls("PutBucketPolicy") == 0
    assert extra == {"resolvedSourcesHash": None}
    return result


def through_ack(entries: list[AckBucket]) -> Callable[[Reconciler, RecordingAws, ProtectedBucketSpec], ReconcileResult]:
    """S39/S40: policyWriter: ACK with a bucketRef that finds no ACK Bucket, or one for another bucket."""

    def run(reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec) -> ReconcileResult:
        before = aws.policy_of(spec.bucket_name)
        index: dict[Any, list[AckBucket]] = {}
        for e in entries:
            index.setdefault(("ref", e.namespace, e.name), []).append(e)
        patched: list[str] = []
        around = Surroundings(namespace="team", ack_index=index, patch_ack=lambda _e, text: patched.append(text))
        result, _ = reconcile_effective(reconciler, spec, PreviousState(), ProtectedBucketStatus(), around)
        assert aws.policy_of(spec.bucket_name) == before and patched == [] and aws.calls("PutBucketPolicy") == 0
        return result

    return run


def with_lists(
    lists: dict[str, SourceAllowListSpec],
) -> Callable[[Reconciler, RecordingAws, ProtectedBucketSpec], ReconcileResult]:
    """S43: the referenced SourceAllowLists exist; the effective (resolved) spec is what is judged."""

    def run(reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec) -> ReconcileResult:
        before = aws.policy_of(spec.bucket_name)
        result, _ = reconcile_effective(reconciler, spec, PreviousState(), ProtectedBucketStatus(), lists)
        assert aws.policy_of(spec.bucket_name) == before
        return result

    return run


def list_shrinks_past_the_limit(
    reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec
) -> ReconcileResult:
    """S44: a SourceAllowList edit drops a range and adds 90, past 20 KB: the removal is written all the same."""
    bucket, dropped = spec.bucket_name, "198.51.100.0/24"
    uses = spec.model_copy(update={"allowed_sources_from": [AllowListRef(name="corp")]})
    statements = foreign_statements(bucket)
    arns = ["arn:aws:iam::444455556666:role/reader"]

    def text() -> str:
        filler = {"Sid": "Readers", "Effect": "Allow", "Principal": {"AWS": arns}, "Action": "s3:GetObject"}
        filler["Resource"] = f"arn:aws:s3:::{bucket}/*"
        return PolicyDocument.from_obj({"Version": "2012-10-17", "Statement": [*statements, filler]}).to_json()

    while len(text().encode()) < 20 * 1024 - 1300:
        arns.append(f"arn:aws:iam::4444555566{len(arns) % 100:02d}:role/reader-{len(arns)}")
    aws.put_foreign(bucket, text())
    before = {"corp": SourceAllowListSpec(cidrs=[dropped])}
    first, _ = reconcile_effective(reconciler, uses, PreviousState(), ProtectedBucketStatus(), before)
    assert first.ready
    added = [f"203.0.{i // 8}.{(i % 8) * 32}/28" for i in range(90)]
    after = {"corp": SourceAllowListSpec(cidrs=added)}
    result, _ = reconcile_effective(reconciler, uses, PreviousState(), ProtectedBucketStatus(), after)
    policy = PolicyDocument.parse(aws.policy_of(bucket) or "")
    (ours,) = policy.find(OUR_SID)
    assert set(ours.conditions["NotIpAddress"]["aws:sourceip"]) == set(CIDRS)  # the dropped range is denied now
    assert policy_problems(aws.policy_of(bucket), uses, foreign_of(PolicyDocument.parse(text()), uses.owned_sids)) == []
    return result


FIGHT_RECONCILES = 13


def writer_fight(reconciler: Reconciler, aws: RecordingAws, spec: ProtectedBucketSpec) -> ReconcileResult:
    """E13: another writer puts the old policy back after every repair: Contended, and the repairs back off."""
    foreign = aws.policy_of(spec.bucket_name)
    status, result = ProtectedBucketStatus(), None
    for _ in range(FIGHT_RECONCILES):
        prev = PreviousState(status.statement_hash)
        result, extra = reconcile_effective(reconciler, spec, prev, status, {})
        contention = extra["contention"]
        status = status.model_copy(
            update={
                "statement_hash": result.statement_hash,
                "contention": None
                if contention is None
                else status.model_validate({"contention": contention}).contention,
            }
        )
        if result.applied:
            aws.put_foreign(spec.bucket_name, foreign)  # the other writer wins again at once
    assert is_contended(status.contention)
    # The first write, repairs at reconciles 1, 2, 3, then after 1 and 2 skipped (4 more pending): 6 writes where
    # an endless fight makes 13.
    assert aws.calls("PutBucketPolicy", spec.bucket_name) == 6
    assert aws.policy_of(spec.bucket_name) == foreign
    assert result is not None and result.condition("Synced") is not None
    synced = result.condition("Synced")
    assert synced is not None and synced.reason == "Contended" and "last 5 repairs" in synced.message
    return result


LOCKS_OUT_OPERATOR = {
    "Sid": "OnlyAdminsEditPolicy",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:PutBucketPolicy",
    "Resource": "arn:aws:s3:::BUCKET",
}
BLOCKS_BACKUP = {
    "Sid": "NoRestoreFromOutside",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::BUCKET/*",
    "Condition": {"NotIpAddress": {"aws:SourceIp": "192.0.2.0/24"}},
}
UNKNOWN_OPERATOR = {
    "Sid": "FutureCondition",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:DeleteObject",
    "Resource": "arn:aws:s3:::BUCKET/*",
    "Condition": {"StringEqualsFuture": {"aws:PrincipalTag/team": "x"}},
}
FOREIGN_WITH_OUR_SID = {**hand_written_deny("BUCKET"), "Sid": OUR_SID}
SINGLE_STATEMENT = {
    "Sid": "One",
    "Effect": "Allow",
    "Principal": "*",
    "Action": "s3:GetObject",
    "Resource": "arn:aws:s3:::BUCKET/*",
}
DUPLICATE_FOREIGN = {
    "Sid": "ForeignRead0",
    "Effect": "Allow",
    "Principal": "*",
    "Action": "s3:GetObject",
    "Resource": "*",
}

STATUS_CASES = [
    StatusCase(
        "S05",
        with_spec(allowedSourceIps=["10.0.0.0/8", "192.0.2.0/24"]),
        "InvalidSpec",
        findings=("PrivateSourceIp",),
        no_aws_calls=True,
    ),
    StatusCase(
        "S06",
        with_spec(allowedSourceIps=["100.64.0.0/10", "169.254.0.0/16"]),
        "InvalidSpec",
        findings=("PrivateSourceIp",),
        no_aws_calls=True,
    ),
    StatusCase(
        "S07",
        with_spec(allowedSourceIps=[f"{32 * i}.0.0.0/3" for i in range(8)]),
        "InvalidSpec",
        findings=("AllowsAllAddresses",),
        message="cover every public IPv4 address",
        no_aws_calls=True,
    ),
    StatusCase(
        "S08",
        with_spec(allowedSourceIps=["::/1", "8000::/1", "192.0.2.0/24"]),
        "InvalidSpec",
        findings=("AllowsAllAddresses",),
        message="cover every public IPv6 address (2000::/3)",
        no_aws_calls=True,
    ),
    StatusCase(
        "S43",
        with_spec(allowedSourceIps=["0.0.0.0/1", "2001:db8::/32"], allowedSourcesFrom=[{"name": "other-half"}]),
        "InvalidSpec",
        findings=("AllowsAllAddresses",),
        message="cover every public IPv4 address",
        no_aws_calls=True,
        shared=False,  # the operator on the emulator has no such list: it would say SourceListNotFound
        run=with_lists({"other-half": SourceAllowListSpec(cidrs=["128.0.0.0/1"])}),
    ),
    StatusCase(
        "S44",
        with_spec(),
        "PolicyTooLarge",
        message="the removals took effect (198.51.100.0/24)",
        findings=("SourcesPending",),
        shared=False,
        run=list_shrinks_past_the_limit,
    ),
    StatusCase(
        "S10",
        with_spec(allowedSourceIps=[], allowedVpcEndpoints=["vpce-0a1b2c3d4e5f60718"]),
        "Protected",
        ready=True,
        policy="merged",
    ),
    StatusCase(
        "S14", with_spec(exemptRoles=[{"name": "NoSuchBackupRole"}]), "RoleNotFound", message="NoSuchBackupRole"
    ),
    StatusCase(
        "S15",
        with_spec(exemptRoles=[{"arn": f"arn:aws:iam::{OTHER_ACCOUNT}:role/{ROLE}"}]),
        "CrossAccountRole",
        message=OTHER_ACCOUNT,
    ),
    StatusCase(
        "S18",
        with_spec(exemptRoles=[{"arn": f"arn:aws:iam::{ACCOUNT}:role/{ROLE}"}]),
        "RoleNotFound",
        message="fix the path",
    ),
    StatusCase("S23", with_spec(), "Protected", ready=True, policy="merged", shared=False, run=rename_bucket),
    StatusCase("S24", with_spec(), "Protected", ready=True, policy="merged", shared=False, run=switch_modes),
    StatusCase(
        "S26",
        with_spec(exemptOperator=False, acknowledgeLockoutRisk=True),
        "Protected",
        ready=True,
        policy="merged",
        findings=("OperatorNotExempt",),
        run=operator_not_exempt,
    ),
    StatusCase(
        "P01",
        with_raw_policy('{"Version": "2012-10-17", "Statement": [{"Sid": "Broken"'),
        "MalformedPolicy",
        message="not valid JSON",
    ),
    StatusCase(
        "P02", with_policy(version=None), "Protected", ready=True, policy="merged", findings=("LegacyVersionKept",)
    ),
    StatusCase(
        "P03",
        with_policy(version="2008-10-17"),
        "Protected",
        ready=True,
        policy="merged",
        findings=("LegacyVersionKept",),
    ),
    StatusCase(
        "P04", with_policy(DUPLICATE_FOREIGN), "Protected", ready=True, policy="merged", findings=("DuplicateSids",)
    ),
    StatusCase(
        "P05",
        with_policy(FOREIGN_WITH_OUR_SID, FOREIGN_WITH_OUR_SID),
        "Protected",
        ready=True,
        policy="merged",
        findings=("DuplicateSids",),
    ),
    StatusCase(
        "P06",
        with_policy(FOREIGN_WITH_OUR_SID),
        "Protected",
        ready=True,
        policy="merged",
        findings=("OwnedSidForeignContent",),
    ),
    StatusCase("P07", too_large, "PolicyTooLarge", message="20480-byte limit"),
    StatusCase("P08", with_policy(), "Protected", ready=True, policy="merged"),  # foreign_statements holds AIDA...
    StatusCase("P09", with_policy(), "Protected", ready=True, policy="merged"),  # ... and a NotPrincipal Deny
    StatusCase(
        "P10",
        with_raw_policy(json.dumps({"Version": "2012-10-17", "Statement": SINGLE_STATEMENT})),
        "Protected",
        ready=True,
        policy="merged",
    ),
    StatusCase(
        "P11",
        with_raw_policy(policy_text({**SINGLE_STATEMENT, "Colour": "red"})),
        "MalformedPolicy",
        message="unknown field",
    ),
    StatusCase(
        "P12",
        with_raw_policy('{"Version": "2012-10-17", "Statement": []}'),
        "MalformedPolicy",
        message="non-empty Statement",
    ),
    StatusCase("P13", with_policy(UNKNOWN_OPERATOR), "UnsupportedCondition", message="StringEqualsFuture"),
    StatusCase(
        "P14",
        with_policy(BLOCKS_BACKUP),
        "VerificationFailed",
        policy="merged",
        findings=("ForeignDenyBlocksExemptRole",),
        message="NoRestoreFromOutside",
    ),
    StatusCase("P15", with_policy(LOCKS_OUT_OPERATOR), "VerificationFailed", message="operator-PutBucketPolicy"),
    StatusCase("P16", with_raw_policy('[{"Effect": "Allow"}]'), "MalformedPolicy", message="JSON object"),
    StatusCase(
        "P17",
        adopting(
            ["SecurityTeamDenyDelete", "DenyInsecureTransport"], SECURITY_TEAM_DENY_DELETE, DENY_INSECURE_TRANSPORT
        ),
        "AdoptionRefused",
        findings=("AdoptionRefused",),
        message="refusing to adopt 'SecurityTeamDenyDelete': its conditions name no network key",
    ),
    StatusCase(
        "P18",
        adopting(["OtherBucketIpRestriction"], OTHER_BUCKETS_RESTRICTION),
        "AdoptionRefused",
        findings=("AdoptionRefused",),
        message="resources other than this bucket",
    ),
    StatusCase(
        "P19",
        adopting([ADOPT_SID], hand_written_deny("BUCKET"), SECURITY_TEAM_DENY_DELETE),
        "Protected",
        ready=True,
        policy="merged",
        run=adopt_then_delete,
    ),
    StatusCase(
        "E01",
        failing_identity(map_client_error(NoCredentialsError(), api="GetCallerIdentity")),
        "NoCredentials",
        shared=False,
    ),
    StatusCase(
        "E02", failing_identity(client_error("GetCallerIdentity", "ExpiredToken", 400)), "NoCredentials", shared=False
    ),
    StatusCase(
        "E03",
        failing("GetBucketPolicy", client_error("GetBucketPolicy", "AccessDenied", 403)),
        "AccessDenied",
        message="root user",
    ),
    StatusCase(
        "E04",
        failing("PutBucketPolicy", client_error("PutBucketPolicy", "AccessDenied", 403)),
        "AccessDenied",
        message="exemptOperator",
    ),
    StatusCase(
        "E05",
        failing("GetBucketPolicy", client_error("GetBucketPolicy", "PermanentRedirect", 301, Region="eu-west-1")),
        "WrongRegion",
        message="eu-west-1",
    ),
    StatusCase("E06", other_owner, "AccessDenied", message=f"owned by account {ACCOUNT}"),
    StatusCase("E07", no_bucket, "BucketNotFound", policy="none"),
    StatusCase("E08", with_spec(), "BucketNotFound", policy="none", shared=False, run=bucket_deleted),
    StatusCase(
        "E09",
        with_spec(assumeRoleArn=f"arn:aws:iam::{OTHER_ACCOUNT}:role/bucketwarden-target"),
        "NoCredentials",
        message="could not assume role",
    ),
    StatusCase(
        "E10",
        failing(
            "GetBucketPolicy",
            AwsUnavailableError("GetBucketPolicy failed with a transient AWS error (SlowDown)", api="GetBucketPolicy"),
        ),
        "AwsUnavailable",
    ),
    StatusCase("E11", with_spec(), "RoleNotFound", shared=False, run=role_deleted),
    StatusCase("E12", with_spec(), "Protected", ready=True, policy="merged", shared=False, run=policy_deleted),
    StatusCase(
        "S35",
        with_spec(allowedSourcesFrom=[{"name": "no-such-list"}]),
        "SourceListNotFound",
        message="SourceAllowList no-such-list not found",
        run=missing_list,
    ),
    StatusCase(
        "S39",
        with_spec(policyWriter="ACK", bucketRef={"name": "data-bucket"}),
        "ACKBucketNotFound",
        message="ACK Bucket team/data-bucket (bucketRef) not found",
        shared=False,
        run=through_ack([]),
    ),
    StatusCase(
        "S40",
        with_spec(policyWriter="ACK", bucketRef={"name": "data-bucket"}),
        "ACKBucketMismatch",
        message="manages bucket someone-elses-bucket",
        shared=False,
        run=through_ack([AckBucket("team", "data-bucket", "someone-elses-bucket", None)]),
    ),
    StatusCase("E13", with_spec(), "Contended", shared=False, run=writer_fight, message="another writer"),
]


def prepare(aws: RecordingAws, case: StatusCase) -> tuple[ProtectedBucketSpec, str | None]:
    """Set the case up; return its spec and the policy stored before anything ran."""
    spec = ProtectedBucketSpec.model_validate(case.setup(aws, bucket_of(case.id)))
    before = aws.policy_of(spec.bucket_name) if spec.bucket_name in aws.buckets else None
    return spec, before


def check_policy(aws: RecordingAws, case: StatusCase, spec: ProtectedBucketSpec, before: str | None) -> None:
    """Nothing lost: untouched where we refused; every foreign statement kept where we wrote."""
    if case.policy == "none":
        return
    after = aws.policy_of(spec.bucket_name)
    if case.policy == "unchanged":
        assert after == before
    else:
        expected = foreign_of(PolicyDocument.parse(before), spec.owned_sids) if before else []
        assert policy_problems(after, spec, expected) == []


@pytest.fixture
def aws() -> RecordingAws:
    fake = RecordingAws(account=ACCOUNT)
    fake.create_role(ROLE, path="/service-role/")
    return fake


@pytest.mark.parametrize("case", STATUS_CASES, ids=lambda c: c.id)
def test_bad_input_is_reported_in_status_and_nothing_is_lost(case: StatusCase, aws: RecordingAws) -> None:
    spec, before = prepare(aws, case)
    reconciler = Reconciler(aws)

    result = case.run(reconciler, aws, spec) if case.run else reconciler.reconcile(spec)

    ready = result.condition("Ready")
    assert ready is not None and (ready.status, ready.reason) == ("True" if case.ready else "False", case.reason)
    assert case.message in ready.message or any(case.message in f.message for f in result.findings)
    assert set(case.findings) <= {f.code for f in result.findings}
    if case.no_aws_calls:
        assert aws.log == [] and aws.counter.total() == 0
    if case.run is None:
        check_policy(aws, case, spec, before)


# --- the same errors on the wire: moto behind AwsFaultProxy ------------------------------------------------------

WIRE_CASES = [
    pytest.param("E03", "GetBucketPolicy", ErrorReply(403, "AccessDenied", "Access Denied"), "AccessDenied", id="E03"),
    pytest.param("E04", "PutBucketPolicy", ErrorReply(403, "AccessDenied", "Access Denied"), "AccessDenied", id="E04"),
    pytest.param(
        "E05",
        "GetBucketPolicy",
        ErrorReply(301, "PermanentRedirect", "Use the bucket's region.", {"x-amz-bucket-region": "eu-west-1"}),
        "WrongRegion",
        id="E05",
    ),
    pytest.param("E06", None, ErrorReply(403, "AccessDenied", "Access Denied"), "AccessDenied", id="E06"),
]


@pytest.fixture(scope="module")
def wire(moto: MotoServer) -> Iterator[tuple[AwsFaultProxy, AwsGateway]]:
    with AwsFaultProxy(moto.endpoint_url) as proxy:
        settings = AwsSettings(region=moto.region, endpoint_url=proxy.endpoint_url, max_attempts=2)
        yield proxy, AwsGateway(settings, session=moto.session())


@pytest.mark.parametrize(("case_id", "api", "reply", "reason"), WIRE_CASES)
def test_environment_error_on_the_wire_is_mapped_and_nothing_is_written(
    moto: MotoServer,
    wire: tuple[AwsFaultProxy, AwsGateway],
    case_id: str,
    api: str | None,
    reply: ErrorReply,
    reason: str,
) -> None:
    """moto emulates neither regions nor bucket owners: the proxy answers as S3 would."""
    proxy, aws = wire
    proxy.reset()
    moto.reset()
    moto.client("iam").create_role(RoleName=ROLE, Path="/service-role/", AssumeRolePolicyDocument=TRUST_POLICY)
    bucket = bucket_of(case_id)
    original = policy_text(*foreign_statements(bucket))
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(Bucket=bucket, Policy=original)
    extra: dict[str, Any] = {}
    if api is None:  # S3 answers a wrong ExpectedBucketOwner with a bare 403, on every call
        extra = {"expectedBucketOwner": OTHER_ACCOUNT}
        proxy.script(reply, bucket=bucket, when=lambda r: r.headers.get("x-amz-expected-bucket-owner") == OTHER_ACCOUNT)
    else:
        proxy.script(reply, api=api, bucket=bucket)
    aws.invalidate()

    result = Reconciler(aws).reconcile(ProtectedBucketSpec.model_validate(base_spec(bucket, **extra)))

    ready = result.condition("Ready")
    assert ready is not None and ready.reason == reason
    assert s3.get_bucket_policy(Bucket=bucket)["Policy"] == original
    assert proxy.injected()["scripted"] >= 1


# --- the CLI ------------------------------------------------------------------------------------------------------

GOOD_MANIFEST = """
apiVersion: bucketwarden.io/v1alpha1
kind: ProtectedBucket
metadata: {name: good}
spec:
  bucketName: bw-cli-good
  allowedSourceIps: [192.0.2.0/24]
  exemptRoles: [{name: AWSBackupDefaultServiceRole}]
"""
ROLE_ID = "AWSBackupDefaultServiceRole=AROAEXAMPLEEXAMPLE123"


def cli_case(case_id: str, files: dict[str, str], argv: list[str], expect: str, code: int = ExitCode.USAGE) -> Any:
    """A bad command line or input file is a usage error (64) unless ``code`` says it is a refused run."""
    return pytest.param(files, argv, expect, code, id=case_id)


CLI_CASES = [
    cli_case("C01", {}, ["plan", "-f", "{dir}/missing.yaml"], "no such file or directory"),
    cli_case("C02", {"m.yaml": "spec: [unclosed"}, ["render", "-f", "{dir}/m.yaml"], "not valid YAML"),
    cli_case(
        "C03",
        {"m.yaml": GOOD_MANIFEST.replace("bucketwarden.io/v1alpha1", "bucketwarden.io/v1")},
        ["render", "-f", "{dir}/m.yaml"],
        "expected apiVersion bucketwarden.io/v1alpha1",
    ),
    cli_case(
        "C04",
        {"m.yaml": GOOD_MANIFEST.replace("192.0.2.0/24", "192.0.2.0/33")},
        ["render", "-f", "{dir}/m.yaml", "--role-id", ROLE_ID],
        "spec.allowedSourceIps.0: '192.0.2.0/33' is not an IPv4 or IPv6 CIDR",
    ),
    cli_case(
        "C05", {"m.yaml": GOOD_MANIFEST}, ["render", "-f", "{dir}/m.yaml", "--role-id", "AROA"], "NAME_OR_ARN=ROLEID"
    ),
    cli_case("C06", {"m.yaml": GOOD_MANIFEST}, ["render", "-f", "{dir}/m.yaml"], "no RoleId for exempt role"),
    cli_case(
        "C07",
        {"m.yaml": GOOD_MANIFEST, "p.json": '{"Statement": ['},
        ["render", "-f", "{dir}/m.yaml", "--role-id", ROLE_ID, "--existing-policy", "{dir}/p.json"],
        "the bucket policy is not valid JSON",
    ),
    cli_case(
        "C08",
        {"m.yaml": GOOD_MANIFEST + "---" + GOOD_MANIFEST},
        ["render", "-f", "{dir}/m.yaml", "--role-id", ROLE_ID],
        "holds 2 ProtectedBuckets",
    ),
    cli_case(
        "C09",
        {"p.json": policy_text(*foreign_statements("bw-cli-good"))},
        [
            "evaluate",
            "--policy",
            "{dir}/p.json",
            "--action",
            "s3:GetObject",
            "--resource",
            "arn:aws:s3:::b/k",
            "--context",
            "aws:SourceIp",
        ],
        "expected KEY=VALUE",
    ),
    *(
        cli_case(
            case_id,
            {"m.yaml": GOOD_MANIFEST + "---" + GOOD_MANIFEST.replace("name: good", "name: twin")},
            [command, "-f", "{dir}/m.yaml"],
            "a bucket has at most one owner: nothing was written for it",
            ExitCode.FAILED,
        )
        for case_id, command in (("C10", "apply"), ("C11", "plan"))
    ),
]


@pytest.mark.parametrize(("files", "argv", "expect", "expected_code"), CLI_CASES)
def test_bad_cli_input_is_a_clear_error_not_a_traceback(
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    files: dict[str, str],
    argv: list[str],
    expect: str,
    expected_code: int,
) -> None:
    for name, text in files.items():
        (tmp_path / name).write_text(text, encoding="utf-8")

    code = cli.main([arg.replace("{dir}", str(tmp_path)) for arg in argv])

    out, err = capsys.readouterr()
    assert code == expected_code
    assert expect in err + out and "Traceback" not in err


# --- all at once, against the operator on the Kubernetes emulator ----------------------------------------------


def test_operator_keeps_running_through_every_bad_input_and_loses_nothing(
    kube: KubeEmulator, aws: RecordingAws, figures: dict[str, Any]
) -> None:
    namespace = unique("bw-bad")
    shared = [c for c in STATUS_CASES if c.shared]
    prepared = {case.id: prepare(aws, case) for case in shared}
    healthy = unique("bw-healthy")
    aws.create_bucket(healthy, policy=policy_text(*foreign_statements(healthy)))
    invalid = [c for c in ADMISSION_CASES if not c.update_only]

    with kube.client() as client:
        client.create_namespace(namespace)
        try:
            with operator_on(kube, aws, [namespace]) as handle:
                for case in invalid:
                    create_pb(client, namespace, case.id.lower(), case.docs()[0]["spec"])
                for status_case in shared:
                    create_pb(client, namespace, status_case.id.lower(), prepared[status_case.id][0].to_k8s())
                create_pb(client, namespace, "healthy", base_spec(healthy))

                wait_for_reason(client, namespace, "healthy", "Protected", status="True")
                for case in invalid:
                    wait_for_reason(client, namespace, case.id.lower(), "InvalidSpec", status="False")
                for status_case in shared:
                    wait_for_reason(
                        client,
                        namespace,
                        status_case.id.lower(),
                        status_case.reason,
                        status="True" if status_case.ready else "False",
                    )
                # kopf posts Events from a background queue: the status can land before the Event does.
                lockout = wait_until(
                    lambda: [
                        e
                        for e in client.list_events(namespace, involved_name="s26")
                        if e["reason"] == "OperatorNotExempt"
                    ],
                    timeout=10,
                    what="the OperatorNotExempt Event",
                )
                assert lockout and {e["type"] for e in lockout} == {"Warning"}
                assert handle.running
        finally:
            delete_all(client, namespace)

    for status_case in shared:
        spec, before = prepared[status_case.id]
        check_policy(aws, status_case, spec, before)
    # An invalid spec never reaches AWS: none of their buckets or roles was ever asked about.
    asked = aws.subjects()
    for case in invalid:
        spec = case.docs()[0]["spec"]
        assert spec.get("bucketName") not in asked
    figures["bad_inputs"] = {
        "catalogued": len(catalogue_ids()),
        "admission": len(ADMISSION_CASES),
        "status": len(STATUS_CASES),
        "cli": len(CLI_CASES),
        "on_the_wire": len(WIRE_CASES),
        "at_once_against_one_operator": len(invalid) + len(shared),
    }


def catalogue_ids() -> list[str]:
    return re.findall(r"^\| ([SPEC][0-9]{2}) \|", CATALOGUE.read_text(encoding="utf-8"), flags=re.MULTILINE)


(ALLOW_LISTS,) = [
    r
    for crd in load_crds(sorted((REPO_ROOT / "crds").glob("*.yaml")))
    for r in ResourceSpec.from_crd(crd)
    if r.plural == "sourceallowlists"
]
OPERATOR_ROWS = {"E14"}  # rows only a running operator shows, each with its own test below


def test_e14_deleting_a_list_in_use_waits_and_says_who_uses_it(kube: KubeEmulator, aws: RecordingAws) -> None:
    namespace, shared, bucket = unique("bw-bad"), unique("bw-bad-list"), unique("bw-bad-e14")
    aws.create_bucket(bucket, policy=policy_text(*foreign_statements(bucket)))
    with kube.client() as client:
        client.create_namespace(namespace)
        try:
            fast = OperatorSettings(
                resync_interval_seconds=1.0, metrics_port=0, health_port=0, allow_list_status_seconds=1.0
            )
            with operator_on(kube, aws, [namespace], settings=fast):
                client.create_object(ALLOW_LISTS, {"metadata": {"name": shared}, "spec": {"cidrs": list(CIDRS)}})
                create_pb(client, namespace, "e14", {"bucketName": bucket, "allowedSourcesFrom": [{"name": shared}]})
                wait_for_reason(client, namespace, "e14", "Protected", status="True")
                kept = aws.policy_of(bucket)
                client.delete_object(ALLOW_LISTS, shared)
                events = wait_until(
                    lambda: [
                        e
                        for e in client.list_events("default", involved_name=shared)
                        if e["reason"] == "AllowListInUse"
                    ],
                    timeout=30,
                    what="an AllowListInUse event",
                )
                assert events[0]["type"] == "Warning" and f"per namespace: {namespace}: 1" in events[0]["message"]
                held = client.get_object(ALLOW_LISTS, shared)
                assert held is not None and held["metadata"].get("deletionTimestamp")
                assert aws.policy_of(bucket) == kept
                client.delete_object(PROTECTED_BUCKETS, "e14", namespace=namespace)
                client.wait_until_gone(PROTECTED_BUCKETS, "e14", namespace=namespace)
                client.wait_until_gone(ALLOW_LISTS, shared, timeout=30)  # released once nothing references it
        finally:
            delete_all(client, namespace)


def test_catalogue_rows_and_tests_match() -> None:
    """Every row of docs/bad-inputs.md has a test here, and every test a row."""
    rows = catalogue_ids()
    tested = {c.id for c in ADMISSION_CASES} | {c.id for c in STATUS_CASES} | {p.id for p in CLI_CASES}
    tested |= OPERATOR_ROWS
    assert len(rows) == len(set(rows)), "a row id is used twice"
    assert set(rows) == tested
    assert len(rows) >= 30
