"""A second, symbolic verifier (Zelkova-style), with z3: a proof that no modelled request of an exempt caller is
denied, or a counterexample request.

The modelled requests are encoded, not sampled: the resource is any key in the bucket, every condition key the
model does not know is free (present or not, any value), AWS Backup's aws:SourceIp is any address of its address
set. Strings and globs are regular expressions over printable ASCII, IP addresses bit-vectors, numbers and dates
integers, and each key's presence one boolean. For each caller, statement and action the solver is asked for a
request the statement denies: ``sat`` gives a counterexample, ``unsat`` proves that statement denies none.

Optional: z3-solver is the ``prove`` extra. The reconcile path never imports this module.
"""

from __future__ import annotations

import ipaddress
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, Literal, cast

from bucketwarden.errors import BucketWardenError
from bucketwarden.policy._addresses import AddressSet
from bucketwarden.policy._callers import Caller, CallerContext, ModelledAction, Values
from bucketwarden.policy._conditions import parse_date, parse_operator, segments, variable_keys
from bucketwarden.policy._document import POLICY_VERSION, PolicyDocument, Statement
from bucketwarden.policy._evaluate import CompiledStatement, Request, compile_policy
from bucketwarden.policy._s3_keys import absent_for_action
from bucketwarden.policy._verify_judge import _principal_contexts, _role_path_alternatives
from bucketwarden.policy._verify_scenarios import model_world
from bucketwarden.principals import CallerIdentity, ResolvedRole
from bucketwarden.spec import ProtectedBucketSpec

try:  # the "prove" extra
    import z3
except ImportError:  # pragma: no cover - exercised only without the extra
    z3 = None


class ProverUnavailableError(BucketWardenError):
    reason = "ProverUnavailable"


class _Unsupported(Exception):
    """A construct the encoding does not cover: that statement's answer is Unknown, never a guess."""


Outcome = Literal["proved", "counterexample", "unknown"]
_MEMO_LIMIT = 4096
_IP_KEYS = frozenset({"aws:sourceip", "aws:vpcsourceip"})
_STRING_OPS = frozenset(
    {"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase", "StringLike"}
    | {"StringNotLike", "BinaryEquals"}
)
_ARN_OPS = frozenset({"ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike"})
_NUMERIC_OPS = frozenset(
    {"NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan"}
    | {"NumericGreaterThanEquals"}
)
_DATE_OPS = frozenset({o.replace("Numeric", "Date") for o in _NUMERIC_OPS})
_COMPARE = {"Equals": "eq", "NotEquals": "eq", "LessThan": "lt", "LessThanEquals": "le", "GreaterThan": "gt"}
_COMPARE["GreaterThanEquals"] = "ge"


@dataclass(frozen=True, slots=True)
class Finding:
    """The prover's answer for one caller's promise and one Deny statement."""

    promise: str
    principal: str
    label: str
    outcome: Outcome
    request: Request | None = None
    why: str = ""
    # Keys the counterexample gives values bucketwarden does not know (a tag, an org id): it shows what AWS would
    # deny IF the request carried them; the fast engine then says Unknown.
    assumed: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Proof:
    """Per promise: "proved" (no statement denies any modelled request), "counterexample" or "unknown"."""

    findings: tuple[Finding, ...]
    promises: Mapping[str, Outcome]
    seconds: float

    def lines(self) -> list[str]:
        out = [f"prover {p}: {o}" for p, o in self.promises.items()]
        for f in self.findings:
            if f.outcome == "counterexample" and f.request is not None:
                r = f.request
                ip = ",".join(r.context.get("aws:sourceip", ("-",)))
                assumed = ", ".join(f"{k}={','.join(r.context.get(k, ('(absent)',)))}" for k in f.assumed)
                out.append(
                    f"prover counterexample ({f.promise}): {r.action} on {r.resource} by {f.principal} "
                    f"(aws:SourceIp={ip}) is denied by {f.label}" + (f", assuming {assumed}" if assumed else "")
                )
            elif f.outcome == "unknown":
                out.append(f"prover unknown ({f.promise}): {f.label}: {f.why}")
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "promises": dict(self.promises),
            "seconds": round(self.seconds, 4),
            "counterexamples": [
                {
                    "promise": f.promise,
                    "principal": f.principal,
                    "deniedBy": f.label,
                    "action": f.request.action,
                    "resource": f.request.resource,
                    "context": {k: list(v) for k, v in sorted(f.request.context.items())},
                    "assumed": list(f.assumed),
                }
                for f in self.findings
                if f.outcome == "counterexample" and f.request is not None
            ],
            "unknown": [
                {"promise": f.promise, "statement": f.label, "why": f.why}
                for f in self.findings
                if f.outcome == "unknown"
            ],
        }


