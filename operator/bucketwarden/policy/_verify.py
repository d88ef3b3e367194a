"""Check a policy against what the spec promises, before anything is written.

The spec's promises: allowed addresses and VPC endpoints get in (by our statement), everything else from outside
is denied, and NO statement denies the exempt roles' AWS Backup sessions or the operator's own calls. The first
two are judged on concrete requests. The last is judged for the whole bucket: every action AWS Backup and the
operator really use (policy/_callers.py), every object key (a witness key is built from each Deny's Resource
patterns), with three-valued logic over the request context, so a Deny that hangs on a key bucketwarden cannot
know (an organisation id, a tag) gives "Unknown", not a guess. docs/verification.md says what is modelled.
"""

from __future__ import annotations

import ipaddress
import itertools
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Literal, TypeVar, cast

from bucketwarden.policy._callers import (
    AWS_BACKUP_ACTIONS,
    AWS_SOURCE_IPV4,
    OPERATOR_ACTIONS,
    Caller,
    CallerContext,
    ModelledAction,
    StatedFacts,
    backup_session,
    operator_session,
    user_request,
)
from bucketwarden.policy._cidr import analyse_cidrs, contains
from bucketwarden.policy._conditions import Context, variable_keys
from bucketwarden.policy._document import POLICY_VERSION, PolicyDocument, Statement
from bucketwarden.policy._evaluate import (
    EMPTY_POLICY,
    CompiledPolicy,
    CompiledStatement,
    Evaluation,
    Request,
    compile_policy,
)
from bucketwarden.policy._render import bucket_arns, partition_for_region
from bucketwarden.policy._witness import FILL, glob_intersection
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import Finding, ProtectedBucketSpec

Expectation = Literal["denied", "not denied"]
ScenarioKind = Literal["inside", "outside", "role", "operator", "vpc"]
Verdict = Literal["Pass", "Fail", "Unknown"]

FOREIGN_DENY_BLOCKS_EXEMPT_ROLE = "ForeignDenyBlocksExemptRole"
VERIFICATION_INCONCLUSIVE = "VerificationInconclusive"
FOREIGN_DENY_STRICTER = "ForeignDenyStricter"

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
class Scenario:
    """One concrete request and what the spec says must happen to it."""

    name: str
    description: str
    request: Request
    expect: Expectation
    kind: ScenarioKind = "inside"
    principal: str | None = None  # who is asking, for findings: "exempt role X (arn)", "the operator (arn)"
    # The caller model behind a role or operator request: its context is judged three-valued.
    caller: Caller | None = field(default=None, compare=False, hash=False, repr=False)
    network: str | None = None  # for an "inside" request: the allowed range it stands for


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
class Counterexample:
    """A request that a Deny statement denies although the spec promises it is not denied."""

    principal: str
    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]]
    label: str  # the denying statement: its Sid, or Statement[i]
    sid: str | None
    owned: bool
    source: str = ""  # why the caller makes this request (the managed policy that grants it, say)

    @property
    def request(self) -> Request:
        return Request(self.action, self.resource, dict(self.context))

    def describe(self) -> str:
        keys = ("aws:sourceip", "aws:userid", "aws:principalarn", "aws:securetransport", "aws:currenttime")
        shown = ", ".join(f"{k}={','.join(self.context[k])}" for k in keys if k in self.context)
        why = f", an action of {self.source}" if self.source else ""
        return f"{self.action} on {self.resource} by {self.principal}{why} ({shown}) is denied by {self.label}"


@dataclass(frozen=True, slots=True)
class Inconclusive:
    """A Deny statement whose outcome for a caller hangs on condition keys bucketwarden cannot know."""

    principal: str
    label: str
    sid: str | None
    keys: tuple[str, ...]
    action: str
    resource: str

    def describe(self) -> str:
        return (
            f"Deny statement {self.label} may deny {self.action} on {self.resource} by {self.principal}: it depends "
            f"on {', '.join(self.keys)}, which bucketwarden cannot know; state the facts in spec.verificationContext "
            "(organizationId, organizationPaths, principalTags) or check this statement by hand"
        )


