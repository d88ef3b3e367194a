"""The modelled world of one verification: its callers (AWS Backup's backup and restore sessions of each exempt
role, the operator) and the concrete scenarios (allowed and forbidden networks, VPC endpoints)."""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache

from bucketwarden.policy._addresses import AddressSet, aws_source_addresses, public_addresses
from bucketwarden.policy._callers import (
    AWS_BACKUP_BACKUP_ACTIONS,
    AWS_BACKUP_RESTORE_ACTIONS,
    AWS_SOURCE_IPV4,
    OPERATOR_ACTIONS,
    Caller,
    RequestScene,
    StatedFacts,
    backup_session,
    operator_session,
    user_request,
)
from bucketwarden.policy._cidr import analyse_cidrs, contains
from bucketwarden.policy._evaluate import Request
from bucketwarden.policy._render import bucket_arns, partition_for_region
from bucketwarden.policy._verify_model import Expectation, Scenario
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import ProtectedBucketSpec, VerificationContext

# Real AWS public addresses (S3 and EC2 ranges from ip-ranges.json), tried in order: the first one outside every
# allowed range plays "somewhere on the internet, not allowed".
OUTSIDE_IPV4: tuple[str, ...] = AWS_SOURCE_IPV4
OUTSIDE_IPV6: tuple[str, ...] = ("2600:1f18::1", "2600:1fa0::1", "2a05:d018::1")
# What a request through a VPC endpoint carries instead of aws:SourceIp (fact 12).
VPC_SOURCE_IP = "10.0.0.12"

CLIENT_USER_ID = "AIDAEXAMPLECLIENT0001"
CLIENT_USER_NAME = "bucketwarden-verify-client"
DEFAULT_ACCOUNT = "111122223333"
OBJECT_KEY = "bucketwarden-verify/object.txt"
# The clock in the modelled requests moves in steps of this many seconds, so equal inputs build their
# scenarios once per step (aws:CurrentTime decides DateGreaterThan/DateLessThan conditions).
CLOCK_STEP_SECONDS = 60


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


def stated_facts(spec: ProtectedBucketSpec) -> StatedFacts:
    """spec.verificationContext as condition keys: facts that turn an Unknown verdict into Pass or Fail."""
    ctx = spec.verification_context
    if ctx is None:
        return StatedFacts()
    keys: list[tuple[str, tuple[str, ...]]] = []
    if ctx.organization_id:
        # The exempt roles and the operator act in the bucket's account (iam:GetRole reads only that account).
        keys += [("aws:principalorgid", (ctx.organization_id,)), ("aws:resourceorgid", (ctx.organization_id,))]
    if ctx.organization_paths:
        paths = tuple(ctx.organization_paths)
        keys += [("aws:principalorgpaths", paths), ("aws:resourceorgpaths", paths)]
    role_keys = tuple((f"aws:principaltag/{t.key.lower()}", (t.value,)) for t in ctx.principal_tags)
    return StatedFacts(tuple(keys), role_keys)


@dataclass(frozen=True, slots=True)
class _Inputs:
    """Everything the scenarios depend on, hashable, so the same spec builds its scenarios once."""

    bucket: str
    partition: str
    account: str
    region: str | None
    cidrs: tuple[str, ...]
    endpoints: tuple[str, ...]
    vpcs: tuple[str, ...]
    roles: tuple[ResolvedRole, ...]
    operator: CallerIdentity | None
    facts: StatedFacts
    now: int
    # Where AWS Backup's aws:SourceIp may come from: any public address, narrowed by what the user stated.
    aws_addresses: AddressSet

    @property
    def scene(self) -> RequestScene:
        return RequestScene(self.account, self.region, self.facts, self.now)


def aws_addresses(spec: ProtectedBucketSpec, aws_ranges: Sequence[str] | None = None) -> AddressSet:
    """The addresses AWS Backup's requests may come from: public addresses, narrowed by
    spec.verificationContext.awsSourceRanges and by the user's ip-ranges.json (both, when both are given)."""
    stated = spec.verification_context.aws_source_ranges if spec.verification_context else []
    addresses = aws_source_addresses(tuple(stated))
    if aws_ranges:
        addresses = addresses & aws_source_addresses(tuple(aws_ranges))
    return addresses


def with_aws_source_ranges(spec: ProtectedBucketSpec, aws_ranges: Sequence[str]) -> ProtectedBucketSpec:
    """The spec with spec.verificationContext.awsSourceRanges narrowed to ``aws_ranges`` as well (the user's
    ip-ranges.json): every command then judges on the same facts, through the same field."""
    if not aws_ranges:
        return spec
    narrowed = aws_addresses(spec, aws_ranges).to_cidrs()
    context = spec.verification_context or VerificationContext()
    # model_copy skips validation on purpose: the file's ranges may be far more than the field's CRD bound.
    return spec.model_copy(
        update={"verification_context": context.model_copy(update={"aws_source_ranges": list(narrowed)})}
    )


