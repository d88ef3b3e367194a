"""bucketwarden's operator end to end: real kopf handlers against a Kubernetes API, real boto3 against moto.

One operator serves the whole module (resync every 2 s, RoleIds cached for 1 s). Every test asserts both the
ProtectedBucket's status and the bucket policy read back from moto, compared by meaning. Only KubeClient is
used on the Kubernetes side, so the suite runs unchanged on a real cluster (BUCKETWARDEN_E2E_KUBECONFIG).
"""

from __future__ import annotations

import contextlib
import json
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, cast

import pytest
from botocore.exceptions import ClientError
from kubernetes.client.exceptions import ApiException

from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.k8s import Metrics, OperatorSettings, build_registry
from bucketwarden.policy import PolicyDocument, Statement, statement_hash
from bucketwarden.principals import BucketTarget
from bucketwarden.reconciler import Reconciler, ReconcileResult
from bucketwarden.spec import ProtectedBucketSpec
from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    EnforcedMoto,
    KubeClient,
    KubeTarget,
    MotoServer,
    load_crds,
    run_operator_in_thread,
    wait_until,
)
from tests.shared import DEADLINE, GOLDEN, OUR_SID, REPO_ROOT, TRUST_POLICY, unique

if TYPE_CHECKING:
    from mypy_boto3_iam import IAMClient
    from mypy_boto3_s3 import S3Client

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

RESYNC_SECONDS = 2.0
ROLE_CACHE_TTL_SECONDS = 1.0

CRD_FILES = sorted((REPO_ROOT / "crds").glob("*.yaml"))
SEED_BUCKET = "awsbackup-test-001"  # as written in the golden files
SEED_SID = "SourceIPRestriction001"
OFFICE_CIDRS = ["192.0.2.0/24", "203.0.113.0/24"]


# --- the operator under test -----------------------------------------------------------------------------------


class ReconcileLog:
    """How many reconciles ran per bucket: lets a test wait for resyncs instead of sleeping."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def record(self, bucket: str) -> None:
        with self._lock:
            self._counts[bucket] += 1

    def count(self, bucket: str) -> int:
        with self._lock:
            return self._counts[bucket]

    def wait_for(self, bucket: str, at_least: int) -> None:
        wait_until(lambda: self.count(bucket) >= at_least, timeout=DEADLINE, what=f"{at_least} reconciles of {bucket}")

    def wait_for_more(self, counts: Mapping[str, int], more: int) -> None:
        """Wait until every bucket in ``counts`` was reconciled ``more`` more times."""
        wait_until(
            lambda: all(self.count(bucket) >= n + more for bucket, n in counts.items()),
            timeout=DEADLINE,
            what=f"{more} more reconciles of {sorted(counts)}",
        )


class CallRecorder:
    """The reconciler's port, counting each finished quiet tick or reconcile that read the bucket policy.

    Both run inside one ``count_calls`` block (a reconcile's holds its PUT too): a bucket read in the block
    counts once the block ends. A reconcile that stopped before reading is counted by ``on_result``.
    """

    def __init__(self, aws: AwsGateway, log: ReconcileLog) -> None:
        self._aws, self._log = aws, log
        self._local = threading.local()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._aws, name)

    def get(self, target: BucketTarget) -> str | None:
        read: list[str] | None = getattr(self._local, "read", None)
        if read is None:
            self._log.record(target.bucket)
        else:
            read.append(target.bucket)
        return self._aws.get(target)

    @contextlib.contextmanager
    def count_calls(self) -> Iterator[Mapping[str, int]]:
        self._local.read = []
        try:
            with self._aws.count_calls() as calls:
                yield calls
        finally:
            read, self._local.read = self._local.read, None
            for bucket in read:
                self._log.record(bucket)

    def on_result(self, spec: ProtectedBucketSpec, result: ReconcileResult) -> None:
        if not result.aws_calls.get("GetBucketPolicy"):
            self._log.record(spec.bucket_name)


@dataclass
class Env:
    """What the tests share: the Kubernetes client, both namespaces, the operator's reconcile log, AWS clients."""

    kube: KubeClient
    namespace: str
    other_namespace: str
    log: ReconcileLog
    s3: S3Client  # the tests' own AWS calls; built once, a boto3 client costs about 0.1 s of CPU
    iam: IAMClient
    created: list[tuple[str, str]] = field(default_factory=list)  # (namespace, name) to delete after the test


@pytest.fixture(scope="module")
def other_namespace(kube_client: KubeClient, namespace: str) -> Iterator[str]:
    """A second namespace for the conflict case. It sorts after the first, so creation-time ties are decided."""
    name = f"{namespace}-b"
    kube_client.create_namespace(name, labels={"app.kubernetes.io/created-by": "bucketwarden-e2e"})
    yield name
    for obj in kube_client.list_objects(PROTECTED_BUCKETS, namespace=name):
        if obj["metadata"].get("finalizers"):
            patch = {"metadata": {"finalizers": None}}
            kube_client.patch_object(PROTECTED_BUCKETS, obj["metadata"]["name"], patch, namespace=name)
    kube_client.delete_namespace(name)


@pytest.fixture(scope="module")
def warden(
    kube: KubeTarget, kube_client: KubeClient, namespace: str, other_namespace: str, moto: MotoServer
) -> Iterator[Env]:
    """bucketwarden's own registry and settings, running for the whole module and stopped cleanly after it."""
    log = ReconcileLog()
    settings = OperatorSettings(
        resync_interval_seconds=RESYNC_SECONDS,
        role_cache_ttl_seconds=ROLE_CACHE_TTL_SECONDS,
        metrics_port=0,
        health_port=0,
    )

    def factory(operator_settings: OperatorSettings, metrics: Metrics) -> Reconciler:
        gateway = AwsGateway(
            AwsSettings(endpoint_url=moto.endpoint_url, region=moto.region, max_attempts=2),
            session=moto.session(),
            ttl_seconds=operator_settings.role_cache_ttl_seconds,
            negative_ttl_seconds=ROLE_CACHE_TTL_SECONDS,
        )
        recorder = CallRecorder(gateway, log)
        return Reconciler(cast("AwsGateway", recorder), on_result=recorder.on_result)

    registry = build_registry(settings, factory)
    with run_operator_in_thread(registry, server_or_kubeconfig=kube, namespaces=[namespace, other_namespace]):
        yield Env(kube_client, namespace, other_namespace, log, moto.client("s3"), moto.client("iam"))


@pytest.fixture
def env(warden: Env, moto: MotoServer) -> Iterator[Env]:
    """The shared environment, with moto fresh (the moto fixture resets it), and this test's objects deleted after it.

    Deletion happens while the operator still runs, so the finalizers are released.
    """
    warden.created = []
    yield warden
    with contextlib.ExitStack() as deleting:
        for namespace, name in reversed(warden.created):
            warden.kube.delete_object(PROTECTED_BUCKETS, name, namespace=namespace)
            deleting.callback(warden.kube.wait_until_gone, PROTECTED_BUCKETS, name, namespace=namespace)


# --- helpers -----------------------------------------------------------------------------------------------------


def seed_policy(bucket: str) -> dict[str, Any]:
    """The hand-written policy of the original issue, for ``bucket``: a Deny by IP plus two foreign Allows."""
    text = (GOLDEN / "seed-original-policy.json").read_text(encoding="utf-8")
    return json.loads(text.replace(SEED_BUCKET, bucket))  # type: ignore[no-any-return]


def foreign_allow(bucket: str, sid: str | None = "ForeignReadOnly") -> dict[str, Any]:
    statement: dict[str, Any] = {
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }
    if sid is not None:
        statement = {"Sid": sid, **statement}
    return statement


def create_bucket(env: Env, bucket: str, policy: Mapping[str, Any] | None = None) -> None:
    env.s3.create_bucket(Bucket=bucket)
    if policy is not None:
        env.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))


