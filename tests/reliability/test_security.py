"""Security: the Kubernetes verbs the operator really uses are granted by docs/rbac-minimal.yaml (and no more is
needed); TenantPolicy grants confine each namespace to its buckets; credentials never reach logs, Events or status;
and invalid names and ARNs are refused before any AWS call."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import boto3
import kopf
import pytest
import yaml

import bucketwarden.k8s as k8s_module
from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.k8s import Metrics, OperatorSettings, Runtime, reconcile_object
from bucketwarden.principals import BucketTarget
from bucketwarden.reconciler import Reconciler
from bucketwarden.spec import TenantPolicySpec
from bucketwarden.tenancy import Tenancy
from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    TENANT_POLICIES,
    AwsFaultProxy,
    ErrorReply,
    KubeEmulator,
    MotoServer,
    ResourceSpec,
    grant_namespaces,
    load_crds,
)
from tests.reliability._kit import (
    ROLE,
    RecordingAws,
    create_pb,
    delete_all,
    foreign_statements,
    operator_on,
    policy_text,
    wait_for_reason,
)
from tests.shared import OUR_SID, REPO_ROOT, TRUST_POLICY, unique

pytestmark = pytest.mark.timeout(120)

RBAC_DOC = REPO_ROOT / "docs" / "rbac-minimal.yaml"
(ALLOW_LISTS,) = [
    r
    for crd in load_crds(sorted((REPO_ROOT / "crds").glob("*.yaml")))
    for r in ResourceSpec.from_crd(crd)
    if r.plural == "sourceallowlists"
]

Triple = tuple[str, str, str]  # (apiGroup, resource, verb)


# --- RBAC: the verbs actually used ---------------------------------------------------------------------------


def rbac_triple(method: str, path: str, watch: bool) -> Triple | None:
    """The (apiGroup, resource, verb) a request needs; None for discovery and other non-resource URLs."""
    parts = [p for p in path.split("/") if p]
    if parts[:1] == ["api"] and len(parts) >= 2:
        group, rest = "", parts[2:]
    elif parts[:1] == ["apis"] and len(parts) >= 3:
        group, rest = parts[1], parts[3:]
    else:
        return None
    if not rest:
        return None
    if rest[0] == "namespaces" and len(rest) >= 3:
        rest = rest[2:]  # a namespaced resource
    resource, name, sub = rest[0], rest[1] if len(rest) > 1 else None, rest[2] if len(rest) > 2 else None
    if sub:
        resource = f"{resource}/{sub}"
    verbs = {"POST": "create", "PATCH": "patch", "PUT": "update", "DELETE": "delete" if name else "deletecollection"}
    verb = ("watch" if watch else "get" if name else "list") if method == "GET" else verbs[method]
    return group, resource, verb


def granted(mode: str) -> set[Triple]:
    doc = yaml.safe_load(RBAC_DOC.read_text(encoding="utf-8"))[mode]
    rules = doc["rules"] + doc.get("clusterRules", [])
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule["apiGroups"]
        for resource in rule["resources"]
        for verb in rule["verbs"]
    }


def exercise(kube: KubeEmulator, namespace: str, aws: RecordingAws) -> None:
    """Everything the operator does in its life: create, status, update, events, a refusal, delete (finalizer)."""
    with kube.client() as client:
        bucket = unique("bw-rbac")
        aws.create_bucket(bucket, policy=policy_text(*foreign_statements(bucket)))
        create_pb(client, namespace, "used", {"bucketName": bucket, "allowedSourceIps": ["192.0.2.0/24"]})
        wait_for_reason(client, namespace, "used", "Protected", status="True")
        patch = {"spec": {"allowedSourceIps": ["192.0.2.0/24", "198.51.100.0/24"]}}
        client.patch_object(PROTECTED_BUCKETS, "used", patch, namespace=namespace)
        wait_for_reason(client, namespace, "used", "Protected", status="True")
        create_pb(client, namespace, "refused", {"bucketName": "Not_A_Bucket", "allowedSourceIps": ["192.0.2.0/24"]})
        wait_for_reason(client, namespace, "refused", "InvalidSpec", status="False")
        # A shared allow-list: watched, its finalizer held and released, its status written, its user signalled.
        shared = unique("bw-rbac-list")
        client.create_object(ALLOW_LISTS, {"metadata": {"name": shared}, "spec": {"cidrs": ["203.0.113.0/24"]}})
        listed = {"bucketName": bucket, "allowedSourcesFrom": [{"name": shared}]}
        client.patch_object(PROTECTED_BUCKETS, "used", {"spec": listed}, namespace=namespace)
        wait_for_reason(client, namespace, "used", "Protected", status="True")
        client.patch_object(ALLOW_LISTS, shared, {"spec": {"cidrs": ["198.51.100.0/24"]}})
        client.wait_for_status(ALLOW_LISTS, shared, lambda s: s.get("usedBy") == 1, timeout=30)
        for name in ("used", "refused"):
            client.delete_object(PROTECTED_BUCKETS, name, namespace=namespace)
            client.wait_until_gone(PROTECTED_BUCKETS, name, namespace=namespace)
        client.delete_object(ALLOW_LISTS, shared)
        client.wait_until_gone(ALLOW_LISTS, shared)


@pytest.mark.parametrize("mode", ["clusterwide", "namespaced"])
def test_every_kubernetes_request_the_operator_makes_is_granted_by_the_minimal_rbac(
    kube: KubeEmulator, mode: str, figures: dict[str, Any]
) -> None:
    aws = RecordingAws()
    namespace = unique("bw-rbac")
    with kube.client() as client:
        client.create_namespace(namespace)
    if mode == "namespaced":  # what a namespaced install is not granted is refused, as a real API server would
        # (namespaces are granted: the small ClusterRole lets the operator read their labels for namespaceSelector)
        kube.script_faults(forbidden_plurals=["customresourcedefinitions"])
    kube.clear_requests()
    watched = [namespace] if mode == "namespaced" else []
    settings = OperatorSettings(
        namespaces=watched, resync_interval_seconds=1.0, resync_jitter_seconds=0.2, metrics_port=0, health_port=0
    )
    try:
        with operator_on(kube, aws, watched, settings=settings):
            exercise(kube, namespace, aws)
        forbidden = kube.fault_state()["injected"].get("forbidden", 0)
    finally:
        kube.script_faults(forbidden_plurals=[])
    requests = [r for r in kube.requests() if r["userAgent"].startswith("kopf/")]

    used = {t for r in requests if (t := rbac_triple(r["method"], r["path"], r["watch"])) is not None}
    missing = used - granted(mode)
    # Namespaced: kopf's cluster scanning is off, so it never even asks for CRDs (which the
    # namespaced Role could not grant); tests/reliability/test_rbac_enforced.py enforces the chart's rules.
    assert forbidden == 0
    assert requests, "no request from kopf was recorded"
    assert missing == set()
    assert {("bucketwarden.io", "protectedbuckets/status", "patch"), ("", "events", "create")} <= used
    assert granted(mode) - used == set(), "the minimal RBAC grants a verb the operator never used"
    figures[f"rbac_{mode}"] = {
        "requests": len(requests),
        "verbs_used": sorted("/".join(t) for t in used),
        "granted_but_unused": sorted("/".join(t) for t in granted(mode) - used),
    }


# --- multi-tenancy: TenantPolicy grants ----------------------------------------------------------------------


def test_tenant_policy_confines_each_namespace_to_its_buckets(kube: KubeEmulator) -> None:
    aws = RecordingAws()
    team_a, team_b = unique("team-a"), unique("team-b")
    buckets = {"own": unique("team-a-data"), "foreign": unique("team-b-data"), "unlisted": unique("team-a-other")}
    for bucket in buckets.values():
        aws.create_bucket(bucket, policy=policy_text(*foreign_statements(bucket)))
    before = {bucket: aws.policy_of(bucket) for bucket in buckets.values()}

    with kube.client() as client:
        for namespace in (team_a, team_b):
            client.create_namespace(namespace)
        grant = unique("grant-a")
        grant_namespaces(client, grant, [team_a], [buckets["own"]])  # team_b is granted nothing: deny by default
        try:
            with operator_on(kube, aws, [team_a, team_b]):
                cidrs = {"allowedSourceIps": ["192.0.2.0/24"]}
                create_pb(client, team_a, "own", {"bucketName": buckets["own"], **cidrs})
                create_pb(client, team_a, "foreign", {"bucketName": buckets["foreign"], **cidrs})
                create_pb(client, team_b, "unlisted", {"bucketName": buckets["unlisted"], **cidrs})

                wait_for_reason(client, team_a, "own", "Protected", status="True")
                foreign = wait_for_reason(client, team_a, "foreign", "NotAuthorized", status="False")
                wait_for_reason(client, team_b, "unlisted", "NotAuthorized", status="False")
                message = foreign["status"]["conditions"][0]["message"]
                assert f"bucketwarden grant --namespace {team_a} --bucket {buckets['foreign']}" in message
                # Deleting a refused claim does not clean up a bucket it never owned.
                client.delete_object(PROTECTED_BUCKETS, "foreign", namespace=team_a)
                client.wait_until_gone(PROTECTED_BUCKETS, "foreign", namespace=team_a)
        finally:
            for namespace in (team_a, team_b):
                delete_all(client, namespace)
            client.delete_object(TENANT_POLICIES, grant)

    assert aws.policy_of(buckets["own"]) != before[buckets["own"]]
    for key in ("foreign", "unlisted"):  # not one AWS call about them, and nothing written
        assert buckets[key] not in aws.subjects()
        assert aws.policy_of(buckets[key]) == before[buckets[key]]


def test_tenant_policy_a_namespace_cannot_hold_a_bucket_outside_its_grant(kube: KubeEmulator) -> None:
    """A grant checked only at creation would let a namespace keep a bucket: re-pointing the resource at
    another bucket (where admission's immutability rule is missing) or narrowing the grant afterwards must
    both stop every write; the narrowed resource's deletion then removes nothing either."""
    aws = RecordingAws()
    team = unique("team-a")
    own, other, later = unique("team-a-held"), unique("team-b-held"), unique("team-a-narrowed")
    for bucket in (own, other, later):
        aws.create_bucket(bucket, policy=policy_text(*foreign_statements(bucket)))
    before_other = aws.policy_of(other)

    spec = {"allowedSourceIps": ["192.0.2.0/24"]}
    grant = unique("grant-held")
    with kube.client() as client:
        client.create_namespace(team)
        grant_namespaces(client, grant, [team], ["team-a-*"])
        try:
            with operator_on(kube, aws, [team]):
                create_pb(client, team, "moves", {"bucketName": own, **spec})
                create_pb(client, team, "stays", {"bucketName": later, **spec})
                wait_for_reason(client, team, "moves", "Protected", status="True")
                wait_for_reason(client, team, "stays", "Protected", status="True")
                # Re-point at a bucket outside the grant (no CEL on the emulator, as on a cluster without it).
                client.patch_object(PROTECTED_BUCKETS, "moves", {"spec": {"bucketName": other}}, namespace=team)
                wait_for_reason(client, team, "moves", "NotAuthorized", status="False")
                written = aws.policy_of(later)
                # The grant narrows while the resources exist: "stays" may no longer hold its bucket.
                client.patch_object(TENANT_POLICIES, grant, {"spec": {"buckets": [own]}})
                held = wait_for_reason(client, team, "stays", "NotAuthorized", status="False")
                assert f"the bucket {later}" in held["status"]["conditions"][0]["message"]
                aws.put(
                    BucketTarget(later), policy_text(*foreign_statements(later))
                )  # someone edits it: nothing undoes that
                calls = aws.calls(bucket=later)
                client.delete_object(PROTECTED_BUCKETS, "stays", namespace=team)
                client.wait_until_gone(PROTECTED_BUCKETS, "stays", namespace=team)
                assert aws.calls(bucket=later) == calls  # not a single AWS call about it, cleanup included
        finally:
            delete_all(client, team)
            client.delete_object(TENANT_POLICIES, grant)

    assert written is not None and OUR_SID in written
    assert aws.policy_of(other) == before_other
    assert other not in aws.subjects()
    assert aws.policy_of(later) == policy_text(*foreign_statements(later))


# --- credentials never in logs, Events or status ----------------------------------------------------------------

ACCESS_KEY_ID = "AKIAZZZBUCKETWARDEN1"
SECRET_ACCESS_KEY = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYzzzSECRET99"
SESSION_TOKEN = "IQoJb3JpZ2luX2VjEJr//////////wEaCXVzLWVhc3QtMSJHMEUCIQDbucketwardenTESTtoken0123456789abcdef" * 2


@dataclass
class Captured:
    """Credentials handed out by sts:AssumeRole during the run (moto makes new ones every time)."""

    secrets: list[str]


def test_credentials_never_reach_logs_events_or_status(
    kube: KubeEmulator, moto: MotoServer, caplog: pytest.LogCaptureFixture
) -> None:
    moto.reset()
    iam, s3 = moto.client("iam"), moto.client("s3")
    iam.create_role(RoleName=ROLE, Path="/service-role/", AssumeRolePolicyDocument=TRUST_POLICY)
    target = iam.create_role(RoleName="bucketwarden-target", AssumeRolePolicyDocument=TRUST_POLICY)["Role"]["Arn"]
    names = {"ok": unique("bw-sec-ok"), "echo": unique("bw-sec-echo"), "token": unique("bw-sec-token")}
    names["assumed"] = unique("bw-sec-assumed")
    for bucket in names.values():
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=policy_text(*foreign_statements(bucket)))
    captured = Captured([SECRET_ACCESS_KEY, SESSION_TOKEN])
    session = boto3.session.Session(
        aws_access_key_id=ACCESS_KEY_ID,
        aws_secret_access_key=SECRET_ACCESS_KEY,
        aws_session_token=SESSION_TOKEN,
        region_name=moto.region,
    )
    echoed = f"Access Denied for {ACCESS_KEY_ID}: signature by {SECRET_ACCESS_KEY}, token {SESSION_TOKEN}"
    namespace = unique("bw-sec")

    with AwsFaultProxy(moto.endpoint_url) as proxy, kube.client() as client:
        # Errors that echo credentials back, as a misbehaving proxy or SDK might: they must be redacted.
        proxy.script(ErrorReply(403, "AccessDenied", echoed), api="GetBucketPolicy", bucket=names["echo"])
        proxy.script(ErrorReply(400, "InvalidToken", f"The token {SESSION_TOKEN} is invalid"), bucket=names["token"])
        aws = AwsGateway(
            AwsSettings(region=moto.region, endpoint_url=proxy.endpoint_url, max_attempts=2), session=session
        )

        def remember(parsed: Any = None, **_: Any) -> None:
            if parsed and "Credentials" in parsed:
                captured.secrets += [parsed["Credentials"]["SecretAccessKey"], parsed["Credentials"]["SessionToken"]]

        aws.factory.sts().meta.events.register("after-call.sts.AssumeRole", remember)
        client.create_namespace(namespace)
        caplog.set_level(logging.DEBUG)
        logging.getLogger("botocore").setLevel(logging.WARNING)  # as configure_logging sets it (tested below)
        try:
            with operator_on(kube, aws, [namespace], reconciler_factory=Reconciler):
                spec = {"allowedSourceIps": ["192.0.2.0/24"], "exemptRoles": [{"name": ROLE}]}
                for key, bucket in names.items():
                    extra = {"assumeRoleArn": target} if key == "assumed" else {}
                    create_pb(client, namespace, key, {"bucketName": bucket, **spec, **extra})
                wait_for_reason(client, namespace, "ok", "Protected", status="True")
                wait_for_reason(client, namespace, "assumed", "Protected", status="True")
                wait_for_reason(client, namespace, "echo", "AccessDenied", status="False")
                wait_for_reason(client, namespace, "token", "NoCredentials", status="False")
                statuses = [str(o.get("status")) for o in client.list_objects(PROTECTED_BUCKETS, namespace=namespace)]
                events = [str(e.get("message")) for e in client.list_events(namespace)]
        finally:
            logging.getLogger("botocore").setLevel(logging.NOTSET)
            delete_all(client, namespace)

    assert len(captured.secrets) >= 4, "the assumed-role path was not exercised"
    assert any("<redacted>" in s for s in statuses)  # the echoed secrets were there, and were masked
    assert events and caplog.records
    for where, texts in (("logs", [caplog.text]), ("events", events), ("status", statuses)):
        for text in texts:
            for secret in captured.secrets:
                assert secret not in text, f"a credential reached the {where}"


