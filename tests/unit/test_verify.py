"""The verifier: concrete scenarios built from a spec, judged against a policy before anything is written."""

from __future__ import annotations

from typing import Any

import pytest

from bucketwarden.errors import InvalidConditionValueError, UnknownConditionOperatorError
from bucketwarden.policy import (
    FOREIGN_DENY_BLOCKS_EXEMPT_ROLE,
    PolicyDocument,
    Request,
    Scenario,
    evaluate,
    merge_policy,
    model_world,
    render_statement,
    verify_policy,
)
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import ProtectedBucketSpec
from tests.seed import ACCOUNT, BUCKET, BUCKET_ARN, OPERATOR, ROLE, ROLE_ARN, ROLE_ID, ROLE_NAME

BACKUP_SESSION = f"{ROLE_ID}:AWSBackup-{ROLE_NAME}"
SEED_CIDRS = ["192.0.2.0/24", "203.0.113.0/24"]
SEED_SID = "SourceIPRestriction001"
VPCE = "vpce-0123456789abcdef0"
VPC = "vpc-0123456789abcdef0"
SEED_STATEMENT: dict[str, Any] = {
    "Sid": SEED_SID,
    "Effect": "Deny",
    "Principal": "*",
    "Action": "s3:*",
    "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
    "Condition": {"NotIpAddress": {"aws:SourceIp": SEED_CIDRS}},
}
SEED_POLICY: dict[str, Any] = {"Version": "2012-10-17", "Statement": [SEED_STATEMENT]}


def spec(**fields: Any) -> ProtectedBucketSpec:
    base: dict[str, Any] = {"bucketName": BUCKET, "allowedSourceIps": SEED_CIDRS, "exemptRoles": [{"name": ROLE_NAME}]}
    return ProtectedBucketSpec.model_validate({**base, **fields})


def seed_policy() -> PolicyDocument:
    return PolicyDocument.from_obj(SEED_POLICY)


def desired(the_spec: ProtectedBucketSpec, existing: PolicyDocument | None = None) -> PolicyDocument:
    ours = render_statement(the_spec, [ROLE], OPERATOR)
    return merge_policy(existing, ours, the_spec.owned_sids)


def by_name(scenarios: list[Scenario]) -> dict[str, Scenario]:
    return {s.name: s for s in scenarios}


# --- model_world: the scenarios ----------------------------------------------------------------------------------


def test_model_world_scenarios_seed_case_covers_every_promise() -> None:
    scenarios = model_world(spec(), [ROLE], OPERATOR).scenarios
    summary = [(s.name, s.kind, s.expect) for s in scenarios]
    assert summary == [
        ("inside-192.0.2.0/24", "inside", "not denied"),
        ("inside-203.0.113.0/24", "inside", "not denied"),
        ("outside-ipv4-get-object", "outside", "denied"),
        ("outside-ipv4-list-bucket", "outside", "denied"),
        (f"role-{ROLE_NAME}-get-object", "role", "not denied"),
        (f"role-{ROLE_NAME}-list-bucket", "role", "not denied"),
        ("operator-ListBucket", "operator", "not denied"),
        ("operator-GetBucketPolicy", "operator", "not denied"),
        ("operator-PutBucketPolicy", "operator", "not denied"),
        ("vpce-unlisted", "vpc", "denied"),
    ]
    named = by_name(scenarios)
    assert named["inside-192.0.2.0/24"].request.get("aws:SourceIp") == ("192.0.2.1",)
    assert named["outside-ipv4-list-bucket"].request.resource == BUCKET_ARN
    assert named["outside-ipv4-get-object"].request.resource.startswith(f"{BUCKET_ARN}/")


def test_model_world_scenarios_backup_session_carries_the_role_identity() -> None:
    backup = by_name(model_world(spec(), [ROLE], OPERATOR).scenarios)[f"role-{ROLE_NAME}-get-object"].request
    assert backup.get("aws:userid") == (BACKUP_SESSION,)
    assert backup.get("aws:PrincipalArn") == (ROLE_ARN,)
    assert backup.get("aws:PrincipalAccount") == (ACCOUNT,)
    assert backup.get("aws:SourceIp") == ("3.5.140.2",)
    assert backup.get("aws:ViaAWSService") == ("false",)  # fact 5