def create_role(env: Env, name: str) -> str:
    """An AWS Backup-like service role; returns its RoleId."""
    role = env.iam.create_role(RoleName=name, Path="/service-role/", AssumeRolePolicyDocument=TRUST_POLICY)["Role"]
    return role["RoleId"]


def read_policy(env: Env, bucket: str) -> PolicyDocument | None:
    try:
        text = env.s3.get_bucket_policy(Bucket=bucket)["Policy"]
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchBucketPolicy":
            return None
        raise
    return PolicyDocument.parse(text)


def spec_for(bucket: str, role: str | None = None, **extra: Any) -> dict[str, Any]:
    spec: dict[str, Any] = {"bucketName": bucket, "allowedSourceIps": list(OFFICE_CIDRS)}
    if role is not None:
        spec["exemptRoles"] = [{"name": role}]
    return {**spec, **extra}


def wait_past_creation_second(created: Mapping[str, Any]) -> None:
    """The owner of a bucket is the oldest creationTimestamp, then the lowest uid: within one second the uid
    decides. A test that needs a claim to be the younger one makes it in a later second."""
    first = created["metadata"]["creationTimestamp"]
    wait_until(lambda: time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()) > first, timeout=3, interval=0.05)


def create_protected_bucket(
    env: Env, name: str, spec: Mapping[str, Any], *, namespace: str | None = None
) -> dict[str, Any]:
    namespace = namespace or env.namespace
    obj = env.kube.create_object(
        PROTECTED_BUCKETS, {"metadata": {"name": name}, "spec": dict(spec)}, namespace=namespace
    )
    env.created.append((namespace, name))
    return obj


def condition(obj_or_status: Mapping[str, Any], kind: str) -> dict[str, Any]:
    status = obj_or_status.get("status", obj_or_status) or {}
    found = [c for c in status.get("conditions", []) if c.get("type") == kind]
    return found[0] if found else {}