def available() -> bool:
    return z3 is not None


# Same signature as verify_policy (policy/_verify.py), plus a timeout: the prover answers the same question, and
# bench/ calls both engines alike.
def prove_policy(
    spec: ProtectedBucketSpec,
    roles: Sequence[ResolvedRole],
    operator: CallerIdentity | None,
    policy: PolicyDocument | None,
    *,
    partition: str | None = None,
    now: float | None = None,
    aws_ranges: Sequence[str] | None = None,
    timeout_ms: int = 10_000,
) -> Proof:
    """Prove that no statement denies any modelled request of the exempt roles (backup, restore) and the operator,
    or give a counterexample per promise and statement."""
    if z3 is None:
        raise ProverUnavailableError("the prover needs z3-solver: pip install 'bucketwarden[prove]'")
    started = time.perf_counter()
    world = model_world(spec, roles, operator, partition=partition, now=now, aws_ranges=aws_ranges)
    callers, bucket = world.callers, world.bucket_arn
    findings: list[Finding] = []
    if policy is not None:
        compiled = compile_policy(policy)
        variables = policy.version == POLICY_VERSION
        for caller in callers:
            for index, (cstmt, stmt) in enumerate(zip(compiled.statements, policy.statements, strict=True)):
                if not cstmt.deny:
                    continue
                label = cstmt.sid if cstmt.sid is not None else f"Statement[{index}]"
                finding = _remembered_answer(_Question(caller, cstmt, stmt, label, bucket, variables, timeout_ms))
                if finding is not None:
                    findings.append(finding)
    return Proof(tuple(findings), _promise_outcomes(callers, findings), time.perf_counter() - started)


def _promise_outcomes(callers: Sequence[Caller], findings: Sequence[Finding]) -> dict[str, Outcome]:
    """Per promise, the worst outcome over its callers: a counterexample, else unknown, else proved."""
    order: tuple[Outcome, ...] = ("proved", "unknown", "counterexample")
    promises: dict[str, Outcome] = {}
    for caller in callers:
        mine = [f for f in findings if f.promise == caller.promise and f.principal == caller.who]
        outcome: Outcome = (
            "counterexample" if any(f.outcome == "counterexample" for f in mine) else "unknown" if mine else "proved"
        )
        promises[caller.promise] = max(promises.get(caller.promise, "proved"), outcome, key=order.index)
    return promises


@dataclass(frozen=True, slots=True)
class _Question:
    """One Deny statement asked about one caller: does it deny any modelled request of that caller?"""

    caller: Caller
    compiled: CompiledStatement
    stmt: Statement
    label: str
    bucket_arn: str
    variables: bool
    timeout_ms: int

    def unknown(self, why: str) -> Finding:
        return Finding(self.caller.promise, self.caller.who, self.label, "unknown", why=why)

    def counterexample(self, request: Request, assumed: tuple[str, ...]) -> Finding:
        return Finding(self.caller.promise, self.caller.who, self.label, "counterexample", request, assumed=assumed)


def _remembered_answer(question: _Question) -> Finding | None:
    """_prove_statement's answer, remembered on the caller: a statement proved for it before (our own, on every
    resync) is not asked again."""
    caller, compiled = question.caller, question.compiled
    memo_key = (id(compiled), f"prove\0{question.label}\0{question.bucket_arn}\0{question.variables}")
    hit = caller.memo.get(memo_key)
    if hit is not None and hit[0] is compiled:
        return cast(Finding | None, hit[1])
    finding = _prove_statement(question)
    if len(caller.memo) >= _MEMO_LIMIT:
        caller.memo.clear()
    caller.memo[memo_key] = (compiled, finding)
    return finding


# --- the encoding -------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _alphabet() -> Any:
    return z3.Range(" ", "~")


@lru_cache(maxsize=4096)
def _glob_re(pattern: str, *, arn_part: bool = False) -> Any:
    """A glob as a z3 regex over printable ASCII; in an ARN part (not the last), ``*`` and ``?`` never match ":"."""
    any_char = _alphabet()
    if arn_part:
        any_char = z3.Intersect(any_char, z3.Complement(z3.Re(z3.StringVal(":"))))
    parts: list[Any] = []
    literal = ""
    for ch in pattern:
        if ch in "*?":
            if literal:
                parts.append(z3.Re(z3.StringVal(literal)))
                literal = ""
            parts.append(z3.Star(any_char) if ch == "*" else any_char)
        else:
            literal += ch
    if literal:
        parts.append(z3.Re(z3.StringVal(literal)))
    if not parts:
        return z3.Re(z3.StringVal(""))
    return parts[0] if len(parts) == 1 else z3.Concat(*parts)