@pytest.mark.parametrize(
    ("cidrs", "expected"),
    [
        pytest.param(["198.51.100.7/32"], {"inside-198.51.100.7/32": "198.51.100.7"}, id="ipv4-host-is-itself"),
        pytest.param(["2001:db8::5/128"], {"inside-2001:db8::5/128": "2001:db8::5"}, id="ipv6-host-is-itself"),
        pytest.param(["2001:db8::/32"], {"inside-2001:db8::/32": "2001:db8::1"}, id="ipv6-network-plus-one"),
        pytest.param(["192.0.2.7/24"], {"inside-192.0.2.0/24": "192.0.2.1"}, id="host-bits-normalised"),
    ],
)
def test_model_world_scenarios_inside_address_per_range(cidrs: list[str], expected: dict[str, str]) -> None:
    named = by_name(model_world(spec(allowedSourceIps=cidrs), [ROLE], OPERATOR).scenarios)
    for name, address in expected.items():
        assert named[name].request.get("aws:SourceIp") == (address,)


@pytest.mark.parametrize(
    ("cidrs", "ipv4", "ipv6"),
    [
        pytest.param(SEED_CIDRS, "3.5.140.2", None, id="ipv6-only-when-configured"),
        pytest.param(["3.5.140.0/24"], "52.216.8.1", None, id="skips-an-allowed-aws-address"),
        pytest.param([*SEED_CIDRS, "2001:db8::/32"], "3.5.140.2", "2600:1f18::1", id="ipv6-outside"),
        pytest.param(["2600:1f18::/32", "192.0.2.0/24"], "3.5.140.2", "2600:1fa0::1", id="skips-allowed-ipv6"),
        pytest.param(["0.0.0.0/1", "128.0.0.0/1"], None, None, id="allow-all-ipv4-has-no-outside"),
    ],
)
def test_model_world_scenarios_outside_address_is_the_first_real_aws_address_not_allowed(
    cidrs: list[str], ipv4: str | None, ipv6: str | None
) -> None:
    named = by_name(model_world(spec(allowedSourceIps=cidrs), [ROLE], OPERATOR).scenarios)
    for family, address in (("ipv4", ipv4), ("ipv6", ipv6)):
        scenario = named.get(f"outside-{family}-get-object")
        assert (scenario.request.get("aws:SourceIp") if scenario else None) == (address and (address,))


@pytest.mark.parametrize(
    ("the_spec", "operator"),
    [
        pytest.param(spec(), None, id="no-operator-identity"),
        pytest.param(spec(exemptOperator=False, acknowledgeLockoutRisk=True), OPERATOR, id="operator-not-exempt"),
    ],
)
def test_model_world_scenarios_skips_operator_when_not_exempted(
    the_spec: ProtectedBucketSpec, operator: CallerIdentity | None
) -> None:
    assert not [s for s in model_world(the_spec, [ROLE], operator).scenarios if s.kind == "operator"]


def test_model_world_scenarios_vpc_endpoint_traffic_has_no_source_ip_fact12() -> None:
    scenarios = model_world(spec(allowedVpcEndpoints=[VPCE], allowedVpcs=[VPC]), [ROLE], OPERATOR).scenarios
    vpc = {s.name: s for s in scenarios if s.kind == "vpc"}
    assert {name: s.expect for name, s in vpc.items()} == {
        f"vpce-{VPCE}": "not denied",
        f"vpc-{VPC}": "not denied",
        "vpce-unlisted": "denied",
    }
    for scenario in vpc.values():
        assert scenario.request.get("aws:SourceIp") is None
    assert vpc[f"vpce-{VPCE}"].request.get("aws:SourceVpc") != (VPC,)  # the endpoint alone must let it in
    assert vpc[f"vpc-{VPC}"].request.get("aws:SourceVpce") != (VPCE,)  # the VPC alone must let it in


