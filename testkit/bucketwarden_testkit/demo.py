"""``bucketwarden demo``: the AWS Backup outage and its fix, replayed on embedded emulators with real calls.

moto serves S3, IAM and STS on loopback behind the enforcing S3 front (`bucketwarden_testkit.S3Front`), so every
boto3 call goes over HTTP and every S3 request is authorized against the bucket policy from the network it
comes from. An emulated Kubernetes API serves ProtectedBuckets, and the real operator runs in-process against
it. The story is the seed's: the backup job fails, the operator is locked out, `bootstrap` lets it in. Two
short chapters follow: an AWS Backup readiness finding (versioning suspended) and its fix, and, with Kubernetes,
one SourceAllowList shared by two buckets whose CIDR changes once.
"""

from __future__ import annotations

import json
import logging
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml

from bucketwarden._table import format_table
from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.bootstrap import run_bootstrap
from bucketwarden.crd import build_allow_list_crd
from bucketwarden.policy import PolicyDocument, verify_policy
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.readiness import S3_BACKUP_ACTIONS, S3_RESTORE_ACTIONS, VERSIONING_NOT_ENABLED
from bucketwarden.reconciler import Claim, PreviousState, Reconciler, ReconcileResult
from bucketwarden.spec import ExemptRole, ProtectedBucketSpec
from bucketwarden.tenancy import render_grant
from bucketwarden_testkit import (
    DENIED_SID_HEADER,
    BackupJob,
    BackupJobResult,
    FrontDecision,
    ResourceSpec,
    run_backup_job,
)

BUCKET = "awsbackup-test-001"
ROLE = "AWSBackupDefaultServiceRole"
ROLE_PATH = "/service-role/"
CIDRS = ["192.0.2.0/24", "203.0.113.0/24"]
ACCOUNT = "123456789012"
OPERATOR_ROLE = "bucketwarden-operator"
NAT_ADDRESS = "198.51.100.7"  # the front's "nat" network: the cluster's NAT gateway
OFFICE_ADDRESS = "192.0.2.10"  # the front's "office" network, inside the allowed CIDRs
NAMESPACE = "demo"
NAME = "awsbackup-test-001"
RESYNC_SECONDS = 2.0
ROLE_TTL_SECONDS = 2.0
READINESS_TTL_SECONDS = 1.0  # the operator's default is 600 s; the demo's fix must show within a resync or two
LIST_STATUS_SECONDS = 1.0  # how soon the SourceAllowList's USED BY / IN SYNC columns follow
ALLOW_LIST = "corp-egress"
LIST_CIDR_BEFORE = "192.0.2.0/24"
LIST_CIDR_AFTER = "203.0.113.0/24"
LIST_BUCKETS = ("corp-reports-a", "corp-reports-b")
OUR_SID = "BucketWardenIpRestriction"
WAIT_SECONDS = 45.0