def has_condition(status: Mapping[str, Any], kind: str, state: str, reason: str | set[str]) -> bool:
    c = condition(status, kind)
    reasons = {reason} if isinstance(reason, str) else reason
    return c.get("status") == state and c.get("reason") in reasons


def wait_for_status(
    env: Env, name: str, check: Callable[[Mapping[str, Any]], bool], *, namespace: str | None = None
) -> dict[str, Any]:
    return env.kube.wait_for_status(
        PROTECTED_BUCKETS, name, check, namespace=namespace or env.namespace, timeout=DEADLINE
    )


def wait_for_event(env: Env, name: str, reason: str, *, namespace: str | None = None, text: str = "") -> dict[str, Any]:
    namespace = namespace or env.namespace
    events: list[dict[str, Any]] = wait_until(
        lambda: [
            e
            for e in env.kube.list_events(namespace, involved_name=name)
            if e.get("reason") == reason and text in (e.get("message") or "")
        ],
        timeout=DEADLINE,
        interval=0.25,
        what=f"a {reason} event about {namespace}/{name}",
    )
    return events[0]


def finding_codes(status: Mapping[str, Any]) -> set[str]:
    return {f["code"] for f in status.get("findings", [])}


def assert_same_meaning(actual: PolicyDocument | None, expected: PolicyDocument | Mapping[str, Any] | None) -> None:
    """Compare bucket policies by meaning (statement order, "x" vs ["x"] ...), showing both when they differ."""
    if isinstance(expected, Mapping):
        expected = PolicyDocument.from_obj(expected)
    shown = [None if p is None else p.to_json(pretty=True) for p in (actual, expected)]
    assert actual == expected, f"actual policy:\n{shown[0]}\nexpected:\n{shown[1]}"


def ours(policy: PolicyDocument | None, sid: str = OUR_SID) -> Statement:
    assert policy is not None, "the bucket has no policy"
    found = policy.find(sid)
    assert len(found) == 1, f"expected exactly one statement {sid}, found {len(found)}"
    return found[0]


def denies(policy: PolicyDocument | None) -> list[Statement]:
    assert policy is not None, "the bucket has no policy"
    return [s for s in policy.statements if s.effect == "Deny"]


def allowed_cidrs(statement: Statement) -> set[str]:
    return set(statement.conditions["NotIpAddress"]["aws:sourceip"])


def userid_patterns(statement: Statement) -> set[str]:
    return set(statement.conditions.get("StringNotLike", {}).get("aws:userid", ()))


def exempt_role(status: Mapping[str, Any], name: str) -> dict[str, Any]:
    roles: list[dict[str, Any]] = [
        e for e in status.get("exemptPrincipals", []) if e["kind"] == "Role" and e.get("name") == name
    ]
    assert len(roles) == 1, status.get("exemptPrincipals")
    return roles[0]


def operator_pattern(status: Mapping[str, Any]) -> str:
    (entry,) = [e for e in status["exemptPrincipals"] if e["kind"] == "Operator"]
    return str(entry["pattern"])


def status_schema() -> dict[str, Any]:
    (crd,) = [c for c in load_crds(CRD_FILES) if c["spec"]["names"]["plural"] == PROTECTED_BUCKETS.plural]
    (version,) = [v for v in crd["spec"]["versions"] if v["name"] == PROTECTED_BUCKETS.version]
    return version["schema"]["openAPIV3Schema"]["properties"]["status"]  # type: ignore[no-any-return]


def undeclared_fields(value: Any, schema: Mapping[str, Any], path: str = "status") -> list[str]:
    """Fields a real API server would prune from ``value`` (the emulator keeps them).

    A pruned field would differ from what the operator wrote on every resync, so status would churn on a
    real cluster only; this catches it on the emulator too.
    """
    if schema.get("x-kubernetes-preserve-unknown-fields"):
        return []
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        out = []
        for key, item in value.items():
            if key not in properties:
                out.append(f"{path}.{key}")
            else:
                out += undeclared_fields(item, properties[key], f"{path}.{key}")
        return out
    if isinstance(value, list):
        return [
            p for i, item in enumerate(value) for p in undeclared_fields(item, schema.get("items", {}), f"{path}[{i}]")
        ]
    return []


def assert_status_current(obj: Mapping[str, Any]) -> None:
    """observedGeneration, on the status and on each condition, is the object's generation."""
    generation = obj["metadata"]["generation"]
    status = obj["status"]
    assert status["observedGeneration"] == generation
    assert {c["type"]: c["observedGeneration"] for c in status["conditions"]} == {
        "Ready": generation,
        "Synced": generation,
        "Verified": generation,
    }
    assert undeclared_fields(status, status_schema()) == []


def protected(status: Mapping[str, Any]) -> bool:
    return has_condition(status, "Ready", "True", "Protected")


def in_sync(status: Mapping[str, Any]) -> bool:
    """Converged: protected, and the resync after the write found nothing to do."""
    return protected(status) and has_condition(status, "Synced", "True", "InSync")