# --- verify_policy -----------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "the_spec",
    [
        pytest.param(spec(), id="seed"),
        pytest.param(spec(allowedSourceIps=[*SEED_CIDRS, "2001:db8::/32"]), id="dual-stack"),
        pytest.param(spec(allowedSourceIps=[], allowedVpcEndpoints=[VPCE]), id="vpc-endpoint-only"),
        pytest.param(spec(allowedVpcEndpoints=[VPCE], allowedVpcs=[VPC]), id="ips-endpoints-and-vpcs"),
        pytest.param(spec(exemptionKey="principalArn"), id="principal-arn-key"),
        pytest.param(
            spec(allowedVpcEndpoints=["vpce-0aaaaaaaaaaaaaaaa"], allowedVpcs=["vpc-0aaaaaaaaaaaaaaaa"]),
            id="lists-the-stand-in-endpoint-and-vpc",
        ),
        pytest.param(spec(exemptRoles=[]), id="no-exempt-roles"),
        pytest.param(spec(allowedSourceIps=["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]), id="allow-all"),
        pytest.param(spec(exemptOperator=False, acknowledgeLockoutRisk=True), id="operator-not-exempt"),
    ],
)
def test_verify_policy_rendered_policy_keeps_every_promise(the_spec: ProtectedBucketSpec) -> None:
    verification = verify_policy(the_spec, [ROLE] if the_spec.exempt_roles else [], OPERATOR, desired(the_spec))
    assert verification.ok, [r.summary for r in verification.failures]
    assert verification.findings == []
    assert verification.blocking_failures == []


def test_verify_policy_no_policy_denies_nothing_so_outside_scenarios_fail() -> None:
    verification = verify_policy(spec(), [ROLE], OPERATOR, None)
    failed = {r.scenario.name for r in verification.failures}
    assert failed == {"outside-ipv4-get-object", "outside-ipv4-list-bucket", "vpce-unlisted"}
    assert not verification.ok
    assert verification.blocking_failures == []  # nothing of ours decided them


# --- the seed case -----------------------------------------------------------------------------------------------


def test_verify_policy_seed_hand_written_deny_blocks_aws_backup() -> None:
    backup = by_name(model_world(spec(), [ROLE], OPERATOR).scenarios)[f"role-{ROLE_NAME}-get-object"].request
    assert backup.get("aws:userid") == ("AROASAMPLESAMPLESAMPL:AWSBackup-AWSBackupDefaultServiceRole",)
    original = evaluate(seed_policy(), backup)
    assert (original.decision, original.sid) == ("ExplicitDeny", SEED_SID)
    assert not evaluate(desired(spec(adoptSids=[SEED_SID]), seed_policy()), backup).denied


def test_verify_policy_seed_without_adopt_sids_reports_the_foreign_deny() -> None:
    verification = verify_policy(spec(), [ROLE], OPERATOR, seed_policy())
    role_results = [r for r in verification.results if r.scenario.kind == "role"]
    assert role_results
    assert all(not r.passed and r.evaluation.sid == SEED_SID and not r.by_owned_statement for r in role_results)
    blocked = [f for f in verification.findings if f.code == FOREIGN_DENY_BLOCKS_EXEMPT_ROLE]
    assert {(f.severity, f.sid) for f in blocked} == {("Error", SEED_SID)}
    role_finding = next(f for f in blocked if ROLE_NAME in f.message)
    assert SEED_SID in role_finding.message
    assert "adoptSids" in role_finding.message
    # One finding per statement and principal: the role and the operator, not one per action.
    assert len(blocked) == 2


def test_verify_policy_seed_merged_without_adoption_still_fails_backups_but_may_be_written() -> None:
    the_spec = spec()
    merged = desired(the_spec, seed_policy())
    assert [s.sid for s in merged.statements] == [SEED_SID, the_spec.statement_sid]
    verification = verify_policy(the_spec, [ROLE], OPERATOR, merged)
    assert {r.scenario.kind for r in verification.failures} == {"role", "operator"}
    # The foreign statement decides: backups stay broken (reported), the operator lockout forbids writing.
    assert {r.scenario.kind for r in verification.blocking_failures} == {"operator"}
    assert any(f.sid == SEED_SID for f in verification.findings)


def test_verify_policy_seed_with_adopt_sids_merges_into_one_deny_that_verifies() -> None:
    the_spec = spec(adoptSids=[SEED_SID])
    merged = desired(the_spec, seed_policy())
    assert [(s.sid, s.effect) for s in merged.statements] == [(the_spec.statement_sid, "Deny")]
    verification = verify_policy(the_spec, [ROLE], OPERATOR, merged)
    assert verification.ok, [r.summary for r in verification.failures]
    assert verification.findings == []


# --- failures that forbid writing --------------------------------------------------------------------------------


def test_verify_policy_fact03_stale_role_id_in_our_statement_is_blocking() -> None:
    recreated = ResolvedRole(ref=ROLE_NAME, name=ROLE_NAME, arn=ROLE_ARN, role_id="AROANEWNEWNEWNEWNEWNE")
    stale = desired(spec())  # rendered with the old RoleId
    verification = verify_policy(spec(), [recreated], OPERATOR, stale)
    failed = verification.blocking_failures
    assert {r.scenario.kind for r in failed} == {"role"}
    assert all(r.by_owned_statement for r in failed)
    assert verification.findings == []  # our own statement: not a foreign Deny


@pytest.mark.parametrize(
    "action", [pytest.param("GetBucketPolicy", id="fact15-get"), pytest.param("PutBucketPolicy", id="fact15-put")]
)
def test_verify_policy_fact15_policy_without_operator_exemption_locks_it_out(action: str) -> None:
    the_spec = spec()
    without_operator = PolicyDocument(statements=(render_statement(the_spec, [ROLE], None),))
    verification = verify_policy(the_spec, [ROLE], OPERATOR, without_operator)
    result = next(r for r in verification.results if r.scenario.name == f"operator-{action}")
    assert not result.passed
    assert result.by_owned_statement
    assert result in verification.blocking_failures


def test_verify_policy_fact12_hand_written_ip_deny_blocks_an_allowed_vpc_endpoint() -> None:
    verification = verify_policy(
        spec(allowedVpcEndpoints=[VPCE], adoptSids=[SEED_SID]), [ROLE], OPERATOR, seed_policy()
    )
    failed = {r.scenario.name for r in verification.failures}
    assert f"vpce-{VPCE}" in failed
    assert "vpce-unlisted" not in failed


def test_verify_policy_foreign_deny_without_sid_is_named_by_position() -> None:
    policy = PolicyDocument.from_obj(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "AllowRead",
                    "Effect": "Allow",
                    "Principal": {"AWS": ACCOUNT},
                    "Action": "s3:GetObject",
                    "Resource": f"{BUCKET_ARN}/*",
                },
                {k: v for k, v in SEED_STATEMENT.items() if k != "Sid"},
            ],
        }
    )
    verification = verify_policy(spec(), [ROLE], None, policy)
    assert {f.sid for f in verification.findings} == {"Statement[1]"}
    assert "no Sid" in verification.findings[0].message