(ALLOW_LISTS,) = ResourceSpec.from_crd(build_allow_list_crd())

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
# The backup role's S3 permissions (inline: moto does not load AWS managed policies), so that the readiness
# checks find nothing to say about the role and the one finding the demo shows is the bucket's versioning.
BACKUP_PERMISSIONS = {
    "Version": "2012-10-17",
    "Statement": [
        {"Effect": "Allow", "Action": sorted(set(S3_BACKUP_ACTIONS + S3_RESTORE_ACTIONS)), "Resource": "*"},
    ],
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


def describe(decision: tuple[str, str | None]) -> str:
    word = "DENIED" if decision[0] == "ExplicitDeny" else "not denied"
    return f"{word} ({decision[0]}{', Sid ' + decision[1] if decision[1] else ''})"


class DemoWorld:
    """The emulated AWS account behind the enforcing front: the bucket, the backup role, the operator's role.

    ``s3``/``iam`` are the console (the front's unenforced harness port); the operator's gateway talks from the
    cluster's NAT address as a session of its own IAM role, as it would with IRSA.
    """

    def __init__(self, aws: Any) -> None:
        self.aws = aws
        self.s3 = aws.client("s3")
        self.iam = aws.client("iam")
        self.backup_role_arn = f"arn:aws:iam::{ACCOUNT}:role{ROLE_PATH}{ROLE}"
        self.operator_role_arn = ""
        self._gateway: AwsGateway | None = None

    @property
    def gateway(self) -> AwsGateway:
        assert self._gateway is not None, "set_up() first"
        return self._gateway

    def set_up(self) -> str:
        self.s3.create_bucket(Bucket=BUCKET)
        self.s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})
        for i in range(1, 4):
            self.s3.put_object(Bucket=BUCKET, Key=f"data/object-{i}", Body=f"payload {i}".encode())
        self.put_policy({"Version": "2012-10-17", "Statement": [HAND_WRITTEN, FOREIGN]})
        role_id = self.create_role()
        self.operator_role_arn = self.aws.create_operator_role(OPERATOR_ROLE)
        session = self.aws.role_session(self.operator_role_arn, "botocore-session-1767225600")
        self._gateway = AwsGateway(  # its readiness reads (GetBucketVersioning) go through the front too
            AwsSettings(endpoint_url=self.aws.endpoint("nat"), region=self.aws.region, max_attempts=2),
            session=session,
            ttl_seconds=ROLE_TTL_SECONDS,
            readiness_ttl_seconds=READINESS_TTL_SECONDS,
        )
        return role_id

    def reconciler(self) -> Reconciler:
        """The operator's reconciler, with the AWS Backup readiness checks on (the operator's default)."""
        return Reconciler(self.gateway, readiness=self.gateway.readiness)

    def create_role(self) -> str:
        role = self.iam.create_role(RoleName=ROLE, Path=ROLE_PATH, AssumeRolePolicyDocument=json.dumps(TRUST))
        self.iam.put_role_policy(
            RoleName=ROLE, PolicyName="S3BackupAndRestore", PolicyDocument=json.dumps(BACKUP_PERMISSIONS)
        )
        return str(role["Role"]["RoleId"])

    def recreate_role(self) -> str:
        self.iam.delete_role_policy(RoleName=ROLE, PolicyName="S3BackupAndRestore")
        self.iam.delete_role(RoleName=ROLE)
        return self.create_role()

    def set_versioning(self, status: str, bucket: str = BUCKET) -> None:
        """The console (the front's harness port) turns versioning on or suspends it."""
        self.s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": status})

    def policy_of(self, bucket: str) -> str | None:
        try:
            return str(self.s3.get_bucket_policy(Bucket=bucket)["Policy"])
        except self.s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") == "NoSuchBucketPolicy":
                return None
            raise

    def operator_reads(self, action: str, *, since: float) -> list[FrontDecision]:
        """What the front decided for the operator's ``action`` requests on the demo bucket since ``since``."""
        operator_id = self.iam.get_role(RoleName=OPERATOR_ROLE)["Role"]["RoleId"]
        assert self.aws.front is not None
        return [
            d
            for d in self.aws.front.decisions()
            if d.at >= since
            and d.action == action
            and d.bucket == BUCKET
            and d.network == "nat"
            and d.user_id.startswith(f"{operator_id}:")
        ]

    def written_cidrs(self, bucket: str) -> set[str]:
        """The CIDRs of our Deny in ``bucket``'s policy (empty without one)."""
        text = self.policy_of(bucket)
        found = PolicyDocument.parse(text).find(OUR_SID) if text else []
        return set(found[0].conditions.get("NotIpAddress", {}).get("aws:sourceip", [])) if found else set()

    def put_policy(self, doc: Mapping[str, Any]) -> None:
        self.s3.put_bucket_policy(Bucket=BUCKET, Policy=json.dumps(doc))

    def policy(self) -> str | None:
        return self.policy_of(BUCKET)

    def backup(self) -> BackupJobResult:
        """An on-demand AWS Backup job of the bucket, through the front from AWS's network."""
        return run_backup_job(self.aws, BUCKET, self.backup_role_arn)

    def prepare_backup(self) -> BackupJob:
        return BackupJob(self.aws, BUCKET, self.backup_role_arn).prepare()

    def user_read(self, network: str) -> tuple[str, str | None]:
        """An ordinary IAM user's GetObject from ``network``, through the front: (decision, deciding Sid)."""
        s3 = self.aws.client_on(network, "s3", self._analyst())
        try:
            s3.get_object(Bucket=BUCKET, Key="data/object-1")["Body"].read()
        except s3.exceptions.ClientError as exc:
            if exc.response.get("Error", {}).get("Code") != "AccessDenied":
                raise
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            return "ExplicitDeny", headers.get(DENIED_SID_HEADER)
        return "Allow", None

    def _analyst(self) -> Any:
        if not hasattr(self, "_analyst_session"):
            self._analyst_session = self.aws.user_session("analyst")
        return self._analyst_session

    def admin_gateway(self) -> AwsGateway:
        """An administrator's credentials on the office network: someone the hand-written policy allows."""
        return AwsGateway(
            AwsSettings(endpoint_url=self.aws.endpoint("office"), region=self.aws.region, max_attempts=2),
            session=self.aws.user_session("admin"),
        )

    def verify_inputs(self, spec: ProtectedBucketSpec) -> tuple[list[ResolvedRole], CallerIdentity]:
        self.gateway.invalidate()
        role = self.gateway.resolve_role(ExemptRole(name=ROLE))
        return [role], self.gateway.caller_identity()


