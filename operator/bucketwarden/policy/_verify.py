"""Check a policy against what the spec promises, by evaluating concrete requests before anything is written.

The scenarios are the spec's promises made concrete: allowed addresses and VPC endpoints get in, everything
else from outside is denied, the exempt roles' AWS Backup sessions and the operator itself are never denied.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Literal

from bucketwarden.policy._cidr import analyse_cidrs, contains
from bucketwarden.policy._document import PolicyDocument
from bucketwarden.policy._evaluate import EMPTY_POLICY, CompiledPolicy, Evaluation, Request, compile_policy
from bucketwarden.policy._render import bucket_arns, partition_for_region
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import Finding, ProtectedBucketSpec

Expectation = Literal["denied", "not denied"]
ScenarioKind = Literal["inside", "outside", "role", "operator", "vpc"]

FOREIGN_DENY_BLOCKS_EXEMPT_ROLE = "ForeignDenyBlocksExemptRole"

# Real AWS public addresses (S3 and EC2 ranges from ip-ranges.json), tried in order: the first one outside every
# allowed range plays "somewhere on the internet, not allowed".
OUTSIDE_IPV4: tuple[str, ...] = ("3.5.140.2", "52.216.8.1", "54.231.0.1", "18.34.0.1")
OUTSIDE_IPV6: tuple[str, ...] = ("2600:1f18::1", "2600:1fa0::1", "2a05:d018::1")
# What a request through a VPC endpoint carries instead of aws:SourceIp (fact 12).
VPC_SOURCE_IP = "10.0.0.12"

CLIENT_USER_ID = "AIDAEXAMPLECLIENT0001"
CLIENT_USER_NAME = "bucketwarden-verify-client"
DEFAULT_ACCOUNT = "111122223333"
OBJECT_KEY = "bucketwarden-verify/object.txt"


@dataclass(frozen=True, slots=True)
class Scenario:
    """One concrete request and what the spec says must happen to it."""

    name: str
    description: str
    request: Request
    expect: Expectation
    kind: ScenarioKind = "inside"
    principal: str | None = None  # who is asking, for findings: "exempt role X (arn)", "the operator (arn)"


@dataclass(frozen=True, slots=True)
class ScenarioResult:
    scenario: Scenario
    evaluation: Evaluation
    passed: bool
    by_owned_statement: bool  # the deciding statement carries one of the Sids this resource owns

    @property
    def summary(self) -> str:
        decided = f" by {self.evaluation.label}" if self.evaluation.label else ""
        verdict = "ok" if self.passed else "FAIL"
        return (
            f"{verdict} {self.scenario.name}: expected {self.scenario.expect}, "
            f"got {self.evaluation.decision}{decided} ({self.scenario.description})"
        )


@dataclass(frozen=True, slots=True)
class Verification:
    results: list[ScenarioResult]
    findings: list[Finding]

    @property
    def ok(self) -> bool:
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[ScenarioResult]:
        return [r for r in self.results if not r.passed]

    @property
    def blocking_failures(self) -> list[ScenarioResult]:
        """Failures that forbid writing: our own statement got it wrong, or the operator would lock itself out.

        A policy that locks the operator out is never written, whoever's statement does it (fact 15).
        """
        return [r for r in self.failures if r.by_owned_statement or r.scenario.kind == "operator"]


@dataclass(frozen=True, slots=True)
class _AddressPlan:
    has_ipv6: bool
    inside: tuple[tuple[str, str], ...]  # (allowed range, an address in it)
    outside_v4: str | None
    outside_v6: str | None


@lru_cache(maxsize=256)
def _address_plan(cidrs: tuple[str, ...]) -> _AddressPlan:
    # Parsing and collapsing CIDRs costs far more than evaluating; a spec's list rarely changes between reconciles.
    report = analyse_cidrs(cidrs)
    networks = report.networks

    def first_outside(candidates: Sequence[str]) -> str | None:
        return next((a for a in candidates if not contains(networks, a)), None)

    return _AddressPlan(
        has_ipv6=report.has_ipv6,
        # network+1 is inside every range but a single address (/32, /128), where it is the address itself.
        inside=tuple(
            (str(n), str(n.network_address if n.num_addresses == 1 else n.network_address + 1)) for n in networks
        ),
        outside_v4=first_outside(OUTSIDE_IPV4),
        outside_v6=first_outside(OUTSIDE_IPV6) if report.has_ipv6 else None,
    )


def _unlisted(prefix: str, listed: Sequence[str]) -> str:
    """An endpoint or VPC id the spec does not list: vpce-0aaaaaaaaaaaaaaaa, or the next one if that is listed."""
    return next(c for n in itertools.count() if (c := f"{prefix}-{0xAAAAAAAAAAAAAAAA + n:017x}") not in listed)


def _bucket_account(spec: ProtectedBucketSpec, roles: Sequence[ResolvedRole], operator: CallerIdentity | None) -> str:
    if spec.expected_bucket_owner:
        return spec.expected_bucket_owner
    if operator is not None:
        return operator.account
    if roles:
        return roles[0].account
    return DEFAULT_ACCOUNT


@dataclass(frozen=True, slots=True)
class _Inputs:
    """Everything the scenarios depend on, hashable, so the same spec builds its scenarios once."""

    bucket: str
    partition: str
    account: str
    cidrs: tuple[str, ...]
    endpoints: tuple[str, ...]
    vpcs: tuple[str, ...]
    roles: tuple[ResolvedRole, ...]
    operator: CallerIdentity | None


def build_scenarios(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    *,
    partition: str | None = None,
) -> list[Scenario]:
    """The requests that show whether a policy keeps the spec's promises."""
    inputs = _Inputs(
        bucket=spec.bucket_name,
        partition=partition or partition_for_region(spec.region),
        account=_bucket_account(spec, roles, operator),
        cidrs=tuple(spec.allowed_source_ips),
        endpoints=tuple(sorted(set(spec.allowed_vpc_endpoints))),
        vpcs=tuple(sorted(set(spec.allowed_vpcs))),
        roles=tuple(roles),
        operator=operator if spec.exempt_operator else None,
    )
    return list(_scenarios(inputs))