def test_verify_policy_foreign_deny_that_spares_the_role_is_not_reported() -> None:
    policy = PolicyDocument.from_obj(
        {
            "Version": "2012-10-17",
            "Statement": [
                {
                    "Sid": "DenyInsecure",
                    "Effect": "Deny",
                    "Principal": "*",
                    "Action": "s3:*",
                    "Resource": f"{BUCKET_ARN}/*",
                    "Condition": {"Bool": {"aws:SecureTransport": "false"}},
                }
            ],
        }
    )
    the_spec = spec()
    verification = verify_policy(the_spec, [ROLE], OPERATOR, desired(the_spec, policy))
    assert verification.ok
    assert verification.findings == []


def test_verify_policy_unknown_operator_raises() -> None:
    typo = {**SEED_STATEMENT, "Condition": {"NotIpAdress": {"aws:SourceIp": "192.0.2.0/24"}}}
    obj = {**SEED_POLICY, "Statement": [typo]}
    with pytest.raises(UnknownConditionOperatorError, match="NotIpAdress"):
        verify_policy(spec(), [ROLE], OPERATOR, PolicyDocument.from_obj(obj))


def test_verify_policy_result_summary_names_the_deciding_statement() -> None:
    verification = verify_policy(spec(), [ROLE], OPERATOR, seed_policy())
    failed = next(r for r in verification.failures if r.scenario.kind == "role")
    assert failed.summary.startswith(
        f"FAIL role-{ROLE_NAME}-get-object: expected not denied, got ExplicitDeny by {SEED_SID}"
    )


