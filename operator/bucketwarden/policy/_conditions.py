"""IAM condition operators, wildcards and policy variables, compiled once per statement and checked per request.

Semantics, as the IAM documentation states them (AWS-SEMANTICS facts 7-11):

- keys and operators in one Condition block are ANDed; several values for one key are ORed;
- a negated operator (``StringNotEquals``, ``NotIpAddress``, ``ArnNotLike``...) is true only if the request value
  matches NONE of the values;
- a key missing from the request makes a normal operator false and a negated one TRUE; ``...IfExists`` makes it
  true; ``ForAllValues:`` is true and ``ForAnyValue:`` false for a missing (or empty) multi-valued key;
- ``ArnEquals`` and ``ArnLike`` are the same operator in IAM: both take wildcards. Each of the six colon-separated
  ARN parts is matched on its own (the sixth keeps its colons), so ``*`` never crosses a part boundary. A value that
  is not a six-part ARN pattern (``*`` alone, say) is matched as a glob against the whole string;
- policy variables (``${aws:username}``, ``${aws:PrincipalTag/team, 'default'}``) are substituted in String and ARN
  operators and in Resource, only under Version 2012-10-17. A substituted value is literal text, never a
  wildcard. A variable whose key is absent (or multi-valued) and has no default leaves that value matching
  nothing, so a positive operator is false and a negated one is true (its value matches "none").
  ``${*}``, ``${?}`` and ``${$}`` stand for a literal ``*``, ``?`` and ``$``.

An operator the module does not know raises UnknownConditionOperatorError when the statement is compiled:
the evaluator never guesses a result.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache
from typing import Literal

from bucketwarden.errors import InvalidConditionValueError, UnknownConditionOperatorError

Context = Mapping[str, tuple[str, ...]]
ConditionCheck = Callable[[Context], bool]
ValueMatch = Callable[[str, Context], bool]
Qualifier = Literal["ForAllValues", "ForAnyValue"] | None

# --- wildcards ------------------------------------------------------------------------------------------------


# Stand-ins for a literal "*" and "?" (from ${*}, ${?} or a substituted value) inside a wildcard pattern.
_LITERAL_STAR, _LITERAL_QUESTION = "\x00", "\x01"
_UNMARK = {_LITERAL_STAR: "*", _LITERAL_QUESTION: "?"}


def _glob_source(pattern: str) -> str:
    out: list[str] = []
    literal: list[str] = []
    for ch in pattern:
        if ch in "*?":
            if literal:
                out.append(re.escape("".join(literal)))
                literal.clear()
            out.append(".*" if ch == "*" else ".")
        else:
            literal.append(_UNMARK.get(ch, ch))
    if literal:
        out.append(re.escape("".join(literal)))
    return "".join(out)


@lru_cache(maxsize=4096)
def glob_regex(pattern: str, ignore_case: bool = False) -> re.Pattern[str]:
    """``*`` matches any run of characters (also none), ``?`` exactly one; everything else is literal."""
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile(_glob_source(pattern), flags)


@lru_cache(maxsize=4096)
def globs_regex(patterns: tuple[str, ...], ignore_case: bool = False) -> re.Pattern[str]:
    """One regex that fully matches any of the patterns: one fullmatch instead of one per pattern."""
    flags = re.DOTALL | (re.IGNORECASE if ignore_case else 0)
    return re.compile("|".join(f"(?:{_glob_source(p)})" for p in patterns), flags)


# --- policy variables -----------------------------------------------------------------------------------------

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_BODY = re.compile(r"\s*([^\s,']+)\s*(?:,\s*'((?:[^']|'')*)'\s*)?")
_ESCAPES = frozenset("*?$")  # ${*}, ${?}, ${$}


@dataclass(frozen=True, slots=True)
class _Var:
    key: str  # lowercased
    default: str | None


# A template is a sequence of: ("pattern", text) whose * and ? are wildcards (in Like operators),
# ("literal", text) that is always literal, and variables.
_Segment = tuple[Literal["pattern", "literal"], str] | _Var


@lru_cache(maxsize=4096)
def _template(value: str) -> tuple[_Segment, ...]:
    segments: list[_Segment] = []
    pos = 0
    for m in _VARIABLE.finditer(value):
        if m.start() > pos:
            segments.append(("pattern", value[pos : m.start()]))
        body = m.group(1)
        if body in _ESCAPES:
            segments.append(("literal", body))
        elif (parsed := _VARIABLE_BODY.fullmatch(body)) is not None:
            default = parsed.group(2)
            segments.append(_Var(parsed.group(1).lower(), None if default is None else default.replace("''", "'")))
        else:  # not a variable IAM would accept: keep the text as written
            segments.append(("pattern", m.group(0)))
        pos = m.end()
    if pos < len(value):
        segments.append(("pattern", value[pos:]))
    return tuple(segments)


def has_variables(value: str) -> bool:
    return "${" in value and _VARIABLE.search(value) is not None


def _resolve(var: _Var, context: Context) -> str | None:
    values = context.get(var.key)
    if values is not None and len(values) == 1:
        return values[0]
    return var.default  # absent or multi-valued: the default, or no value at all


def substitute(value: str, context: Context) -> str | None:
    """The value with variables replaced (for Equals operators); None when a variable has no value."""
    return _substitute(value, context, wildcards=False)


def substitute_pattern(value: str, context: Context) -> str | None:
    """A wildcard pattern with variables replaced; their text (and ${*}, ${?}) is marked literal, never a wildcard."""
    return _substitute(value, context, wildcards=True)


Segment = tuple[Literal["pattern", "literal"], str] | tuple[Literal["var"], str, str | None]


def segments(value: str) -> tuple[Segment, ...]:
    """A value split into ("pattern", text) (wildcards live), ("literal", text) and ("var", key, default)."""
    out: list[Segment] = []
    for seg in _template(value):
        if isinstance(seg, _Var):
            out.append(("var", seg.key, seg.default))
        else:
            out.append(seg)
    return tuple(out)


def widen_pattern(value: str) -> str:
    """A wildcard pattern with every variable replaced by ``*``: it matches whatever values the variables take
    (their default included), so a string it does not match is matched by no substitution."""
    out: list[str] = []
    for seg in _template(value):
        if isinstance(seg, _Var):
            out.append("*")
        elif seg[0] == "pattern":
            out.append(seg[1])
        else:
            out.append(seg[1].replace("*", _LITERAL_STAR).replace("?", _LITERAL_QUESTION))
    return "".join(out)


def unmark(pattern: str) -> str:
    """A substituted pattern's literal ``*`` and ``?`` markers back as the characters themselves."""
    return pattern.replace(_LITERAL_STAR, "*").replace(_LITERAL_QUESTION, "?")


