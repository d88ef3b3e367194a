"""Three-valued judgement of one Deny statement for one modelled caller: does it apply (True), not (False), or does
that hang on a fact bucketwarden cannot know (Unknown)?

Per action (a service-specific key an action does not support is absent), over every value a varying key may take
(TLS version, the session name, the role's path offline), over AWS's whole address space for aws:SourceIp (as
interval sets), with policy variables substituted in Resource, NotResource and condition values before any witness
is built. Kleene logic: one entry false makes the statement not apply; otherwise any unknown entry makes it unknown.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from bucketwarden.policy._addresses import AddressSet
from bucketwarden.policy._callers import SOURCE_IP, Caller, CallerContext, ModelledAction, Values
from bucketwarden.policy._conditions import (
    Context,
    glob_regex,
    has_variables,
    parse_operator,
    substitute_pattern,
    unmark,
    variable_keys,
    widen_pattern,
)
from bucketwarden.policy._document import Statement
from bucketwarden.policy._evaluate import CompiledStatement, ContextCheck, Request
from bucketwarden.policy._witness import FILL, glob_intersection

Tri = bool | None  # None: it depends on something bucketwarden cannot know

OBJECT_KEY = "bucketwarden-verify/object.txt"
ROLE_PATH_UNKNOWN = "aws:PrincipalArn (the role's path is not known offline: pass --role-arn)"
SESSION_NAME_ASSUMED = "aws:userid (the session name AWSBackup-<role> is assumed, not documented)"
_PRINCIPAL_KEYS = ("aws:userid", "aws:principalarn")
_ASSUMPTIONS = {"aws:userid": SESSION_NAME_ASSUMED, "aws:principalarn": ROLE_PATH_UNKNOWN}
# A role path nobody would write: stands for "some path the policy does not name".
_OTHER_PATH = "bucketwarden-unknown-path/"


@dataclass(frozen=True, slots=True)
class Judgement:
    applies: Tri
    unknown_keys: tuple[str, ...] = ()
    # Keys to set in the caller's base context so a concrete request shows the statement applying.
    witness: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


NEVER = Judgement(False)


def _with(base: Context, key: str, value: Values) -> dict[str, tuple[str, ...]]:
    out = dict(base)
    if value is None:
        out.pop(key, None)
    else:
        out[key] = value
    return out


# --- principal ----------------------------------------------------------------------------------------------


def _role_path_alternatives(stmt: Statement, caller: CallerContext, base: Context) -> tuple[Values, ...]:
    """aws:PrincipalArn values to try when the role's path is a guess: the guessed ARN, the ARN under a path the
    policy does not name, and the ARN under each path the statement's ARNs spell for this role name."""
    guessed = base.get("aws:principalarn")
    if not caller.role_path_unknown or not guessed:
        return ()
    arn = guessed[0]
    prefix, _, name = arn.partition(":role/")
    name = name.rsplit("/", 1)[-1]
    options: list[str] = [arn, f"{prefix}:role/{_OTHER_PATH}{name}"]
    texts: list[str] = []
    for element in (stmt.principal, stmt.not_principal):
        if element is not None:
            texts += element.entries.get("AWS", ())
    for keys in stmt.conditions.values():
        for key, values in keys.items():
            if key.lower() == "aws:principalarn":
                texts += values
    for text in texts:
        for shape in (f"{prefix}:role/{name}", f"{prefix}:role/*/{name}"):
            found = glob_intersection(text, shape)
            if found is not None:
                options.append(found)
    return tuple((o,) for o in dict.fromkeys(options))


def _principal_contexts(
    caller: CallerContext, base: Context, paths: tuple[Values, ...]
) -> Iterator[tuple[dict[str, tuple[str, ...]], bool, bool]]:
    """Every combination of the principal's varying keys: (context, session name varied, path varied)."""
    ids = caller.alternatives.get("aws:userid") or (base.get("aws:userid"),)
    arns = paths or (base.get("aws:principalarn"),)
    for i, user_id in enumerate(ids):
        for j, arn in enumerate(arns):
            yield _with(_with(base, "aws:userid", user_id), "aws:principalarn", arn), i > 0, j > 0


# --- aws:SourceIp over an address set -----------------------------------------------------------------------


