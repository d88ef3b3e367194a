"""Smoke test of benchmarks B1 and B2 on 20 buckets: the keys exist, numbers are positive, call counts are exact.

Never asserts on timing. Cloud Custodian runs only if its venv (.bench-venv/c7n) already exists.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bench import custodian
from bench.__main__ import main as bench_main
from bench.convergence import QUICK_BUCKETS, run
from bench.workload import GROUPS
from tests.shared import positive

pytestmark = pytest.mark.slow

DISTINCT_ROLES = len({role for group in GROUPS for role in group})


@pytest.fixture(scope="module")
def results() -> dict[str, Any]:
    return run(quick=True)


def test_bench_b1_reports_timings_and_ratios(results: dict[str, Any]) -> None:
    b1 = results["b1_first_convergence"]
    assert b1["buckets"] == QUICK_BUCKETS
    for key in ("bucketwarden_s", "floor_s", "ratio_vs_floor"):
        assert positive(b1[key]), key
    if custodian.available():
        assert positive(b1["custodian_s"])
        assert positive(b1["speedup_vs_custodian"])
    else:
        assert b1["custodian_s"] is None
        assert b1["speedup_vs_custodian"] is None


def test_bench_b1_calls_per_bucket_are_exact(results: dict[str, Any]) -> None:
    b1 = results["b1_first_convergence"]
    assert b1["calls_per_bucket"] == {"GetBucketPolicy": 1.0, "PutBucketPolicy": 1.0, "DeleteBucketPolicy": 0.0}
    # Single-flight role cache: one iam:GetRole per distinct role, however many buckets ask at once.
    assert b1["iam_get_role_total"] == DISTINCT_ROLES
    assert b1["outcomes"] == {"Updated": QUICK_BUCKETS}


def test_bench_b1_every_tool_converges_correctly(results: dict[str, Any]) -> None:
    checks = results["b1_first_convergence"]["checks"]
    expected_tools = {"floor", "bucketwarden", "bucketwarden_b2"} | (
        {"custodian_tuned"} if custodian.available() else set()
    )
    assert set(checks) == expected_tools
    assert all(check["ok"] and check["duplicate_sids"] == 0 for check in checks.values()), checks
    assert results["goals"]["b1_converged_correctly"]


def test_bench_b2_steady_state_reads_once_and_writes_nothing(results: dict[str, Any]) -> None:
    b2 = results["b2_steady_state"]
    assert b2["buckets"] == QUICK_BUCKETS
    assert b2["get_per_bucket"] == 1
    assert b2["writes"] == 0
    # The second pass runs seconds after the first, well within the 300 s TTL: every RoleId is cached.
    assert b2["iam_calls"] == 0
    assert b2["outcomes"] == {"InSync": QUICK_BUCKETS}


def test_bench_main_writes_headline_keys(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "results.json"
    assert bench_main(["--quick", "--json", str(target), "--no-custodian", "--buckets", "6", "convergence"]) == 0
    written = json.loads(target.read_text())
    assert {"machine", "b1_first_convergence", "b2_steady_state", "convergence"} <= set(written)
    assert positive(written["machine"]["cores"])
    assert written["b1_first_convergence"]["buckets"] == 6
    assert written["b2_steady_state"]["writes"] == 0
    assert "B1 first convergence" in capsys.readouterr().out