def _inputs(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    partition: str | None,
    now: float | None,
    aws_ranges: Sequence[str] | None = None,
) -> _Inputs:
    clock = time.time() if now is None else now
    return _Inputs(
        bucket=spec.bucket_name,
        partition=partition or partition_for_region(spec.region),
        account=_bucket_account(spec, roles, operator),
        region=spec.region,
        cidrs=tuple(spec.allowed_source_ips),
        endpoints=tuple(sorted(set(spec.allowed_vpc_endpoints))),
        vpcs=tuple(sorted(set(spec.allowed_vpcs))),
        roles=tuple(roles),
        operator=operator if spec.exempt_operator else None,
        facts=stated_facts(spec),
        now=int(clock) // CLOCK_STEP_SECONDS * CLOCK_STEP_SECONDS,
        aws_addresses=aws_addresses(spec, aws_ranges),
    )


@dataclass(frozen=True, slots=True)
class ModelledWorld:
    """The modelled world of one verification, built once from its inputs (hashable: the caches key on them)."""

    inputs: _Inputs

    @property
    def scenarios(self) -> list[Scenario]:
        """The requests that show whether a policy keeps the spec's promises."""
        return list(_scenarios(self.inputs))

    @property
    def callers(self) -> tuple[Caller, ...]:
        """The callers whose requests no statement may deny: each exempt role's AWS Backup sessions (backup and
        restore, two promises), the operator."""
        return _callers(self.inputs, self.outside_address)

    @property
    def bucket_arn(self) -> str:
        return bucket_arns(self.inputs.bucket, self.inputs.partition)[0]

    @property
    def outside_address(self) -> str:
        """An IPv4 address outside every allowed range: "somewhere on the internet, not allowed"."""
        return _address_plan(self.inputs.cidrs).outside_v4 or OUTSIDE_IPV4[0]


# The verification signature, (spec, roles, operator; partition, now, aws_ranges): verify_policy (_verify.py) and
# prove_policy (prove.py) take it too, and turn it into the modelled world at once.
def model_world(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    *,
    partition: str | None = None,
    now: float | None = None,
    aws_ranges: Sequence[str] | None = None,
) -> ModelledWorld:
    """The callers and scenarios of the spec's promises to these roles and this operator (None: not exempted), in
    ``partition`` (default: the spec's region's), at ``now`` (default: the clock), with AWS Backup's addresses
    narrowed by ``aws_ranges`` (the user's ip-ranges.json), as spec.verificationContext.awsSourceRanges does."""
    return ModelledWorld(_inputs(spec, roles, operator, partition, now, aws_ranges))


@lru_cache(maxsize=256)
def _operator_addresses(cidrs: tuple[str, ...]) -> AddressSet:
    """Any public address outside the allowed ranges: where the operator may call from (fact 15's lockout is
    judged for all of them)."""
    allowed = AddressSet.of(str(n) for n in analyse_cidrs(cidrs).networks)
    return public_addresses() - allowed


@lru_cache(maxsize=256)
def _callers(inputs: _Inputs, session_address: str) -> tuple[Caller, ...]:
    # Cached, so the scenarios and the whole-bucket judgement share the same callers (and their memos).
    out: list[Caller] = []
    for role in inputs.roles:
        context = backup_session(
            role_arn=role.arn,
            account=role.account,
            role_id=role.role_id or "AROAUNRESOLVED",
            role_name=role.name,
            scene=inputs.scene,
            addresses=inputs.aws_addresses,
            role_path_known=role.path_known,
        )
        who = f"exempt role {role.name} ({role.arn})"
        out.append(Caller("role", who, AWS_BACKUP_BACKUP_ACTIONS, context, "backup"))
        out.append(Caller("role", who, AWS_BACKUP_RESTORE_ACTIONS, context, "restore"))
    operator = inputs.operator
    if operator is not None:
        sources = (session_address, *(a for a in OUTSIDE_IPV4 if a != session_address))
        context = operator_session(
            principal_arn=operator.principal_arn,
            arn=operator.arn,
            account=operator.account,
            user_id=operator.session_user_id,
            assumed_role=operator.is_assumed_role,
            scene=inputs.scene,
            source_ips=sources,
            addresses=_operator_addresses(inputs.cidrs),
        )
        out.append(Caller("operator", f"the operator ({operator.arn})", OPERATOR_ACTIONS, context, "operator"))
    return tuple(out)


