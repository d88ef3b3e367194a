"""B4 steady state: what the operator costs once every bucket is in sync, at the 60 s resync, as objects grow.

One ``bucketwarden run`` process on moto and the emulated API (each its own process). ProtectedBuckets are created
up to each scale (1,000, 5,000, 10,000 by default), the run waits until every status is Ready and the process has
settled, and then measures a steady-state window (3 minutes by default): the operator's CPU (utime+stime from
/proc), the resync ticks it ran (the increase of ``bucketwarden_reconciles_total``), the GetBucketPolicy calls, RSS,
and the log lines it wrote. During the window a few buckets lose their policy out of band (DeleteBucketPolicy, at
random times); each is polled every second until our statement is back: the drift latency at that scale.

Derived: CPU per tick (ms), the effective interval (objects x window / ticks), the share of one core, and the
per-tick ratio between the largest and smallest scale (goal: within 1.3x). A scale is "held" when the effective
interval stays within 5 % of the resync and drift p95 within resync + 2 s.
Run: ``python -m bench.steady [--quick] [--scales 1000,5000,10000] [--window 180] [--long-window 660] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import tempfile
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import _report
from bench._operator import (
    OperatorProcess,
    count_ready,
    create_buckets,
    create_objects,
    create_roles,
    load_average,
)
from bench.drift import percentile
from bench.workload import NAMESPACE, admin_s3, bucket_name
from bucketwarden.spec import DEFAULT_STATEMENT_SID
from bucketwarden_testkit import KubeClient, KubeEmulator, MotoServer, grant_namespaces

FULL_SCALES = (1000, 5000, 10000)
QUICK_SCALES = (20, 60)
RESYNC_S = 60.0
QUICK_RESYNC_S = 5.0
FULL_WINDOW_S = 180.0
QUICK_WINDOW_S = 12.0
DRIFT_EDITS = 20
QUICK_DRIFT_EDITS = 3
POLL_S = 1.0
GOAL_CORE_SHARE = 0.60
GOAL_TICK_RATIO = 1.3
GOAL_DRIFT_SLACK_S = 2.0
HELD_INTERVAL_SLACK = 1.05
OUR_SID = DEFAULT_STATEMENT_SID
RECONCILES = re.compile(r'^bucketwarden_reconciles_total\{result="[A-Za-z]+"\} ([0-9.e+]+)$', re.M)
PATHS = re.compile(r'^bucketwarden_resync_ticks_total\{path="([a-z]+)"\} ([0-9.e+]+)$', re.M)
LAG = re.compile(r"^bucketwarden_resync_lag_seconds ([0-9.e+-]+)$", re.M)
GETS = re.compile(r'^bucketwarden_aws_calls_total\{api="GetBucketPolicy",outcome="ok"\} ([0-9.e+]+)$', re.M)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _sum(pattern: re.Pattern[str], text: str | None) -> float:
    return sum(float(m) for m in pattern.findall(text or ""))


def _paths(text: str | None) -> dict[str, float]:
    return {path: float(count) for path, count in PATHS.findall(text or "")}


def wait_api_ready(client: KubeClient, objects: int, timeout_s: float) -> float:
    """Seconds until the API itself shows every object Ready: kopf writes status after our metric moved, and
    under load its patches trail the reconciles by minutes; a window opened before they land measures them."""
    began = time.monotonic()
    while True:
        total, ready = count_ready(client)
        if total >= objects and ready >= objects:
            return time.monotonic() - began
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"the API shows {ready} of {objects} Ready after {timeout_s:.0f} s")
        time.sleep(5.0)


def wait_converged(operator: OperatorProcess, client: KubeClient, objects: int, timeout_s: float) -> float:
    """Seconds until the operator's metric says every object is Ready (then the process is let settle)."""
    began = time.monotonic()
    while operator.ready_count() < objects:
        operator.check_alive()
        if time.monotonic() - began > timeout_s:
            raise TimeoutError(f"{operator.ready_count()} of {objects} Ready after {timeout_s:.0f} s")
        time.sleep(1.0)
    return time.monotonic() - began


@dataclass
class DriftProbe:
    """Out-of-band deletes of a few bucket policies at random times in the window; seconds until each is back."""

    moto: MotoServer
    indices: Sequence[int]
    window_s: float
    seed: int = 13

    def run(self) -> list[float]:
        s3 = admin_s3(self.moto)
        rng = random.Random(self.seed)
        # Edits land in the first 60 % of the window, so each has at least 40 % of it (and a resync) to come back.
        schedule = sorted((rng.uniform(0, 0.6 * self.window_s), i) for i in self.indices)
        start = time.monotonic()
        pending: dict[int, float] = {}
        latencies: list[float] = []
        deadline = start + self.window_s + 2 * RESYNC_S
        while (schedule or pending) and time.monotonic() < deadline:
            now = time.monotonic()
            while schedule and start + schedule[0][0] <= now:
                _, index = schedule.pop(0)
                s3.delete_bucket_policy(Bucket=bucket_name(index))
                pending[index] = time.monotonic()
            for index, edited in list(pending.items()):
                try:
                    text = s3.get_bucket_policy(Bucket=bucket_name(index))["Policy"]
                except s3.exceptions.ClientError:
                    continue
                if OUR_SID in text:
                    latencies.append(time.monotonic() - edited)
                    del pending[index]
            time.sleep(POLL_S)
        return latencies


