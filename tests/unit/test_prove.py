"""The two engines held to each other: the fast verifier (reconcile path) and the symbolic prover (z3).

Over generated policies (variables in Resource, NotResource and conditions; IfExists; Null; IP sets; action
patterns): every fast-engine Pass must be a proof (unsat) for the prover, every fast-engine Fail must have a prover
counterexample, and every prover counterexample must be denied by ``evaluate``. Any disagreement fails with the
policy printed. The 2,000-policy run is marked slow: 36 s on an idle core (BUCKETWARDEN_AGREEMENT_EXAMPLES
changes the count).
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bucketwarden.policy import (
    PolicyDocument,
    PromiseName,
    evaluate,
    merge_policy,
    render_statement,
    verify_policy,
)
from bucketwarden.spec import ProtectedBucketSpec
from tests.seed import BUCKET, BUCKET_ARN, ROLE_ID, ROLE_NAME, backup_role, operator_identity

z3_prove = pytest.importorskip("bucketwarden.policy.prove")
if not z3_prove.available():  # pragma: no cover - the dev extra installs z3-solver
    pytest.skip("z3-solver is not installed (the 'prove' extra)", allow_module_level=True)

ACCOUNT = "111122223333"
ROLE_ARN = f"arn:aws:iam::{ACCOUNT}:role/service-role/{ROLE_NAME}"
ROLE = backup_role(ACCOUNT)
OPERATOR = operator_identity(ACCOUNT)
SPEC = ProtectedBucketSpec.model_validate(
    {"bucketName": BUCKET, "allowedSourceIps": ["192.0.2.0/24"], "exemptRoles": [{"name": ROLE_NAME}]}
)
NOW = 1_795_000_000.0
PROMISES: tuple[PromiseName, ...] = ("backup", "restore", "operator")

ACTIONS = (
    "s3:*",
    "s3:Get*",
    "s3:GetObject",
    "s3:List*",
    "s3:ListBucket",
    "s3:Put*",
    "s3:*Object*",
    "s3:ListTagsForResource",
    "s3:DeleteObject",
    "s3:GetBucketPolicy",
    "s3:PutObjectTagging",
)
RESOURCES = (
    BUCKET_ARN,
    f"{BUCKET_ARN}/*",
    f"{BUCKET_ARN}/${{aws:PrincipalAccount}}/*",
    f"{BUCKET_ARN}/${{aws:username}}/*",
    f"{BUCKET_ARN}/${{aws:PrincipalTag/team}}/*",
    f"{BUCKET_ARN}/home/${{aws:userid}}",
    f"{BUCKET_ARN}/a?*",
    "arn:aws:s3:::another-bucket/*",
    "arn:aws:s3:::awsbackup-*",
)
CIDRS = ("13.0.0.0/8", "3.0.0.0/8", "192.0.2.0/24", "0.0.0.0/0", "2600::/16", "52.216.0.0/15", "::/0")
CONDITIONS: tuple[tuple[str, str, st.SearchStrategy[Any]], ...] = (
    ("IpAddress", "aws:SourceIp", st.lists(st.sampled_from(CIDRS), min_size=1, max_size=3, unique=True)),
    ("NotIpAddress", "aws:SourceIp", st.lists(st.sampled_from(CIDRS), min_size=1, max_size=3, unique=True)),
    (
        "StringNotLike",
        "aws:userid",
        st.sampled_from([f"{ROLE_ID}:*", "AROAOTHEROTHEROTHER01:*", f"{ROLE_ID}:AWSBackup-*"]),
    ),
    ("StringLike", "aws:userid", st.sampled_from([f"{ROLE_ID}:*", "AROA*", "*:AWSBackup-*"])),
    ("StringNotEqualsIfExists", "s3:max-keys", st.sampled_from(["10", "1000"])),
    ("NumericGreaterThanIfExists", "s3:max-keys", st.sampled_from(["100", "0"])),
    ("Null", "s3:x-amz-server-side-encryption", st.sampled_from(["true", "false"])),
    ("Null", "aws:TokenIssueTime", st.sampled_from(["true", "false"])),
    ("StringNotEqualsIfExists", "s3:x-amz-server-side-encryption-aws-kms-key-id", st.just("arn:aws:kms:k")),
    ("StringNotEquals", "s3:x-amz-server-side-encryption", st.just("aws:kms")),
    ("StringEquals", "aws:PrincipalAccount", st.sampled_from(["${aws:PrincipalAccount}", ACCOUNT, "999999999999"])),
    ("StringNotEquals", "aws:ResourceAccount", st.sampled_from(["${aws:PrincipalAccount}", "999999999999"])),
    ("Bool", "aws:SecureTransport", st.sampled_from(["false", "true"])),
    (
        "ArnNotLike",
        "aws:PrincipalArn",
        st.sampled_from([ROLE_ARN, f"arn:aws:iam::{ACCOUNT}:role/*", "arn:aws:iam::*:user/*"]),
    ),
    ("StringLike", "s3:ExistingObjectTag/class", st.just("public")),
    ("StringNotLike", "aws:userid", st.just("${aws:PrincipalTag/owner}:*")),
    ("StringEqualsIfExists", "s3:prefix", st.just("home/")),
)


@st.composite
def deny_statements(draw: st.DrawFn) -> dict[str, Any]:
    statement: dict[str, Any] = {"Effect": "Deny", "Principal": "*"}
    actions = draw(st.lists(st.sampled_from(ACTIONS), min_size=1, max_size=2, unique=True))
    statement["NotAction" if draw(st.integers(0, 5)) == 0 else "Action"] = actions
    resources = draw(st.lists(st.sampled_from(RESOURCES), min_size=1, max_size=2, unique=True))
    statement["NotResource" if draw(st.integers(0, 4)) == 0 else "Resource"] = resources
    block: dict[str, dict[str, Any]] = {}
    for operator, key, values in draw(st.lists(st.sampled_from(CONDITIONS), max_size=2, unique_by=lambda c: c[0])):
        block.setdefault(operator, {})[key] = draw(values)
    if block:
        statement["Condition"] = block
    return statement


def policy_of(foreign: list[dict[str, Any]], version: str) -> PolicyDocument:
    existing = PolicyDocument.from_obj(
        {"Version": version, "Statement": [{**s, "Sid": f"Foreign{i}"} for i, s in enumerate(foreign)]}
    )
    return merge_policy(existing, render_statement(SPEC, [ROLE], OPERATOR), SPEC.owned_sids)


AGREEMENT = settings(
    max_examples=int(os.environ.get("BUCKETWARDEN_AGREEMENT_EXAMPLES", "2000")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)


@pytest.mark.slow
@AGREEMENT
@given(
    foreign=st.lists(deny_statements(), min_size=1, max_size=2),
    version=st.sampled_from(["2012-10-17", "2012-10-17", "2012-10-17", "2008-10-17"]),
)
def test_prove_policy_agrees_with_the_fast_engine_on_generated_policies(
    foreign: list[dict[str, Any]], version: str
) -> None:
    policy = policy_of(foreign, version)
    shown = json.dumps(policy.to_obj(), indent=1)
    fast = verify_policy(SPEC, [ROLE], OPERATOR, policy, now=NOW)
    proof = z3_prove.prove_policy(SPEC, [ROLE], OPERATOR, policy, now=NOW)
    for promise in PROMISES:
        verdict, proved = fast.verdict_for(promise), proof.promises[promise]
        if verdict == "Pass":
            assert proved == "proved", f"fast Pass, prover {proved} for {promise}:\n{shown}\n{proof.lines()}"
        elif verdict == "Fail":
            assert proved == "counterexample", f"fast Fail, prover {proved} for {promise}:\n{shown}"
    for finding in proof.findings:
        if finding.request is not None:
            decision = evaluate(policy, finding.request)
            assert decision.denied, f"prover counterexample not denied: {finding.request}\n{shown}"


def test_prove_policy_restore_only_deny_leaves_backups_proved() -> None:
    policy = policy_of(
        [{"Effect": "Deny", "Principal": "*", "Action": "s3:PutObject", "Resource": f"{BUCKET_ARN}/*"}], "2012-10-17"
    )
    proof = z3_prove.prove_policy(SPEC, [ROLE], OPERATOR, policy, now=NOW)
    assert dict(proof.promises) == {"backup": "proved", "restore": "counterexample", "operator": "proved"}
    [finding] = [f for f in proof.findings if f.outcome == "counterexample"]
    assert finding.request is not None and finding.request.action == "s3:PutObject"
    assert evaluate(policy, finding.request).denied


def test_prove_policy_ip_deny_on_part_of_aws_gives_a_counterexample_inside_it() -> None:
    statement = {
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
        "Condition": {"IpAddress": {"aws:SourceIp": ["13.0.0.0/8", "15.0.0.0/8", "35.0.0.0/8"]}},
    }
    policy = policy_of([statement], "2012-10-17")
    proof = z3_prove.prove_policy(SPEC, [ROLE], OPERATOR, policy, now=NOW)
    assert proof.promises["backup"] == "counterexample"
    example = next(f.request for f in proof.findings if f.promise == "backup" and f.request is not None)
    assert example.context["aws:sourceip"][0].split(".")[0] in ("13", "15", "35")
    assert verify_policy(SPEC, [ROLE], OPERATOR, policy, now=NOW).verdict_for("backup") == "Unknown"