# --- the cases ---------------------------------------------------------------------------------------------------


def locked_out(status: Mapping[str, Any]) -> bool:
    return has_condition(status, "Ready", "False", "AccessDenied")


def seed_policy_admitting_operator(moto: MotoServer, bucket: str) -> dict[str, Any]:
    """The seed policy with the operator's principal exempted in its Deny, as an admin would have let it in."""
    policy = seed_policy(bucket)
    (deny,) = [s for s in policy["Statement"] if s.get("Sid") == SEED_SID]
    # The operator uses the same credentials as the test's own clients in this module.
    deny["Condition"]["StringNotLike"] = {"aws:userId": moto.client("sts").get_caller_identity()["UserId"]}
    return policy


def admit_operator(env: Env, moto: MotoServer, name: str, bucket: str) -> dict[str, Any]:
    """The seed policy as the operator can read it; returns the policy now in force.

    Through the enforcing front, as on AWS, the seed's IP Deny denies the operator (it calls from the cluster's
    NAT address) and the status names the way in. Here the account's admin lets it in by hand, exempting the
    operator's principal inside the seed's Deny (bootstrap, the product's way in, has its own test:
    tests/e2e/test_bootstrap.py). On bare moto (BUCKETWARDEN_S3_FRONT=0) nothing is enforced.
    """
    policy = seed_policy(bucket)
    if not isinstance(moto, EnforcedMoto):
        return policy
    locked = wait_for_status(env, name, locked_out)
    assert f"bucketwarden bootstrap -f <manifest of bucket {bucket}>" in condition(locked, "Ready")["message"]
    (deny,) = [s for s in policy["Statement"] if s.get("Sid") == SEED_SID]
    deny["Condition"]["StringNotLike"] = {"aws:userId": operator_pattern(locked["status"])}
    env.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
    return policy


def test_operator_adopts_the_seed_policy_and_exempts_the_backup_role(env: Env, moto: MotoServer) -> None:
    bucket = unique(SEED_BUCKET)
    create_bucket(env, bucket, seed_policy(bucket))
    role_id = create_role(env, "AWSBackupDefaultServiceRole")
    name = unique("seed")
    create_protected_bucket(env, name, spec_for(bucket, "AWSBackupDefaultServiceRole", adoptSids=[SEED_SID]))

    admit_operator(env, moto, name, bucket)
    obj = wait_for_status(env, name, protected)
    status = obj["status"]
    assert_status_current(obj)
    assert has_condition(status, "Synced", "True", {"PolicyUpdated", "InSync"})
    assert has_condition(status, "Verified", "True", "Verified")
    role = exempt_role(status, "AWSBackupDefaultServiceRole")
    assert role["roleId"] == role_id
    assert role["pattern"] == f"{role_id}:*"
    assert role["arn"].endswith(":role/service-role/AWSBackupDefaultServiceRole")
    assert "Ipv4Only" in finding_codes(status)  # a warning: no IPv6 range
    # After the lockout, the locked-out pass had recorded our statement's hash, so the first write counts as a
    # drift correction (reported to the lead: arguably it is not drift).
    assert status["driftCorrections"] == (1 if isinstance(moto, EnforcedMoto) else 0)

    actual = read_policy(env, bucket)
    assert actual is not None
    assert status["policyHash"] == actual.policy_hash
    # The golden result of the seed, with this run's bucket and RoleId, and the operator's own exemption.
    expected = json.loads(
        (GOLDEN / "seed-expected-policy.json").read_text(encoding="utf-8").replace(SEED_BUCKET, bucket)
    )
    (statement,) = [s for s in expected["Statement"] if s.get("Sid") == OUR_SID]
    statement["Condition"]["StringNotLike"]["aws:userId"] = [f"{role_id}:*", operator_pattern(status)]
    assert_same_meaning(actual, expected)
    # In words: one Deny (the hand-written one replaced), the foreign statements kept, the RoleId exempted.
    assert denies(actual) == [ours(actual)]
    assert actual.find(SEED_SID) == []
    assert f"{role_id}:*" in userid_patterns(ours(actual))
    original = PolicyDocument.from_obj(seed_policy(bucket))
    foreign = [s for s in original.statements if s.sid != SEED_SID]
    assert Counter(s for s in actual.statements if s.sid != OUR_SID) == Counter(foreign)

    event = wait_for_event(env, name, "DriftCorrected" if isinstance(moto, EnforcedMoto) else "PolicyUpdated")
    assert event["type"] == "Normal"
    assert bucket in event["message"]