_IP_TEXT = frozenset("0123456789.")
_STRING_OPERATORS = frozenset(
    {
        "StringEquals",
        "StringNotEquals",
        "StringEqualsIgnoreCase",
        "StringNotEqualsIgnoreCase",
        "StringLike",
        "StringNotLike",
    }
)


def _string_truth(base: str, values: tuple[str, ...]) -> AddressSet | None:
    """The IPv4 addresses whose text a String operator's values match; None when that is not worked out exactly
    (an IPv6 value, whose text form AWS does not document, or a wildcard that could match an address's text)."""
    matched: list[str] = []
    for value in values:
        if "Like" in base and ("*" in value or "?" in value):
            if set(value) - {"*", "?"} <= _IP_TEXT | set(":abcdefABCDEF"):
                return None
            continue  # spells a character no address text has: matches nothing
        if ":" in value:
            return None
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            continue  # not an address: no address's text equals it
        if str(address) == value:
            matched.append(value)
    return AddressSet.of(matched)


def _truth_set(operator: str, values: tuple[str, ...]) -> AddressSet | None:
    """The addresses for which an entry on aws:SourceIp holds (the key being present): IpAddress and NotIpAddress
    exactly, String operators where their values allow; None for anything else."""
    op = parse_operator(operator)
    if op.base in ("IpAddress", "NotIpAddress"):
        matched: AddressSet | None = AddressSet.of(values)
    elif op.base in _STRING_OPERATORS:
        matched = _string_truth(op.base, values)
    else:
        return None
    if matched is None:
        return None
    return matched.complement() if op.negated else matched


# --- conditions ---------------------------------------------------------------------------------------------


def judge_statement(
    compiled: CompiledStatement,
    stmt: Statement,
    caller: CallerContext,
    base: Context,
    *,
    variables: bool,
    action: str | None = None,
) -> Judgement:
    """Whether the statement's principal and conditions apply to the caller's request for ``action``."""
    if compiled.nobody:
        return NEVER
    paths = _role_path_alternatives(stmt, caller, base)
    unknown = _principal_doubts(compiled, caller, base, paths)
    if unknown is None:
        return NEVER
    alternatives = dict(caller.alternatives)
    if paths:
        alternatives["aws:principalarn"] = paths
    asked = _Asked(caller, base, alternatives, variables, action)
    addresses: AddressSet | None = None  # the aws:SourceIp values for which every IP entry holds
    for operator, (key, values), check in zip(
        compiled.condition_operators, compiled.condition_entries, compiled.conditions, strict=True
    ):
        entry = _judge_entry(asked, operator, key, values, check)
        if entry.holds is False:
            return NEVER
        if entry.addresses is not None:
            addresses = entry.addresses if addresses is None else addresses & entry.addresses
        unknown += entry.unknown
    over_addresses = _over_addresses(caller.addresses, addresses)
    if over_addresses.holds is False:
        return NEVER
    unknown += over_addresses.unknown
    if unknown:
        return Judgement(None, tuple(dict.fromkeys(unknown)))
    return Judgement(True, (), over_addresses.witness)


def _principal_doubts(
    compiled: CompiledStatement, caller: CallerContext, base: Context, paths: tuple[Values, ...]
) -> list[str] | None:
    """None when the Principal element lets no variant of the caller in; else the assumptions its answer hangs on
    (none when every variant is let in)."""
    if compiled.principal is None:
        return []
    check = compiled.principal
    tried = [(check(ctx), by_session, by_path) for ctx, by_session, by_path in _principal_contexts(caller, base, paths)]
    if not any(o for o, _, _ in tried):
        return None
    unknown: list[str] = []
    if not all(o for o, _, _ in tried):
        first = tried[0][0]
        if any(o != first for o, s, p in tried if s and not p):
            unknown.append(SESSION_NAME_ASSUMED)
        if any(o != first for o, s, p in tried if p and not s) or not unknown:
            unknown.append(ROLE_PATH_UNKNOWN)
    return unknown


