"""Evaluate a bucket policy against one request, as IAM does: an explicit Deny beats any Allow.

Only the bucket policy is judged: identity policies, SCPs and Block Public Access are out of scope, so
"NoMatch" means "this policy neither allows nor denies", not "AWS denies".
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from bucketwarden.errors import PolicyError
from bucketwarden.policy._conditions import (
    Context,
    compile_conditions,
    glob_regex,
    globs_regex,
    has_variables,
    substitute_pattern,
)
from bucketwarden.policy._document import POLICY_VERSION, PolicyDocument, Principal, Statement

Decision = Literal["ExplicitDeny", "Allow", "NoMatch"]
ContextValue = str | Sequence[str]

# Context keys that describe the calling principal (lowercased, as the context stores them).
PRINCIPAL_ARN = "aws:principalarn"
PRINCIPAL_ACCOUNT = "aws:principalaccount"
USER_ID = "aws:userid"
PRINCIPAL_SERVICE = "aws:principalservicename"

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


def _principal_matcher(principal: Principal) -> ContextCheck | None:
    """None when the principal matches everyone."""
    if principal.wildcard or "*" in principal.entries.get("AWS", ()):
        return None
    accounts: set[str] = set()
    arns: set[str] = set()
    unique_ids: list[str] = []
    for ident in principal.entries.get("AWS", ()):
        if _ACCOUNT_ID.fullmatch(ident):
            accounts.add(ident)
        elif root := _ROOT_ARN.fullmatch(ident):
            accounts.add(root.group(1))
        elif ident.startswith("arn:"):
            # A role session's aws:PrincipalArn is the role's ARN (path included), so a role ARN matches every
            # session of that role; users, and anything else, match their own ARN.
            arns.add(ident)
        else:
            # A principal deleted since the policy was written shows as its bare unique id (fact 21).
            unique_ids.append(ident)
    arns.update(principal.entries.get("Federated", ()))
    arns.update(principal.entries.get("CanonicalUser", ()))
    services = set(principal.entries.get("Service", ()))
    lookups = tuple(
        (key, frozenset(wanted))
        for key, wanted in ((PRINCIPAL_ACCOUNT, accounts), (PRINCIPAL_ARN, arns), (PRINCIPAL_SERVICE, services))
        if wanted
    )
    exact_ids = frozenset(unique_ids)
    prefixes = tuple(f"{u}:" for u in unique_ids)

    def match(context: Context) -> bool:
        for key, wanted in lookups:
            if not wanted.isdisjoint(context.get(key, ())):
                return True
        for user_id in context.get(USER_ID, ()) if exact_ids else ():
            if user_id in exact_ids or user_id.startswith(prefixes):
                return True
        return False

    return match


def _action_matcher(patterns: tuple[str, ...], negated: bool) -> Callable[[str], bool]:
    if "*" in patterns:
        return lambda action: not negated
    regex = globs_regex(patterns, True)  # action names are case-insensitive
    return lambda action: (regex.fullmatch(action) is None) == negated


def _resource_matcher(patterns: tuple[str, ...], variables: bool) -> Callable[[str, Context], bool] | None:
    """None when every resource matches."""
    if "*" in patterns:
        return None
    static_patterns = tuple(p for p in patterns if not (variables and has_variables(p)))
    static = globs_regex(static_patterns) if static_patterns else None
    dynamic = tuple(p for p in patterns if variables and has_variables(p))

    def match(resource: str, context: Context) -> bool:
        if static is not None and static.fullmatch(resource) is not None:
            return True
        for template in dynamic:
            pattern = substitute_pattern(template, context)
            if pattern is not None and glob_regex(pattern).fullmatch(resource) is not None:
                return True
        return False

    return match


@dataclass(frozen=True, slots=True)
class CompiledStatement:
    """A statement turned into checks once, so each request costs a few regex matches and set lookups.

    ``action`` answers whether the Action/NotAction element matches; ``rest`` checks principal, resource and
    conditions. They are apart so that a policy can sort its statements by action once per action name.
    """

    sid: str | None
    deny: bool
    action: Callable[[str], bool]
    rest: Callable[[Request], bool]

    def applies(self, request: Request) -> bool:
        return self.action(request.action) and self.rest(request)

    @classmethod
    def compile(cls, stmt: Statement, *, variables: bool = True) -> CompiledStatement:
        principal_element = stmt.principal if stmt.principal is not None else stmt.not_principal
        actions = stmt.actions if stmt.actions is not None else stmt.not_actions
        resources = stmt.resources if stmt.resources is not None else stmt.not_resources
        if principal_element is None or actions is None or resources is None:  # Statement.parse never allows it
            raise PolicyError(f"statement {stmt.sid or '(no Sid)'} lacks a principal, action or resource")
        principal = _principal_matcher(principal_element)
        principal_negated = stmt.principal is None
        resource = _resource_matcher(resources, variables)
        resource_negated = stmt.resources is None
        conditions = compile_conditions(stmt.conditions, variables=variables)

        def rest(request: Request) -> bool:
            context = request.context
            if principal is None:
                if principal_negated:  # NotPrincipal "*" excludes everyone
                    return False
            elif principal(context) == principal_negated:
                return False
            if resource is None:
                if resource_negated:
                    return False
            elif resource(request.resource, context) == resource_negated:
                return False
            for check in conditions:  # noqa: SIM110 - a plain loop beats all() over a generator on this hot path
                if not check(context):
                    return False
            return True

        return cls(stmt.sid, stmt.effect == "Deny", _action_matcher(actions, stmt.actions is None), rest)


class CompiledPolicy:
    """A policy's compiled statements, with the statements that match each action name remembered."""

    __slots__ = ("_by_action", "statements")

    def __init__(self, statements: tuple[CompiledStatement, ...]) -> None:
        self.statements = statements
        self._by_action: dict[str, tuple[tuple[int, CompiledStatement], ...]] = {}

    def candidates(self, action: str) -> tuple[tuple[int, CompiledStatement], ...]:
        """(index, statement) of every statement whose Action/NotAction matches."""
        hit = self._by_action.get(action)
        if hit is None:
            hit = tuple((i, s) for i, s in enumerate(self.statements) if s.action(action))
            if len(self._by_action) < _CACHE_LIMIT:
                self._by_action[action] = hit
        return hit

    def decide(self, request: Request) -> Evaluation:
        allow: Evaluation | None = None
        for index, stmt in self.candidates(request.action):
            if stmt.deny:
                if stmt.rest(request):
                    return Evaluation("ExplicitDeny", stmt.sid, index)
            elif allow is None and stmt.rest(request):
                allow = Evaluation("Allow", stmt.sid, index)
        return allow if allow is not None else _NO_MATCH

    def applying(self, request: Request) -> list[int]:
        """Indexes of every statement that applies, Allow and Deny alike."""
        return [i for i, stmt in self.candidates(request.action) if stmt.rest(request)]


