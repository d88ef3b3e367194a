"""The one place that turns the verifier's answer into the audit's three-valued verdict.

The verifier's verdict is whole-policy; the audit asks it per promise ("backup" and "restore": AWS Backup's roles
under each managed policy, "operator"), so this picks the scenarios, counterexamples and inconclusive Denies of
that promise.
A policy the verifier could not judge at all (unreadable, unknown operator) arrives as ``None``: Unknown.
"""

from __future__ import annotations

from bucketwarden.audit._model import Verdict
from bucketwarden.policy import PromiseName, ScenarioResult, Verification


def _describe(result: ScenarioResult) -> str:
    request = result.scenario.request
    who = (request.get("aws:userid") or ("?",))[0]
    source = (request.get("aws:SourceIp") or ("no aws:SourceIp",))[0]
    by = result.evaluation.label or "no statement"
    return f"{request.action} on {request.resource} as {who} from {source}: {result.evaluation.decision} by {by}"


def verdict_for(verification: Verification | None, promise: PromiseName) -> tuple[Verdict, str | None]:
    """Pass, Fail (with a counterexample request) or Unknown for one promise ("backup", "restore", "operator").

    ``verification`` is None when the policy could not be judged (unreadable, unknown condition operator).
    """
    if verification is None or promise not in verification.promises:
        return Verdict.UNKNOWN, None
    failed = [r for r in verification.results if r.scenario.promise == promise and not r.passed]
    if failed:
        example = next((c for c in verification.counterexamples if c.promise == promise), None)
        return Verdict.FAIL, example.describe() if example is not None else _describe(failed[0])
    unknown = next((u for u in verification.unknowns if u.promise == promise), None)
    if unknown is not None:
        return Verdict.UNKNOWN, unknown.describe()
    return Verdict.PASS, None