@dataclass(frozen=True, slots=True)
class _Asked:
    """What every condition entry of one statement is judged against: the caller, its concrete base context, the
    values each varying key may take (the role path's guesses included), and the action."""

    caller: CallerContext
    base: Context
    alternatives: Mapping[str, tuple[Values, ...]]
    variables: bool
    action: str | None

    def status(self, key: str) -> str:
        return "alternatives" if key in self.alternatives else self.caller.status(key, self.action)


@dataclass(frozen=True, slots=True)
class _Entry:
    """One condition entry's answer: False makes the statement not apply; None hangs on ``unknown``; an entry on
    aws:SourceIp holds for ``addresses``, judged over the caller's whole address set once every entry is in."""

    holds: Tri
    unknown: tuple[str, ...] = ()
    addresses: AddressSet | None = None
    witness: Mapping[str, tuple[str, ...]] = field(default_factory=dict)


def _judge_entry(asked: _Asked, operator: str, key: str, values: tuple[str, ...], check: ContextCheck) -> _Entry:
    var_keys = [k for v in values for k in variable_keys(v)] if asked.variables else []
    involved = [key, *var_keys]
    statuses = {k: asked.status(k) for k in involved}
    null = parse_operator(operator).base == "Null"
    if statuses[key] == "addresses" and not var_keys:
        return _address_entry(operator, key, values, check, asked.base)
    blind = [k for k, st in statuses.items() if st in ("unknown", "addresses")]
    present = [k for k, st in statuses.items() if st == "present"]
    # Null asks only whether the key is there, and a present key is: that much is known.
    if not (present and not blind and null and present == [key] and not var_keys):
        blind += present
    if blind:
        return _Entry(None, tuple(k if k == key else f"${{{k}}}" for k in dict.fromkeys(blind)))
    varying = [k for k in involved if statuses[k] == "alternatives"]
    if not varying:
        return _Entry(check(asked.base))
    outcomes = {check(_with(asked.base, k, v)) for k in varying for v in asked.alternatives[k]}
    if len(outcomes) > 1:
        return _Entry(None, (_ASSUMPTIONS.get(key, key),))
    return _Entry(outcomes.pop())


def _address_entry(operator: str, key: str, values: tuple[str, ...], check: ContextCheck, base: Context) -> _Entry:
    """An entry on aws:SourceIp, which the caller sends from some address of a set."""
    if parse_operator(operator).base == "Null":
        return _Entry(check(base))
    truth = _truth_set(operator, values)
    if truth is None:
        return _Entry(None, (key,))
    return _Entry(True, addresses=truth)


def _over_addresses(sent_from: AddressSet | None, addresses: AddressSet | None) -> _Entry:
    """The IP entries together, over every address the caller may send from: a witness address when all of them
    hold for all of its addresses."""
    if addresses is None or sent_from is None:
        return _Entry(True)
    inside = sent_from & addresses
    if inside.empty:
        return _Entry(False)
    if not sent_from.issubset(addresses):
        return _Entry(None, (SOURCE_IP,))
    member = inside.first()
    return _Entry(True, witness={SOURCE_IP: (member,)} if member is not None else {})


# --- resources ----------------------------------------------------------------------------------------------


def _contexts_for(keys: Sequence[str], caller: CallerContext, base: Context) -> list[dict[str, tuple[str, ...]]]:
    """One context per combination of the alternatives of ``keys`` (the base alone when none varies)."""
    options = [[(k, v) for v in caller.alternatives[k]] for k in keys if k in caller.alternatives]
    out = []
    for combo in itertools.product(*options):
        ctx = dict(base)
        for k, v in combo:
            ctx = _with(ctx, k, v)
        out.append(ctx)
    return out


def _blind_keys(pattern: str, caller: CallerContext, action: str | None) -> list[str]:
    return [k for k in variable_keys(pattern) if caller.status(k, action) not in ("known", "alternatives")]


