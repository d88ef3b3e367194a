"""Smoke test of benchmark B7 (audit) on 20 buckets: keys exist, numbers are positive, call counts are exact.

Never asserts on timing.
"""

from __future__ import annotations

from typing import Any

import pytest

from bench.audit import QUICK_BUCKETS, run
from tests.shared import positive

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def b7() -> dict[str, Any]:
    result: dict[str, Any] = run(quick=True)["b7_audit"]
    return result


def test_bench_audit_reports_timings_and_the_ratio(b7: dict[str, Any]) -> None:
    assert b7["buckets"] == QUICK_BUCKETS
    for key in ("floor_s", "bucketwarden_s", "ratio_vs_floor", "buckets_per_s", "peak_python_memory_kib"):
        assert positive(b7[key]), key


def test_bench_audit_makes_the_floors_calls_and_no_more(b7: dict[str, Any]) -> None:
    n = QUICK_BUCKETS
    assert b7["calls"] == {
        "ListBuckets": 1,
        "GetBucketLocation": n,
        "GetBucketPolicy": n,
        "GetBucketVersioning": n,
        "GetRole": 1,
        "GetCallerIdentity": 1,
    }
    # A quarter of the seeded buckets carry an IP Deny that blocks AWS Backup.
    assert b7["statuses"]["BlocksBackup"] == b7["seeded"]["ip-deny"]
    assert sum(b7["statuses"].values()) == n
