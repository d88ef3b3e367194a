"""What verification returns: scenarios and their results, counterexamples, unknowns and the verdict per promise."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from bucketwarden.policy._callers import Caller, Promise
from bucketwarden.policy._evaluate import Evaluation, Request
from bucketwarden.spec import Finding

Expectation = Literal["denied", "not denied"]
ScenarioKind = Literal["inside", "outside", "role", "operator", "vpc"]
Verdict = Literal["Pass", "Fail", "Unknown"]
# The promises judged apart: the allowed networks (concrete requests), AWS Backup's backups, its restores into the
# bucket, and the operator's own calls. Each gets its own verdict and counterexamples.
PromiseName = Literal["network", "backup", "restore", "operator"]
PROMISES: tuple[PromiseName, ...] = ("network", "backup", "restore", "operator")

FOREIGN_DENY_BLOCKS_EXEMPT_ROLE = "ForeignDenyBlocksExemptRole"
FOREIGN_DENY_BLOCKS_OPERATOR = "ForeignDenyBlocksOperator"
VERIFICATION_INCONCLUSIVE = "VerificationInconclusive"
FOREIGN_DENY_STRICTER = "ForeignDenyStricter"

# What a foreign Deny that blocks a promise breaks, per promise.
_CONSEQUENCES: dict[str, str] = {
    "operator": "the operator cannot read or fix the bucket policy (only the account root can)",
    "backup": "AWS Backup backup jobs that use this role fail with AccessDenied",
    "restore": "AWS Backup restores into this bucket that use this role fail with AccessDenied (backups are judged "
    "apart)",
}


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

    @property
    def promise(self) -> PromiseName:
        return self.caller.promise if self.caller is not None else "network"


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
    promise: Promise = "backup"

    @property
    def request(self) -> Request:
        return Request(self.action, self.resource, dict(self.context))

    def describe(self) -> str:
        keys = ("aws:sourceip", "aws:userid", "aws:principalarn", "aws:securetransport", "aws:currenttime")
        shown = ", ".join(f"{k}={','.join(self.context[k])}" for k in keys if k in self.context)
        why = f", an action of {self.source}" if self.source else ""
        return f"{self.action} on {self.resource} by {self.principal}{why} ({shown}) is denied by {self.label}"

    def finding(self) -> Finding:
        """The Error a foreign Deny is reported as (our own statement's failures block the write instead)."""
        code = FOREIGN_DENY_BLOCKS_OPERATOR if self.promise == "operator" else FOREIGN_DENY_BLOCKS_EXEMPT_ROLE
        return Finding(severity="Error", code=code, message=self._blocked_message(), sid=self.label)

    def _blocked_message(self) -> str:
        consequence = _CONSEQUENCES[self.promise]
        if self.sid is not None:
            advice = (
                f"list {self.sid!r} in spec.adoptSids so bucketwarden replaces it with its own statement, which "
                "exempts this principal, or add the exemption to it by hand"
            )
        else:
            advice = (
                "it has no Sid, so adoptSids cannot name it: give it a Sid and list that in spec.adoptSids, "
                "or add the exemption to it by hand"
            )
        return (
            f"Deny statement {self.label} is not bucketwarden's and denies {self.principal} ({self.describe()}): "
            f"{consequence}; {advice}"
        )


@dataclass(frozen=True, slots=True)
class Inconclusive:
    """A Deny statement whose outcome for a caller hangs on facts bucketwarden cannot know."""

    principal: str
    label: str
    sid: str | None
    keys: tuple[str, ...]  # condition keys, or a policy variable as ${key}, or what an assumption stands for
    action: str
    resource: str
    promise: Promise = "backup"

    def describe(self) -> str:
        return (
            f"Deny statement {self.label} may deny {self.action} on {self.resource} by {self.principal} "
            f"({self.promise}): it depends on {', '.join(self.keys)}, which bucketwarden cannot know; state the "
            "facts (spec.verificationContext: organizationId, organizationPaths, principalTags, awsSourceRanges; "
            "--role-arn, --aws-ip-ranges offline) or check this statement by hand"
        )

    def finding(self) -> Finding:
        return Finding(severity="Warning", code=VERIFICATION_INCONCLUSIVE, message=self.describe(), sid=self.label)


@dataclass(frozen=True, slots=True)
class Verification:
    results: list[ScenarioResult]
    findings: list[Finding]
    counterexamples: list[Counterexample] = field(default_factory=list)
    unknowns: list[Inconclusive] = field(default_factory=list)
    promises: tuple[PromiseName, ...] = ("network",)  # the promises this verification judged

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
        know, but a Deny hangs on a fact it cannot know (see unknowns); Pass: every promise holds."""
        if not self.ok:
            return "Fail"
        return "Unknown" if self.unknowns else "Pass"

    def verdict_for(self, promise: PromiseName) -> Verdict:
        """The verdict of one promise alone: a Deny that blocks only restores leaves backups' verdict Pass."""
        if any(not r.passed and r.scenario.promise == promise for r in self.results):
            return "Fail"
        return "Unknown" if any(u.promise == promise for u in self.unknowns) else "Pass"

    @property
    def verdicts(self) -> dict[PromiseName, Verdict]:
        return {p: self.verdict_for(p) for p in self.promises}

    @property
    def unknown_keys(self) -> list[str]:
        return list(dict.fromkeys(k for u in self.unknowns for k in u.keys))