@lru_cache(maxsize=256)
def _scenarios(inputs: _Inputs) -> tuple[Scenario, ...]:
    part, account, roles, operator = inputs.partition, inputs.account, inputs.roles, inputs.operator
    bucket_arn = bucket_arns(inputs.bucket, part)[0]
    object_arn = f"{bucket_arn}/{OBJECT_KEY}"
    client = {
        "aws:userid": CLIENT_USER_ID,
        "aws:PrincipalArn": f"arn:{part}:iam::{account}:user/{CLIENT_USER_NAME}",
        "aws:PrincipalAccount": account,
        "aws:PrincipalType": "User",
        "aws:username": CLIENT_USER_NAME,
    }

    def get_object(context: dict[str, str]) -> Request:
        return Request.of("s3:GetObject", object_arn, context)

    def list_bucket(context: dict[str, str]) -> Request:
        return Request.of("s3:ListBucket", bucket_arn, context)

    scenarios: list[Scenario] = []
    plan = _address_plan(inputs.cidrs)

    # (1) every allowed range lets an ordinary user in.
    for net, inside in plan.inside:
        scenarios.append(
            Scenario(
                f"inside-{net}",
                f"an IAM user from {inside}, inside allowed range {net}",
                get_object({**client, "aws:SourceIp": inside}),
                "not denied",
                kind="inside",
            )
        )

    # (2) anywhere else on the internet is denied (skipped when the allow list covers every address).
    outside_v4 = plan.outside_v4
    for family, address in (("ipv4", outside_v4), ("ipv6", plan.outside_v6)):
        if address is None:
            continue
        context = {**client, "aws:SourceIp": address}
        scenarios.append(
            Scenario(
                f"outside-{family}-get-object",
                f"an IAM user from {address}, outside every allowed range, reading an object",
                get_object(context),
                "denied",
                kind="outside",
            )
        )
        scenarios.append(
            Scenario(
                f"outside-{family}-list-bucket",
                f"an IAM user from {address}, outside every allowed range, listing the bucket",
                list_bucket(context),
                "denied",
                kind="outside",
            )
        )

    session_address = outside_v4 or OUTSIDE_IPV4[0]

    # (3) each exempt role's AWS Backup session is never denied, even from outside (facts 1, 5, 6).
    for role in roles:
        who = f"exempt role {role.name} ({role.arn})"
        context = {
            "aws:userid": role.session_user_id,
            "aws:PrincipalArn": role.arn,  # a role session's PrincipalArn is the role's ARN, path included
            "aws:PrincipalAccount": role.account,
            "aws:PrincipalType": "AssumedRole",
            "aws:SourceIp": session_address,
            # AWS Backup acts through its service role: both keys are false for its requests (fact 5).
            "aws:ViaAWSService": "false",
            "aws:PrincipalIsAWSService": "false",
        }
        for action, request in (("get-object", get_object(context)), ("list-bucket", list_bucket(context))):
            scenarios.append(
                Scenario(
                    f"role-{role.name}-{action}",
                    f"an AWS Backup session of {who} ({role.session_user_id}) from {session_address}",
                    request,
                    "not denied",
                    kind="role",
                    principal=who,
                )
            )

    # (4) the operator from outside: never denied, above all not the calls that fix the policy (fact 15).
    if operator is not None:  # None also when spec.exemptOperator is false
        who = f"the operator ({operator.arn})"
        context = {
            "aws:userid": operator.session_user_id,
            "aws:PrincipalArn": operator.principal_arn,
            "aws:PrincipalAccount": operator.account,
            "aws:SourceIp": session_address,
        }
        for action in ("s3:ListBucket", "s3:GetBucketPolicy", "s3:PutBucketPolicy"):
            scenarios.append(
                Scenario(
                    f"operator-{action.removeprefix('s3:')}",
                    f"{who} calling {action} from {session_address}",
                    Request.of(action, bucket_arn, context),
                    "not denied",
                    kind="operator",
                    principal=who,
                )
            )

    # (5) VPC endpoint traffic carries no aws:SourceIp (fact 12): only a listed endpoint or VPC lets it in.
    endpoints, vpcs = inputs.endpoints, inputs.vpcs
    other_endpoint = _unlisted("vpce", endpoints)
    other_vpc = _unlisted("vpc", vpcs)
    via_endpoint = {**client, "aws:VpcSourceIp": VPC_SOURCE_IP}
    for endpoint in endpoints:
        scenarios.append(
            Scenario(
                f"vpce-{endpoint}",
                f"an IAM user through allowed VPC endpoint {endpoint} (in {other_vpc}), no aws:SourceIp",
                get_object({**via_endpoint, "aws:SourceVpce": endpoint, "aws:SourceVpc": other_vpc}),
                "not denied",
                kind="vpc",
            )
        )
    for vpc in vpcs:
        scenarios.append(
            Scenario(
                f"vpc-{vpc}",
                f"an IAM user through endpoint {other_endpoint} in allowed VPC {vpc}, no aws:SourceIp",
                get_object({**via_endpoint, "aws:SourceVpce": other_endpoint, "aws:SourceVpc": vpc}),
                "not denied",
                kind="vpc",
            )
        )
    listed = "an unlisted" if endpoints or vpcs else "a"
    scenarios.append(
        Scenario(
            "vpce-unlisted",
            f"an IAM user through {listed} VPC endpoint {other_endpoint} in {other_vpc}, no aws:SourceIp",
            get_object({**via_endpoint, "aws:SourceVpce": other_endpoint, "aws:SourceVpc": other_vpc}),
            "denied",
            kind="vpc",
        )
    )
    return tuple(scenarios)