def remove_exemption_by_hand(policy_text: str, role_id: str) -> dict[str, Any]:
    """What a well-meaning colleague does in the console: drops the backup role's RoleId from our Deny.

    Had they dropped the whole StringNotLike, the operator's own exemption would go too, and the front would
    lock the operator out, as AWS would: only bootstrap (or the root) could repair that.
    """
    doc = json.loads(policy_text)
    for statement in doc["Statement"]:
        if statement.get("Sid") == "BucketWardenIpRestriction":
            patterns = statement["Condition"]["StringNotLike"]["aws:userId"]
            kept = [p for p in ([patterns] if isinstance(patterns, str) else patterns) if p != f"{role_id}:*"]
            statement["Condition"]["StringNotLike"]["aws:userId"] = kept
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


class CountingReconciler(Reconciler):
    """The operator's reconciler, recording per bucket what each reconcile rendered: (CIDRs, whether it wrote)."""

    def __init__(self, world: DemoWorld) -> None:
        super().__init__(world.gateway, readiness=world.gateway.readiness)
        self._lock = threading.Lock()
        self._log: defaultdict[str, list[tuple[tuple[str, ...], bool]]] = defaultdict(list)

    def reconcile(
        self, spec: ProtectedBucketSpec, previous: PreviousState | None = None, claim: Claim | None = None
    ) -> ReconcileResult:
        result = super().reconcile(spec, previous, claim)
        with self._lock:
            self._log[spec.bucket_name].append((tuple(spec.allowed_source_ips), result.applied))
        return result

    def log(self, bucket: str) -> list[tuple[tuple[str, ...], bool]]:
        with self._lock:
            return list(self._log[bucket])


class ReconcilerDriver(Driver):
    """No Kubernetes: call the reconciler directly, as `bucketwarden apply` does."""

    def __init__(self, world: DemoWorld) -> None:
        self.reconciler = world.reconciler()
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
            "findings": [f.to_k8s() for f in self.last.findings],
            "driftCorrections": self.drift,
        }

    def table(self) -> str:
        status = self.status()
        return protectedbuckets_table([{"metadata": MANIFEST["metadata"], "spec": MANIFEST["spec"], "status": status}])


