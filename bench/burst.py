"""B9 burst: N ProtectedBuckets created at once against an idle operator, as one Argo CD sync of a large account.

Measured from outside: seconds from the first create until the operator's Ready gauge reaches N and until the API
shows every status Ready; reconciles per second in 10 s windows (from ``bucketwarden_reconciles_total``), and
whether that rate stays flat from the first minute to the last (goal: within 25 %); the operator's CPU; the
Kubernetes writes per object (object patches, status patches, Events, from the emulator's request log); the
resync queue's depth and oldest age while the burst drains. Goal (issue 22): all Ready within 3 minutes at 10,000
on one replica, at most one status write per object.
Measured twice: with the defaults (reconciles in the operator's process) and with ``RECONCILE_PROCESSES`` child
processes running them (``BUCKETWARDEN_RECONCILE_PROCESSES``, the setting docs/benchmarks.md "Sizing" gives for
10,000); CPU and peak RSS include the children.
Run: ``python -m bench.burst [--quick] [--objects 10000] [--json FILE]``.
"""

from __future__ import annotations

import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import _fleet, _report
from bench._operator import (
    OperatorProcess,
    create_buckets,
    create_objects,
    create_roles,
    load_average,
    ready_in,
    wait_machine_quiet,
)
from bench.steady import wait_api_ready
from bench.workload import NAMESPACE
from bucketwarden_testkit import KubeEmulator, MotoServer, grant_namespaces

FULL_OBJECTS = 10_000
QUICK_OBJECTS = 60
RESYNC_S = 60.0
WINDOW_S = 10.0
GOAL_S = 180.0
GOAL_FLATNESS = 0.25
RECONCILE_PROCESSES = 2


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def rate_series(samples: list[tuple[float, float]]) -> list[list[float]]:
    """[seconds, reconciles per second] per window, from (seconds, cumulative reconciles) samples."""
    out: list[list[float]] = []
    start = 0
    for i in range(1, len(samples)):
        if samples[i][0] - samples[start][0] >= WINDOW_S:
            span = samples[i][0] - samples[start][0]
            out.append([round(samples[i][0], 1), round((samples[i][1] - samples[start][1]) / span, 1)])
            start = i
    return out


def flatness(series: list[list[float]], drained_s: float) -> dict[str, Any]:
    """Mean rate in the first and the last minute of the drain (windows that end before everything is Ready).

    A drain shorter than two minutes has a first and a last minute that overlap; one shorter than a minute and a
    window has none to compare (None)."""
    busy = [rate for at, rate in series if at <= drained_s]
    per_minute = max(1, round(60.0 / WINDOW_S))
    if len(busy) <= per_minute:
        return {"first_minute": None, "last_minute": None, "ratio": None}
    first = sum(busy[:per_minute]) / per_minute
    last = sum(busy[-per_minute:]) / per_minute
    return {"first_minute": round(first, 1), "last_minute": round(last, 1), "ratio": round(last / first, 2)}