@dataclass(frozen=True, slots=True)
class Verification:
    results: list[ScenarioResult]
    findings: list[Finding]
    counterexamples: list[Counterexample] = field(default_factory=list)
    unknowns: list[Inconclusive] = field(default_factory=list)

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

    @property
    def verdict(self) -> Verdict:
        """Fail: some promise is broken (see counterexamples); Unknown: none is broken as far as bucketwarden can
        know, but a Deny hangs on a key it cannot know (see unknowns); Pass: every promise holds."""
        if not self.ok:
            return "Fail"
        return "Unknown" if self.unknowns else "Pass"

    @property
    def unknown_keys(self) -> list[str]:
        return list(dict.fromkeys(k for u in self.unknowns for k in u.keys))


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


def _inputs(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    partition: str | None,
    now: float | None,
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
    )


def build_scenarios(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    *,
    partition: str | None = None,
    now: float | None = None,
) -> list[Scenario]:
    """The requests that show whether a policy keeps the spec's promises."""
    return list(_scenarios(_inputs(spec, roles, operator, partition, now)))


def model_callers(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    *,
    partition: str | None = None,
    now: float | None = None,
) -> tuple[Caller, ...]:
    """The callers whose requests no statement may deny: each exempt role's AWS Backup session, the operator."""
    inputs = _inputs(spec, roles, operator, partition, now)
    plan = _address_plan(inputs.cidrs)
    return _callers(inputs, plan.outside_v4 or OUTSIDE_IPV4[0])


def _session_arn(role: ResolvedRole, session: str) -> str:
    part = role.arn.split(":")[1]
    return f"arn:{part}:sts::{role.account}:assumed-role/{role.name}/{session}"


def _callers(inputs: _Inputs, session_address: str) -> tuple[Caller, ...]:
    out: list[Caller] = []
    for role in inputs.roles:
        session = role.session_user_id.split(":", 1)[1]
        context = backup_session(
            role_arn=role.arn,
            account=role.account,
            user_id=role.session_user_id,
            session_arn=_session_arn(role, session),
            resource_account=inputs.account,
            region=inputs.region,
            facts=inputs.facts,
            now=inputs.now,
        )
        out.append(Caller("role", f"exempt role {role.name} ({role.arn})", AWS_BACKUP_ACTIONS, context))
    operator = inputs.operator
    if operator is not None:
        sources = (session_address, *(a for a in OUTSIDE_IPV4 if a != session_address))
        context = operator_session(
            principal_arn=operator.principal_arn,
            arn=operator.arn,
            account=operator.account,
            user_id=operator.session_user_id,
            assumed_role=operator.is_assumed_role,
            resource_account=inputs.account,
            region=inputs.region,
            facts=inputs.facts,
            source_ips=sources,
            now=inputs.now,
        )
        out.append(Caller("operator", f"the operator ({operator.arn})", OPERATOR_ACTIONS, context))
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
    for role, caller in zip(inputs.roles, callers, strict=False):
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
    for endpoint in endpoints:
        scenarios.append(
            Scenario(
                f"vpce-{endpoint}",
                f"an IAM user through allowed VPC endpoint {endpoint} (in {other_vpc}), no aws:SourceIp",
                get_object({**via_endpoint, "aws:SourceVpce": (endpoint,), "aws:SourceVpc": (other_vpc,)}),
                "not denied",
                kind="vpc",
            )
        )
    for vpc in vpcs:
        scenarios.append(
            Scenario(
                f"vpc-{vpc}",
                f"an IAM user through endpoint {other_endpoint} in allowed VPC {vpc}, no aws:SourceIp",
                get_object({**via_endpoint, "aws:SourceVpce": (other_endpoint,), "aws:SourceVpc": (vpc,)}),
                "not denied",
                kind="vpc",
            )
        )
    listed = "an unlisted" if endpoints or vpcs else "a"
    scenarios.append(
        Scenario(
            "vpce-unlisted",
            f"an IAM user through {listed} VPC endpoint {other_endpoint} in {other_vpc}, no aws:SourceIp",
            get_object({**via_endpoint, "aws:SourceVpce": (other_endpoint,), "aws:SourceVpc": (other_vpc,)}),
            "denied",
            kind="vpc",
        )
    )
    return tuple(scenarios)


# --- three-valued judgement of one Deny statement for one caller ---------------------------------------------

Tri = bool | None  # None: it depends on a key bucketwarden cannot know


@dataclass(frozen=True, slots=True)
class _Judgement:
    applies: Tri
    unknown_keys: tuple[str, ...] = ()


