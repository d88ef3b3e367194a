"""B8 restart: N ProtectedBuckets converged and Ready, the operator process stopped (SIGTERM) and started again.

Measured from outside, as production sees it: seconds from the new process's start until it has checked every
object again (``bucketwarden_objects_unchecked`` 0, resync ticks >= N, the Ready gauge at N throughout), its CPU
over that time, the Kubernetes writes it made (from the emulator's request log: object patches, status patches,
Events) and the AWS calls it made (from its metrics). The Ready gauge is sampled from the first second: a restart
must not make it read 0. Goal (issue 22): every object ticked within 60 s at 10,000, and 0 writes per unchanged
object.
Run: ``python -m bench.restart [--quick] [--objects 10000] [--json FILE]``.
"""

from __future__ import annotations

import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import _fleet, _report
from bench._operator import OperatorProcess, create_buckets, create_objects, create_roles, load_average
from bench.steady import wait_api_ready, wait_converged
from bench.workload import NAMESPACE
from bucketwarden_testkit import KubeEmulator, MotoServer, grant_namespaces

FULL_OBJECTS = 10_000
QUICK_OBJECTS = 50
RESYNC_S = 60.0
GOAL_S = 60.0


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def measure(objects: int, *, resync_s: float = RESYNC_S) -> dict[str, Any]:
    with MotoServer() as moto, KubeEmulator() as kube, tempfile.TemporaryDirectory(prefix="bench-restart-") as tmp:
        create_roles(moto)
        create_buckets(moto, range(objects))
        with kube.client() as client:
            client.create_namespace(NAMESPACE)
            grant_namespaces(client)
            first = OperatorProcess(moto, kube, Path(tmp), resync_interval_s=resync_s)
            with first:
                began = time.monotonic()
                create_objects(client, range(objects))
                wait_converged(first, client, objects, timeout_s=max(600.0, objects * 0.12))
                wait_api_ready(client, objects, timeout_s=max(600.0, objects * 0.12))
                first.wait_idle(window=3.0, busy_share=0.6, timeout=120.0)
                _log(f"restart: {objects} converged in {time.monotonic() - began:.0f} s; restarting the operator")
            kube.clear_requests()
            load_before = load_average()
            second = OperatorProcess(moto, kube, Path(tmp) / "second", resync_interval_s=resync_s)
            (Path(tmp) / "second").mkdir()
            with second:
                elapsed, series = _fleet.wait_all_ticked(second, objects, timeout_s=max(300.0, objects * 0.06))
                sample = second.sample()
                text = second.metrics_text()
                time.sleep(3.0)  # let the last status patches (if any) land before the log is read
                writes = _fleet.kube_writes(kube.requests())
            first_tick = next((at for at, done, _ in series if done > 0), None)
            ready_restored = next((at for at, _, ready in series if ready >= objects), None)
    paths = _fleet.ticks(text)
    return {
        "objects": objects,
        "resync_s": resync_s,
        "all_ticked_s": round(elapsed, 1),
        "first_tick_s": first_tick,
        "cpu_s": round(sample.cpu_s, 1),
        "rss_mb": round(sample.rss_mb, 1),
        "quiet_ticks": int(paths.get("quiet", 0)),
        "full_ticks": int(paths.get("full", 0)),
        "kube_writes": writes,
        "kube_writes_per_object": round(sum(writes.values()) / objects, 3),
        "status_writes_per_object": round(writes.get("status_patch", 0) / objects, 3),
        "aws_calls": _fleet.aws_calls(text),
        "ready_gauge_restored_s": ready_restored,
        "ticks_over_time": series[:: max(1, len(series) // 60)],
        "load_average": {"start": load_before, "end": load_average()},
        "held": elapsed <= GOAL_S and writes.get("status_patch", 0) == 0 and writes.get("object_patch", 0) == 0,
    }


def print_table(row: dict[str, Any], *, quick: bool) -> None:
    note = ", quick mode: not a measurement" if quick else ""
    _report.print_table(
        ["objects", "all ticked s", "first tick s", "CPU s", "quiet", "full", "k8s writes/object", "AWS calls"],
        [
            [
                row["objects"],
                row["all_ticked_s"],
                row["first_tick_s"],
                row["cpu_s"],
                row["quiet_ticks"],
                row["full_ticks"],
                row["kube_writes_per_object"],
                ", ".join(f"{api} {n}" for api, n in row["aws_calls"].items()),
            ]
        ],
        title=f"B8 restart: a new process, the fleet converged{note}",
    )
    print(
        f"kube writes: {row['kube_writes']}; goal: all ticked within {GOAL_S:.0f} s, 0 writes: "
        f"{'yes' if row['held'] else 'NO'}"
    )


def run(quick: bool, *, objects: int | None = None) -> dict[str, Any]:
    count = objects or (QUICK_OBJECTS if quick else FULL_OBJECTS)
    row = measure(count, resync_s=5.0 if quick else RESYNC_S)
    print_table(row, quick=quick)
    return {"benchmark": "restart", "quick": quick, "b8_restart": row}


def main(argv: Sequence[str] | None = None) -> int:
    return _fleet.main(
        argv, name="restart", doc=__doc__ or "", run=run, quick_objects=QUICK_OBJECTS, full_objects=FULL_OBJECTS
    )


if __name__ == "__main__":
    raise SystemExit(main())
