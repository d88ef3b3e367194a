"""Smoke test of B4 steady state and B3 with the drift queue, in quick mode (shape only, never timing).

Each starts ``bucketwarden run``, moto and the emulated API as processes: run with ``make bench-smoke``.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench import drift_queue, steady
from tests.shared import positive

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("BUCKETWARDEN_BENCH_SMOKE"), reason="operator benchmarks: run with make bench-smoke"
    ),
]


@pytest.fixture(scope="module")
def steady_results() -> dict[str, Any]:
    return steady.run(quick=True)


def test_bench_steady_reports_cost_per_tick_at_each_scale(steady_results: dict[str, Any]) -> None:
    summary = steady_results["b4_steady_state"]
    assert [r["objects"] for r in summary["rows"]] == list(steady.QUICK_SCALES)
    for row in summary["rows"]:
        assert all(positive(row[k]) for k in ("ticks", "cpu_ms_per_tick", "effective_interval_s", "rss_mb")), row
        assert row["get_bucket_policy"] >= row["ticks"] - row["drift"]["edits"] * 2
        assert row["drift"]["restored"] == row["drift"]["edits"]
    assert positive(summary["tick_ratio_largest_vs_smallest"])
    assert set(summary["goals"]) == {"core_share_at_largest_at_most_60pct", "tick_ratio_at_most_1_3", "largest_held"}


def test_bench_drift_queue_restores_every_edit() -> None:
    row = drift_queue.run(quick=True)["b3_drift_queue"]
    assert row["restored"] == row["edits"] == drift_queue.QUICK["edits"]
    assert row["p50_s"] <= row["p95_s"] <= row["max_s"]
