"""``bucketwarden demo``: the AWS Backup outage and its fix, replayed on embedded emulators with real calls.

moto serves S3, IAM and STS on loopback, so every boto3 call goes over HTTP; an emulated Kubernetes API
serves ProtectedBuckets, and the real operator runs in-process against it. Whether a request is denied
is judged by bucketwarden's own IAM evaluator, never by moto (which does not enforce conditions).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from bucketwarden._table import format_table
from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.policy import PolicyDocument, Request, evaluate, verify_policy
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.reconciler import PreviousState, Reconciler, ReconcileResult
from bucketwarden.spec import ExemptRole, ProtectedBucketSpec

BUCKET = "awsbackup-test-001"
ROLE = "AWSBackupDefaultServiceRole"
ROLE_PATH = "/service-role/"
CIDRS = ["192.0.2.0/24", "203.0.113.0/24"]
AWS_ADDRESS = "3.5.140.2"  # an AWS-owned address, where AWS Backup's requests come from
OUTSIDE_ADDRESS = "198.51.100.7"
INSIDE_ADDRESS = "192.0.2.10"
NAMESPACE = "demo"
NAME = "awsbackup-test-001"
RESYNC_SECONDS = 2.0
ROLE_TTL_SECONDS = 2.0
WAIT_SECONDS = 45.0

HAND_WRITTEN = {
    "Sid": "SourceIPRestriction001",
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": [f"arn:aws:s3:::{BUCKET}", f"arn:aws:s3:::{BUCKET}/*"],
    "Condition": {"NotIpAddress": {"aws:SourceIp": CIDRS}},
}
FOREIGN = {
    "Sid": "AllowCloudFrontRead",
    "Effect": "Allow",
    "Principal": {"Service": "cloudfront.amazonaws.com"},
    "Action": "s3:GetObject",
    "Resource": f"arn:aws:s3:::{BUCKET}/*",
}
TRUST = {
    "Version": "2012-10-17",
    "Statement": [{"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}],
}
MANIFEST: dict[str, Any] = {
    "apiVersion": "bucketwarden.io/v1alpha1",
    "kind": "ProtectedBucket",
    "metadata": {"name": NAME, "namespace": NAMESPACE},
    "spec": {
        "bucketName": BUCKET,
        "allowedSourceIps": CIDRS,
        "exemptRoles": [{"name": ROLE}],
        "adoptSids": ["SourceIPRestriction001"],
    },
}


@dataclass
class Story:
    """The demo's narrative and its checks; the exit code is 0 only if every check passed."""

    checks: list[tuple[str, bool]] = field(default_factory=list)
    started: float = field(default_factory=time.monotonic)

    def chapter(self, title: str) -> None:
        print(f"\n== {title}")

    def say(self, text: str) -> None:
        print(f"   {text}")

    def check(self, what: str, ok: bool) -> bool:
        self.checks.append((what, ok))
        print(f"   [{'ok' if ok else 'FAILED'}] {what}")
        return ok

    def show_policy(self, label: str, text: str | None) -> None:
        print(f"   {label}:")
        body = "(no bucket policy)" if text is None else PolicyDocument.parse(text).to_json(pretty=True)
        for line in body.splitlines():
            print(f"     {line}")

    def finish(self) -> int:
        failed = [what for what, ok in self.checks if not ok]
        elapsed = time.monotonic() - self.started
        print(f"\n{len(self.checks) - len(failed)} of {len(self.checks)} checks passed in {elapsed:.1f} s")
        for what in failed:
            print(f"   FAILED: {what}")
        return 0 if not failed else 1


def backup_request(role_id: str, *, action: str = "s3:GetObject", address: str = AWS_ADDRESS) -> Request:
    """A request of AWS Backup's S3 session, as IAM sees it."""
    return Request.of(
        action,
        f"arn:aws:s3:::{BUCKET}/data/object-1",
        {
            "aws:SourceIp": address,
            "aws:userid": f"{role_id}:AWSBackup-{ROLE}",
            "aws:PrincipalArn": f"arn:aws:iam::123456789012:role{ROLE_PATH}{ROLE}",
            "aws:PrincipalAccount": "123456789012",
        },
    )


def user_request(address: str) -> Request:
    return Request.of(
        "s3:GetObject",
        f"arn:aws:s3:::{BUCKET}/data/object-1",
        {
            "aws:SourceIp": address,
            "aws:userid": "AIDAEXAMPLEUSER000001",
            "aws:PrincipalArn": "arn:aws:iam::123456789012:user/analyst",
            "aws:PrincipalAccount": "123456789012",
        },
    )