def _substitute(value: str, context: Context, *, wildcards: bool) -> str | None:
    out: list[str] = []
    for seg in _template(value):
        if isinstance(seg, _Var):
            text = _resolve(seg, context)
            if text is None:
                return None
        elif seg[0] == "pattern":
            out.append(seg[1])
            continue
        else:
            text = seg[1]
        out.append(text.replace("*", _LITERAL_STAR).replace("?", _LITERAL_QUESTION) if wildcards else text)
    return "".join(out)


# --- value matchers: "does this request value match ANY of the policy values?" ---------------------------------


def _string_equals(values: tuple[str, ...], variables: bool, fold: bool) -> ValueMatch:
    norm: Callable[[str], str] = str.lower if fold else str
    static = frozenset(norm(v) for v in values if not (variables and has_variables(v)))
    dynamic = tuple(v for v in values if variables and has_variables(v))

    def match(value: str, context: Context) -> bool:
        if norm(value) in static:
            return True
        for template in dynamic:
            resolved = substitute(template, context)
            if resolved is not None and norm(resolved) == norm(value):
                return True
        return False

    return match


def _string_like(values: tuple[str, ...], variables: bool) -> ValueMatch:
    static_values = tuple(v for v in values if not (variables and has_variables(v)))
    static = globs_regex(static_values) if static_values else None
    dynamic = tuple(v for v in values if variables and has_variables(v))

    def match(value: str, context: Context) -> bool:
        if static is not None and static.fullmatch(value) is not None:
            return True
        for template in dynamic:
            pattern = substitute_pattern(template, context)
            if pattern is not None and glob_regex(pattern).fullmatch(value) is not None:
                return True
        return False

    return match