def _finding(status: Mapping[str, Any], code: str) -> Mapping[str, Any] | None:
    return next((f for f in status.get("findings") or [] if f.get("code") == code), None)


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
        from bucketwarden_testkit import PROTECTED_BUCKETS, run_operator_in_thread

        self.kube = kube
        self.client = kube.client()
        self.resource = PROTECTED_BUCKETS
        self.allow_lists = ALLOW_LISTS
        settings = OperatorSettings(
            resync_interval_seconds=RESYNC_SECONDS,
            resync_jitter_seconds=0.2,
            role_cache_ttl_seconds=ROLE_TTL_SECONDS,
            backup_readiness_ttl_seconds=READINESS_TTL_SECONDS,
            allow_list_status_seconds=LIST_STATUS_SECONDS,
            metrics_port=0,
            health_port=0,
            status_refresh_seconds=600,
        )
        self.client.create_namespace(NAMESPACE)
        # The readiness checks are on, as the operator's default settings have them (default_reconciler).
        self.reconciler = CountingReconciler(world)
        registry = build_registry(settings, lambda _settings, _metrics: self.reconciler)
        self.handle = run_operator_in_thread(registry, server_or_kubeconfig=kube)

    def apply(self, manifest: Mapping[str, Any]) -> None:
        self.client.create_object(self.resource, dict(manifest), namespace=NAMESPACE)

    def grant(self, tenant_policy: Mapping[str, Any]) -> None:
        from bucketwarden_testkit import TENANT_POLICIES

        self.client.create_object(TENANT_POLICIES, dict(tenant_policy))

    def wait(self, world: DemoWorld, ready: Callable[[], bool]) -> bool:
        deadline = time.monotonic() + WAIT_SECONDS
        while time.monotonic() < deadline:
            if ready():
                return True
            time.sleep(0.25)
        return ready()

    def object(self, name: str = NAME) -> Mapping[str, Any]:
        return self.client.get_object(self.resource, name, namespace=NAMESPACE) or {}

    def status(self, name: str = NAME) -> Mapping[str, Any]:
        return dict(self.object(name).get("status") or {})

    def allow_list(self, name: str = ALLOW_LIST) -> Mapping[str, Any]:
        return self.client.get_object(self.allow_lists, name) or {}

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
    from bucketwarden_testkit import PROTECTED_BUCKETS, TENANT_POLICIES, EnforcedMoto, KubeEmulator

    story = Story()
    print("bucketwarden demo: IP-restricted bucket policies that do not break AWS Backup")
    print("AWS is moto on loopback behind an enforcing S3 front: every S3 request is authorized against the bucket")
    print("policy by bucketwarden's IAM evaluator, from the network it comes from (office, AWS, the cluster's NAT).")
    with _quiet_logs(), EnforcedMoto() as aws:
        world = DemoWorld(aws)
        role_id = world.set_up()
        story.chapter("1. The bucket carries a hand-written IP allow-list; AWS Backup's role exists")
        story.say(f"bucket {BUCKET} (versioned, 3 objects), role {ROLE_PATH}{ROLE} with RoleId {role_id}")
        story.show_policy("bucket policy", world.policy())

        story.chapter("2. Tried it: an on-demand AWS Backup job, from AWS's network")
        job = world.backup()
        story.say(f"backup job as {job.user_id}: {job.describe()}")
        story.check(
            "the backup job FAILS with Access Denied by SourceIPRestriction001 (the outage)",
            not job.completed and job.action is not None and job.sid == "SourceIPRestriction001",
        )
        story.say(f"AWS Backup's session: {describe(('ExplicitDeny', job.sid))}")

        if kubernetes:
            with KubeEmulator(resources=(PROTECTED_BUCKETS, ALLOW_LISTS, TENANT_POLICIES)) as kube:
                driver: Driver = OperatorDriver(world, kube)
                try:
                    _play(story, world, driver, role_id, "the operator on an emulated Kubernetes API")
                    assert isinstance(driver, OperatorDriver)
                    _allow_list_chapter(story, world, driver)
                    _table(story, driver)
                finally:
                    assert isinstance(driver, OperatorDriver)
                    driver.close()
        else:
            plain = ReconcilerDriver(world)
            _play(story, world, plain, role_id, "the reconciler (no Kubernetes)")
            story.chapter("9. A SourceAllowList shared by two buckets: needs Kubernetes (run without --no-kubernetes)")
            _table(story, plain)
        assert aws.front is not None
        requests, seconds = aws.front.cost()
        print(f"\nthe enforcing S3 front decided {requests} requests in {seconds:.2f} s of its own time")
    return story.finish()


def _backup_matches_policy(
    story: Story, world: DemoWorld, prepared: BackupJob, what: str, role_id: str
) -> BackupJobResult:
    """Run a prepared backup job and check it FAILS while the policy lacks ``role_id``'s exemption.

    The operator resyncs on its own timer and may repair the policy during the job: the policy is read before and
    after, and only a job that ran entirely under the broken policy must fail; otherwise it must not fail later.
    """
    before = world.policy()
    job = prepared.run()
    after = world.policy()
    story.say(f"backup job: {job.describe()}")
    if before == after and not role_id_in(before, role_id):
        story.check(what, not job.completed and job.sid == "BucketWardenIpRestriction")
    else:  # the operator repaired the policy while the job ran: it must have completed
        story.say("(the operator repaired the policy while the job ran)")
        story.check(what + " (or completes, once repaired)", job.completed or not role_id_in(before, role_id))
    return job