@lru_cache(maxsize=1024)
def _ignore_case_re(text: str) -> Any:
    parts = [z3.Union(z3.Re(c.lower()), z3.Re(c.upper())) if c.lower() != c.upper() else z3.Re(c) for c in text]
    if not parts:
        return z3.Re(z3.StringVal(""))
    return parts[0] if len(parts) == 1 else z3.Concat(*parts)


@dataclass(slots=True)
class _Key:
    name: str
    sort: str  # "str", "num", "date", "ip"
    present: Any
    value: Any  # z3 String / Int / (v6 Bool, BitVec32, BitVec128)
    valid: Any = None  # num/date: the value parses (a non-number string is present but never compares)


@dataclass(slots=True)
class _Encoder:
    caller: CallerContext
    action: str
    context: Mapping[str, tuple[str, ...]]  # the concrete principal combination under test (base + combo)
    variables: bool
    solver: Any
    keys: dict[str, _Key] = field(default_factory=dict)
    fresh: int = 0
    approximate: bool = False  # some encoding over-approximates: a model must be checked concretely

    def new(self, prefix: str) -> str:
        self.fresh += 1
        return f"{prefix}!{self.fresh}"

    # keys ------------------------------------------------------------------------------------------------

    def key(self, name: str, sort: str) -> _Key:
        found = self.keys.get(name)
        if found is not None and found.sort != sort:
            # One key read as a string and as a number: exact when the model fixes its value (or its absence),
            # since both readings then come from the same text. For a free value the readings are left unlinked,
            # an over-approximation: unsat stays a proof, and a sat model is checked concretely before it counts.
            if self._options(name) is None:
                self.approximate = True
            found = self.keys.get(f"{name}#{sort}")
            if found is None:
                key = self._new_key(name, sort, f"{name}#{sort}")
                self.solver.add(key.present == self.keys[name].present)
                return key
        if found is not None:
            return found
        return self._new_key(name, sort, name)

    def _new_key(self, name: str, sort: str, slot: str) -> _Key:
        present = z3.Bool(f"present:{slot}")
        if sort == "ip":
            value: Any = (z3.Bool(f"v6:{slot}"), z3.BitVec(f"ip4:{slot}", 32), z3.BitVec(f"ip6:{slot}", 128))
        elif sort == "str":
            value = z3.String(f"val:{slot}")
            self.solver.add(z3.InRe(value, z3.Star(_alphabet())))
        else:
            value = z3.Int(f"val:{slot}")
        key = _Key(name, sort, present, value, z3.Bool(f"valid:{slot}") if sort in ("num", "date") else None)
        self.keys[slot] = key
        self._constrain(key)
        return key

    def _options(self, name: str) -> tuple[Values, ...] | None:
        """The values a key may take (None: free), for this action and this principal combination."""
        status = self.caller.status(name, self.action)
        if name in ("aws:userid", "aws:principalarn"):
            return (self.context.get(name),)
        if absent_for_action(self.action, name):
            return (None,)
        if status == "known":
            return (self.caller.known.get(name),)
        if status == "alternatives":
            return tuple(self.caller.alternatives[name])
        return None

    def _constrain(self, key: _Key) -> None:
        options = self._options(key.name)
        status = self.caller.status(key.name, self.action)
        if status == "present":
            self.solver.add(key.present)
        if status == "addresses" and self.caller.addresses is not None:
            self.solver.add(key.present, self._in_set(key, self.caller.addresses))
        if options is None:
            return
        choices = []
        for values in options:
            if values is None:
                choices.append(z3.Not(key.present))
            elif len(values) != 1:
                raise _Unsupported(f"{key.name} carries several values")
            else:
                choices.append(z3.And(key.present, self._equals_concrete(key, values[0])))
        self.solver.add(z3.Or(*choices))

    def _equals_concrete(self, key: _Key, text: str) -> Any:
        if key.sort == "str":
            return key.value == z3.StringVal(text)
        if key.sort == "ip":
            v6, a4, a6 = key.value
            try:
                ip = ipaddress.ip_address(text)
            except ValueError:
                raise _Unsupported(f"{key.name}={text!r} is not an address") from None
            return z3.And(z3.Not(v6), a4 == int(ip)) if ip.version == 4 else z3.And(v6, a6 == int(ip))
        number = _integer(text) if key.sort == "num" else _integer_date(text)
        return z3.Not(key.valid) if number is None else z3.And(key.valid, key.value == number)

    def _in_set(self, key: _Key, addresses: AddressSet) -> Any:
        return _membership(key.name, addresses)

    # templated values --------------------------------------------------------------------------------------

    def template(self, value: str, *, wildcards: bool, arn_part: bool = False) -> tuple[Any, Any]:
        """(string term, defined): the value with variables as string terms; pattern text becomes a fresh string
        constrained by its glob (when ``wildcards``). ``defined`` is false when a variable has no value."""
        if not (self.variables and "${" in value):
            if not wildcards:
                return z3.StringVal(value), z3.BoolVal(True)
            var = z3.String(self.new("part"))
            self.solver.add(z3.InRe(var, _glob_re(value, arn_part=arn_part)))
            return var, z3.BoolVal(True)
        parts: list[Any] = []
        defined: list[Any] = []
        for seg in segments(value):
            if seg[0] == "var":
                var_key = self.key(seg[1], "str")
                default = seg[2]
                if default is None:
                    parts.append(var_key.value)
                    defined.append(var_key.present)
                else:
                    parts.append(z3.If(var_key.present, var_key.value, z3.StringVal(default)))
            elif seg[0] == "literal" or not wildcards:
                parts.append(z3.StringVal(seg[1]))
            else:
                piece = z3.String(self.new("part"))
                self.solver.add(z3.InRe(piece, _glob_re(seg[1], arn_part=arn_part)))
                parts.append(piece)
        term = parts[0] if len(parts) == 1 else z3.Concat(*parts)
        return term, z3.And(*defined) if defined else z3.BoolVal(True)

    def matches(self, subject: Any, value: str, *, wildcards: bool) -> Any:
        if not (self.variables and "${" in value):
            if wildcards:
                return z3.InRe(subject, _glob_re(value))
            return subject == z3.StringVal(value)
        term, defined = self.template(value, wildcards=wildcards)
        return z3.And(defined, subject == term)

    # conditions ----------------------------------------------------------------------------------------------

    def value_match(self, base: str, key: _Key, value: str) -> Any:
        """Does the request's (present) value match ONE policy value?"""
        match = _VALUE_MATCHES.get(base)
        return match(self, key, value) if match is not None else self._compare_value(base, key, value)

    def _equals_value(self, key: _Key, value: str) -> Any:
        return self.matches(key.value, value, wildcards=False)

    def _like_value(self, key: _Key, value: str) -> Any:
        return self.matches(key.value, value, wildcards=True)

    def _ignore_case_value(self, key: _Key, value: str) -> Any:
        if self.variables and "${" in value:
            raise _Unsupported("a policy variable under an IgnoreCase operator")
        return z3.InRe(key.value, _ignore_case_re(value))

    def _bool_value(self, key: _Key, value: str) -> Any:
        return z3.InRe(key.value, _ignore_case_re(value))  # "true" and "false" in any case

    def _arn_value(self, key: _Key, value: str) -> Any:
        if self.variables and "${" in value:
            raise _Unsupported("a policy variable under an Arn operator")
        parts = value.split(":", 5)
        if len(parts) < 6 or parts[0] != "arn":
            return z3.InRe(key.value, _glob_re(value))
        joined = []
        for i, part in enumerate(parts):
            if i:
                joined.append(z3.Re(z3.StringVal(":")))
            joined.append(_glob_re(part, arn_part=i < 5))
        return z3.InRe(key.value, z3.Concat(*joined))

    def _ip_value(self, key: _Key, value: str) -> Any:
        net = ipaddress.ip_network(value.strip(), strict=False)
        v6, a4, a6 = key.value
        mask = int(net.netmask)
        if net.version == 4:
            return z3.And(z3.Not(v6), a4 & mask == int(net.network_address))
        return z3.And(v6, a6 & mask == int(net.network_address))

    def _compare_value(self, base: str, key: _Key, value: str) -> Any:
        """The Numeric and Date operators."""
        compare = _COMPARE[base.removeprefix("Numeric").removeprefix("Date")]
        number = _integer(value) if base.startswith("Numeric") else _integer_date(value)
        if number is None:
            if base.startswith("Numeric"):
                return z3.BoolVal(False)  # evaluate ignores a policy value that is no number
            raise _Unsupported(f"{value!r} is not a whole-second date")
        v = key.value
        result = {"eq": v == number, "lt": v < number, "le": v <= number, "gt": v > number, "ge": v >= number}[compare]
        return z3.And(key.valid, result)

    def entry(self, operator: str, key_name: str, values: tuple[str, ...]) -> Any:
        op = parse_operator(operator)
        if op.base == "Null":
            key = self.key(key_name, self._sort_of(key_name, "Null"))
            wants = [v.lower() == "true" for v in values if v.lower() in ("true", "false")]
            return z3.Or(*[z3.Not(key.present) if w else key.present for w in wants]) if wants else z3.BoolVal(False)
        key = self.key(key_name, self._sort_of(key_name, op.base))
        hit = z3.Or(*[self.value_match(op.base, key, v) for v in values]) if values else z3.BoolVal(False)
        holds = z3.Not(hit) if op.negated else hit
        if op.if_exists or op.qualifier == "ForAllValues":
            missing: Any = z3.BoolVal(True)
        elif op.qualifier == "ForAnyValue":
            missing = z3.BoolVal(False)
        else:
            missing = z3.BoolVal(op.negated)
        return z3.If(key.present, holds, missing)

    def _sort_of(self, key_name: str, base: str) -> str:
        if key_name in _IP_KEYS:
            if base not in ("IpAddress", "NotIpAddress", "Null"):
                raise _Unsupported(f"{base} on {key_name}")
            return "ip"
        if base in ("IpAddress", "NotIpAddress"):
            return "ip"
        if base in _NUMERIC_OPS:
            return "num"
        if base in _DATE_OPS:
            return "date"
        if base == "Null":
            existing = self.keys.get(key_name)
            return existing.sort if existing is not None else "str"
        return "str"

    # the request ----------------------------------------------------------------------------------------------

    def resource(self, stmt: Statement, bucket_arn: str, object_action: bool) -> tuple[Any, Any]:
        resource = z3.String("resource")
        if object_action:
            key = z3.String("object-key")
            self.solver.add(
                z3.InRe(key, z3.Plus(_alphabet())), resource == z3.Concat(z3.StringVal(f"{bucket_arn}/"), key)
            )
        else:
            self.solver.add(resource == z3.StringVal(bucket_arn))
        patterns = stmt.resources if stmt.resources is not None else stmt.not_resources or ()
        hit = z3.Or(*[z3.BoolVal(True) if p == "*" else self.matches(resource, p, wildcards=True) for p in patterns])
        return resource, hit if stmt.resources is not None else z3.Not(hit)

    def concrete(self, model: Any, base: Mapping[str, tuple[str, ...]]) -> dict[str, tuple[str, ...]]:
        """The request context the model describes: the caller's base, overridden by every encoded key."""
        out = dict(base)
        for name, key in self.keys.items():
            if "#" in name:
                continue  # a second reading of a key whose value the model fixes
            if not z3.is_true(model.eval(key.present, model_completion=True)):
                out.pop(name, None)
                continue
            if key.sort == "str":
                out[name] = (model.eval(key.value, model_completion=True).as_string(),)
            elif key.sort == "ip":
                v6, a4, a6 = key.value
                if z3.is_true(model.eval(v6, model_completion=True)):
                    out[name] = (str(ipaddress.IPv6Address(model.eval(a6, model_completion=True).as_long())),)
                else:
                    out[name] = (str(ipaddress.IPv4Address(model.eval(a4, model_completion=True).as_long())),)
            elif z3.is_true(model.eval(key.valid, model_completion=True)):
                number = model.eval(key.value, model_completion=True).as_long()
                out[name] = (str(number),)
            else:
                out[name] = ("not-a-number",)
        return out