_ARN_PARTS = 6


@lru_cache(maxsize=4096)
def _arn_pattern(pattern: str) -> Callable[[str], bool]:
    parts = pattern.split(":", _ARN_PARTS - 1)
    if len(parts) < _ARN_PARTS or parts[0] != "arn":
        whole = glob_regex(pattern)
        return lambda value: whole.fullmatch(value) is not None
    regexes = tuple(glob_regex(p) for p in parts)

    def match(value: str) -> bool:
        got = value.split(":", _ARN_PARTS - 1)
        return len(got) == _ARN_PARTS and all(r.fullmatch(g) is not None for r, g in zip(regexes, got, strict=True))

    return match


def _arn_like(values: tuple[str, ...], variables: bool) -> ValueMatch:
    static = tuple(_arn_pattern(v) for v in values if not (variables and has_variables(v)))
    dynamic = tuple(v for v in values if variables and has_variables(v))

    def match(value: str, context: Context) -> bool:
        if any(m(value) for m in static):
            return True
        for template in dynamic:
            pattern = substitute_pattern(template, context)
            if pattern is not None and _arn_pattern(pattern)(value):
                return True
        return False

    return match


def _number(text: str) -> float | None:
    try:
        return float(text)
    except ValueError:
        return None


_COMPARE: dict[str, Callable[[float, float], bool]] = {
    "eq": lambda a, b: a == b,
    "lt": lambda a, b: a < b,
    "le": lambda a, b: a <= b,
    "gt": lambda a, b: a > b,
    "ge": lambda a, b: a >= b,
}


def _numeric(values: tuple[str, ...], compare: str) -> ValueMatch:
    numbers = tuple(n for n in (_number(v) for v in values) if n is not None)
    op = _COMPARE[compare]

    def match(value: str, context: Context) -> bool:
        got = _number(value)
        return got is not None and any(op(got, n) for n in numbers)

    return match


_EPOCH = re.compile(r"-?\d+(?:\.\d+)?")
# W3C "Date and Time Formats" (the ISO 8601 profile the IAM date operators take): YYYY, YYYY-MM, YYYY-MM-DD,
# then optionally Thh:mm, Thh:mm:ss or Thh:mm:ss.s and a zone (Z or +hh:mm). Python's fromisoformat knows the
# last forms but not a bare year or year-month, which IAM reads as that period's first instant.
_YEAR_MONTH = re.compile(r"(\d{4})(?:-(\d{2}))?")


@lru_cache(maxsize=1024)
def parse_date(text: str) -> float | None:
    """W3C ISO 8601 (a naive time is UTC) or epoch seconds, as a POSIX timestamp; None if it is neither."""
    text = text.strip()
    if _EPOCH.fullmatch(text) and not _YEAR_MONTH.fullmatch(text):
        return float(text)
    partial = _YEAR_MONTH.fullmatch(text)
    try:
        if partial is not None:
            when = datetime(int(partial.group(1)), int(partial.group(2) or 1), 1, tzinfo=UTC)
        else:
            when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when.timestamp()


def _date(values: tuple[str, ...], compare: str) -> ValueMatch:
    stamps = tuple(s for s in (parse_date(v) for v in values) if s is not None)
    if len(stamps) != len(values):
        bad = next(v for v in values if parse_date(v) is None)
        raise InvalidConditionValueError(f"{bad!r} is not a date (W3C ISO 8601 or epoch seconds)")
    op = _COMPARE[compare]

    def match(value: str, context: Context) -> bool:
        got = parse_date(value)
        return got is not None and any(op(got, s) for s in stamps)

    return match