def _blocked_message(label: str, sid: str | None, scenario: Scenario) -> str:
    who = scenario.principal or scenario.name
    if scenario.kind == "operator":
        consequence = "the operator cannot read or fix the bucket policy (only the account root can)"
    else:
        consequence = "AWS Backup jobs that use this role fail with AccessDenied"
    if sid is not None:
        advice = (
            f"list {sid!r} in spec.adoptSids so bucketwarden replaces it with its own statement, which exempts "
            "this principal, or add the exemption to it by hand"
        )
    else:
        advice = (
            "it has no Sid, so adoptSids cannot name it: give it a Sid and list that in spec.adoptSids, "
            "or add the exemption to it by hand"
        )
    source = ", ".join(scenario.request.get("aws:SourceIp") or ("outside the allowed ranges",))
    return (
        f"Deny statement {label} is not bucketwarden's and denies {who} "
        f"({scenario.request.action} from {source}): {consequence}; {advice}"
    )


def _foreign_denies(compiled: CompiledPolicy, scenario: Scenario, owned: set[str]) -> list[Evaluation]:
    """Every applying Deny statement that this resource does not own."""
    return [
        verdict
        for verdict in compiled.applying(scenario.request)
        if verdict.denied and (verdict.sid is None or verdict.sid not in owned)
    ]


def verify_policy(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    policy: PolicyDocument | None,
    *,
    partition: str | None = None,
) -> Verification:
    """Evaluate every scenario against the policy (None: no policy, so nothing is denied).

    Raises UnknownConditionOperatorError when a statement uses an operator the evaluator does not know.
    """
    owned = set(spec.owned_sids)
    compiled = compile_policy(policy) if policy is not None else EMPTY_POLICY
    results: list[ScenarioResult] = []
    findings: list[Finding] = []
    reported: set[tuple[int | None, str]] = set()
    for scenario in build_scenarios(spec, roles, operator, partition=partition):
        evaluation = compiled.decide(scenario.request)
        passed = evaluation.denied == (scenario.expect == "denied")
        by_owned = evaluation.sid is not None and evaluation.sid in owned
        results.append(ScenarioResult(scenario, evaluation, passed, by_owned))
        if not evaluation.denied or scenario.kind not in ("role", "operator"):
            continue
        # Every foreign Deny that hits an exempt principal is reported, not only the first one.
        for deny in _foreign_denies(compiled, scenario, owned):
            key = (deny.index, scenario.principal or scenario.name)
            if key in reported:
                continue
            reported.add(key)
            label = deny.label or "?"
            findings.append(
                Finding(
                    severity="Error",
                    code=FOREIGN_DENY_BLOCKS_EXEMPT_ROLE,
                    message=_blocked_message(label, deny.sid, scenario),
                    sid=label,
                )
            )
    return Verification(results, findings)