def test_configure_logging_keeps_botocore_request_logs_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """botocore logs signed request headers (the session token) at DEBUG; the operator caps it at WARNING."""
    monkeypatch.setattr(kopf, "configure", lambda **_: None)
    loggers = [logging.getLogger(name) for name in ("", "botocore", "boto3")]
    levels = [logger.level for logger in loggers]
    try:
        k8s_module.configure_logging(OperatorSettings(log_level="DEBUG"))
        assert logging.getLogger().level == logging.DEBUG
        assert logging.getLogger("botocore").level == logging.WARNING
        assert logging.getLogger("boto3").level == logging.WARNING
    finally:
        for logger, level in zip(loggers, levels, strict=True):
            logger.setLevel(level)


# --- trust: names and ARNs validated before any AWS call ---------------------------------------------------------

INVALID_SPECS = [
    pytest.param({"bucketName": "Bad_Bucket", "allowedSourceIps": ["192.0.2.0/24"]}, id="bucket-name"),
    pytest.param({"bucketName": "10.0.0.1", "allowedSourceIps": ["192.0.2.0/24"]}, id="bucket-ip"),
    pytest.param({"bucketName": "bw-trust", "allowedSourceIps": ["192.0.2.0/33"]}, id="cidr"),
    pytest.param({"bucketName": "bw-trust", "allowedSourceIps": ["10.0.0.0/8"]}, id="private-cidr"),
    pytest.param(
        {
            "bucketName": "bw-trust",
            "allowedSourceIps": ["192.0.2.0/24"],
            "exemptRoles": [{"arn": "arn:aws:iam::1:role/x"}],
        },
        id="role-arn",
    ),
    pytest.param(
        {"bucketName": "bw-trust", "allowedSourceIps": ["192.0.2.0/24"], "exemptRoles": [{"name": "a b"}]},
        id="role-name",
    ),
    pytest.param(
        {"bucketName": "bw-trust", "allowedSourceIps": ["192.0.2.0/24"], "assumeRoleArn": "arn:aws:iam::123:user/x"},
        id="assume-role-arn",
    ),
    pytest.param(
        {"bucketName": "bw-trust", "allowedSourceIps": ["192.0.2.0/24"], "expectedBucketOwner": "12345"},
        id="bucket-owner",
    ),
]


