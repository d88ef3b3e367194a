"""Evaluate a bucket policy against one request, as IAM does: an explicit Deny beats any Allow.

Only the bucket policy is judged: identity policies, SCPs and Block Public Access are out of scope, so
"NoMatch" means "this policy neither allows nor denies", not "AWS denies".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bucketwarden.errors import InvalidConditionValueError, PolicyError
from bucketwarden.policy._conditions import (
    ConditionCheck,
    Context,
    compile_conditions,
    glob_regex,
    globs_regex,
    has_variables,
    substitute_pattern,
)
from bucketwarden.policy._document import POLICY_VERSION, PolicyDocument, Principal, Statement
from bucketwarden.principals import ROLE_ARN, is_session_arn, session_arn

Decision = Literal["ExplicitDeny", "Allow", "NoMatch"]
ContextValue = str | Sequence[str]

# Context keys that describe the calling principal (lowercased, as the context stores them).
PRINCIPAL_ARN = "aws:principalarn"
PRINCIPAL_ACCOUNT = "aws:principalaccount"
USER_ID = "aws:userid"
PRINCIPAL_SERVICE = "aws:principalservicename"
# Not an AWS key: the caller's own ARN, which for a role session is the sts session ARN (see caller_arn).
CALLER_ARN = "bucketwarden:callerarn"

_ACCOUNT_ID = re.compile(r"\d{12}")
_ROOT_ARN = re.compile(r"arn:[^:]+:iam::(\d{12}):root")


def _values(value: ContextValue) -> tuple[str, ...]:
    return (value,) if isinstance(value, str) else tuple(value)


@dataclass(frozen=True, slots=True)
class Request:
    """One S3 request as the policy sees it. Context keys are case-insensitive (stored lowercased); values are not.

    A key left out is absent from the request, which is not the same as an empty value (facts 9 and 12).
    """

    action: str
    resource: str
    context: Mapping[str, tuple[str, ...]] = field(default_factory=dict, hash=False)

    @classmethod
    def of(
        cls,
        action: str,
        resource: str,
        context: Mapping[str, ContextValue] | None = None,
        /,
        **keys: ContextValue,
    ) -> Request:
        """``Request.of("s3:GetObject", arn, {"aws:SourceIp": "192.0.2.1"})`` or ``**{...}``."""
        merged = {**(context or {}), **keys}
        return cls(action, resource, {k.lower(): _values(v) for k, v in merged.items()})

    def get(self, key: str) -> tuple[str, ...] | None:
        return self.context.get(key.lower())

    def with_context(
        self, changes: Mapping[str, ContextValue | None] | None = None, /, **keys: ContextValue
    ) -> Request:
        """A copy with keys set; a key set to None is removed from the request."""
        context = dict(self.context)
        for key, value in {**(changes or {}), **keys}.items():
            if value is None:
                context.pop(key.lower(), None)
            else:
                context[key.lower()] = _values(value)
        return Request(self.action, self.resource, context)

    def with_action(self, action: str, resource: str | None = None) -> Request:
        return Request(action, self.resource if resource is None else resource, self.context)


@dataclass(frozen=True, slots=True)
class Evaluation:
    """The policy's answer: the deciding statement is the first applying Deny, else the first applying Allow."""

    decision: Decision
    sid: str | None = None
    index: int | None = None

    @property
    def denied(self) -> bool:
        return self.decision == "ExplicitDeny"

    @property
    def label(self) -> str | None:
        """The deciding statement as people know it: its Sid, or its position when it has none."""
        if self.index is None:
            return None
        return self.sid if self.sid is not None else f"Statement[{self.index}]"


# --- compiled statements --------------------------------------------------------------------------------------

ContextCheck = Callable[[Context], bool]


def caller_arn(context: Context) -> str | None:
    """The caller's own ARN: for a role session ``arn:aws:sts::ACCT:assumed-role/ROLE/SESSION``.

    No AWS condition key carries it (aws:PrincipalArn is the ROLE's ARN), so a request names it under
    CALLER_ARN; without that, it is derived from aws:PrincipalArn and the session name in aws:userid.
    """
    given = context.get(CALLER_ARN)
    if given:
        return given[0]
    arns, user_ids = context.get(PRINCIPAL_ARN, ()), context.get(USER_ID, ())
    if not arns:
        return None
    role = ROLE_ARN.fullmatch(arns[0])
    if role is None or not user_ids or ":" not in user_ids[0]:
        return arns[0]
    session = user_ids[0].split(":", 1)[1]
    return session_arn(role.group(1), role.group(2), role.group(3), session)