_NEVER = _Judgement(False)


def _with(base: Context, key: str, value: tuple[str, ...] | None) -> dict[str, tuple[str, ...]]:
    out = dict(base)
    if value is None:
        out.pop(key, None)
    else:
        out[key] = value
    return out


def judge_statement(
    compiled: CompiledStatement, caller: CallerContext, base: Context, *, variables: bool
) -> _Judgement:
    """Whether the statement's principal and conditions apply to the caller: True, False or unknown (None).

    Kleene logic over the Condition entries (IAM ANDs them): one entry false makes the statement not apply; an
    entry on a key the caller model does not know, or whose possible values disagree, makes it unknown.
    """
    if compiled.nobody or (compiled.principal is not None and not compiled.principal(base)):
        return _NEVER
    unknown: list[str] = []
    for (key, values), check in zip(compiled.condition_entries, compiled.conditions, strict=True):
        involved = {key}
        if variables:
            involved.update(k for v in values for k in variable_keys(v))
        if any(caller.status(k) == "unknown" for k in involved):
            unknown.append(key)
            continue
        varying = [k for k in involved if caller.status(k) == "alternatives"]
        if varying:
            outcomes = {check(_with(base, k, v)) for k in varying for v in caller.alternatives[k]}
            if len(outcomes) > 1:
                unknown.append(key)
                continue
            holds = outcomes.pop()
        else:
            holds = check(base)
        if not holds:
            return _NEVER
    return _Judgement(None, tuple(dict.fromkeys(unknown))) if unknown else _Judgement(True)


def _object_witnesses(stmt: Statement, bucket_arn: str) -> tuple[str, ...]:
    """Object ARNs in the bucket to try: one per Resource pattern that intersects ``bucket/*``, else the default
    key and keys made only of a character no NotResource pattern spells (so only its wildcards could match)."""
    prefix = f"{bucket_arn}/"
    default = f"{prefix}{OBJECT_KEY}"
    if stmt.resources is not None:
        out: list[str] = []
        for pattern in stmt.resources:
            witness = glob_intersection(pattern, f"{prefix}?*")
            if witness is not None:
                # A key that ends in a real name reads better than a bare "folder/": keep it if it still matches.
                longer = witness + FILL
                out.append(longer if glob_intersection(pattern, longer) == longer else witness)
        return (*dict.fromkeys(out), default)
    # Exact, not a sample: a character c that no pattern spells can only be matched by wildcards, so a pattern
    # matches bucket/c...c (n of them) exactly when it matches every key of length n. Patterns without "*" have
    # a fixed length, those with "*" match every length from some n on: lengths up to the longest pattern + 1
    # decide whether some key escapes them all.
    spelled = {c for p in stmt.not_resources or () for c in p}
    fresh = next(c for c in itertools.chain("xqzjkw0123456789_~", map(chr, itertools.count(0xC0))) if c not in spelled)
    longest = max((len(p) for p in stmt.not_resources or ()), default=0)
    return (default, *(prefix + fresh * n for n in range(1, longest + 2)))


_MEMO_LIMIT = 4096
_T = TypeVar("_T")


def _remembered(caller: Caller, compiled: CompiledStatement, what: str, compute: Callable[[], _T]) -> _T:
    """``compute()``, remembered on the caller for this compiled statement (kept alive by the memo itself, so its
    id is never reused while the entry exists)."""
    key = (id(compiled), what)
    hit = caller.memo.get(key)
    if hit is not None and hit[0] is compiled:
        return cast(_T, hit[1])
    value = compute()
    if len(caller.memo) >= _MEMO_LIMIT:
        caller.memo.clear()
    caller.memo[key] = (compiled, value)
    return value


def _remembered_hit(run: _Run, index: int, caller: Caller, base: Context) -> tuple[str, str] | None:
    compiled, raw = run.compiled.statements[index], run.statements[index]
    return _remembered(
        caller,
        compiled,
        "hit-vars" if run.variables else "hit",
        lambda: _first_hit(compiled, raw, caller.actions, run.bucket_arn, base),
    )