def resource_matches(
    patterns: tuple[str, ...],
    negated: bool,
    resource: str,
    caller: CallerContext,
    base: Context,
    *,
    variables: bool,
    action: str | None = None,
) -> tuple[Tri, tuple[str, ...]]:
    """Whether a Resource (or, negated, NotResource) element covers ``resource`` for this caller, with policy
    variables substituted from the caller's context; Unknown (with the variables) when a value is not known."""
    hit: Tri = False
    unknown: list[str] = []
    for pattern in patterns:
        if pattern == "*":
            hit = True
            break
        if not (variables and has_variables(pattern)):
            if glob_regex(pattern).fullmatch(resource) is not None:
                hit = True
                break
            continue
        blind = _blind_keys(pattern, caller, action)
        if blind:
            if glob_regex(widen_pattern(pattern)).fullmatch(resource) is not None:
                unknown += [f"${{{k}}}" for k in blind]
            continue
        outcomes = set()
        for ctx in _contexts_for(variable_keys(pattern), caller, base):
            text = substitute_pattern(pattern, ctx)
            outcomes.add(text is not None and glob_regex(text).fullmatch(resource) is not None)
        if outcomes == {True}:
            hit = True
            break
        if len(outcomes) > 1:
            unknown += [f"${{{k}}}" for k in variable_keys(pattern)]
    if hit is not True and unknown:
        return None, tuple(dict.fromkeys(unknown))
    return (not hit) if negated else hit, ()


def _pattern_texts(patterns: tuple[str, ...], caller: CallerContext, base: Context, variables: bool) -> list[str]:
    """Each pattern as the caller's requests see it: substituted for every alternative, widened where a variable's
    value is unknown, literal under Version 2008-10-17."""
    out: list[str] = []
    for pattern in patterns:
        if not (variables and has_variables(pattern)):
            out.append(pattern)
        elif _blind_keys(pattern, caller, None):
            out.append(unmark(widen_pattern(pattern)))
        else:
            for ctx in _contexts_for(variable_keys(pattern), caller, base):
                text = substitute_pattern(pattern, ctx)
                if text is not None:
                    out.append(unmark(text))
    return out


def object_witnesses(
    stmt: Statement, bucket_arn: str, caller: CallerContext, base: Context, *, variables: bool
) -> tuple[str, ...]:
    """Object ARNs in the bucket to try, built AFTER variables are substituted: one per Resource pattern that
    intersects ``bucket/*``, else the default key and keys made only of a character no NotResource pattern spells
    (so only its wildcards could match)."""
    prefix = f"{bucket_arn}/"
    default = f"{prefix}{OBJECT_KEY}"
    if stmt.resources is not None:
        out: list[str] = []
        for pattern in _pattern_texts(stmt.resources, caller, base, variables):
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
    texts = _pattern_texts(stmt.not_resources or (), caller, base, variables)
    spelled = {c for p in texts for c in p}
    fresh = next(c for c in itertools.chain("xqzjkw0123456789_~", map(chr, itertools.count(0xC0))) if c not in spelled)
    longest = max((len(p) for p in texts), default=0)
    return (default, *(prefix + fresh * n for n in range(1, longest + 2)))


@dataclass(frozen=True, slots=True)
class Hit:
    """A modelled request a statement's Action and Resource cover (or may cover: ``resource`` is Unknown)."""

    action: ModelledAction
    resource: str
    covered: Tri
    unknown_keys: tuple[str, ...] = ()


def covered_requests(
    compiled: CompiledStatement,
    stmt: Statement,
    caller: Caller,
    bucket_arn: str,
    base: Context,
    *,
    variables: bool,
) -> Iterator[Hit]:
    """Every modelled (action, resource) of the caller the statement's Action covers, and whether its Resource
    element covers the resource; resources it certainly does not cover are left out."""
    resources = stmt.resources if stmt.resources is not None else stmt.not_resources or ()
    negated = stmt.resources is None
    objects: tuple[str, ...] | None = None
    for modelled in caller.actions:
        if not compiled.action(modelled.action):
            continue
        if modelled.resource == "bucket":
            candidates: tuple[str, ...] = (bucket_arn,)
        else:
            if objects is None:
                objects = object_witnesses(stmt, bucket_arn, caller.context, base, variables=variables)
            candidates = objects
        for resource in candidates:
            covered, keys = resource_matches(
                resources, negated, resource, caller.context, base, variables=variables, action=modelled.action
            )
            if covered is not False:
                yield Hit(modelled, resource, covered, keys)


def request_for(hit: Hit, base: Context, judgement: Judgement) -> Request:
    return Request(hit.action.action, hit.resource, {**base, **judgement.witness})