def measure_window(
    operator: OperatorProcess, moto: MotoServer, objects: int, window_s: float, resync_s: float, edits: int
) -> dict[str, Any]:
    """Sample the operator over ``window_s`` of steady state while the drift probe runs."""
    rng = random.Random(objects)
    probe = DriftProbe(moto, rng.sample(range(objects), min(edits, objects)), window_s)
    latencies: list[float] = []
    prober = threading.Thread(target=lambda: latencies.extend(probe.run()), name="bench-drift", daemon=True)
    lines_before = len(operator.log_lines())
    load_before = load_average()
    text = operator.metrics_text()
    ticks0, gets0, paths0 = _sum(RECONCILES, text), _sum(GETS, text), _paths(text)
    before = operator.sample()
    prober.start()
    time.sleep(window_s)
    after = operator.sample()
    text = operator.metrics_text()
    ticks1, gets1, paths1 = _sum(RECONCILES, text), _sum(GETS, text), _paths(text)
    lag = LAG.findall(text or "")
    log = operator.log_lines()[lines_before:]
    prober.join()
    ticks = ticks1 - ticks0
    cpu = after.cpu_s - before.cpu_s
    elapsed = after.at_s - before.at_s
    info = sum(1 for line in log if '"severity": "info"' in line or '"levelname": "INFO"' in line)
    drift = {
        "edits": len(probe.indices),
        "restored": len(latencies),
        "p50_s": round(percentile(latencies, 0.5), 1) if latencies else None,
        "p95_s": round(percentile(latencies, 0.95), 1) if latencies else None,
        "max_s": round(max(latencies), 1) if latencies else None,
    }
    effective = objects * elapsed / ticks if ticks else None
    return {
        "objects": objects,
        "window_s": round(elapsed, 1),
        "ticks": int(ticks),
        "get_bucket_policy": int(gets1 - gets0),
        "quiet_ticks": int(paths1.get("quiet", 0) - paths0.get("quiet", 0)),
        "full_ticks": int(paths1.get("full", 0) - paths0.get("full", 0)),
        "queue_lag_s": round(float(lag[0]), 1) if lag else None,
        "cpu_s": round(cpu, 2),
        "core_share": round(cpu / elapsed, 3),
        "cpu_ms_per_tick": round(cpu / ticks * 1000, 2) if ticks else None,
        "effective_interval_s": round(effective, 1) if effective else None,
        "rss_mb": round(after.rss_mb, 1),
        "peak_rss_mb": round(after.peak_rss_mb, 1),
        "log_lines_per_hour": round(len(log) * 3600 / elapsed),
        "info_lines_per_hour": round(info * 3600 / elapsed),
        "drift": drift,
        "held": bool(
            effective is not None
            and effective <= resync_s * HELD_INTERVAL_SLACK
            and drift["p95_s"] is not None
            and drift["p95_s"] <= resync_s + GOAL_DRIFT_SLACK_S
            and drift["restored"] == drift["edits"]
        ),
        "load_average": {"start": load_before, "end": load_average()},
    }


def measure(
    scales: Sequence[int],
    *,
    window_s: float,
    resync_s: float,
    edits: int,
    extra_env: Mapping[str, str] | None = None,
    command: Sequence[str] | None = None,
    long_window_s: float = 0.0,
) -> list[dict[str, Any]]:
    """One row per scale; with ``long_window_s`` a last row (``"long": True``) measures the largest scale again over
    that long a window, long enough to include every object's lastSyncTime refresh (600 s by default)."""
    # A whole number of intervals: every object then ticks the same number of times in the window whatever its
    # phase (objects created in one burst share a phase, and a window of 2.5 intervals would count them 2 or 3 times).
    window_s = max(1, round(window_s / resync_s)) * resync_s
    rows: list[dict[str, Any]] = []
    with MotoServer() as moto, KubeEmulator() as kube, tempfile.TemporaryDirectory(prefix="bench-steady-") as tmp:
        began = time.monotonic()
        create_roles(moto)
        create_buckets(moto, range(max(scales)))
        _log(f"steady: {max(scales)} buckets created in {time.monotonic() - began:.1f} s")
        with (
            kube.client() as client,
            OperatorProcess(
                moto, kube, Path(tmp), resync_interval_s=resync_s, extra_env=extra_env, command=command
            ) as operator,
        ):
            client.create_namespace(NAMESPACE)
            grant_namespaces(client)
            created = 0
            for scale in scales:
                began = time.monotonic()
                create_objects(client, range(created, scale))
                created = scale
                converge_s = wait_converged(operator, client, scale, timeout_s=max(600.0, scale * 0.12))
                api_s = wait_api_ready(client, scale, timeout_s=max(600.0, scale * 0.12))
                # The create's reconcile wrote; the first resync after it reconciles fully (and may write status once)
                # and remembers the steady state; only the ticks after that are steady state: wait out one round
                # after the API shows every status, and a second for kopf's last patches to drain.
                time.sleep(resync_s * 2.2 + 2.0)
                _log(f"  {scale}: the API showed every status Ready {api_s:.0f} s after our metric did")
                _log(f"  {scale}: Ready {converge_s:.0f} s after the creates began; measuring {window_s:.0f} s")
                row = measure_window(operator, moto, scale, window_s, resync_s, edits)
                row["converge_s"] = round(time.monotonic() - began - row["window_s"], 1)
                _log(f"  {scale}: {row}")
                rows.append(row)
            if long_window_s:
                long_s = max(1, round(long_window_s / resync_s)) * resync_s
                _log(f"  {created}: measuring a long window of {long_s:.0f} s")
                row = measure_window(operator, moto, created, long_s, resync_s, edits)
                row["long"] = True
                _log(f"  {created} (long): {row}")
                rows.append(row)
    return rows


