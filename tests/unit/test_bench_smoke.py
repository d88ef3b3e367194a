"""The core micro-benchmark runs and reports its numbers. Only shape is checked, never timing."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bench import core
from bench.__main__ import main as bench_main
from tests.shared import positive


@pytest.fixture(scope="module")
def results() -> dict[str, object]:
    return core.run(quick=True)


def test_bench_core_reports_b5_headline(results: dict[str, object]) -> None:
    headline = results["b5_core_us"]
    assert isinstance(headline, dict)
    assert set(headline) == {
        "render_merge_verify_typical",
        "render_merge_verify_large",
        "render_merge_verify_typical_denies",
    }
    assert all(positive(v) for v in headline.values())


def test_bench_core_covers_every_combination(results: dict[str, object]) -> None:
    cases = results["cases"]
    assert isinstance(cases, list)
    assert sorted((c["cidrs"], c["foreign"]) for c in cases) == [
        (c, f) for c in core.CIDR_COUNTS for f in core.FOREIGN_COUNTS
    ]
    for case in cases:
        assert positive(case["policy_bytes"])
        for stat in ("median_us", "best_us"):
            measured = {op: v for op, v in case[stat].items() if v is not None}
            assert set(measured) >= {"render", "merge", "plan", "render_merge_verify"}
            assert all(positive(v) for v in measured.values())
            assert (case[stat]["verify"] is not None) == results["verify_included"]


def test_bench_core_prints_a_table(capsys: pytest.CaptureFixture[str]) -> None:
    core.run(quick=True)
    out = capsys.readouterr().out
    assert "B5 policy core" in out
    assert "render_merge_verify us" in out


def test_bench_main_writes_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    target = tmp_path / "out" / "results.json"
    assert bench_main(["--quick", "--json", str(target), "core"]) == 0
    written = json.loads(target.read_text())
    assert positive(written["core"]["b5_core_us"]["render_merge_verify_typical"])
    capsys.readouterr()


def test_bench_main_rejects_unknown_benchmark(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        bench_main(["nope"])
    assert exit_info.value.code == 2
    assert "unknown benchmark(s) nope" in capsys.readouterr().err