def _bool(values: tuple[str, ...]) -> ValueMatch:
    wanted = frozenset(v.lower() for v in values)
    return lambda value, context: value.lower() in wanted


def _binary(values: tuple[str, ...]) -> ValueMatch:
    wanted = frozenset(values)
    return lambda value, context: value in wanted


@lru_cache(maxsize=4096)
def parse_address(text: str) -> tuple[int, int] | None:
    """(version, integer) of an IP address; None if the text is not one."""
    try:
        ip = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    return ip.version, int(ip)


@lru_cache(maxsize=4096)
def _network(text: str) -> tuple[int, int, int] | None:
    try:
        net = ipaddress.ip_network(text.strip(), strict=False)  # a bare address is a /32 or /128
    except ValueError:
        return None
    return net.version, int(net.network_address), int(net.netmask)


def _ip_address(values: tuple[str, ...]) -> ValueMatch:
    # Grouped by version and prefix length: one set lookup per distinct prefix length, not one test per range.
    groups: dict[int, dict[int, set[int]]] = {}
    for value in values:
        parsed = _network(value)
        if parsed is None:
            # AWS rejects such a policy; ignoring the value would make a NotIpAddress true for everyone.
            raise InvalidConditionValueError(f"{value!r} is not an IPv4 or IPv6 address or CIDR range")
        version, net, mask = parsed
        groups.setdefault(version, {}).setdefault(mask, set()).add(net)
    by_version = {v: tuple((mask, frozenset(nets)) for mask, nets in g.items()) for v, g in groups.items()}

    def match(value: str, context: Context) -> bool:
        ip = parse_address(value)
        if ip is None:
            return False
        version, number = ip
        for mask, nets in by_version.get(version, ()):  # noqa: SIM110 - hot path, see check()
            if number & mask in nets:
                return True
        return False

    return match


# --- operators ------------------------------------------------------------------------------------------------

MatcherFactory = Callable[[tuple[str, ...], bool], ValueMatch]

# Lowercased base name -> (canonical name, factory(values, variables), negated).
_OPERATORS: dict[str, tuple[str, MatcherFactory, bool]] = {}


def _register(name: str, factory: MatcherFactory, *, negated: bool = False) -> None:
    _OPERATORS[name.lower()] = (name, factory, negated)


def _exact(values: tuple[str, ...], variables: bool) -> ValueMatch:
    return _string_equals(values, variables, fold=False)


def _ignore_case(values: tuple[str, ...], variables: bool) -> ValueMatch:
    return _string_equals(values, variables, fold=True)


def _numeric_factory(compare: str) -> MatcherFactory:
    return lambda values, variables: _numeric(values, compare)


def _date_factory(compare: str) -> MatcherFactory:
    return lambda values, variables: _date(values, compare)


def _untemplated(factory: Callable[[tuple[str, ...]], ValueMatch]) -> MatcherFactory:
    # Policy variables work only in String and ARN operators.
    return lambda values, variables: factory(values)


_register("StringEquals", _exact)
_register("StringNotEquals", _exact, negated=True)
_register("StringEqualsIgnoreCase", _ignore_case)
_register("StringNotEqualsIgnoreCase", _ignore_case, negated=True)
_register("StringLike", _string_like)
_register("StringNotLike", _string_like, negated=True)
# IAM treats ArnEquals exactly like ArnLike: both take wildcards.
_register("ArnEquals", _arn_like)
_register("ArnLike", _arn_like)
_register("ArnNotEquals", _arn_like, negated=True)
_register("ArnNotLike", _arn_like, negated=True)
for _suffix, _compare in (
    ("Equals", "eq"),
    ("LessThan", "lt"),
    ("LessThanEquals", "le"),
    ("GreaterThan", "gt"),
    ("GreaterThanEquals", "ge"),
):
    _register(f"Numeric{_suffix}", _numeric_factory(_compare))
    _register(f"Date{_suffix}", _date_factory(_compare))