# Operator base -> how one policy value is matched; every other base is a Numeric or Date comparison.
_VALUE_MATCHES: dict[str, Callable[[_Encoder, _Key, str], Any]] = {
    **dict.fromkeys(("StringEquals", "StringNotEquals", "BinaryEquals"), _Encoder._equals_value),
    **dict.fromkeys(("StringLike", "StringNotLike"), _Encoder._like_value),
    **dict.fromkeys(("StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase"), _Encoder._ignore_case_value),
    "Bool": _Encoder._bool_value,
    **dict.fromkeys(_ARN_OPS, _Encoder._arn_value),
    **dict.fromkeys(("IpAddress", "NotIpAddress"), _Encoder._ip_value),
}


@lru_cache(maxsize=64)
def _membership(name: str, addresses: AddressSet) -> Any:
    """The address key lies in the set: built once per set (z3 terms are shared by name across solvers)."""
    v6, a4, a6 = z3.Bool(f"v6:{name}"), z3.BitVec(f"ip4:{name}", 32), z3.BitVec(f"ip6:{name}", 128)
    v4 = [z3.And(z3.UGE(a4, s), z3.ULE(a4, e)) for s, e in addresses.v4]
    v6s = [z3.And(z3.UGE(a6, s), z3.ULE(a6, e)) for s, e in addresses.v6]
    return z3.Or(
        z3.And(z3.Not(v6), z3.Or(*v4) if v4 else z3.BoolVal(False)),
        z3.And(v6, z3.Or(*v6s) if v6s else z3.BoolVal(False)),
    )