def _identities(context: Context) -> tuple[str, ...]:
    """Every name the caller goes by in a Principal element: its account, its principal ARN (a role session: the
    role's ARN) and, for a role session, the session's own ARN; or, for a service, the service's name."""
    found: list[str] = [f"account:{a}" for a in context.get(PRINCIPAL_ACCOUNT, ())]
    for arn in context.get(PRINCIPAL_ARN, ()):
        root = _ROOT_ARN.fullmatch(arn)
        found.append(f"account:{root.group(1)}" if root else arn)
    session = caller_arn(context)
    if session is not None and is_session_arn(session):
        found.append(session)
    found += [f"service:{s}" for s in context.get(PRINCIPAL_SERVICE, ())]
    return tuple(dict.fromkeys(found))


def _principal_matcher(principal: Principal, *, negated: bool) -> ContextCheck | None:
    """A check that is True when the statement's Principal (or NotPrincipal) element lets it apply.

    None when it applies to everyone. IAM User Guide, "AWS JSON policy elements: Principal / NotPrincipal":
    a Principal matches when it names ANY of the caller's names (the account root ARN or account id names every
    principal of the account, a role ARN every session of the role, a session ARN that session). A Deny with
    NotPrincipal spares the caller only when it lists ALL of them: a role session escapes only if the session
    ARN, the role ARN and the account are all listed, and ``arn:aws:iam::ACCT:root`` alone spares the account
    principal itself, not its users and roles.
    """
    if principal.wildcard or "*" in principal.entries.get("AWS", ()):
        return None
    wanted, unique_ids = _named(principal)
    unique_id_listed = _unique_id_check(unique_ids)
    if negated:
        return _not_principal_check(wanted, unique_id_listed)
    if not unique_ids and not any(is_session_arn(n) for n in wanted):
        return _account_or_arn_check(wanted)
    return lambda context: unique_id_listed(context) or any(n in wanted for n in _identities(context))


def _named(principal: Principal) -> tuple[frozenset[str], tuple[str, ...]]:
    """The names a Principal element lists, as _identities spells them, and the bare unique ids it lists."""
    listed: set[str] = set()
    unique_ids: list[str] = []
    for ident in principal.entries.get("AWS", ()):
        if _ACCOUNT_ID.fullmatch(ident):
            listed.add(f"account:{ident}")
        elif root := _ROOT_ARN.fullmatch(ident):
            listed.add(f"account:{root.group(1)}")
        elif ident.startswith("arn:"):
            listed.add(ident)
        else:
            # A principal deleted since the policy was written shows as its bare unique id (fact 21).
            unique_ids.append(ident)
    listed.update(principal.entries.get("Federated", ()))
    listed.update(principal.entries.get("CanonicalUser", ()))
    listed.update(f"service:{s}" for s in principal.entries.get("Service", ()))
    return frozenset(listed), tuple(unique_ids)


def _unique_id_check(unique_ids: tuple[str, ...]) -> ContextCheck:
    """Whether the caller's aws:userid is (or is a session of) one of the listed unique ids."""
    if not unique_ids:
        return lambda _context: False
    exact_ids = frozenset(unique_ids)
    prefixes = tuple(f"{u}:" for u in unique_ids)
    return lambda context: any(u in exact_ids or u.startswith(prefixes) for u in context.get(USER_ID, ()))


def _not_principal_check(wanted: frozenset[str], unique_id_listed: ContextCheck) -> ContextCheck:
    """NotPrincipal: the statement applies unless every name of the caller is listed."""

    def spared(context: Context) -> bool:
        names = _identities(context)
        if unique_id_listed(context):  # the unique id stands for the principal ARN
            names = tuple(n for n in names if not n.startswith("arn:") or is_session_arn(n))
        return bool(names) and all(n in wanted for n in names)

    return lambda context: not spared(context)


def _account_or_arn_check(wanted: frozenset[str]) -> ContextCheck:
    """The usual Principal, accounts and ARNs (no session ARN, no unique id): answered by set lookups."""
    accounts = frozenset(n.removeprefix("account:") for n in wanted if n.startswith("account:"))
    arns = frozenset(n for n in wanted if not n.startswith(("account:", "service:")))
    services = frozenset(n.removeprefix("service:") for n in wanted if n.startswith("service:"))

    def match(context: Context) -> bool:
        if not accounts.isdisjoint(context.get(PRINCIPAL_ACCOUNT, ())):
            return True
        for arn in context.get(PRINCIPAL_ARN, ()):
            if arn in arns:
                return True
            root = _ROOT_ARN.fullmatch(arn) if accounts else None
            if root is not None and root.group(1) in accounts:
                return True
        return not services.isdisjoint(context.get(PRINCIPAL_SERVICE, ()))

    return match