_register("NumericNotEquals", _numeric_factory("eq"), negated=True)
_register("DateNotEquals", _date_factory("eq"), negated=True)
_register("Bool", _untemplated(_bool))
_register("BinaryEquals", _untemplated(_binary))
_register("IpAddress", _untemplated(_ip_address))
_register("NotIpAddress", _untemplated(_ip_address), negated=True)

CONDITION_OPERATORS: tuple[str, ...] = (*sorted(name for name, _, _ in _OPERATORS.values()), "Null")


@dataclass(frozen=True, slots=True)
class OperatorName:
    """A condition operator split into its set qualifier, base operator and IfExists suffix."""

    qualifier: Qualifier
    base: str
    if_exists: bool
    negated: bool


@lru_cache(maxsize=512)
def parse_operator(name: str) -> OperatorName:
    """Split ``ForAnyValue:StringNotLikeIfExists`` and friends; raise for an operator IAM does not define."""
    rest = name
    qualifier: Qualifier = None
    lowered = rest.lower()
    if lowered.startswith("forallvalues:"):
        qualifier, rest = "ForAllValues", rest[len("ForAllValues:") :]
    elif lowered.startswith("foranyvalue:"):
        qualifier, rest = "ForAnyValue", rest[len("ForAnyValue:") :]
    if_exists = rest.lower().endswith("ifexists") and rest.lower() != "ifexists"
    base = rest[: -len("IfExists")] if if_exists else rest
    if base.lower() == "null":
        if qualifier is not None or if_exists:
            raise UnknownConditionOperatorError(
                f"condition operator {name!r} is not supported: Null takes neither a set qualifier nor IfExists"
            )
        return OperatorName(None, "Null", False, False)
    known = _OPERATORS.get(base.lower())
    if known is None:
        raise UnknownConditionOperatorError(
            f"unknown condition operator {name!r}: the evaluator cannot judge a statement that uses it "
            f"(known operators: {', '.join(CONDITION_OPERATORS)}, with ...IfExists and ForAllValues:/ForAnyValue:)"
        )
    canonical, _, negated = known
    return OperatorName(qualifier, canonical, if_exists, negated)


def _null_check(key: str, values: tuple[str, ...]) -> ConditionCheck:
    want_absent = tuple(v.lower() == "true" for v in values if v.lower() in ("true", "false"))

    def check(context: Context) -> bool:
        absent = not context.get(key)
        return any(absent == w for w in want_absent)

    return check


def compile_condition(operator: str, key: str, values: tuple[str, ...], *, variables: bool = True) -> ConditionCheck:
    """One ``operator: {key: values}`` entry as a check of a request context. ``key`` must be lowercased."""
    op = parse_operator(operator)
    if op.base == "Null":
        return _null_check(key, values)
    _, factory, _ = _OPERATORS[op.base.lower()]
    match = factory(values, variables)
    negated, if_exists, qualifier = op.negated, op.if_exists, op.qualifier

    def check(context: Context) -> bool:
        got = context.get(key)
        if not got:
            if if_exists or qualifier == "ForAllValues":
                return True
            if qualifier == "ForAnyValue":
                return False
            return negated
        if qualifier is None:
            # A single-valued key (nearly every key) skips the generator: this runs for every request.
            hit = match(got[0], context) if len(got) == 1 else any(match(v, context) for v in got)
            return hit != negated
        if qualifier == "ForAllValues":
            return all(match(v, context) != negated for v in got)
        return any(match(v, context) != negated for v in got)

    return check


def compile_conditions(
    block: Mapping[str, Mapping[str, tuple[str, ...]]], *, variables: bool = True
) -> tuple[ConditionCheck, ...]:
    """Every entry of a Condition block; the statement's conditions hold when all of these do."""
    return tuple(
        compile_condition(operator, key.lower(), values, variables=variables)
        for operator, keys in block.items()
        for key, values in keys.items()
    )


def variable_keys(value: str) -> tuple[str, ...]:
    """The (lowercased) condition keys whose values a policy variable in ``value`` would substitute."""
    if not has_variables(value):
        return ()
    return tuple(seg.key for seg in _template(value) if isinstance(seg, _Var))