def test_operator_applies_changed_cidrs_as_a_new_generation(env: Env) -> None:
    bucket, role = unique("bw-update"), unique("backup")
    create_bucket(env, bucket)
    create_role(env, role)
    name = unique("update")
    create_protected_bucket(env, name, spec_for(bucket, role))
    first = wait_for_status(env, name, protected)
    assert first["metadata"]["generation"] == 1
    assert allowed_cidrs(ours(read_policy(env, bucket))) == set(OFFICE_CIDRS)

    new_cidrs = ["198.51.100.0/24", "2001:db8::/32"]
    patched = env.kube.patch_object(
        PROTECTED_BUCKETS, name, {"spec": {"allowedSourceIps": new_cidrs}}, namespace=env.namespace
    )
    generation = patched["metadata"]["generation"]
    assert generation == 2

    obj = wait_for_status(env, name, lambda s: s.get("observedGeneration") == generation and protected(s))
    assert_status_current(obj)
    actual = read_policy(env, bucket)
    assert allowed_cidrs(ours(actual)) == set(new_cidrs)
    assert obj["status"]["policyHash"] == actual.policy_hash  # type: ignore[union-attr]
    assert "Ipv4Only" not in finding_codes(obj["status"])
    assert obj["status"]["driftCorrections"] == 0  # our own change is not drift


def test_operator_restores_an_out_of_band_edit_and_keeps_foreign_changes(env: Env) -> None:
    bucket, role = unique("bw-drift"), unique("backup")
    create_bucket(env, bucket, {"Version": "2012-10-17", "Statement": [foreign_allow(bucket)]})
    role_id = create_role(env, role)
    name = unique("drift")
    create_protected_bucket(env, name, spec_for(bucket, role))
    wait_for_status(env, name, in_sync)
    desired = read_policy(env, bucket)
    assert desired is not None

    # Out of band: someone opens the bucket to the world, and adds a statement of their own.
    tampered = desired.to_obj()
    for statement in tampered["Statement"]:
        if statement.get("Sid") == OUR_SID:
            statement["Condition"]["NotIpAddress"]["aws:SourceIp"] = "0.0.0.0/0"
    added = foreign_allow(bucket, sid="AddedByHand")
    added["Action"] = "s3:ListBucket"
    added["Resource"] = f"arn:aws:s3:::{bucket}"
    tampered["Statement"].append(added)
    env.s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(tampered))

    obj = wait_for_status(env, name, lambda s: s.get("driftCorrections", 0) >= 1 and protected(s))
    assert obj["status"]["driftCorrections"] == 1
    actual = read_policy(env, bucket)
    assert actual is not None
    assert ours(actual) == ours(desired)
    assert allowed_cidrs(ours(actual)) == set(OFFICE_CIDRS)
    assert f"{role_id}:*" in userid_patterns(ours(actual))
    assert actual.find("AddedByHand") == [Statement.parse(added)]
    assert actual.find("ForeignReadOnly") == desired.find("ForeignReadOnly")
    assert obj["status"]["policyHash"] == actual.policy_hash
    event = wait_for_event(env, name, "DriftCorrected")
    assert event["type"] == "Normal"


def test_operator_follows_a_recreated_role_to_its_new_role_id(env: Env) -> None:
    bucket, role = unique("bw-role"), unique("backup")
    create_bucket(env, bucket)
    old_id = create_role(env, role)
    name = unique("recreate")
    create_protected_bucket(env, name, spec_for(bucket, role))
    obj = wait_for_status(env, name, protected)
    assert exempt_role(obj["status"], role)["roleId"] == old_id

    env.iam.delete_role(RoleName=role)
    new_id = create_role(env, role)
    assert new_id != old_id  # as on AWS: a recreated role is a new principal

    obj = wait_for_status(
        env,
        name,
        lambda s: protected(s) and any(e.get("roleId") == new_id for e in s.get("exemptPrincipals", [])),
    )
    assert exempt_role(obj["status"], role)["pattern"] == f"{new_id}:*"
    patterns = userid_patterns(ours(read_policy(env, bucket)))
    assert f"{new_id}:*" in patterns
    assert f"{old_id}:*" not in patterns
    event = wait_for_event(env, name, "RoleIdChanged", text=new_id)
    assert event["type"] == "Normal"
    assert old_id in event["message"]


def test_operator_in_observe_mode_verifies_and_writes_nothing(env: Env, moto: MotoServer) -> None:
    bucket, role = unique("bw-observe"), unique("backup")
    create_bucket(env, bucket, seed_policy(bucket))
    create_role(env, role)
    name = unique("observe")
    create_protected_bucket(env, name, spec_for(bucket, role, adoptSids=[SEED_SID], managementPolicy="Observe"))
    original = admit_operator(env, moto, name, bucket)

    obj = wait_for_status(env, name, lambda s: has_condition(s, "Ready", "True", "Observing"))
    status = obj["status"]
    assert_status_current(obj)
    assert has_condition(status, "Synced", "True", "Observing")
    # The hand-written Deny has no exemption: it blocks AWS Backup, which is what Observe should reveal.
    assert has_condition(status, "Verified", "False", "VerificationFailed")
    assert SEED_SID in condition(status, "Verified")["message"]
    assert "ChangesPending" in finding_codes(status)
    assert exempt_role(status, role)["roleId"].startswith("AROA")

    env.log.wait_for(bucket, at_least=2)  # the create handler's and the timer's: neither writes
    actual = read_policy(env, bucket)
    assert_same_meaning(actual, original)
    assert status["policyHash"] == actual.policy_hash  # type: ignore[union-attr]