def _first_hit(
    compiled: CompiledStatement, stmt: Statement, actions: Sequence[ModelledAction], bucket_arn: str, base: Context
) -> tuple[str, str] | None:
    """The first modelled action, and a resource of its type in the bucket, that the statement's Action and
    Resource elements cover; None when they cover none."""
    objects: tuple[str, ...] | None = None
    for modelled in actions:
        if not compiled.action(modelled.action):
            continue
        if modelled.resource == "bucket":
            candidates: tuple[str, ...] = (bucket_arn,)
        else:
            objects = objects if objects is not None else _object_witnesses(stmt, bucket_arn)
            candidates = objects
        for resource in candidates:
            fixed = compiled.resource(resource)
            if fixed is None:
                fixed = compiled.resource_dynamic(Request(modelled.action, resource, base))
            if fixed:
                return modelled.action, resource
    return None


# --- verify_policy --------------------------------------------------------------------------------------------


def _blocked_message(label: str, sid: str | None, kind: ScenarioKind, who: str, example: str) -> str:
    if kind == "operator":
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
    return f"Deny statement {label} is not bucketwarden's and denies {who} ({example}): {consequence}; {advice}"


@dataclass(slots=True)
class _Run:
    """One verify_policy call: the policy, and the judgements made so far."""

    compiled: CompiledPolicy
    statements: tuple[Statement, ...]
    owned: set[str]
    variables: bool
    bucket_arn: str
    judged: dict[tuple[int, int], _Judgement] = field(default_factory=dict)
    foreign_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None  # computed when needed

    def denies(self) -> list[int]:
        return [i for i, c in enumerate(self.compiled.statements) if c.deny]

    def judge(self, index: int, caller: Caller, base: Context, slot: int) -> _Judgement:
        key = (index, slot)
        hit = self.judged.get(key)
        if hit is None:
            compiled = self.compiled.statements[index]
            hit = self.judged[key] = _remembered(
                caller,
                compiled,
                "judge-vars" if self.variables else "judge",
                lambda: judge_statement(compiled, caller.context, base, variables=self.variables),
            )
        return hit

    def verdict(self, index: int) -> Evaluation:
        stmt = self.compiled.statements[index]
        return Evaluation("ExplicitDeny", stmt.sid, index)

    def is_owned(self, index: int) -> bool:
        sid = self.compiled.statements[index].sid
        return sid is not None and sid in self.owned