def summarise(all_rows: Sequence[dict[str, Any]], resync_s: float) -> dict[str, Any]:
    rows = [r for r in all_rows if not r.get("long")]
    ticks = [r["cpu_ms_per_tick"] for r in rows if r["cpu_ms_per_tick"]]
    largest = rows[-1] if rows else None
    return {
        "resync_s": resync_s,
        "rows": list(rows),
        "long_run": next((r for r in all_rows if r.get("long")), None),
        "largest_held": max((r["objects"] for r in rows if r["held"]), default=0),
        "tick_ratio_largest_vs_smallest": round(ticks[-1] / ticks[0], 2) if len(ticks) >= 2 else None,
        "goals": {
            "core_share_at_largest_at_most_60pct": bool(largest and largest["core_share"] <= GOAL_CORE_SHARE),
            "tick_ratio_at_most_1_3": bool(len(ticks) >= 2 and ticks[-1] / ticks[0] <= GOAL_TICK_RATIO),
            "largest_held": bool(largest and largest["held"]),
        },
    }


def print_table(summary: Mapping[str, Any], *, quick: bool) -> None:
    note = ", quick mode: not a measurement" if quick else ""
    rows = [
        [
            f"{r['objects']} ({r['window_s']:.0f} s)" if r.get("long") else r["objects"],
            r["ticks"],
            r["cpu_ms_per_tick"],
            f"{r['core_share'] * 100:.0f}%",
            r["effective_interval_s"],
            r["drift"]["p95_s"],
            r["drift"]["max_s"],
            r["rss_mb"],
            r["log_lines_per_hour"],
            r["info_lines_per_hour"],
            "yes" if r["held"] else "no",
        ]
        for r in [*summary["rows"], *([summary["long_run"]] if summary.get("long_run") else [])]
    ]
    _report.print_table(
        [
            "objects",
            "ticks",
            "CPU ms/tick",
            "of a core",
            "effective interval s",
            "drift p95 s",
            "drift max s",
            "RSS MB",
            "log lines/h",
            "INFO lines/h",
            "held",
        ],
        rows,
        title=f"B4 steady state: resync {summary['resync_s']:g} s{note}",
    )
    print(
        f"largest held: {summary['largest_held']}; per-tick CPU ratio largest/smallest: "
        f"{summary['tick_ratio_largest_vs_smallest']}"
    )
    for name, met in summary["goals"].items():
        print(f"goal {name}: {'yes' if met else 'NO'}")


def run(
    quick: bool,
    *,
    scales: Sequence[int] | None = None,
    window_s: float | None = None,
    long_window_s: float = 0.0,
) -> dict[str, Any]:
    resync_s = QUICK_RESYNC_S if quick else RESYNC_S
    chosen = tuple(scales or (QUICK_SCALES if quick else FULL_SCALES))
    window = window_s or (QUICK_WINDOW_S if quick else FULL_WINDOW_S)
    edits = QUICK_DRIFT_EDITS if quick else DRIFT_EDITS
    rows = measure(chosen, window_s=window, resync_s=resync_s, edits=edits, long_window_s=long_window_s)
    summary = summarise(rows, resync_s)
    print_table(summary, quick=quick)
    return {"benchmark": "steady", "quick": quick, "b4_steady_state": summary}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.steady", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 and 60 objects at a 5 s resync: checks it runs")
    parser.add_argument("--scales", type=lambda t: [int(n) for n in t.split(",")], help="e.g. 1000,5000,10000")
    parser.add_argument(
        "--window", type=float, help="seconds of steady state per scale, rounded to whole intervals (default 180)"
    )
    parser.add_argument(
        "--long-window",
        type=float,
        default=0.0,
        help="then measure the largest scale again over this many seconds (660 covers every lastSyncTime refresh)",
    )
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.quick, scales=args.scales, window_s=args.window, long_window_s=args.long_window)
    if args.json:
        _report.write_json(args.json, {"steady": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