def measure(objects: int, *, resync_s: float = RESYNC_S, processes: int = 0) -> dict[str, Any]:
    with MotoServer() as moto, KubeEmulator() as kube, tempfile.TemporaryDirectory(prefix="bench-burst-") as tmp:
        create_roles(moto)
        create_buckets(moto, range(objects))
        settings = {"BUCKETWARDEN_RECONCILE_PROCESSES": str(processes)}
        with (
            kube.client() as client,
            OperatorProcess(moto, kube, Path(tmp), resync_interval_s=resync_s, extra_env=settings) as operator,
        ):
            client.create_namespace(NAMESPACE)
            grant_namespaces(client)
            operator.wait_idle(window=2.0, busy_share=0.2, timeout=60.0)
            busy_at_start = wait_machine_quiet()
            kube.clear_requests()
            before = operator.sample()
            load_before = load_average()
            began = time.monotonic()
            creator = threading.Thread(target=create_objects, args=(client, range(objects)), daemon=True)
            creator.start()
            samples: list[tuple[float, float]] = []
            readies: list[tuple[float, float]] = []
            depth: list[list[float]] = []
            created_s = None
            while True:
                operator.check_alive()
                text = operator.metrics_text()
                at = time.monotonic() - began
                if created_s is None and not creator.is_alive():
                    created_s = at
                if at > max(900.0, objects * 0.1):
                    raise TimeoutError(f"{operator.ready_count()} of {objects} Ready after {at:.0f} s")
                if text is None:  # a scrape that timed out under load is no sample, not zero reconciles
                    time.sleep(1.0)
                    continue
                ready = ready_in(text)
                samples.append((at, _fleet.reconciles(text)))
                readies.append((at, float(ready)))
                if ready >= objects:
                    break
                depth.append(
                    [
                        round(at, 1),
                        _fleet.gauge(_fleet.QUEUE_DEPTH, text) or 0.0,
                        _fleet.gauge(_fleet.OLDEST, text) or 0.0,
                    ]
                )
                time.sleep(1.0)
            ready_s = time.monotonic() - began
            after = operator.sample()
            api_s = ready_s + wait_api_ready(client, objects, timeout_s=600.0)
            time.sleep(3.0)
            writes = _fleet.kube_writes(kube.requests())
            text = operator.metrics_text()
    series = rate_series(samples)
    ready_series = rate_series(readies)
    return {
        "objects": objects,
        "reconcile_processes": processes,
        "created_s": round(created_s or ready_s, 1),
        "all_ready_metric_s": round(ready_s, 1),
        "all_ready_api_s": round(api_s, 1),
        "cpu_s": round(after.cpu_s - before.cpu_s, 1),
        "cpu_ms_per_object": round((after.cpu_s - before.cpu_s) / objects * 1000, 1),
        "peak_rss_mb": round(after.peak_rss_mb, 1),
        "reconciles_per_s": series,
        "flatness": flatness(series, ready_s),
        "ready_per_s": ready_series,
        "ready_flatness": flatness(ready_series, ready_s),
        "queue_depth_and_oldest_s": depth[:: max(1, len(depth) // 40)],
        "kube_writes": writes,
        "per_object": {kind: round(count / objects, 2) for kind, count in writes.items()},
        "aws_calls": _fleet.aws_calls(text),
        "load_average": {"start": load_before, "end": load_average()},
        "cores_busy_at_start": busy_at_start,
    }


def held(row: dict[str, Any]) -> bool:
    ratio = row["flatness"]["ratio"]
    return bool(
        row["all_ready_api_s"] <= GOAL_S
        and row["per_object"].get("status_patch", 0) <= 1.0
        and ratio is not None
        and abs(ratio - 1.0) <= GOAL_FLATNESS
    )


def print_table(rows: list[dict[str, Any]], *, quick: bool) -> None:
    note = ", quick mode: not a measurement" if quick else ""
    _report.print_table(
        [
            "objects",
            "reconcile processes",
            "created s",
            "Ready (metric) s",
            "Ready (API) s",
            "CPU ms/object",
            "rate 1st/last min",
            "writes/object",
        ],
        [
            [
                row["objects"],
                row["reconcile_processes"],
                row["created_s"],
                row["all_ready_metric_s"],
                row["all_ready_api_s"],
                row["cpu_ms_per_object"],
                f"{row['flatness']['first_minute']}/{row['flatness']['last_minute']}",
                ", ".join(f"{k} {v}" for k, v in row["per_object"].items()),
            ]
            for row in rows
        ],
        title=f"B9 burst: all created at once{note}",
    )
    for row in rows:
        print(
            f"goal ({row['reconcile_processes']} reconcile processes): all Ready within {GOAL_S:.0f} s, <= 1 status "
            f"write per object, rate flat within 25 %: {'yes' if held(row) else 'NO'}"
        )


def run(quick: bool, *, objects: int | None = None) -> dict[str, Any]:
    count = objects or (QUICK_OBJECTS if quick else FULL_OBJECTS)
    rows = [measure(count, resync_s=5.0 if quick else RESYNC_S, processes=n) for n in (0, RECONCILE_PROCESSES)]
    for row in rows:
        row["held"] = held(row)
    print_table(rows, quick=quick)
    return {"benchmark": "burst", "quick": quick, "b9_burst": rows[0], "b9_burst_processes": rows[1]}


def main(argv: Sequence[str] | None = None) -> int:
    return _fleet.main(
        argv, name="burst", doc=__doc__ or "", run=run, quick_objects=QUICK_OBJECTS, full_objects=FULL_OBJECTS
    )


if __name__ == "__main__":
    raise SystemExit(main())