def decide(policy_text: str | None, request: Request) -> tuple[str, str | None]:
    if policy_text is None:
        return "NoMatch", None
    evaluation = evaluate(PolicyDocument.parse(policy_text), request)
    return evaluation.decision, evaluation.sid


def describe(decision: tuple[str, str | None]) -> str:
    word = "DENIED" if decision[0] == "ExplicitDeny" else "not denied"
    return f"{word} ({decision[0]}{', Sid ' + decision[1] if decision[1] else ''})"


class DemoWorld:
    """The emulated AWS account: one bucket, the backup role, and the operator's gateway."""

    def __init__(self, moto: Any) -> None:
        self.moto = moto
        self.s3 = moto.client("s3")
        self.iam = moto.client("iam")
        self.gateway = AwsGateway(
            AwsSettings(endpoint_url=moto.endpoint_url, region=moto.region),
            session=moto.session(),
            ttl_seconds=ROLE_TTL_SECONDS,
        )

    def set_up(self) -> str:
        self.s3.create_bucket(Bucket=BUCKET)
        self.put_policy({"Version": "2012-10-17", "Statement": [HAND_WRITTEN, FOREIGN]})
        return self.create_role()

    def create_role(self) -> str:
        role = self.iam.create_role(RoleName=ROLE, Path=ROLE_PATH, AssumeRolePolicyDocument=json.dumps(TRUST))
        return str(role["Role"]["RoleId"])

    def recreate_role(self) -> str:
        self.iam.delete_role(RoleName=ROLE)
        return self.create_role()

    def put_policy(self, doc: Mapping[str, Any]) -> None:
        self.s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(doc))

    def policy(self) -> str | None:
        try:
            return str(self.s3.get_bucket_policy(Bucket=BUCKET)["Policy"])
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucketPolicy":
                return None
            raise

    def verify_inputs(self, spec: ProtectedBucketSpec) -> tuple[list[ResolvedRole], CallerIdentity]:
        self.gateway.invalidate()
        role = self.gateway.resolve_role(ExemptRole(name=ROLE))
        return [role], self.gateway.caller_identity()


def remove_exemption_by_hand(policy_text: str) -> dict[str, Any]:
    """What a well-meaning colleague does in the console: drops the StringNotLike from our Deny."""
    doc = json.loads(policy_text)
    for statement in doc["Statement"]:
        if statement.get("Sid") == "BucketWardenIpRestriction":
            statement["Condition"].pop("StringNotLike", None)
    return dict(doc)


def role_id_in(policy_text: str | None, role_id: str) -> bool:
    return policy_text is not None and f"{role_id}:*" in policy_text


# --- the two drivers: the real operator on an emulated Kubernetes API, or the reconciler alone ------------