def _default_deny(story: Story, world: DemoWorld, driver: OperatorDriver) -> None:
    """The ProtectedBucket waits for a cluster admin's grant, makes no AWS call meanwhile, and proceeds once granted."""
    since = time.time()
    refused = driver.wait(world, lambda: _condition(driver.status(), "Ready", "reason") == "NotAuthorized")
    message = _condition(driver.status(), "Ready", "message")
    story.say(f"Ready=False NotAuthorized: {message}")
    story.check(
        f"default deny: no TenantPolicy grants namespace {NAMESPACE} the bucket, so no AWS call is made",
        refused and not world.operator_reads("GetBucketPolicy", since=since),
    )
    command = f"bucketwarden grant --namespace {NAMESPACE} --bucket {BUCKET} | kubectl apply -f -"
    story.check("the message names the command that grants it", command in message)
    story.say(f"a cluster admin grants it: $ {command}")
    grant = render_grant(f"team-{NAMESPACE}", [NAMESPACE], [BUCKET, "corp-reports-*"])
    for line in yaml.safe_dump(grant, sort_keys=False).splitlines():
        story.say("  " + line)
    driver.grant(grant)


def _play(story: Story, world: DemoWorld, driver: Driver, role_id: str, how: str) -> None:
    story.chapter(f"3. bucketwarden is installed ({how}); its requests come from the cluster's NAT address")
    story.say(f"the operator acts as role {world.operator_role_arn}, from {NAT_ADDRESS}")
    for line in json.dumps(MANIFEST["spec"], indent=2).splitlines():
        story.say(line)
    driver.apply(MANIFEST)
    if isinstance(driver, OperatorDriver):
        _default_deny(story, world, driver)
    locked = driver.wait(world, lambda: _condition(driver.status(), "Ready", "reason") == "AccessDenied")
    message = _condition(driver.status(), "Ready", "message")
    story.say(f"Ready=False {_condition(driver.status(), 'Ready', 'reason')}: {message}")
    story.check("bucketwarden is locked out at first: Ready=False, reason AccessDenied", locked)
    story.check(
        f"the status message names the way in: bucketwarden bootstrap ... {BUCKET} --operator-role",
        "bucketwarden bootstrap -f" in message and BUCKET in message and world.operator_role_arn in message,
    )

    story.chapter("4. The way in: an admin on the office network runs bucketwarden bootstrap, once")
    with tempfile.TemporaryDirectory(prefix="bucketwarden-demo-") as folder:
        manifest = Path(folder) / "pb.yaml"
        manifest.write_text(yaml.safe_dump(dict(MANIFEST)), encoding="utf-8")
        story.say(f"$ bucketwarden bootstrap -f pb.yaml --operator-role {world.operator_role_arn}")
        code = run_bootstrap(str(manifest), world.operator_role_arn, aws=world.admin_gateway(), out=story.say)
    story.check("bootstrap wrote and verified the policy (exit 0)", code == 0)
    fixed = driver.wait(world, lambda: _condition(driver.status(), "Ready") == "True")
    story.check("the ProtectedBucket becomes Ready at the operator's next reconcile", fixed)
    after = world.policy()
    story.show_policy("bucket policy after", after)
    doc = PolicyDocument.parse(after) if after else None
    story.check(
        "one Deny (the hand-written one adopted), the foreign statement kept",
        doc is not None
        and [s.sid for s in doc.statements] == ["BucketWardenIpRestriction", "AllowCloudFrontRead"]
        and doc.find("AllowCloudFrontRead")[0].to_json() == FOREIGN,
    )
    operator_id = world.iam.get_role(RoleName=OPERATOR_ROLE)["Role"]["RoleId"]
    story.check(
        f"the exemption names the backup RoleId ({role_id}) and every session of the operator's role ({operator_id})",
        role_id_in(after, role_id) and role_id_in(after, operator_id),
    )

    story.chapter("5. Through the front: the backup job, and ordinary users from outside and inside")
    job = world.backup()
    story.say(f"backup job as {job.user_id}: {job.describe()}")
    story.check("the backup job COMPLETES", job.completed and job.versions_read == 3)
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
    for label, network, denied in (
        (f"an ordinary user from outside ({NAT_ADDRESS})", "nat", True),
        (f"an ordinary user from an allowed address ({OFFICE_ADDRESS})", "office", False),
    ):
        decision = world.user_read(network)
        story.check(f"{label}: {describe(decision)}", (decision[0] == "ExplicitDeny") == denied)

    story.chapter(
        "6. Someone removes the backup role's exemption by hand in the console; the next reconcile restores it"
    )
    assert after is not None
    prepared = world.prepare_backup()  # the job's session exists before the edit: its reads follow it at once
    world.put_policy(remove_exemption_by_hand(after, role_id))
    _backup_matches_policy(story, world, prepared, "right after the hand edit, the backup job FAILS", role_id)
    restored = driver.wait(world, lambda: role_id_in(world.policy(), role_id))
    story.check("the exemption is restored by the next reconcile", restored)
    job = world.backup()
    story.say(f"backup job: {job.describe()}")
    story.check("the backup job COMPLETES again", job.completed)
    story.check(
        "status counts the drift correction",
        driver.wait(world, lambda: int(driver.status().get("driftCorrections", 0)) >= 1),
    )

    story.chapter("7. The role is deleted and recreated: it gets a NEW RoleId")
    new_id = world.recreate_role()
    prepared = world.prepare_backup()
    story.say(f"old RoleId {role_id}, new RoleId {new_id}")
    stale = "with the old RoleId still in the policy, the new role's backup job FAILS"
    _backup_matches_policy(story, world, prepared, stale, new_id)
    picked_up = driver.wait(world, lambda: role_id_in(world.policy(), new_id))
    story.check(f"the new RoleId is picked up within the cache TTL ({ROLE_TTL_SECONDS:.0f} s) and written", picked_up)
    job = world.backup()
    story.say(f"backup job: {job.describe()}")
    story.check("the backup job with the new role COMPLETES", job.completed)
    story.check(
        "status shows the new RoleId",
        driver.wait(
            world,
            lambda: any(e.get("roleId") == new_id for e in driver.status().get("exemptPrincipals", [])),
        ),
    )

    _readiness_chapter(story, world, driver)