# --- the whole bucket, three-valued (issue #10) ------------------------------------------------------------------

OFFICE = "198.51.100.0/24"
ORG = "o-abcdefghij"


def foreign_deny(condition: dict[str, Any] | None = None, sid: str = "Foreign", **fields: Any) -> dict[str, Any]:
    stmt: dict[str, Any] = {
        "Sid": sid,
        "Effect": "Deny",
        "Principal": "*",
        "Action": "s3:*",
        "Resource": [BUCKET_ARN, f"{BUCKET_ARN}/*"],
    }
    if condition is not None:
        stmt["Condition"] = condition
    stmt.update(fields)
    return stmt


def with_foreign(*statements: dict[str, Any], version: str = "2012-10-17", **spec_fields: Any) -> Any:
    the_spec = spec(**spec_fields)
    existing = PolicyDocument.from_obj({"Version": version, "Statement": list(statements)})
    return the_spec, desired(the_spec, existing)


EXEMPT_BOTH = {"StringNotLike": {"aws:userid": [f"{ROLE_ID}:*", "AROAOPERATOREXAMPLE01:*"]}}

VERDICT_CASES = [
    # False alarms the old sample-based verifier raised.
    pytest.param(
        foreign_deny({"BoolIfExists": {"aws:SecureTransport": "false"}}),
        "Pass",
        id="iam-global-keys-securetransport-always-sent-true",
    ),
    pytest.param(
        foreign_deny({"StringNotEquals": {"s3:authType": "REST-HEADER"}}),
        "Pass",
        id="s3-condition-keys-authtype-rest-header",
    ),
    pytest.param(
        foreign_deny({"StringNotEquals": {"s3:signatureversion": "AWS4-HMAC-SHA256"}}),
        "Pass",
        id="s3-condition-keys-signatureversion-sigv4",
    ),
    pytest.param(
        foreign_deny({"NumericLessThan": {"s3:TlsVersion": "1.2"}}),
        "Pass",
        id="s3-condition-keys-tlsversion-at-least-1.2",
    ),
    pytest.param(
        foreign_deny({"StringNotEquals": {"aws:PrincipalOrgID": ORG}}),
        "Unknown",
        id="iam-global-keys-principalorgid-cannot-be-known",
    ),
    pytest.param(
        foreign_deny({"StringNotEquals": {"aws:ResourceTag/env": "prod"}}),
        "Unknown",
        id="iam-global-keys-resourcetag-cannot-be-known",
    ),
    pytest.param(
        foreign_deny({"NumericLessThan": {"s3:TlsVersion": "1.3"}}),
        "Unknown",
        id="s3-condition-keys-tlsversion-1.3-depends-on-the-client",
    ),
    # Missed blocks: Verified=True, yet AWS Backup fails.
    pytest.param(
        foreign_deny({"Null": {"aws:MultiFactorAuthAge": "true"}}, Resource=f"{BUCKET_ARN}/taxdocuments/*"),
        "Fail",
        id="s3-example-mfa-deny-on-a-prefix-denies-backup-reads-under-it",
    ),
    pytest.param(
        foreign_deny({"Bool": {"aws:MultiFactorAuthPresent": "false"}}, Resource=f"{BUCKET_ARN}/tax*"),
        "Fail",
        id="iam-global-keys-mfapresent-false-for-role-sessions",
    ),
    pytest.param(
        foreign_deny(
            {"NotIpAddress": {"aws:SourceIp": OFFICE}},
            Action=None,
            NotAction=["s3:GetObject", "s3:ListBucket"],
        ),
        "Fail",
        id="iam-notaction-denies-every-other-backup-action",
    ),
    pytest.param(
        foreign_deny({"DateGreaterThan": {"aws:CurrentTime": "2020-01-01T00:00:00Z"}}),
        "Fail",
        id="iam-date-greater-than-a-past-date-applies-now",
    ),
    pytest.param(
        foreign_deny({"DateGreaterThan": {"aws:CurrentTime": "2020"}}),
        "Fail",
        id="iam-date-w3c-year-form-is-not-dropped",
    ),
    pytest.param(
        foreign_deny({"DateLessThan": {"aws:CurrentTime": "2020-01"}}),
        "Pass",
        id="iam-date-less-than-a-past-date-never-applies",
    ),
    pytest.param(
        foreign_deny(Principal=None, NotPrincipal={"AWS": [ROLE_ARN, f"arn:aws:iam::{ACCOUNT}:root"]}),
        "Fail",
        id="iam-notprincipal-role-and-root-do-not-spare-the-session",
    ),
    pytest.param(
        foreign_deny(
            Principal=None,
            NotPrincipal={
                "AWS": [
                    f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/AWSBackup-{ROLE_NAME}",
                    ROLE_ARN,
                    f"arn:aws:iam::{ACCOUNT}:root",
                    OPERATOR.arn,
                    OPERATOR.principal_arn,
                ]
            },
        ),
        "Unknown",  # spared only if the session is named AWSBackup-<role>: an assumption, so Unknown
        id="iam-notprincipal-session-role-and-account-spare-the-session",
    ),
    pytest.param(
        foreign_deny(Principal={"AWS": f"arn:aws:sts::{ACCOUNT}:assumed-role/{ROLE_NAME}/AWSBackup-{ROLE_NAME}"}),
        "Unknown",  # matches only if the session is named AWSBackup-<role>: an assumption, so Unknown
        id="iam-principal-session-arn-matches-that-session",
    ),
    pytest.param(
        foreign_deny(Resource="arn:aws:s3:::another-bucket/*"),
        "Pass",
        id="iam-resource-other-bucket-never-applies",
    ),
    pytest.param(
        foreign_deny(Resource=None, NotResource=[BUCKET_ARN, f"{BUCKET_ARN}/public/*"]),
        "Fail",
        id="iam-notresource-covers-the-rest-of-the-bucket",
    ),
    pytest.param(
        foreign_deny(Resource=None, NotResource=[BUCKET_ARN, f"{BUCKET_ARN}/*"]),
        "Pass",
        id="iam-notresource-excluding-the-whole-bucket",
    ),
    pytest.param(
        foreign_deny(Action=["s3:PutObject", "s3:DeleteObject"], Resource=f"{BUCKET_ARN}/locked/*"),
        "Fail",
        id="backup-restore-managed-policy-writes-objects",
    ),
    pytest.param(
        foreign_deny(Action="s3:DeleteBucket"),
        "Pass",
        id="iam-action-not-used-by-aws-backup",
    ),
    # A foreign Deny stricter than ours for the allowed networks: a Warning, not a failure.
    pytest.param(
        foreign_deny({**EXEMPT_BOTH, "StringNotEquals": {"aws:SourceVpce": VPCE}}),
        "Pass",
        id="s3-vpce-only-foreign-deny-is-the-owners-choice",
    ),
]