@pytest.mark.parametrize(
    ("deletion_policy", "foreign"),
    [
        pytest.param("Delete", True, id="delete-keeps-foreign"),
        pytest.param("Delete", False, id="delete-removes-emptied-policy"),
        pytest.param("Retain", True, id="retain-leaves-policy"),
    ],
)
def test_operator_honours_deletion_policy(env: Env, deletion_policy: str, foreign: bool) -> None:
    bucket, role = unique("bw-delete"), unique("backup")
    foreign_statements = [foreign_allow(bucket)] if foreign else []
    create_bucket(env, bucket, {"Version": "2012-10-17", "Statement": foreign_statements} if foreign else None)
    create_role(env, role)
    name = unique("delete")
    create_protected_bucket(env, name, spec_for(bucket, role, deletionPolicy=deletion_policy))
    wait_for_status(env, name, protected)
    before = read_policy(env, bucket)
    ours(before)  # written, exactly once

    assert env.kube.delete_object(PROTECTED_BUCKETS, name, namespace=env.namespace)
    env.kube.wait_until_gone(PROTECTED_BUCKETS, name, namespace=env.namespace, timeout=DEADLINE)

    after = read_policy(env, bucket)
    if deletion_policy == "Retain":
        assert_same_meaning(after, before)
    elif foreign:
        assert_same_meaning(after, {"Version": "2012-10-17", "Statement": foreign_statements})
    else:
        assert after is None  # deleted, never an empty document


def test_operator_lets_the_first_claim_win_and_the_second_write_nothing(env: Env) -> None:
    bucket, role = unique("bw-conflict"), unique("backup")
    create_bucket(env, bucket)
    create_role(env, role)
    first, second = unique("claim-a"), unique("claim-b")
    created = create_protected_bucket(env, first, spec_for(bucket, role))
    wait_for_status(env, first, protected)
    winning = read_policy(env, bucket)
    wait_past_creation_second(created)

    loser_spec = spec_for(bucket, role, allowedSourceIps=["198.51.100.0/24"])
    create_protected_bucket(env, second, loser_spec, namespace=env.other_namespace)
    obj = wait_for_status(
        env, second, lambda s: has_condition(s, "Ready", "False", "Conflict"), namespace=env.other_namespace
    )
    status = obj["status"]
    assert has_condition(status, "Synced", "False", "Conflict")
    assert f"{env.namespace}/{first}" in condition(status, "Ready")["message"]
    assert status["observedGeneration"] == obj["metadata"]["generation"]
    event = wait_for_event(env, second, "Conflict", namespace=env.other_namespace)
    assert event["type"] == "Warning"

    assert_same_meaning(read_policy(env, bucket), winning)
    assert allowed_cidrs(ours(read_policy(env, bucket))) == set(OFFICE_CIDRS)
    wait_for_status(env, first, protected)  # the winner is unaffected
    # The loser's deletion must not remove the winner's statement.
    assert env.kube.delete_object(PROTECTED_BUCKETS, second, namespace=env.other_namespace)
    env.kube.wait_until_gone(PROTECTED_BUCKETS, second, namespace=env.other_namespace, timeout=DEADLINE)
    assert_same_meaning(read_policy(env, bucket), winning)


def test_operator_reports_a_missing_role_and_keeps_the_policy(env: Env, moto: MotoServer) -> None:
    bucket = unique("bw-norole")
    # Not locked out: its cleanup must read the policy (a locked-out operator could not, on AWS either).
    original = seed_policy_admitting_operator(moto, bucket)
    create_bucket(env, bucket, original)
    name = unique("norole")
    create_protected_bucket(env, name, spec_for(bucket, "NoSuchBackupRole", adoptSids=[SEED_SID]))

    obj = wait_for_status(env, name, lambda s: has_condition(s, "Ready", "False", "RoleNotFound"))
    assert_status_current(obj)
    assert has_condition(obj["status"], "Synced", "False", "RoleNotFound")
    assert "NoSuchBackupRole" in condition(obj, "Ready")["message"]
    env.log.wait_for(bucket, at_least=2)  # the create handler's and the timer's
    assert_same_meaning(read_policy(env, bucket), original)
    event = wait_for_event(env, name, "RoleNotFound")
    assert event["type"] == "Warning"

    # It never took over the hand-written Deny, so its deletion must not strip that Deny either.
    assert env.kube.delete_object(PROTECTED_BUCKETS, name, namespace=env.namespace)
    env.kube.wait_until_gone(PROTECTED_BUCKETS, name, namespace=env.namespace, timeout=DEADLINE)
    assert_same_meaning(read_policy(env, bucket), original)