def _readiness_chapter(story: Story, world: DemoWorld, driver: Driver) -> None:
    story.chapter("8. Someone suspends the bucket's versioning: a readiness Warning in status, with its fix")
    story.say("(every reconcile also checks AWS Backup readiness, read-only and cached; here for 1 s, default 600 s)")
    started = time.monotonic()
    world.set_versioning("Suspended")
    warned = driver.wait(world, lambda: _finding(driver.status(), VERSIONING_NOT_ENABLED) is not None)
    finding = _finding(driver.status(), VERSIONING_NOT_ENABLED) or {}
    story.say(f"status.findings: {finding.get('severity')} {finding.get('code')}: {finding.get('message')}")
    story.check(
        f"status shows the Warning {VERSIONING_NOT_ENABLED}, naming the fix (put-bucket-versioning ... Enabled)",
        warned
        and finding.get("severity") == "Warning"
        and f"put-bucket-versioning --bucket {BUCKET}" in str(finding.get("message"))
        and "Status=Enabled" in str(finding.get("message")),
    )
    story.check(
        "a Warning never blocks: the ProtectedBucket stays Ready", _condition(driver.status(), "Ready") == "True"
    )
    job = world.backup()
    story.say(f"backup job: {job.describe()}")
    story.check("the backup job FAILS while versioning is suspended (what the Warning foretold)", not job.completed)
    story.say(f"$ aws s3api put-bucket-versioning --bucket {BUCKET} --versioning-configuration Status=Enabled")
    world.set_versioning("Enabled")
    cleared = driver.wait(world, lambda: _finding(driver.status(), VERSIONING_NOT_ENABLED) is None)
    story.check(f"a later reconcile (after the readiness TTL) no longer reports {VERSIONING_NOT_ENABLED}", cleared)
    job = world.backup()
    story.say(f"backup job: {job.describe()}")
    story.check("the backup job COMPLETES once versioning is enabled again", job.completed)
    reads = world.operator_reads("s3:GetBucketVersioning", since=started)
    story.check(
        f"the readiness reads went through the front from the NAT address, allowed by the policy ({len(reads)} "
        "GetBucketVersioning as the operator's role)",
        bool(reads) and not any(d.denied for d in reads),
    )


