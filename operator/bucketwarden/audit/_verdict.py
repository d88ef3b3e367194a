"""The one place that turns the verifier's answer into the audit's three-valued verdict.

The verifier today reports pass/fail per scenario (``Verification.results``); an "unknown" shows up as an
exception the caller turns into ``None`` here. When ``Verification.verdict`` / ``.counterexample`` exist,
re-point this function at them; nothing else in the audit looks inside a Verification.
"""

from __future__ import annotations

from bucketwarden.audit._model import Verdict
from bucketwarden.policy import ScenarioResult, Verification


def _describe(result: ScenarioResult) -> str:
    request = result.scenario.request
    who = (request.get("aws:userid") or ("?",))[0]
    source = (request.get("aws:SourceIp") or ("no aws:SourceIp",))[0]
    by = result.evaluation.label or "no statement"
    return f"{request.action} on {request.resource} as {who} from {source}: {result.evaluation.decision} by {by}"


def verdict_for(verification: Verification | None, kind: str) -> tuple[Verdict, str | None]:
    """Pass, Fail (with a counterexample request) or Unknown for the scenarios of one kind ("role", "operator").

    ``verification`` is None when the policy could not be judged (unreadable, unknown condition operator).
    """
    if verification is None:
        return Verdict.UNKNOWN, None
    results = [r for r in verification.results if r.scenario.kind == kind]
    if not results:
        return Verdict.UNKNOWN, None
    failed = [r for r in results if not r.passed]
    if failed:
        return Verdict.FAIL, _describe(failed[0])
    return Verdict.PASS, None
