"""Plain-text tables for the CLI and the demo, like kubectl's; and the one way a verification is shown."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bucketwarden.policy import ScenarioResult, Verification

VERIFICATION_HEADERS = ("SCENARIO", "EXPECT", "DECISION", "SID", "RESULT")


def format_table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    cells = [[str(h) for h in headers], *[["" if c is None else str(c) for c in row] for row in rows]]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    return "\n".join("   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() for r in cells)


def verification_table(verification: Verification) -> str:
    """Every scenario of a verification, one row each (verify, the demo)."""
    rows = [
        (
            r.scenario.name,
            r.scenario.expect,
            r.evaluation.decision,
            r.evaluation.sid or "-",
            "ok" if r.passed else "FAIL",
        )
        for r in verification.results
    ]
    return format_table(VERIFICATION_HEADERS, rows)


def failure_line(result: ScenarioResult) -> str:
    """One failed scenario in a sentence (conditions, bootstrap): what was expected, what came, for which request."""
    who = result.evaluation.label or "no statement"
    request = result.scenario.request
    return (
        f"{result.scenario.name}: expected {result.scenario.expect}, got {result.evaluation.decision} ({who}) "
        f"for {request.action} on {request.resource}"
    )


def _passed(result: ScenarioResult) -> str:
    return "ok" if result.passed else "FAIL"