def _allow_list_chapter(story: Story, world: DemoWorld, driver: OperatorDriver) -> None:
    story.chapter(f"9. One SourceAllowList ({ALLOW_LIST}), two buckets, a CIDR changed once")
    client = driver.client
    client.create_object(
        driver.allow_lists,
        {"metadata": {"name": ALLOW_LIST}, "spec": {"cidrs": [LIST_CIDR_BEFORE], "owner": "network-team"}},
    )
    story.say(f"SourceAllowList {ALLOW_LIST} (cluster-scoped): cidrs [{LIST_CIDR_BEFORE}]")
    for bucket in LIST_BUCKETS:
        world.s3.create_bucket(Bucket=bucket)  # the console; no bucket policy yet, so the operator writes directly
        world.set_versioning("Enabled", bucket)
        spec = {"bucketName": bucket, "allowedSourcesFrom": [{"name": ALLOW_LIST}]}
        client.create_object(driver.resource, {"metadata": {"name": bucket}, "spec": spec}, namespace=NAMESPACE)
        story.say(f"ProtectedBucket {NAMESPACE}/{bucket}: allowedSourcesFrom [{{name: {ALLOW_LIST}}}]")
    protected = driver.wait(
        world,
        lambda: all(
            _condition(driver.status(b), "Ready", "reason") == "Protected"
            and world.written_cidrs(b) == {LIST_CIDR_BEFORE}
            for b in LIST_BUCKETS
        ),
    )
    story.check(f"both buckets become Ready (Protected), their policies allowing {LIST_CIDR_BEFORE}", protected)
    operator_id = world.iam.get_role(RoleName=OPERATOR_ROLE)["Role"]["RoleId"]
    story.check(
        "the operator exempted itself in both (no hand-written Deny there to lock it out)",
        all(role_id_in(world.policy_of(b), operator_id) for b in LIST_BUCKETS),
    )

    before = {b: len(driver.reconciler.log(b)) for b in LIST_BUCKETS}
    story.say(
        f'$ kubectl patch sourceallowlist {ALLOW_LIST} --type merge -p \'{{"spec":{{"cidrs":["{LIST_CIDR_AFTER}"]}}}}\''
    )
    changed_at = time.monotonic()
    client.patch_object(driver.allow_lists, ALLOW_LIST, {"spec": {"cidrs": [LIST_CIDR_AFTER]}})
    arrived = driver.wait(world, lambda: all(world.written_cidrs(b) == {LIST_CIDR_AFTER} for b in LIST_BUCKETS))
    took = time.monotonic() - changed_at
    story.say(
        f"both policies carry {LIST_CIDR_AFTER} {took:.1f} s after the change (resync interval {RESYNC_SECONDS:.0f} s)"
    )
    writes: dict[str, list[tuple[str, ...]]] = {}
    for bucket in LIST_BUCKETS:
        since = driver.reconciler.log(bucket)[before[bucket] :]
        writes[bucket] = [cidrs for cidrs, wrote in since if wrote]
        shown = "; ".join(", ".join(cidrs) for cidrs in writes[bucket]) or "none"
        story.say(f"{bucket}: {len(since)} reconcile(s) since the change, {len(writes[bucket])} write(s): {shown}")
    story.check(
        f"both buckets' policies carry {LIST_CIDR_AFTER} after ONE reconcile each (one policy write per bucket)",
        arrived and all(w == [(LIST_CIDR_AFTER,)] for w in writes.values()),
    )
    in_sync = driver.wait(
        world,
        lambda: (s := driver.allow_list().get("status") or {}).get("usedBy") == 2 and s.get("inSync") == 2,
    )
    listed = driver.allow_list()
    status = listed.get("status") or {}
    story.say("$ kubectl get sourceallowlists")
    table = format_table(
        ("NAME", "OWNER", "USED BY", "IN SYNC"),
        [(ALLOW_LIST, (listed.get("spec") or {}).get("owner"), status.get("usedBy"), status.get("inSync"))],
    )
    for line in table.splitlines():
        story.say(line)
    users = status.get("users") or {}
    story.say(f"status.users (per namespace): {', '.join(f'{ns}: {n}' for ns, n in sorted(users.items()))}")
    story.check("the list's status: USED BY 2, IN SYNC 2", in_sync)


def _table(story: Story, driver: Driver) -> None:
    story.chapter("kubectl get protectedbuckets -n demo")
    for line in driver.table().splitlines():
        story.say(line)