def test_operator_reports_a_missing_bucket_and_still_deletes_promptly(env: Env) -> None:
    bucket, role = unique("bw-nobucket"), unique("backup")
    create_role(env, role)
    name = unique("nobucket")
    create_protected_bucket(env, name, spec_for(bucket, role))

    obj = wait_for_status(env, name, lambda s: has_condition(s, "Ready", "False", "BucketNotFound"))
    assert_status_current(obj)
    assert bucket in condition(obj, "Ready")["message"]

    assert env.kube.delete_object(PROTECTED_BUCKETS, name, namespace=env.namespace)
    env.kube.wait_until_gone(PROTECTED_BUCKETS, name, namespace=env.namespace, timeout=DEADLINE)


def test_operator_rejects_a_private_source_range(env: Env) -> None:
    bucket, role = unique("bw-private"), unique("backup")
    original = {"Version": "2012-10-17", "Statement": [foreign_allow(bucket)]}
    create_bucket(env, bucket, original)
    create_role(env, role)
    name = unique("private")
    create_protected_bucket(env, name, spec_for(bucket, role, allowedSourceIps=["10.0.0.0/8", "192.0.2.0/24"]))

    obj = wait_for_status(env, name, lambda s: has_condition(s, "Ready", "False", "InvalidSpec"))
    assert_status_current(obj)
    assert has_condition(obj["status"], "Synced", "False", "InvalidSpec")
    private = [f for f in obj["status"]["findings"] if f["code"] == "PrivateSourceIp"]
    assert [f["severity"] for f in private] == ["Error"]
    assert "10.0.0.0/8" in private[0]["message"]
    assert_same_meaning(read_policy(env, bucket), original)


def test_operator_survives_a_spec_only_it_can_reject(env: Env) -> None:
    """The emulator has no schema validation, so the operator must reject this itself; a real API server
    rejects it at admission. Either way nothing is written and other resources are still reconciled."""
    bucket, role = unique("bw-invalid"), unique("backup")
    original = {"Version": "2012-10-17", "Statement": [foreign_allow(bucket)]}
    create_bucket(env, bucket, original)
    create_role(env, role)
    name = unique("invalid")
    invalid = spec_for(bucket, role, allowedSourceIps=["not-a-cidr"], exemptRoles=[{"name": role, "arn": "x"}])
    try:
        create_protected_bucket(env, name, invalid)
    except ApiException as exc:
        if exc.status != 422:
            raise
        # A real API server's admission (schema and CEL rules) refused it: nothing reached the operator.
    else:
        obj = wait_for_status(env, name, lambda s: has_condition(s, "Ready", "False", "InvalidSpec"))
        status = obj["status"]
        assert has_condition(status, "Synced", "False", "InvalidSpec")
        assert "not-a-cidr" in condition(status, "Ready")["message"]
        assert status["observedGeneration"] == obj["metadata"]["generation"]
        assert undeclared_fields(status, status_schema()) == []
        event = wait_for_event(env, name, "InvalidSpec")
        assert event["type"] == "Warning"

    other_bucket = unique("bw-valid")
    create_bucket(env, other_bucket)
    valid = unique("valid")
    create_protected_bucket(env, valid, spec_for(other_bucket, role))
    wait_for_status(env, valid, protected)
    assert read_policy(env, other_bucket) is not None
    assert_same_meaning(read_policy(env, bucket), original)


def test_operator_status_does_not_churn_after_convergence(env: Env) -> None:
    """Status is written only when something changed: quiet resyncs leave resourceVersion alone, whatever the
    outcome (protected, observing, failing, or blocked by a conflict)."""
    role = unique("backup")
    create_role(env, role)
    enforce, observe, failing = unique("bw-quiet"), unique("bw-quiet-observe"), unique("bw-quiet-norole")
    for bucket in (enforce, observe, failing):
        create_bucket(env, bucket, {"Version": "2012-10-17", "Statement": [foreign_allow(bucket)]})
    names = {bucket: unique("quiet") for bucket in (enforce, observe, failing)}
    owner = create_protected_bucket(env, names[enforce], spec_for(enforce, role))
    create_protected_bucket(env, names[observe], spec_for(observe, role, managementPolicy="Observe"))
    create_protected_bucket(env, names[failing], spec_for(failing, "NoSuchRole"))
    wait_for_status(env, names[enforce], in_sync)
    wait_past_creation_second(owner)
    blocked = unique("quiet-conflict")
    create_protected_bucket(env, blocked, spec_for(enforce, role), namespace=env.other_namespace)
    wait_for_status(env, names[observe], lambda s: has_condition(s, "Ready", "True", "Observing"))
    wait_for_status(env, names[failing], lambda s: has_condition(s, "Ready", "False", "RoleNotFound"))
    wait_for_status(
        env, blocked, lambda s: has_condition(s, "Ready", "False", "Conflict"), namespace=env.other_namespace
    )
    objects = [(env.namespace, name) for name in names.values()] + [(env.other_namespace, blocked)]

    def versions() -> dict[str, str | None]:
        found = {(ns, n): env.kube.get_object(PROTECTED_BUCKETS, n, namespace=ns) for ns, n in objects}
        return {f"{ns}/{n}": obj["metadata"]["resourceVersion"] if obj else None for (ns, n), obj in found.items()}

    before = versions()
    counts = {bucket: env.log.count(bucket) for bucket in names}
    # A resync's status patch lands before the next resync starts, so three more cover two whole resyncs.
    # The blocked object is not counted (it never reaches the reconciler), but its timer has the same interval.
    env.log.wait_for_more(counts, 3)
    assert versions() == before