@pytest.mark.parametrize(("statement", "verdict"), VERDICT_CASES)
def test_verify_policy_whole_bucket_verdict(statement: dict[str, Any], verdict: str) -> None:
    statement = {k: v for k, v in statement.items() if v is not None}
    the_spec, policy = with_foreign(statement)
    verification = verify_policy(the_spec, [ROLE], OPERATOR, policy)
    assert verification.verdict == verdict, [r.summary for r in verification.failures] + [
        u.describe() for u in verification.unknowns
    ]
    if verdict == "Fail":
        example = verification.counterexamples[0]
        assert example.label == "Foreign"
        assert evaluate(policy, example.request).denied  # the counterexample is real
        assert any(f.code == FOREIGN_DENY_BLOCKS_EXEMPT_ROLE and f.severity == "Error" for f in verification.findings)
    elif verdict == "Unknown":
        assert verification.unknowns
        assert all(f.severity != "Error" for f in verification.findings)
        assert verification.blocking_failures == []
    else:
        assert (verification.counterexamples, verification.unknowns) == ([], [])


def test_verify_policy_counterexample_names_a_key_under_the_denied_prefix() -> None:
    statement = foreign_deny({"Null": {"aws:MultiFactorAuthAge": "true"}}, Resource=f"{BUCKET_ARN}/taxdocuments/*")
    the_spec, policy = with_foreign(statement)
    examples = verify_policy(the_spec, [ROLE], None, policy).counterexamples
    assert [e.promise for e in examples] == ["backup", "restore"]  # each managed policy's promise, apart
    example = examples[0]
    assert example.resource == f"{BUCKET_ARN}/taxdocuments/x"
    assert example.action == "s3:GetObject"
    assert "taxdocuments/x" in example.describe()
    assert "Foreign" in example.describe()