class Driver:
    """How the ProtectedBucket is applied and how we wait for the next reconcile."""

    def apply(self, manifest: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def wait(self, world: DemoWorld, ready: Callable[[], bool]) -> bool:
        raise NotImplementedError

    def status(self) -> Mapping[str, Any]:
        raise NotImplementedError

    def table(self) -> str:
        raise NotImplementedError


class ReconcilerDriver(Driver):
    """No Kubernetes: call the reconciler directly, as `bucketwarden apply` does."""

    def __init__(self, world: DemoWorld) -> None:
        self.reconciler = Reconciler(world.gateway)
        self.spec: ProtectedBucketSpec | None = None
        self.last: ReconcileResult | None = None
        self.drift = 0

    def _reconcile(self) -> None:
        assert self.spec is not None
        previous = PreviousState(
            self.last.statement_hash if self.last else None,
            {r.name or "": r.role_id for r in self.last.exempt_principals if r.kind == "Role"} if self.last else {},
        )
        self.last = self.reconciler.reconcile(self.spec, previous)
        self.drift += int(self.last.drift_corrected)

    def apply(self, manifest: Mapping[str, Any]) -> None:
        self.spec = ProtectedBucketSpec.model_validate(manifest["spec"])
        self._reconcile()

    def wait(self, world: DemoWorld, ready: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if ready():
                return True
            time.sleep(ROLE_TTL_SECONDS / 2)
            self._reconcile()
        return ready()

    def status(self) -> Mapping[str, Any]:
        assert self.last is not None
        return {
            "conditions": [c.to_k8s() for c in self.last.conditions],
            "exemptPrincipals": [e.to_k8s() for e in self.last.exempt_principals],
            "driftCorrections": self.drift,
        }

    def table(self) -> str:
        status = self.status()
        return protectedbuckets_table([{"metadata": MANIFEST["metadata"], "spec": MANIFEST["spec"], "status": status}])


def _condition(status: Mapping[str, Any], kind: str, field_name: str = "status") -> str:
    for c in status.get("conditions") or []:
        if c.get("type") == kind:
            return str(c.get(field_name, ""))
    return ""


def _age(stamp: str | None, now: datetime) -> str:
    if not stamp:
        return "<none>"
    try:
        then = datetime.strptime(stamp, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    except ValueError:
        return stamp
    seconds = max(0, int((now - then).total_seconds()))
    return f"{seconds}s" if seconds < 120 else f"{seconds // 60}m"


def protectedbuckets_table(objects: list[Mapping[str, Any]], now: datetime | None = None) -> str:
    """The rows `kubectl get protectedbuckets` prints, from the CRD's printer columns."""
    now = now or datetime.now(UTC)
    rows = []
    for obj in objects:
        status = obj.get("status") or {}
        meta = obj.get("metadata") or {}
        rows.append(
            (
                meta.get("name"),
                (obj.get("spec") or {}).get("bucketName"),
                _condition(status, "Ready"),
                _condition(status, "Ready", "reason"),
                _condition(status, "Synced"),
                _condition(status, "Verified"),
                status.get(
                    "exemptCount", len([e for e in status.get("exemptPrincipals", []) if e.get("kind") == "Role"])
                ),
                _age(status.get("lastSyncTime"), now),
                _age(meta.get("creationTimestamp"), now),
            )
        )
    headers = ("NAME", "BUCKET", "READY", "REASON", "SYNCED", "VERIFIED", "EXEMPT", "LAST SYNC", "AGE")
    return format_table(headers, rows)


class OperatorDriver(Driver):
    """The real operator (kopf, in-process) against an emulated Kubernetes API."""

    def __init__(self, world: DemoWorld, kube: Any) -> None:
        from bucketwarden.k8s import OperatorSettings, build_registry
        from bucketwarden.testing import PROTECTED_BUCKETS, run_operator_in_thread

        self.kube = kube
        self.client = kube.client()
        self.resource = PROTECTED_BUCKETS
        settings = OperatorSettings(
            resync_interval_seconds=RESYNC_SECONDS,
            resync_jitter_seconds=0.2,
            role_cache_ttl_seconds=ROLE_TTL_SECONDS,
            metrics_port=0,
            health_port=0,
            status_refresh_seconds=600,
        )
        self.client.create_namespace(NAMESPACE)
        registry = build_registry(settings, lambda _settings, _metrics: Reconciler(world.gateway))
        self.handle = run_operator_in_thread(registry, server_or_kubeconfig=kube)

    def apply(self, manifest: Mapping[str, Any]) -> None:
        self.client.create_object(self.resource, dict(manifest), namespace=NAMESPACE)

    def wait(self, world: DemoWorld, ready: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if ready():
                return True
            time.sleep(0.25)
        return ready()

    def object(self) -> Mapping[str, Any]:
        return self.client.get_object(self.resource, NAME, namespace=NAMESPACE) or {}

    def status(self) -> Mapping[str, Any]:
        return dict(self.object().get("status") or {})

    def table(self) -> str:
        return protectedbuckets_table(self.client.list_objects(self.resource, namespace=NAMESPACE))

    def close(self) -> None:
        self.handle.stop()
        self.client.close()


@contextmanager
def _quiet_logs() -> Iterator[None]:
    """kopf and the emulators log their own chatter; the demo tells the story instead."""
    names = ("kopf", "bucketwarden", "aiohttp", "asyncio", "botocore", "urllib3")
    levels = {n: logging.getLogger(n).level for n in names}
    for n in names:
        logging.getLogger(n).setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        for n, level in levels.items():
            logging.getLogger(n).setLevel(level)


def run_demo(*, kubernetes: bool = True) -> int:
    from bucketwarden.testing import KubeEmulator, MotoServer

    story = Story()
    print("bucketwarden demo: IP-restricted bucket policies that do not break AWS Backup")
    print("AWS is moto on loopback (real HTTP); decisions come from bucketwarden's own IAM evaluator.")
    with _quiet_logs(), MotoServer() as moto:
        world = DemoWorld(moto)
        role_id = world.set_up()
        story.chapter("1. The bucket carries a hand-written IP allow-list; AWS Backup's role exists")
        story.say(f"bucket {BUCKET}, role {ROLE_PATH}{ROLE} with RoleId {role_id}")
        story.show_policy("bucket policy", world.policy())

        story.chapter("2. The outage: AWS Backup's session, from an AWS address")
        decision = decide(world.policy(), backup_request(role_id))
        story.say(f"{ROLE} session {role_id}:AWSBackup-{ROLE} from {AWS_ADDRESS}: {describe(decision)}")
        story.check("AWS Backup is denied by the hand-written policy (the outage)", decision[0] == "ExplicitDeny")

        if kubernetes:
            with KubeEmulator() as kube:
                driver: Driver = OperatorDriver(world, kube)
                try:
                    _play(story, world, driver, role_id, "through the operator on an emulated Kubernetes API")
                finally:
                    assert isinstance(driver, OperatorDriver)
                    driver.close()
        else:
            _play(story, world, ReconcilerDriver(world), role_id, "with the reconciler (no Kubernetes)")
    return story.finish()


def _play(story: Story, world: DemoWorld, driver: Driver, role_id: str, how: str) -> None:
    story.chapter(f"3. A ProtectedBucket is applied, {how}")
    for line in json.dumps(MANIFEST["spec"], indent=2).splitlines():
        story.say(line)
    driver.apply(MANIFEST)
    fixed = driver.wait(world, lambda: _condition(driver.status(), "Ready") == "True")
    story.check("the ProtectedBucket becomes Ready", fixed)
    after = world.policy()
    story.show_policy("bucket policy after", after)
    doc = PolicyDocument.parse(after) if after else None
    story.check(
        "one Deny (the hand-written one adopted), the foreign statement kept",
        doc is not None
        and [s.sid for s in doc.statements] == ["BucketWardenIpRestriction", "AllowCloudFrontRead"]
        and doc.find("AllowCloudFrontRead")[0].to_json() == FOREIGN,
    )
    story.check(f"the exemption names the RoleId looked up with iam:GetRole ({role_id})", role_id_in(after, role_id))

    story.chapter("4. Verification by bucketwarden's evaluator")
    spec = ProtectedBucketSpec.model_validate(MANIFEST["spec"])
    roles, operator = world.verify_inputs(spec)
    verification = verify_policy(spec, roles, operator, doc)
    rows = [
        (
            r.scenario.name,
            r.scenario.expect,
            r.evaluation.decision,
            r.evaluation.sid or "-",
            "ok" if r.passed else "FAIL",
        )
        for r in verification.results
    ]
    for line in format_table(("SCENARIO", "EXPECT", "DECISION", "SID", "RESULT"), rows).splitlines():
        story.say(line)
    story.check("every verification scenario came out as expected", verification.ok)
    for label, request, denied in (
        (f"AWS Backup's session from {AWS_ADDRESS}", backup_request(role_id), False),
        (f"an ordinary user from outside ({OUTSIDE_ADDRESS})", user_request(OUTSIDE_ADDRESS), True),
        (f"an ordinary user from an allowed address ({INSIDE_ADDRESS})", user_request(INSIDE_ADDRESS), False),
    ):
        decision = decide(after, request)
        ok = (decision[0] == "ExplicitDeny") == denied
        story.check(f"{label}: {describe(decision)}", ok)

    story.chapter("5. Someone removes the exemption by hand; the next reconcile restores it")
    assert after is not None
    world.put_policy(remove_exemption_by_hand(after))
    broken = decide(world.policy(), backup_request(role_id))
    story.say(f"after the hand edit, AWS Backup is {describe(broken)}")
    restored = driver.wait(world, lambda: role_id_in(world.policy(), role_id))
    story.check("the exemption is restored by the next reconcile", restored)
    story.check("AWS Backup is not denied again", decide(world.policy(), backup_request(role_id))[0] != "ExplicitDeny")
    story.check(
        "status counts the drift correction",
        driver.wait(world, lambda: int(driver.status().get("driftCorrections", 0)) >= 1),
    )

    story.chapter("6. The role is deleted and recreated: it gets a NEW RoleId")
    new_id = world.recreate_role()
    story.say(f"old RoleId {role_id}, new RoleId {new_id}")
    stale = decide(world.policy(), backup_request(new_id))
    story.say(f"with the old RoleId still in the policy, the new role's session is {describe(stale)}")
    picked_up = driver.wait(world, lambda: role_id_in(world.policy(), new_id))
    story.check(f"the new RoleId is picked up within the cache TTL ({ROLE_TTL_SECONDS:.0f} s) and written", picked_up)
    story.check(
        "AWS Backup's new session is not denied", decide(world.policy(), backup_request(new_id))[0] != "ExplicitDeny"
    )
    story.check(
        "status shows the new RoleId",
        driver.wait(
            world,
            lambda: any(e.get("roleId") == new_id for e in driver.status().get("exemptPrincipals", [])),
        ),
    )

    story.chapter("kubectl get protectedbuckets -n demo")
    for line in driver.table().splitlines():
        story.say(line)