def verify_policy(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    policy: PolicyDocument | None,
    *,
    partition: str | None = None,
    now: float | None = None,
) -> Verification:
    """Judge the spec's promises against the policy (None: no policy, so nothing is denied).

    Raises UnknownConditionOperatorError when a statement uses an operator the evaluator does not know, and
    InvalidConditionValueError (MalformedPolicy) for a value AWS would reject, such as an invalid CIDR.
    """
    inputs = _inputs(spec, roles, operator, partition, now)
    compiled = compile_policy(policy) if policy is not None else EMPTY_POLICY
    run = _Run(
        compiled,
        policy.statements if policy is not None else (),
        set(spec.owned_sids),
        policy is not None and policy.version == POLICY_VERSION,
        bucket_arns(inputs.bucket, inputs.partition)[0],
    )
    results: list[ScenarioResult] = []
    findings: list[Finding] = []
    counterexamples: list[Counterexample] = []
    unknowns: list[Inconclusive] = []
    blocked: set[tuple[int, str]] = set()  # (statement, principal) already shown to deny
    doubtful: set[tuple[int, str]] = set()
    stricter: set[int] = set()
    scenarios = _scenarios(inputs)
    callers: dict[str, tuple[Caller, int]] = {}
    samples: dict[str, Request] = {}  # each caller's first sample request: the context our statement is judged on

    for scenario in scenarios:
        caller = scenario.caller
        if caller is None:
            results.append(_judge_concrete(run, scenario, findings, stricter))
            for other in _range_witnesses(run, scenario):
                result = _judge_concrete(run, other, findings, stricter)
                if not result.passed:
                    results.append(result)
            continue
        slot = callers.setdefault(caller.who, (caller, len(callers)))[1]
        samples.setdefault(caller.who, scenario.request)
        base = caller.context.base()
        evaluation: Evaluation | None = None
        for index, _stmt, _verdict, dynamic in _deny_candidates(run, scenario.request):
            if dynamic and not run.compiled.statements[index].resource_dynamic(scenario.request):
                continue
            if run.is_owned(index):
                # Our own statement promises the exemption from ANY address: judge it on the sample request (an
                # address outside the allowed ranges), not over which AWS address it might be.
                judgement = _Judgement(run.compiled.statements[index].rest(scenario.request))
            else:
                judgement = run.judge(index, caller, base, slot)
            if judgement.applies is True:
                evaluation = evaluation or run.verdict(index)
                _record_block(run, index, caller, scenario.kind, scenario.request, blocked, counterexamples, findings)
            elif judgement.applies is None:
                _record_doubt(run, index, caller, judgement, scenario.request, doubtful, unknowns, findings)
        evaluation = evaluation or Evaluation("NoMatch")
        by_owned = evaluation.index is not None and run.is_owned(evaluation.index)
        results.append(ScenarioResult(scenario, evaluation, not evaluation.denied, by_owned))

    # The whole bucket: every Deny, every modelled action, a key of every Resource pattern in the bucket.
    for caller, slot in callers.values():
        base = caller.context.base()
        kind: ScenarioKind = "role" if caller.kind == "role" else "operator"
        for index in run.denies():
            if (index, caller.who) in blocked:
                continue
            if run.is_owned(index):  # as above: on the sample's context, whatever the action and key
                judgement = _Judgement(run.compiled.statements[index].rest(samples[caller.who]))
            else:
                judgement = run.judge(index, caller, base, slot)
            if judgement.applies is False:
                continue
            hit = _remembered_hit(run, index, caller, base)
            if hit is None:
                continue
            request = Request(hit[0], hit[1], base)
            if judgement.applies is None:
                _record_doubt(run, index, caller, judgement, request, doubtful, unknowns, findings)
                continue
            _record_block(run, index, caller, kind, request, blocked, counterexamples, findings)
            verdict = run.verdict(index)
            name = f"{caller.kind}-{hit[0].removeprefix('s3:')}-{verdict.label}"
            scenario = Scenario(
                name,
                f"{caller.who} calling {hit[0]} on {hit[1]}",
                request,
                "not denied",
                kind=kind,
                principal=caller.who,
                caller=caller,
            )
            results.append(ScenarioResult(scenario, verdict, False, run.is_owned(index)))
    return Verification(results, findings, counterexamples, unknowns)


def _deny_candidates(run: _Run, request: Request) -> list[tuple[int, CompiledStatement, Evaluation, bool]]:
    return [
        (verdict.index, stmt, verdict, dynamic)
        for stmt, verdict, dynamic in run.compiled.candidates(request.action, request.resource)
        if stmt.deny and verdict.index is not None
    ]


_MAX_RANGE_WITNESSES = 8
IpNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


def _foreign_source_ip_ranges(run: _Run) -> tuple[IpNetwork, ...]:
    """Every aws:SourceIp range a foreign Deny tests (compiling the policy already rejected invalid ones)."""
    found: list[IpNetwork] = []
    for stmt in run.compiled.statements:
        if not stmt.deny or (stmt.sid is not None and stmt.sid in run.owned):
            continue
        for key, values in stmt.condition_entries:
            if key == "aws:sourceip":
                found += [ipaddress.ip_network(v.strip(), strict=False) for v in values]
    return tuple(found)


def _range_witnesses(run: _Run, scenario: Scenario) -> list[Scenario]:
    """More addresses of an allowed range, where a foreign Deny's aws:SourceIp ranges cut through it.

    One address per piece: the range minus every such CIDR, and its overlap with each, so a foreign IP rule
    narrower than the allowed range is found whichever part of the range it leaves out.
    """
    if scenario.network is None:
        return []
    if run.foreign_cidrs is None:
        run.foreign_cidrs = _foreign_source_ip_ranges(run)
    if not run.foreign_cidrs:
        return []
    allowed = ipaddress.ip_network(scenario.network)
    cidrs = [c for c in run.foreign_cidrs if c.version == allowed.version]
    outside: list[IpNetwork] = [allowed]
    for cidr in cidrs:
        pieces: list[IpNetwork] = []
        for part in outside:
            if cidr.supernet_of(part):  # type: ignore[arg-type]
                continue
            pieces += list(part.address_exclude(cidr)) if part.supernet_of(cidr) else [part]  # type: ignore[arg-type]
        outside = pieces
    addresses = [str(n.network_address) for n in outside]  # every piece lies inside the allowed range
    addresses += [str(max(c.network_address, allowed.network_address)) for c in cidrs if allowed.overlaps(c)]
    current = scenario.request.get("aws:SourceIp") or ()
    out: list[Scenario] = []
    for address in dict.fromkeys(addresses):
        if address in current or len(out) >= _MAX_RANGE_WITNESSES:
            continue
        out.append(
            Scenario(
                f"{scenario.name}-{address}",
                f"an IAM user from {address}, inside allowed range {scenario.network}",
                scenario.request.with_context({"aws:SourceIp": address}),
                "not denied",
                kind="inside",
            )
        )
    return out