def _integer(text: str) -> int | None:
    try:
        number = float(text)
    except ValueError:
        return None
    if number != int(number):
        raise _Unsupported(f"{text!r} is not a whole number")
    return int(number)


def _integer_date(text: str) -> int | None:
    stamp = parse_date(text)
    if stamp is None:
        return None
    if stamp != int(stamp):
        raise _Unsupported(f"{text!r} is not a whole-second date")
    return int(stamp)


def _principal_combos(caller: CallerContext, stmt: Statement) -> Iterator[dict[str, tuple[str, ...]]]:
    base = caller.base()
    paths = _role_path_alternatives(stmt, caller, base)
    for ctx, _, _ in _principal_contexts(caller, base, paths):
        yield ctx


def _prove_statement(question: _Question) -> Finding | None:
    """A Finding when the statement denies (or may deny) a modelled request of the caller; None when proved."""
    caller, compiled, stmt = question.caller, question.compiled, question.stmt
    if compiled.nobody:
        return None
    keys = [k for k, _ in compiled.condition_entries]
    principal_keys = {"aws:userid", "aws:principalarn"}
    mentioned = set(keys) | {k for _, values in compiled.condition_entries for v in values for k in variable_keys(v)}
    mentioned |= {k for p in (stmt.resources or stmt.not_resources or ()) for k in variable_keys(p)}
    asked: set[tuple[object, ...]] = set()
    unsupported: str | None = None
    for context in _principal_combos(caller.context, stmt):
        if compiled.principal is not None and not compiled.principal(context):
            continue
        # Queries that differ only in what the statement never reads are one query.
        who = tuple(context.get(k) for k in sorted(principal_keys & mentioned))
        for modelled in caller.actions:
            if not compiled.action(modelled.action):
                continue
            profile = (
                who,
                modelled.resource,
                tuple(caller.context.status(k, modelled.action) for k in sorted(mentioned)),
            )
            if profile in asked:
                continue
            asked.add(profile)
            try:
                found = _ask(question, modelled, context)
            except _Unsupported as exc:
                unsupported = unsupported or f"not encoded: {exc}"
                continue
            if found is not None and found.outcome == "counterexample":
                return found
            if found is not None:
                unsupported = unsupported or found.why
    if unsupported is not None:
        return question.unknown(unsupported)
    return None