@lru_cache(maxsize=256)
def _scenarios(inputs: _Inputs) -> tuple[Scenario, ...]:
    part, account = inputs.partition, inputs.account
    bucket_arn = bucket_arns(inputs.bucket, part)[0]
    object_arn = f"{bucket_arn}/{OBJECT_KEY}"
    client = {
        k: v
        for k, v in user_request(
            account=account,
            user_arn=f"arn:{part}:iam::{account}:user/{CLIENT_USER_NAME}",
            user_id=CLIENT_USER_ID,
            user_name=CLIENT_USER_NAME,
            resource_account=account,
            now=inputs.now,
        ).items()
        if v is not None
    }

    def get_object(context: Mapping[str, tuple[str, ...]]) -> Request:
        return Request.of("s3:GetObject", object_arn, context)

    def list_bucket(context: Mapping[str, tuple[str, ...]]) -> Request:
        return Request.of("s3:ListBucket", bucket_arn, context)

    scenarios: list[Scenario] = []
    plan = _address_plan(inputs.cidrs)

    # (1) every allowed range lets an ordinary user in.
    for net, inside in plan.inside:
        scenarios.append(
            Scenario(
                f"inside-{net}",
                f"an IAM user from {inside}, inside allowed range {net}",
                get_object({**client, "aws:SourceIp": (inside,)}),
                "not denied",
                kind="inside",
                network=net,
            )
        )

    # (2) anywhere else on the internet is denied (skipped when the allow list covers every address).
    outside_v4 = plan.outside_v4
    for family, address in (("ipv4", outside_v4), ("ipv6", plan.outside_v6)):
        if address is None:
            continue
        context = {**client, "aws:SourceIp": (address,)}
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
    callers = _callers(inputs, session_address)

    # (3) each exempt role's AWS Backup session is never denied, even from outside (facts 1, 5, 6); the whole
    # bucket and every AWS Backup action are judged in verify_policy, these two are the familiar examples.
    backups = [c for c in callers if c.promise == "backup"]
    for role, caller in zip(inputs.roles, backups, strict=True):
        context = {**caller.context.base(), "aws:sourceip": (session_address,)}
        for action, request in (("get-object", get_object(context)), ("list-bucket", list_bucket(context))):
            scenarios.append(
                Scenario(
                    f"role-{role.name}-{action}",
                    f"an AWS Backup session of {caller.who} ({role.session_user_id}) from {session_address}",
                    request,
                    "not denied",
                    kind="role",
                    principal=caller.who,
                    caller=caller,
                )
            )

    # (4) the operator from outside: never denied, above all not the calls that fix the policy (fact 15).
    operator_caller = next((c for c in callers if c.kind == "operator"), None)
    if operator_caller is not None:  # None also when spec.exemptOperator is false
        context = {**operator_caller.context.base(), "aws:sourceip": (session_address,)}
        for action in ("s3:ListBucket", "s3:GetBucketPolicy", "s3:PutBucketPolicy"):
            scenarios.append(
                Scenario(
                    f"operator-{action.removeprefix('s3:')}",
                    f"{operator_caller.who} calling {action} from {session_address}",
                    Request.of(action, bucket_arn, context),
                    "not denied",
                    kind="operator",
                    principal=operator_caller.who,
                    caller=operator_caller,
                )
            )

    # (5) VPC endpoint traffic carries no aws:SourceIp (fact 12): only a listed endpoint or VPC lets it in.
    endpoints, vpcs = inputs.endpoints, inputs.vpcs
    other_endpoint = _unlisted("vpce", endpoints)
    other_vpc = _unlisted("vpc", vpcs)
    via_endpoint = {**client, "aws:VpcSourceIp": (VPC_SOURCE_IP,)}

    def through(name: str, route: str, endpoint: str, vpc: str, expect: Expectation) -> Scenario:
        context = {**via_endpoint, "aws:SourceVpce": (endpoint,), "aws:SourceVpc": (vpc,)}
        description = f"an IAM user through {route}, no aws:SourceIp"
        return Scenario(name, description, get_object(context), expect, kind="vpc")

    scenarios += [
        through(f"vpce-{e}", f"allowed VPC endpoint {e} (in {other_vpc})", e, other_vpc, "not denied")
        for e in endpoints
    ]
    scenarios += [
        through(f"vpc-{v}", f"endpoint {other_endpoint} in allowed VPC {v}", other_endpoint, v, "not denied")
        for v in vpcs
    ]
    listed = "an unlisted" if endpoints or vpcs else "a"
    route = f"{listed} VPC endpoint {other_endpoint} in {other_vpc}"
    scenarios.append(through("vpce-unlisted", route, other_endpoint, other_vpc, "denied"))
    return tuple(scenarios)
