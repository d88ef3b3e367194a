"""Smoke test of B8 (restart), B9 (burst) and B10 (failover) in quick mode: shape and counts, never timing.

Each starts ``bucketwarden run`` (two of them for B10), moto and the emulated API as processes: run with
``make bench-smoke``.
"""

from __future__ import annotations

import os

import pytest

from bench import burst, failover, restart
from tests.shared import positive

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        not os.environ.get("BUCKETWARDEN_BENCH_SMOKE"), reason="operator benchmarks: run with make bench-smoke"
    ),
]


def test_bench_restart_checks_every_object_quietly_and_writes_nothing() -> None:
    row = restart.run(quick=True)["b8_restart"]
    assert row["quiet_ticks"] + row["full_ticks"] >= row["objects"] == restart.QUICK_OBJECTS
    assert row["full_ticks"] == 0
    assert row["kube_writes"].get("status_patch", 0) == row["kube_writes"].get("object_patch", 0) == 0
    assert row["aws_calls"]["GetBucketPolicy"] >= row["objects"]
    assert "PutBucketPolicy" not in row["aws_calls"]
    assert positive(row["all_ticked_s"]) and positive(row["cpu_s"])


def test_bench_burst_makes_one_status_and_one_object_write_per_object_with_and_without_reconcile_processes() -> None:
    result = burst.run(quick=True)
    for key, processes in (("b9_burst", 0), ("b9_burst_processes", burst.RECONCILE_PROCESSES)):
        row = result[key]
        assert row["objects"] == burst.QUICK_OBJECTS
        assert row["reconcile_processes"] == processes
        assert row["per_object"]["status_patch"] == 1.0
        # the finalizer; kopf's record of the handled spec rides in the status patch (k8s/_bookkeeping.py)
        assert row["per_object"]["object_patch"] == 1.0
        assert row["per_object"]["events"] == 1.0
        # the children's PUTs are counted in the operator's metrics too
        assert row["aws_calls"]["PutBucketPolicy"] == row["objects"]
        assert positive(row["all_ready_api_s"])


def test_bench_failover_new_leader_checks_every_object_and_writes_nothing() -> None:
    row = failover.run(quick=True)["b10_failover"]
    assert row["quiet_ticks"] >= row["objects"] == failover.QUICK_OBJECTS
    assert row["kube_writes"].get("status_patch", 0) == row["kube_writes"].get("object_patch", 0) == 0
    assert row["kube_writes"].get("lease", 0) > 0  # the new leader renews its Lease
    assert row["lease_taken_s"] <= row["all_ticked_s"]