def _action_matcher(patterns: tuple[str, ...], negated: bool) -> Callable[[str], bool]:
    if "*" in patterns:
        return lambda _action: not negated
    regex = globs_regex(patterns, True)  # action names are case-insensitive
    return lambda action: (regex.fullmatch(action) is None) == negated


ResourceFixed = Callable[[str], bool | None]


def _resource_matchers(
    patterns: tuple[str, ...], negated: bool, variables: bool
) -> tuple[ResourceFixed, Callable[[Request], bool]]:
    """(fixed, dynamic) for a Resource or NotResource element.

    ``fixed(resource)`` answers from the resource alone: True or False, or None when a pattern with a policy
    variable decides, which ``dynamic(request)`` then answers. NotResource is already folded in.
    """
    static_patterns = tuple(p for p in patterns if not (variables and has_variables(p)))
    dynamic_patterns = tuple(p for p in patterns if variables and has_variables(p))
    everything = "*" in static_patterns
    regex = globs_regex(static_patterns) if static_patterns and not everything else None
    otherwise = None if dynamic_patterns else negated

    def fixed(resource: str) -> bool | None:
        if everything or (regex is not None and regex.fullmatch(resource) is not None):
            return not negated
        return otherwise

    def dynamic(request: Request) -> bool:
        for template in dynamic_patterns:
            pattern = substitute_pattern(template, request.context)
            if pattern is not None and glob_regex(pattern).fullmatch(request.resource) is not None:
                return not negated
        return negated

    return fixed, dynamic


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    """A statement turned into checks once, so each request costs a few regex matches and set lookups.

    The action and (most of the time) the resource decide without the rest of the request, so a policy sorts
    its statements by (action, resource) once; ``rest`` then checks principal and conditions per request.
    """

    sid: str | None
    deny: bool
    action: Callable[[str], bool]
    resource: ResourceFixed
    resource_dynamic: Callable[[Request], bool]
    rest: Callable[[Request], bool]
    # The parts of ``rest``, for the verifier's three-valued judgement: the principal check (None: everyone;
    # NotPrincipal "*" is folded into ``nobody``) and one check per Condition entry, in the block's order.
    principal: ContextCheck | None = None
    conditions: tuple[ConditionCheck, ...] = ()
    nobody: bool = False
    # (lowercased key, values) of each entry of ``conditions``: a compiled statement is shared by every statement
    # of the same meaning, whose blocks may list their entries in another order.
    condition_entries: tuple[tuple[str, tuple[str, ...]], ...] = ()
    condition_operators: tuple[str, ...] = ()  # the operator of each entry, as written

    def applies(self, request: Request) -> bool:
        if not self.action(request.action):
            return False
        resource = self.resource(request.resource)
        if resource is None:
            resource = self.resource_dynamic(request)
        return resource and self.rest(request)

    @classmethod
    def compile(cls, stmt: Statement, *, variables: bool = True) -> CompiledStatement:
        principal_element = stmt.principal if stmt.principal is not None else stmt.not_principal
        actions = stmt.actions if stmt.actions is not None else stmt.not_actions
        resources = stmt.resources if stmt.resources is not None else stmt.not_resources
        if principal_element is None or actions is None or resources is None:  # Statement.parse never allows it
            raise PolicyError(f"statement {stmt.sid or '(no Sid)'} lacks a principal, action or resource")
        principal_negated = stmt.principal is None
        principal = _principal_matcher(principal_element, negated=principal_negated)
        try:
            conditions = compile_conditions(stmt.conditions, variables=variables)
        except InvalidConditionValueError as exc:
            raise InvalidConditionValueError(
                f"statement {stmt.sid or '(no Sid)'} is malformed, as AWS would reject it: {exc.message}"
            ) from None

        def rest(request: Request) -> bool:
            context = request.context
            if principal is None:
                if principal_negated:  # NotPrincipal "*" excludes everyone
                    return False
            elif not principal(context):
                return False
            for check in conditions:  # noqa: SIM110 - a plain loop beats all() over a generator on this hot path
                if not check(context):
                    return False
            return True

        fixed, dynamic = _resource_matchers(resources, stmt.resources is None, variables)
        return cls(
            stmt.sid,
            stmt.effect == "Deny",
            _action_matcher(actions, stmt.actions is None),
            fixed,
            dynamic,
            rest,
            principal,
            conditions,
            principal is None and principal_negated,
            tuple((key.lower(), values) for keys in stmt.conditions.values() for key, values in keys.items()),
            tuple(operator for operator, keys in stmt.conditions.items() for _ in keys),
        )


