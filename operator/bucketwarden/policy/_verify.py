"""Check a policy against what the spec promises, before anything is written.

The spec's promises: allowed addresses and VPC endpoints get in (by our statement), everything else from outside
is denied, and NO statement denies the exempt roles' AWS Backup sessions (backups and restores, judged apart) or
the operator's own calls. The first two are judged on concrete requests (policy/_verify_scenarios.py). The last
is judged for the whole bucket (policy/_verify_judge.py): every action AWS Backup and the operator really use,
every object key a Deny's Resource patterns reach, three-valued, so a Deny that hangs on a fact bucketwarden cannot
know gives "Unknown", not a guess. docs/verification.md says what is modelled and what each assumption costs.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TypeVar, cast

from bucketwarden.policy._callers import Caller
from bucketwarden.policy._conditions import Context
from bucketwarden.policy._document import POLICY_VERSION, PolicyDocument, Statement
from bucketwarden.policy._evaluate import (
    EMPTY_POLICY,
    CompiledPolicy,
    CompiledStatement,
    Evaluation,
    Request,
    compile_policy,
)
from bucketwarden.policy._verify_judge import (
    NEVER,
    Hit,
    Judgement,
    covered_requests,
    judge_statement,
    request_for,
    resource_matches,
)
from bucketwarden.policy._verify_model import (
    FOREIGN_DENY_STRICTER,
    PROMISES,
    Counterexample,
    Inconclusive,
    Scenario,
    ScenarioKind,
    ScenarioResult,
    Verification,
)
from bucketwarden.policy._verify_scenarios import model_world
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import Finding, ProtectedBucketSpec

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


@dataclass(frozen=True, slots=True)
class _Outcome:
    """One Deny judged for one caller on the whole bucket: the request it denies, or the one it may deny."""

    applies: bool | None
    hit: Hit
    judgement: Judgement


def _judge_whole(
    compiled: CompiledStatement,
    stmt: Statement,
    caller: Caller,
    bucket_arn: str,
    *,
    variables: bool,
    owned_sample: Context | None,
) -> _Outcome | None:
    """The first modelled request the statement certainly denies; else the first it may deny; else None.

    Conditions are judged once per set of keys the action makes absent (most actions share one)."""
    base = caller.context.base()
    doubt: _Outcome | None = None
    by_profile: dict[frozenset[str], Judgement] = {}
    keys = [k for k, _ in compiled.condition_entries]
    for hit in covered_requests(compiled, stmt, caller, bucket_arn, base, variables=variables):
        action = hit.action.action
        if owned_sample is not None:
            # Our own statement promises the exemption from ANY address: judged on a request from outside the
            # allowed ranges, whatever the action and key.
            applies = compiled.rest(Request(action, hit.resource, owned_sample))
            judgement = Judgement(applies, (), {k: v for k, v in owned_sample.items() if k == "aws:sourceip"})
        else:
            profile = frozenset(k for k in keys if caller.context.status(k, action) != caller.context.status(k))
            judgement = by_profile.get(profile) or by_profile.setdefault(
                profile,
                judge_statement(compiled, stmt, caller.context, base, variables=variables, action=action),
            )
        if judgement.applies is False:
            continue
        if judgement.applies and hit.covered:
            return _Outcome(True, hit, judgement)
        if doubt is None:
            keys_unknown = tuple(dict.fromkeys((*hit.unknown_keys, *judgement.unknown_keys)))
            doubt = _Outcome(None, hit, Judgement(None, keys_unknown))
    return doubt


@dataclass(slots=True)
class _Run:
    """One verify_policy call: the policy, and the judgements made so far."""

    compiled: CompiledPolicy
    statements: tuple[Statement, ...]
    owned: set[str]
    variables: bool
    bucket_arn: str
    outside_address: str
    foreign_cidrs: tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, ...] | None = None  # computed when needed
    blocked: set[tuple[int, str, str]] = field(default_factory=set)  # (statement, principal, promise) shown to deny
    doubtful: set[tuple[int, str, str]] = field(default_factory=set)
    # What the run has found so far, as the Verification reports it.
    findings: list[Finding] = field(default_factory=list)
    counterexamples: list[Counterexample] = field(default_factory=list)
    unknowns: list[Inconclusive] = field(default_factory=list)
    stricter: set[int] = field(default_factory=set)  # foreign Denies already reported as stricter than the spec

    def denies(self) -> list[int]:
        return [i for i, c in enumerate(self.compiled.statements) if c.deny]

    def verdict(self, index: int) -> Evaluation:
        stmt = self.compiled.statements[index]
        return Evaluation("ExplicitDeny", stmt.sid, index)

    def is_owned(self, index: int) -> bool:
        sid = self.compiled.statements[index].sid
        return sid is not None and sid in self.owned

    def outcome(self, index: int, caller: Caller) -> _Outcome | None:
        compiled, stmt = self.compiled.statements[index], self.statements[index]
        owned = self.is_owned(index)
        sample = {**caller.context.base(), "aws:sourceip": (self.outside_address,)} if owned else None
        if caller.kind == "operator" and owned:
            sample = dict(caller.context.base())
        return _remembered(
            caller,
            compiled,
            f"whole\0{self.variables}\0{owned}\0{self.bucket_arn}\0{self.outside_address}",
            lambda: _judge_whole(
                compiled, stmt, caller, self.bucket_arn, variables=self.variables, owned_sample=sample
            ),
        )

    def first_verdict(self, seen: set[tuple[int, str, str]], index: int, caller: Caller) -> Evaluation | None:
        """The statement's verdict the first time it meets this caller's promise in ``seen`` (marked); then None."""
        key = (index, caller.who, caller.promise)
        if key in seen:
            return None
        seen.add(key)
        return self.verdict(index)

    def report(self, index: int, caller: Caller, what: str, finding: Callable[[], Finding]) -> None:
        # Building a Finding (a pydantic model) costs more than judging the statement: remember it for the next resync.
        self.findings.append(_remembered(caller, self.compiled.statements[index], what, finding))


# prove_policy (prove.py) has this signature too (protocol: the same question, another engine); model_world's is
# the same without the policy.
def verify_policy(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    policy: PolicyDocument | None,
    *,
    partition: str | None = None,
    now: float | None = None,
    aws_ranges: Sequence[str] | None = None,
) -> Verification:
    """Judge the spec's promises against the policy (None: no policy, so nothing is denied).

    ``aws_ranges`` (CIDRs, from the user's ip-ranges.json) narrows where AWS Backup's requests may come from, as
    spec.verificationContext.awsSourceRanges does. Raises UnknownConditionOperatorError when a statement uses an
    operator the evaluator does not know, and InvalidConditionValueError (MalformedPolicy) for a value AWS would
    reject, such as an invalid CIDR.
    """
    world = model_world(spec, roles, operator, partition=partition, now=now, aws_ranges=aws_ranges)
    compiled = compile_policy(policy) if policy is not None else EMPTY_POLICY
    run = _Run(
        compiled,
        policy.statements if policy is not None else (),
        set(spec.owned_sids),
        policy is not None and policy.version == POLICY_VERSION,
        world.bucket_arn,
        world.outside_address,
    )
    results: list[ScenarioResult] = []

    for scenario in world.scenarios:
        caller = scenario.caller
        if caller is None:
            results.append(_judge_concrete(run, scenario))
            for other in _range_witnesses(run, scenario):
                result = _judge_concrete(run, other)
                if not result.passed:
                    results.append(result)
            continue
        results.append(_judge_caller_scenario(run, scenario, caller))

    # The whole bucket: every Deny, every modelled action of every caller, a key of every Resource pattern.
    callers = world.callers
    for caller in callers:
        kind: ScenarioKind = "role" if caller.kind == "role" else "operator"
        for index in run.denies():
            if (index, caller.who, caller.promise) in run.blocked:
                continue
            outcome = run.outcome(index, caller)
            if outcome is None:
                continue
            request = request_for(outcome.hit, caller.context.base(), outcome.judgement)
            if outcome.applies is None:
                _record_doubt(run, index, caller, outcome.judgement, request)
                continue
            _record_block(run, index, caller, kind, request)
            verdict = run.verdict(index)
            name = f"{caller.promise}-{outcome.hit.action.action.removeprefix('s3:')}-{verdict.label}"
            scenario = Scenario(
                name,
                f"{caller.who} calling {outcome.hit.action.action} on {outcome.hit.resource} ({caller.promise})",
                request,
                "not denied",
                kind=kind,
                principal=caller.who,
                caller=caller,
            )
            results.append(ScenarioResult(scenario, verdict, False, run.is_owned(index)))
    promises = tuple(p for p in PROMISES if p == "network" or any(c.promise == p for c in callers))
    return Verification(results, run.findings, run.counterexamples, run.unknowns, promises)


def _judge_caller_scenario(run: _Run, scenario: Scenario, caller: Caller) -> ScenarioResult:
    """A familiar request of an exempt role or the operator (GetObject, ListBucket...), judged three-valued."""
    base = caller.context.base()
    request = scenario.request
    evaluation: Evaluation | None = None
    for stmt, verdict, _dynamic in run.compiled.candidates(request.action, request.resource):
        index = verdict.index
        if not stmt.deny or index is None:
            continue
        raw = run.statements[index]
        if run.is_owned(index):
            # Our own statement promises the exemption from ANY address: judge it on the sample request (an
            # address outside the allowed ranges), not over which AWS address it might be.
            applies = stmt.applies(request)
            judgement = Judgement(applies) if applies else NEVER
        else:
            judgement = _remembered(
                caller,
                stmt,
                f"scenario\0{run.variables}\0{request.action}\0{request.resource}",
                partial(_judge_request, run, stmt, raw, caller, base, request),
            )
        if judgement.applies is True:
            evaluation = evaluation or run.verdict(index)
            denied = Request(request.action, request.resource, {**request.context, **judgement.witness})
            _record_block(run, index, caller, scenario.kind, denied)
        elif judgement.applies is None:
            _record_doubt(run, index, caller, judgement, request)
    evaluation = evaluation or Evaluation("NoMatch")
    by_owned = evaluation.index is not None and run.is_owned(evaluation.index)
    return ScenarioResult(scenario, evaluation, not evaluation.denied, by_owned)


def _judge_request(
    run: _Run, compiled: CompiledStatement, stmt: Statement, caller: Caller, base: Context, request: Request
) -> Judgement:
    resources = stmt.resources if stmt.resources is not None else stmt.not_resources or ()
    covered, keys = resource_matches(
        resources,
        stmt.resources is None,
        request.resource,
        caller.context,
        base,
        variables=run.variables,
        action=request.action,
    )
    if covered is False:
        return NEVER
    judgement = judge_statement(compiled, stmt, caller.context, base, variables=run.variables, action=request.action)
    if judgement.applies is False or (covered is True and judgement.applies is True):
        return judgement
    return Judgement(None, tuple(dict.fromkeys((*keys, *judgement.unknown_keys))))


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


def _judge_concrete(run: _Run, scenario: Scenario) -> ScenarioResult:
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
        if verdict.index is not None and verdict.index not in run.stricter:
            run.stricter.add(verdict.index)
            run.findings.append(
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


def _record_block(run: _Run, index: int, caller: Caller, kind: ScenarioKind, request: Request) -> None:
    verdict = run.first_verdict(run.blocked, index, caller)
    if verdict is None:
        return
    label = verdict.label or "?"
    owned = run.is_owned(index)
    source = next((a.source for a in caller.actions if a.action == request.action), "")
    example = Counterexample(
        caller.who,
        request.action,
        request.resource,
        request.context,
        label,
        verdict.sid,
        owned,
        source,
        caller.promise,
    )
    run.counterexamples.append(example)
    if not owned:
        run.report(index, caller, f"block\0{label}\0{kind}\0{request.action}\0{request.resource}", example.finding)


def _record_doubt(run: _Run, index: int, caller: Caller, judgement: Judgement, request: Request) -> None:
    """A Deny that may deny the caller's request, on a fact bucketwarden cannot know: recorded beside the blocks."""
    verdict = run.first_verdict(run.doubtful, index, caller)
    if verdict is None:
        return
    label = verdict.label or "?"
    item = Inconclusive(
        caller.who, label, verdict.sid, judgement.unknown_keys, request.action, request.resource, caller.promise
    )
    run.unknowns.append(item)
    run.report(index, caller, f"doubt\0{label}\0{request.action}\0{request.resource}\0{item.keys}", item.finding)
