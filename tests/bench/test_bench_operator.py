"""Smoke test of benchmarks B3 (drift) and B4 (the operator at scale) in quick mode, on the emulators.

Each runs ``bucketwarden run`` as a process. Only shape is checked (keys exist, numbers are positive, every edit
is undone exactly once), never timing.
"""

from __future__ import annotations

import os
from typing import Any

import pytest

from bench import drift, scale
from tests.shared import positive

# Each quick run starts the operator, moto and the emulated API as processes (about 3 minutes in all on the
# 2-core CI machine), so it runs with `make bench-smoke`, not in `make test`, keeping CI well under 15 minutes.
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("BUCKETWARDEN_BENCH_SMOKE"), reason="operator benchmarks: run with make bench-smoke"
    ),
]


@pytest.fixture(scope="module")
def drift_results() -> dict[str, Any]:
    return drift.run(quick=True)


@pytest.fixture(scope="module")
def scale_results() -> dict[str, Any]:
    return scale.run(quick=True)


def test_bench_b3_reports_latency_percentiles(drift_results: dict[str, Any]) -> None:
    b3 = drift_results["b3_drift_latency_s"]
    assert b3["interval_s"] == drift.QUICK["interval_s"]
    assert b3["samples"] == drift.QUICK["samples"]
    assert all(positive(b3[key]) for key in ("p50", "p95", "max", "mean")), b3
    assert b3["p50"] <= b3["p95"] <= b3["max"]
    assert isinstance(drift_results["goal_met"], bool)


def test_bench_b3_every_edit_is_undone_once(drift_results: dict[str, Any]) -> None:
    samples = drift_results["b3_drift_latency_s"]["samples"]
    assert drift_results["converged_as_expected"]["ok"], drift_results["converged_as_expected"]
    assert drift_results["operator"]["drift_corrections"] == samples
    assert drift_results["operator"]["put_bucket_policy"] == samples
    assert set(drift_results["by_edit_kind"]) == set(drift.EDIT_KINDS)


def test_bench_b4_reports_memory_cpu_and_convergence(scale_results: dict[str, Any]) -> None:
    b4 = scale_results["b4_operator"]
    assert b4["measured_at"] == max(scale.QUICK_SCALES)
    assert positive(b4["baseline_rss_mb"])
    for objects in scale.QUICK_SCALES:
        entry = b4[str(objects)]
        assert all(positive(entry[key]) for key in ("rss_mb", "peak_rss_mb", "cpu_s", "converge_s")), entry
        assert entry["peak_rss_mb"] >= entry["rss_mb"]
    assert all(v is None or isinstance(v, float) for v in b4["mb_per_1000"].values())
    assert set(scale_results["goals"]) == {"rss_peak_at_1000_at_most_150_mb", "rss_peak_at_10000_at_most_400_mb"}


def test_bench_b4_restart_converges_every_object(scale_results: dict[str, Any]) -> None:
    restart = scale_results["restart"]
    assert restart["converged"]
    assert restart["objects"] == scale.QUICK_SCALES[0]
    assert positive(restart["converge_s"])


def test_bench_b4_census_explains_memory_per_object(scale_results: dict[str, Any]) -> None:
    census = scale_results["census"]
    assert census["converged"]
    assert census["objects"] == scale.QUICK_SCALES[0]
    # kopf keeps one memory and one body per object; the resync is one queue, not a kopf timer task (`_runner`) per
    # object (k8s/_scheduler.py). kopf's per-object workers (`worker`) exit once idle, so their count varies.
    assert census["kopf_memories_per_object"] == 1
    assert census["asyncio_tasks_per_object"].get("_runner", 0) == 0
    # kopf keeps a live copy of the body only for timers and daemons: the resync queue's copy is in our index.
    assert census["kopf_body_bytes_per_object"] == census["of_which_status_bytes"] == 0
    assert positive(census["python_heap_bytes_per_object"])