def _judge_concrete(run: _Run, scenario: Scenario, findings: list[Finding], stricter: set[int]) -> ScenarioResult:
    """A request of a user on an allowed (or a forbidden) network: fully known, judged by the evaluator."""
    evaluation = run.compiled.decide(scenario.request)
    by_owned = evaluation.sid is not None and evaluation.sid in run.owned
    if scenario.expect == "denied" or not evaluation.denied:
        return ScenarioResult(scenario, evaluation, evaluation.denied == (scenario.expect == "denied"), by_owned)
    # Denied although allowed by the spec: our statement's fault fails; a foreign Deny that is stricter than ours
    # (a VPC-endpoint-only rule, say) is the owner's choice, reported as a Warning that explains itself.
    denying = [v for v in run.compiled.applying(scenario.request) if v.denied]
    ours = next((v for v in denying if v.sid is not None and v.sid in run.owned), None)
    if ours is not None:
        return ScenarioResult(scenario, ours, False, True)
    for verdict in denying:
        if verdict.index is not None and verdict.index not in stricter:
            stricter.add(verdict.index)
            findings.append(
                Finding(
                    severity="Warning",
                    code=FOREIGN_DENY_STRICTER,
                    message=(
                        f"Deny statement {verdict.label} is not bucketwarden's and is stricter than the spec: it "
                        f"denies {scenario.description} ({scenario.request.action}), which bucketwarden's statement "
                        "lets in; bucketwarden keeps it as the owner wrote it"
                    ),
                    sid=verdict.label,
                )
            )
    return ScenarioResult(scenario, evaluation, True, False)


def _record_block(
    run: _Run,
    index: int,
    caller: Caller,
    kind: ScenarioKind,
    request: Request,
    blocked: set[tuple[int, str]],
    counterexamples: list[Counterexample],
    findings: list[Finding],
) -> None:
    if (index, caller.who) in blocked:
        return
    blocked.add((index, caller.who))
    verdict = run.verdict(index)
    label = verdict.label or "?"
    owned = run.is_owned(index)
    source = next((a.source for a in caller.actions if a.action == request.action), "")
    example = Counterexample(
        caller.who, request.action, request.resource, request.context, label, verdict.sid, owned, source
    )
    counterexamples.append(example)
    if owned:
        return
    # Building a Finding (a pydantic model) costs more than judging the statement: remember it for the next resync.
    findings.append(
        _remembered(
            caller,
            run.compiled.statements[index],
            f"block\0{label}\0{kind}\0{request.action}\0{request.resource}",
            lambda: Finding(
                severity="Error",
                code=FOREIGN_DENY_BLOCKS_EXEMPT_ROLE,
                message=_blocked_message(label, verdict.sid, kind, caller.who, example.describe()),
                sid=label,
            ),
        )
    )


def _record_doubt(
    run: _Run,
    index: int,
    caller: Caller,
    judgement: _Judgement,
    request: Request,
    doubtful: set[tuple[int, str]],
    unknowns: list[Inconclusive],
    findings: list[Finding],
) -> None:
    if (index, caller.who) in doubtful:
        return
    doubtful.add((index, caller.who))
    verdict = run.verdict(index)
    label = verdict.label or "?"
    item = Inconclusive(caller.who, label, verdict.sid, judgement.unknown_keys, request.action, request.resource)
    unknowns.append(item)
    findings.append(
        _remembered(
            caller,
            run.compiled.statements[index],
            f"doubt\0{label}\0{request.action}\0{request.resource}",
            lambda: Finding(severity="Warning", code=VERIFICATION_INCONCLUSIVE, message=item.describe(), sid=label),
        )
    )