_NO_MATCH = Evaluation("NoMatch")
EMPTY_POLICY = CompiledPolicy(())

# Compiled statements and policies keyed by identity: merge keeps foreign Statement objects, so a reconcile
# compiles each once. Each entry holds its key object, so the id cannot be reused while the entry lives.
_CACHE_LIMIT = 4096
_statements: dict[tuple[int, bool], tuple[Statement, CompiledStatement]] = {}
_policies: dict[int, tuple[PolicyDocument, CompiledPolicy]] = {}


def compile_statement(stmt: Statement, *, variables: bool = True) -> CompiledStatement:
    key = (id(stmt), variables)
    hit = _statements.get(key)
    if hit is not None and hit[0] is stmt:
        return hit[1]
    compiled = CompiledStatement.compile(stmt, variables=variables)
    if len(_statements) >= _CACHE_LIMIT:
        _statements.clear()
    _statements[key] = (stmt, compiled)
    return compiled


def compile_policy(policy: PolicyDocument) -> CompiledPolicy:
    """Every statement compiled; raises UnknownConditionOperatorError before judging anything."""
    hit = _policies.get(id(policy))
    if hit is not None and hit[0] is policy:
        return hit[1]
    # Policy variables exist only in Version 2012-10-17; under 2008-10-17 (or no Version) "${x}" is literal text.
    variables = policy.version == POLICY_VERSION
    compiled = CompiledPolicy(tuple(compile_statement(s, variables=variables) for s in policy.statements))
    if len(_policies) >= _CACHE_LIMIT:
        _policies.clear()
    _policies[id(policy)] = (policy, compiled)
    return compiled


def evaluate(policy: PolicyDocument, request: Request) -> Evaluation:
    """ExplicitDeny if any Deny applies, else Allow if any Allow applies, else NoMatch.

    The deciding statement is the first applying Deny, else the first applying Allow.
    """
    return compile_policy(policy).decide(request)


def statement_applies(stmt: Statement, request: Request, *, variables: bool = True) -> bool:
    """Whether principal, action, resource and every condition of the statement match the request."""
    return compile_statement(stmt, variables=variables).applies(request)