@pytest.mark.parametrize("spec", INVALID_SPECS)
def test_invalid_names_and_arns_make_no_aws_call(spec: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Straight through the operator's handler code, with a fake AWS that counts every call."""
    posted: list[tuple[str, str]] = []
    monkeypatch.setattr(kopf, "event", lambda body, *, type, reason, message: posted.append((type, reason)))
    aws = RecordingAws()
    aws.create_role(ROLE)
    runtime = Runtime(
        OperatorSettings(metrics_port=0, health_port=0), Reconciler(aws), Metrics(), lambda: datetime.now(UTC)
    )
    patch = kopf.Patch()

    result = reconcile_object(
        runtime,
        body=kopf.Body({}),
        spec=spec,
        meta={"generation": 1},
        status={},
        namespace="ns",
        name="x",
        patch=patch,
        index={},
        tenancy=Tenancy(
            {"all": TenantPolicySpec(namespaces=["*"], buckets=["*"], assume_role_arns=["arn:*:iam::*:role/*"])}
        ),
    )

    assert aws.log == [] and aws.counter.total() == 0
    ready = result.condition("Ready")
    assert ready is not None and ready.reason == "InvalidSpec"
    assert patch["status"]["conditions"][0]["reason"] == "InvalidSpec"
    assert ("Warning", "InvalidSpec") in posted
