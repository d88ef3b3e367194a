"""B9's arithmetic, without running it: the rate per window and its flatness from the first minute to the last."""

from __future__ import annotations

from bench import burst


def test_bench_burst_flatness_compares_the_first_and_the_last_minute_of_the_drain() -> None:
    series = [[10.0 * (i + 1), float(rate)] for i, rate in enumerate([30, 60, 60, 60, 60, 60, 90, 90, 90, 90, 90, 90])]
    assert burst.flatness(series, drained_s=120.0) == {"first_minute": 55.0, "last_minute": 90.0, "ratio": 1.64}
    # A drain of 110 s: the two minutes overlap in one window; windows after the drain are not counted.
    assert burst.flatness(series, drained_s=110.0) == {"first_minute": 55.0, "last_minute": 85.0, "ratio": 1.55}
    assert burst.flatness(series, drained_s=60.0)["ratio"] is None  # a minute or less: nothing to compare