def test_verify_policy_notaction_counterexample_is_an_action_it_does_not_list() -> None:
    statement = {
        **foreign_deny({"NotIpAddress": {"aws:SourceIp": OFFICE}}),
        "NotAction": ["s3:GetObject", "s3:ListBucket"],
    }
    del statement["Action"]
    the_spec, policy = with_foreign(statement)
    examples = verify_policy(the_spec, [ROLE], None, policy).counterexamples
    assert {c.action for c in examples}.isdisjoint({"s3:GetObject", "s3:ListBucket"})
    assert examples


@pytest.mark.parametrize(
    ("context", "verdict"),
    [
        pytest.param({"organizationId": ORG}, "Pass", id="stated-org-is-the-allowed-one"),
        pytest.param({"organizationId": "o-zzzzzzzzzz"}, "Fail", id="stated-org-is-another"),
        pytest.param({}, "Unknown", id="nothing-stated"),
    ],
)
def test_verify_policy_verification_context_turns_unknown_into_pass_or_fail(
    context: dict[str, Any], verdict: str
) -> None:
    statement = foreign_deny({"StringNotEquals": {"aws:PrincipalOrgID": ORG}})
    the_spec, policy = with_foreign(statement, verificationContext=context)
    verification = verify_policy(the_spec, [ROLE], OPERATOR, policy)
    assert verification.verdict == verdict
    if verdict == "Unknown":
        assert verification.unknown_keys == ["aws:principalorgid"]
        assert "aws:principalorgid" in verification.unknowns[0].describe()


def test_verify_policy_principal_tags_are_stated_facts() -> None:
    statement = foreign_deny({"StringNotEquals": {"aws:PrincipalTag/team": "backup"}}, sid="TeamOnly")
    tags = {"principalTags": [{"key": "team", "value": "backup"}]}
    the_spec, policy = with_foreign(statement, verificationContext=tags)
    verification = verify_policy(the_spec, [ROLE], None, policy)
    assert verification.verdict == "Pass"
    # The operator's own tags are not stated: for it, the same statement stays unknown.
    assert verify_policy(the_spec, [ROLE], OPERATOR, policy).verdict == "Unknown"


def test_verify_policy_foreign_vpce_only_deny_warns_and_explains() -> None:
    statement = foreign_deny({**EXEMPT_BOTH, "StringNotEquals": {"aws:SourceVpce": VPCE}}, sid="VpceOnly")
    the_spec, policy = with_foreign(statement)
    verification = verify_policy(the_spec, [ROLE], OPERATOR, policy)
    assert verification.ok
    warnings = [f for f in verification.findings if f.code == "ForeignDenyStricter"]
    assert [(f.severity, f.sid) for f in warnings] == [("Warning", "VpceOnly")]
    assert "stricter" in warnings[0].message


def test_verify_policy_invalid_cidr_in_a_foreign_statement_is_malformed() -> None:
    statement = foreign_deny({"NotIpAddress": {"aws:SourceIp": "300.1.1.1/8"}}, sid="BadOffice")
    the_spec, policy = with_foreign(statement)
    with pytest.raises(InvalidConditionValueError, match="BadOffice") as caught:
        verify_policy(the_spec, [ROLE], OPERATOR, policy)
    assert caught.value.reason == "MalformedPolicy"