def _ask(question: _Question, modelled: ModelledAction, context: Mapping[str, tuple[str, ...]]) -> Finding | None:
    """One solver query: a request for this action, by this principal combination, that the statement denies."""
    compiled = question.compiled
    solver = z3.Solver()
    solver.set("timeout", question.timeout_ms)
    encoder = _Encoder(question.caller.context, modelled.action, context, question.variables, solver)
    resource, covered = encoder.resource(question.stmt, question.bucket_arn, modelled.resource == "object")
    solver.add(covered)
    if solver.check() == z3.unsat:  # no resource of this kind is covered: the conditions do not matter
        return None
    for operator, (key, values) in zip(compiled.condition_operators, compiled.condition_entries, strict=True):
        solver.add(encoder.entry(operator, key, values))
    answer = solver.check()
    if answer == z3.sat:
        model = solver.model()
        request = Request(
            modelled.action,
            model.eval(resource, model_completion=True).as_string(),
            encoder.concrete(model, context),
        )
        if encoder.approximate and not compiled.applies(request):
            return question.unknown("a key read both as text and as a number, with a value the model leaves free")
        assumed = tuple(
            k for k in encoder.keys if "#" not in k and encoder.caller.status(k, modelled.action) == "unknown"
        )
        return question.counterexample(request, assumed)
    if answer != z3.unsat:
        return question.unknown(f"solver: {solver.reason_unknown()}")
    return None