# (statement, its verdict when it applies, whether its resource still depends on the request)
Candidate = tuple[CompiledStatement, Evaluation, bool]


class CompiledPolicy:
    """A policy's compiled statements, with the candidates for each (action, resource) remembered."""

    __slots__ = ("_candidates", "statements")

    def __init__(self, statements: tuple[CompiledStatement, ...]) -> None:
        self.statements = statements
        self._candidates: dict[tuple[str, str], tuple[Candidate, ...]] = {}

    def candidates(self, action: str, resource: str) -> tuple[Candidate, ...]:
        """The statements whose Action and Resource elements can match."""
        key = (action, resource)
        hit = self._candidates.get(key)
        if hit is None:
            found: list[Candidate] = []
            for index, stmt in enumerate(self.statements):
                if stmt.action(action) and (fixed := stmt.resource(resource)) is not False:
                    verdict = Evaluation("ExplicitDeny" if stmt.deny else "Allow", stmt.sid, index)
                    found.append((stmt, verdict, fixed is None))
            hit = tuple(found)
            if len(self._candidates) < _CANDIDATES_LIMIT:
                self._candidates[key] = hit
        return hit

    def decide(self, request: Request) -> Evaluation:
        allow: Evaluation | None = None
        for stmt, verdict, dynamic in self.candidates(request.action, request.resource):
            if dynamic and not stmt.resource_dynamic(request):
                continue
            if stmt.deny:
                if stmt.rest(request):
                    return verdict
            elif allow is None and stmt.rest(request):
                allow = verdict
        return allow if allow is not None else _NO_MATCH

    def applying(self, request: Request) -> list[Evaluation]:
        """The verdict of every statement that applies, Allow and Deny alike, in document order."""
        return [
            verdict
            for stmt, verdict, dynamic in self.candidates(request.action, request.resource)
            if (not dynamic or stmt.resource_dynamic(request)) and stmt.rest(request)
        ]


_NO_MATCH = Evaluation("NoMatch")
EMPTY_POLICY = CompiledPolicy(())

# Compiled statements and policies keyed by meaning (canonical keys, memoised on each Statement): every
# reconcile of a bucket renders an equal statement of ours and keeps the foreign ones, so each is compiled
# once. The limits bound memory (a policy can be 20 KB); a full cache is simply emptied.
_STATEMENTS_LIMIT = 2048
_POLICIES_LIMIT = 128
_CANDIDATES_LIMIT = 256
_statements: dict[tuple[str, bool], CompiledStatement] = {}
_policies: dict[tuple[str | None, tuple[str, ...]], CompiledPolicy] = {}


def compile_statement(stmt: Statement, *, variables: bool = True) -> CompiledStatement:
    """Compiled once per distinct statement by MEANING: a reconcile renders a new but equal statement of ours
    every time, and re-parsing its CIDRs and patterns would dominate verification."""
    key = (stmt.canonical_key(), variables)
    hit = _statements.get(key)
    if hit is not None:
        return hit
    compiled = CompiledStatement.compile(stmt, variables=variables)
    if len(_statements) >= _STATEMENTS_LIMIT:
        _statements.clear()
    _statements[key] = compiled
    return compiled


def compile_policy(policy: PolicyDocument) -> CompiledPolicy:
    """Every statement compiled; raises UnknownConditionOperatorError before judging anything."""
    # Statement order decides which Sid is reported, so the key keeps the document's order.
    key = (policy.version, tuple(s.canonical_key() for s in policy.statements))
    hit = _policies.get(key)
    if hit is not None:
        return hit
    # Policy variables exist only in Version 2012-10-17; under 2008-10-17 (or no Version) "${x}" is literal text.
    variables = policy.version == POLICY_VERSION
    compiled = CompiledPolicy(tuple(compile_statement(s, variables=variables) for s in policy.statements))
    if len(_policies) >= _POLICIES_LIMIT:
        _policies.clear()
    _policies[key] = compiled
    return compiled


def evaluate(policy: PolicyDocument, request: Request) -> Evaluation:
    """ExplicitDeny if any Deny applies, else Allow if any Allow applies, else NoMatch.

    The deciding statement is the first applying Deny, else the first applying Allow.
    """
    return compile_policy(policy).decide(request)


def statement_applies(stmt: Statement, request: Request, *, variables: bool = True) -> bool:
    """Whether principal, action, resource and every condition of the statement match the request."""
    return compile_statement(stmt, variables=variables).applies(request)