def test_verify_policy_version_2008_keeps_policy_variables_literal() -> None:
    # IAM User Guide, "Version": under 2008-10-17 ${aws:username} is literal text. Upgrading the document would
    # make this Deny spare every user's own home folder.
    statement = foreign_deny(Resource=None, NotResource=f"{BUCKET_ARN}/home/${{aws:username}}/*", sid="Homes")
    _spec, policy = with_foreign(
        {k: v for k, v in statement.items() if v is not None}, version="2008-10-17", adoptSids=[]
    )
    assert policy.version == "2008-10-17"
    alice = Request.of("s3:GetObject", f"{BUCKET_ARN}/home/alice/x", {"aws:username": "alice"})
    assert evaluate(policy, alice).denied


def test_verify_policy_judges_each_condition_entry_by_its_own_key_whatever_the_order() -> None:
    # Statements of the same meaning share one compiled statement; their entries must not be paired by position.
    # aws:SecureTransport=false is false for AWS Backup, so the Deny never applies, whatever the org id is.
    entries = [("aws:SecureTransport", "false"), ("aws:PrincipalOrgID", ORG)]
    for order in (entries, entries[::-1]):
        condition = {"StringNotEqualsIfExists" if "Org" in k else "Bool": {k: v} for k, v in order}
        the_spec, policy = with_foreign(foreign_deny(condition))
        assert verify_policy(the_spec, [ROLE], OPERATOR, policy).verdict == "Pass", order


@pytest.mark.parametrize(
    ("foreign_cidrs", "stricter"),
    [
        # IAM "IP address condition operators": a foreign rule narrower than the allowed /24 denies part of it.
        pytest.param(["192.0.2.128/25", "203.0.113.0/24"], True, id="iam-ip-narrower-than-the-allowed-range"),
        pytest.param(["192.0.2.0/28", "203.0.113.0/24"], True, id="iam-ip-leaves-out-the-network-plus-one-half"),
        pytest.param(["192.0.0.0/16", "203.0.113.0/24"], False, id="iam-ip-wider-than-the-allowed-range"),
        pytest.param(SEED_CIDRS, False, id="iam-ip-same-ranges"),
    ],
)
def test_verify_policy_foreign_ip_rule_cutting_an_allowed_range_is_found(
    foreign_cidrs: list[str], stricter: bool
) -> None:
    condition = {**EXEMPT_BOTH, "NotIpAddress": {"aws:SourceIp": foreign_cidrs}}
    the_spec, policy = with_foreign(foreign_deny(condition, sid="OfficeOnly"))
    verification = verify_policy(the_spec, [ROLE], OPERATOR, policy)
    assert verification.verdict == "Pass"
    warned = [f for f in verification.findings if f.code == "ForeignDenyStricter"]
    assert bool(warned) is stricter
    assert all("192.0.2." in f.message for f in warned)


def test_verify_policy_stale_role_id_is_blocking_even_when_an_aws_range_is_allowed() -> None:
    # Our statement must exempt AWS Backup from any address, so which AWS address it uses cannot make it "unknown".
    the_spec = spec(allowedSourceIps=["3.5.140.0/24"])
    recreated = ResolvedRole(ref=ROLE_NAME, name=ROLE_NAME, arn=ROLE_ARN, role_id="AROANEWNEWNEWNEWNEWNE")
    verification = verify_policy(the_spec, [recreated], OPERATOR, desired(the_spec))
    assert verification.verdict == "Fail"
    assert {r.scenario.kind for r in verification.blocking_failures} == {"role"}


def test_verify_policy_adopted_statement_in_force_is_judged_on_the_whole_bucket() -> None:
    # Observe mode verifies the policy in force, where an adopted Sid is still the hand-written statement.
    narrow = {**SEED_STATEMENT, "Action": "s3:PutObject", "Resource": f"{BUCKET_ARN}/locked/*"}
    in_force = PolicyDocument.from_obj({**SEED_POLICY, "Statement": [narrow]})
    verification = verify_policy(spec(adoptSids=[SEED_SID]), [ROLE], None, in_force)
    assert verification.verdict == "Fail"
    [example] = verification.counterexamples
    assert (example.action, example.resource) == ("s3:PutObject", f"{BUCKET_ARN}/locked/x")
    assert example.owned
