"""Which existing statements ``adoptSids`` may take over: only those our own statement supersedes. Pure.

Adoption deletes a statement someone else wrote. That is safe only when the statement is an IP/VPC
restriction of the same shape as ours (a Deny for everyone on this bucket, lifted by network keys and,
at most, by principal exemptions), because ours then does the same job. Anything else (a Deny of
DeleteBucket, DenyInsecureTransport, an Allow, a statement about another bucket) is refused by Sid,
with the reason, and nothing is written: a namespace must never be able to strip another team's
safeguard by naming its Sid.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bucketwarden.policy._document import PolicyDocument, Statement
from bucketwarden.spec import AdoptedStatement, Finding

ADOPTION_REFUSED = "AdoptionRefused"
STATEMENT_ADOPTED = "StatementAdopted"

# Condition keys (lower case: IAM folds key names) that only restrict by network origin.
NETWORK_KEYS = frozenset({"aws:sourceip", "aws:sourcevpce", "aws:sourcevpc"})
# Keys that only exempt principals from the Deny.
EXEMPTION_KEYS = frozenset({"aws:userid", "aws:principalarn"})
_IP_OPERATORS = frozenset({"NotIpAddress"})
_STRING_OPERATORS = frozenset({"StringNotEquals", "StringNotLike"})
_ARN_OPERATORS = frozenset({"ArnNotLike", "ArnNotEquals"})
# Which negated operator may carry which key; a non-negated operator would narrow the Deny to a subset of
# callers, which ours (covering everyone outside the allow lists) does not reproduce.
_ALLOWED: dict[str, frozenset[str]] = {
    "aws:sourceip": _IP_OPERATORS,
    "aws:sourcevpce": _STRING_OPERATORS,
    "aws:sourcevpc": _STRING_OPERATORS,
    "aws:userid": _STRING_OPERATORS,
    "aws:principalarn": _ARN_OPERATORS | _STRING_OPERATORS,
}


@dataclass(frozen=True, slots=True)
class AdoptionCheck:
    """The verdict on every statement the spec asks to adopt."""

    adopted: tuple[AdoptedStatement, ...]  # supersedable: replaced by ours when we write
    refused: tuple[Finding, ...]  # Error findings, one per refused statement
    why: tuple[tuple[str, str], ...] = ()  # (Sid, why not), one per refused statement

    @property
    def ok(self) -> bool:
        return not self.refused

    def summary(self) -> str:
        """One line for the Ready condition: which Sids, why, and what to do."""
        parts = "; ".join(f"{sid!r}: {why}" for sid, why in self.why)
        return f"refusing to adopt {parts}. {ADOPTABLE}: remove them from adoptSids; nothing was written"


ADOPTABLE = (
    "Only a Deny for Principal * on this bucket for s3 actions, restricted by aws:SourceIp, aws:SourceVpce or "
    "aws:SourceVpc (with or without principal exemptions), can be adopted"
)


def statement_hash(statement: Statement) -> str:
    """A short hash of a statement's meaning, kept in status so an adopted statement can be recognised later."""
    return "sha256:" + hashlib.sha256(statement.canonical_key().encode()).hexdigest()[:16]


def _base_operator(operator: str) -> str:
    return operator.removesuffix("IfExists")


def supersede_problems(statement: Statement, bucket_arns: Sequence[str]) -> list[str]:
    """Why our statement does not supersede ``statement``; empty when it does."""
    problems: list[str] = []
    if statement.effect != "Deny":
        problems.append(f"its Effect is {statement.effect}, not Deny")
    if statement.not_principal is not None:
        problems.append("it uses NotPrincipal")
    elif statement.principal is None or not (
        statement.principal.wildcard or dict(statement.principal.entries) == {"AWS": ("*",)}
    ):
        problems.append('its Principal is not "*"')
    if statement.not_actions is not None:
        problems.append("it uses NotAction")
    elif statement.actions is not None:
        others = [a for a in statement.actions if not a.lower().startswith("s3:")]
        if others:
            problems.append(f"it names actions outside s3 ({', '.join(others)})")
    if statement.not_resources is not None:
        problems.append("it uses NotResource")
    elif statement.resources is not None:
        others = [r for r in statement.resources if r not in bucket_arns]
        if others:
            problems.append(f"it names resources other than this bucket ({', '.join(others)})")
    problems += _condition_problems(statement)
    return problems


def _condition_problems(statement: Statement) -> list[str]:
    if not statement.conditions:
        return ["it has no condition: it denies every request, which ours does not"]
    problems: list[str] = []
    network = False
    for operator, keys in statement.conditions.items():
        base = _base_operator(operator)
        for key in keys:
            allowed = _ALLOWED.get(key)
            if allowed is None:
                problems.append(f"its condition {operator} {key} restricts by something other than the network")
            elif base not in allowed:
                problems.append(f"its condition uses {operator} on {key}")
            elif key in NETWORK_KEYS:
                network = True
    if not problems and not network:
        problems.append("its conditions name no network key (aws:SourceIp, aws:SourceVpce, aws:SourceVpc)")
    return problems


def check_adoption(
    existing: PolicyDocument | None, adopt_sids: Iterable[str], bucket_arns: Sequence[str]
) -> AdoptionCheck:
    """Judge every existing statement whose Sid is in ``adopt_sids`` (all of them, duplicates included)."""
    wanted = set(adopt_sids)
    if existing is None or not wanted:
        return AdoptionCheck((), ())
    adopted: list[AdoptedStatement] = []
    refused: list[Finding] = []
    why: list[tuple[str, str]] = []
    for stmt in existing.statements:
        if stmt.sid is None or stmt.sid not in wanted:
            continue
        problems = supersede_problems(stmt, bucket_arns)
        if problems:
            why.append((stmt.sid, "; ".join(problems)))
            refused.append(
                Finding(
                    severity="Error",
                    code=ADOPTION_REFUSED,
                    message=(
                        f"adoptSids names {stmt.sid!r}, but bucketwarden's statement does not supersede it: "
                        f"{'; '.join(problems)}. {ADOPTABLE}: remove it from adoptSids; nothing was written"
                    ),
                    sid=stmt.sid,
                )
            )
        else:
            adopted.append(AdoptedStatement(sid=stmt.sid, hash=statement_hash(stmt)))
    return AdoptionCheck(tuple(adopted), tuple(refused), tuple(why))