# --- adoption safety (multi-tenancy) -----------------------------------------------------------------------------

SECURITY_SIDS = ["SecurityTeamDenyDelete", "DenyInsecureTransport"]


def security_team_policy(moto: MotoServer, bucket: str) -> dict[str, Any]:
    """The issue's bucket: a security team's two safeguards next to the seed's hand-written IP restriction.

    The restriction already admits the operator: these cases are about adoption and cleanup, which must read
    the policy (through the enforcing front, a locked-out operator could not, as on AWS).
    """
    policy = seed_policy_admitting_operator(moto, bucket)
    policy["Statement"] += [
        {
            "Sid": "SecurityTeamDenyDelete",
            "Effect": "Deny",
            "Principal": "*",
            "Action": ["s3:DeleteBucket", "s3:DeleteBucketPolicy"],
            "Resource": f"arn:aws:s3:::{bucket}",
            "Condition": {"ArnNotLike": {"aws:PrincipalArn": "arn:aws:iam::123456789012:role/security"}},
        },
        {
            "Sid": "DenyInsecureTransport",
            "Effect": "Deny",
            "Principal": "*",
            "Action": "s3:*",
            "Resource": [f"arn:aws:s3:::{bucket}", f"arn:aws:s3:::{bucket}/*"],
            "Condition": {"Bool": {"aws:SecureTransport": "false"}},
        },
    ]
    return policy


def test_operator_refuses_to_adopt_foreign_safeguards_and_deleting_keeps_them(env: Env, moto: MotoServer) -> None:
    bucket, role = unique("bw-grab"), unique("backup")
    original = security_team_policy(moto, bucket)
    create_bucket(env, bucket, original)
    create_role(env, role)
    name = unique("grab")
    spec = spec_for(bucket, role, adoptSids=SECURITY_SIDS)
    create_protected_bucket(env, name, spec, namespace=env.other_namespace)

    obj = wait_for_status(
        env, name, lambda s: has_condition(s, "Ready", "False", "AdoptionRefused"), namespace=env.other_namespace
    )
    status = obj["status"]
    refused = {f["sid"] for f in status["findings"] if f["code"] == "AdoptionRefused" and f["severity"] == "Error"}
    assert refused == set(SECURITY_SIDS)
    assert status.get("adoptedStatements", []) == []
    event = wait_for_event(env, name, "AdoptionRefused", namespace=env.other_namespace)
    assert event["type"] == "Warning"
    assert_same_meaning(read_policy(env, bucket), original)

    assert env.kube.delete_object(PROTECTED_BUCKETS, name, namespace=env.other_namespace)
    env.kube.wait_until_gone(PROTECTED_BUCKETS, name, namespace=env.other_namespace, timeout=DEADLINE)
    assert_same_meaning(read_policy(env, bucket), original)


def test_operator_adopts_an_ip_restriction_with_an_event_and_its_hash_in_status(env: Env, moto: MotoServer) -> None:
    bucket, role = unique("bw-adopt"), unique("backup")
    original = security_team_policy(moto, bucket)
    create_bucket(env, bucket, original)
    create_role(env, role)
    name = unique("adopt")
    create_protected_bucket(env, name, spec_for(bucket, role, adoptSids=[SEED_SID]))

    obj = wait_for_status(env, name, protected)
    [adopted] = PolicyDocument.from_obj(original).find(SEED_SID)
    assert obj["status"]["adoptedStatements"] == [{"sid": SEED_SID, "hash": statement_hash(adopted)}]
    event = wait_for_event(env, name, "StatementAdopted")
    assert event["type"] == "Normal" and SEED_SID in event["message"]
    after = read_policy(env, bucket)
    assert after is not None and after.find(SEED_SID) == []
    assert all(len(after.find(sid)) == 1 for sid in SECURITY_SIDS)

    # Deleting the resource removes only our statement: the safeguards stay.
    assert env.kube.delete_object(PROTECTED_BUCKETS, name, namespace=env.namespace)
    env.kube.wait_until_gone(PROTECTED_BUCKETS, name, namespace=env.namespace, timeout=DEADLINE)
    remaining = read_policy(env, bucket)
    assert remaining is not None and remaining.find(OUR_SID) == []
    assert all(len(remaining.find(sid)) == 1 for sid in SECURITY_SIDS)
