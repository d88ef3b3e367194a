"""B10 failover: two replicas with leader election, N ProtectedBuckets converged under the leader; the leader is
killed (SIGKILL: no hand-over) and the standby takes the Lease; the killed replica then comes back as the standby.

Measured from outside: seconds from the kill until the new leader has checked every object (as B8: none unchecked,
resync ticks >= N, Ready gauge at N), split into the wait for the Lease to run out and the cheap start; the new
leader's CPU, Kubernetes writes (object and status patches, Events: the Lease renewals are counted apart) and AWS
calls; then the steady state under HA over two resync intervals (effective interval, share of a core), as B4
measures it for one replica. Lease timings are the chart's defaults (15 s lease, 10 s renew deadline, 2 s retry).
Goal (issue 22): every object ticking again within 90 s at 10,000, and the steady state held.
Run: ``python -m bench.failover [--quick] [--objects 10000] [--json FILE]``.
"""

from __future__ import annotations

import re
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import _fleet, _report
from bench._operator import OperatorProcess, create_buckets, create_objects, create_roles, load_average
from bench.steady import measure_window, wait_api_ready, wait_converged
from bench.workload import NAMESPACE
from bucketwarden_testkit import KubeEmulator, MotoServer, grant_namespaces

FULL_OBJECTS = 10_000
QUICK_OBJECTS = 50
RESYNC_S = 60.0
GOAL_S = 90.0
LEASE = {
    "BUCKETWARDEN_LEADER_ELECTION": "true",
    "BUCKETWARDEN_LEADER_ELECTION_NAMESPACE": "default",
    "BUCKETWARDEN_LEADER_ELECTION_LEASE_SECONDS": "15",
    "BUCKETWARDEN_LEADER_ELECTION_RENEW_DEADLINE_SECONDS": "10",
    "BUCKETWARDEN_LEADER_ELECTION_RETRY_SECONDS": "2",
}
TOOK = re.compile(r"took the Lease")


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _replica(moto: MotoServer, kube: KubeEmulator, workdir: Path, name: str, resync_s: float) -> OperatorProcess:
    workdir.mkdir(parents=True, exist_ok=True)
    return OperatorProcess(moto, kube, workdir, resync_interval_s=resync_s, extra_env={**LEASE, "POD_ID": name})


def measure(objects: int, *, resync_s: float = RESYNC_S, steady_window_s: float | None = None) -> dict[str, Any]:
    window = steady_window_s if steady_window_s is not None else 2 * resync_s
    with MotoServer() as moto, KubeEmulator() as kube, tempfile.TemporaryDirectory(prefix="bench-failover-") as tmp:
        create_roles(moto)
        create_buckets(moto, range(objects))
        with kube.client() as client:
            client.create_namespace(NAMESPACE)
            grant_namespaces(client)
            leader = _replica(moto, kube, Path(tmp) / "a", "replica-a", resync_s)
            standby = _replica(moto, kube, Path(tmp) / "b", "replica-b", resync_s)
            try:
                leader.start()
                standby.start(wait=False)
                began = time.monotonic()
                create_objects(client, range(objects))
                wait_converged(leader, client, objects, timeout_s=max(600.0, objects * 0.12))
                wait_api_ready(client, objects, timeout_s=max(600.0, objects * 0.12))
                leader.wait_idle(window=3.0, busy_share=0.6, timeout=120.0)
                _log(f"failover: {objects} converged in {time.monotonic() - began:.0f} s; killing the leader")
                kube.clear_requests()
                load_before = load_average()
                killed = time.monotonic()
                leader.kill()
                took_s = _wait_for_lease(standby, killed, timeout_s=120.0)
                elapsed, series = _fleet.wait_all_ticked(
                    standby, objects, timeout_s=max(300.0, objects * 0.06), since=killed
                )
                sample = standby.sample()
                text = standby.metrics_text()
                time.sleep(3.0)
                writes = _fleet.kube_writes(kube.requests())
                _log(f"failover: every object checked {elapsed:.0f} s after the kill; steady window {window:.0f} s")
                # Kubernetes restarts the killed pod: it comes back as the standby, for the steady state under HA.
                leader = _replica(moto, kube, Path(tmp) / "a2", "replica-a", resync_s)
                leader.start(wait=False)
                time.sleep(resync_s)  # the first round of ticks after the cheap start
                steady = measure_window(standby, moto, objects, window, resync_s, edits=3)
            finally:
                leader.stop()
                standby.stop()
    paths = _fleet.ticks(text)
    return {
        "objects": objects,
        "resync_s": resync_s,
        "lease": {k.removeprefix("BUCKETWARDEN_LEADER_ELECTION_").lower(): v for k, v in LEASE.items()},
        "lease_taken_s": round(took_s, 1),
        "all_ticked_s": round(elapsed, 1),
        "cheap_start_s": round(elapsed - took_s, 1),
        "cpu_s": round(sample.cpu_s, 1),
        "quiet_ticks": int(paths.get("quiet", 0)),
        "full_ticks": int(paths.get("full", 0)),
        "kube_writes": writes,
        "kube_writes_per_object": round(sum(v for k, v in writes.items() if k != "lease") / objects, 3),
        "aws_calls": _fleet.aws_calls(text),
        "ticks_over_time": series[:: max(1, len(series) // 60)],
        "steady_under_ha": {
            k: steady[k]
            for k in (
                "window_s",
                "ticks",
                "effective_interval_s",
                "core_share",
                "cpu_ms_per_tick",
                "rss_mb",
                "drift",
                "held",
            )
        },
        "load_average": {"start": load_before, "end": load_average()},
        "held": elapsed <= GOAL_S and bool(steady["held"]),
    }


def _wait_for_lease(standby: OperatorProcess, since: float, timeout_s: float) -> float:
    """Seconds from ``since`` until the standby's log says it took the Lease."""
    while time.monotonic() - since < timeout_s:
        standby.check_alive()
        if any(TOOK.search(line) for line in standby.log_lines()):
            return time.monotonic() - since
        time.sleep(0.5)
    raise TimeoutError(f"the standby did not take the Lease within {timeout_s:.0f} s:\n{standby.log_tail()}")


def print_table(row: dict[str, Any], *, quick: bool) -> None:
    note = ", quick mode: not a measurement" if quick else ""
    steady = row["steady_under_ha"]
    _report.print_table(
        [
            "objects",
            "Lease taken s",
            "all ticked s",
            "cheap start s",
            "CPU s",
            "k8s writes/object",
            "HA interval s",
            "HA core",
        ],
        [
            [
                row["objects"],
                row["lease_taken_s"],
                row["all_ticked_s"],
                row["cheap_start_s"],
                row["cpu_s"],
                row["kube_writes_per_object"],
                steady["effective_interval_s"],
                f"{steady['core_share'] * 100:.0f}%",
            ]
        ],
        title=f"B10 failover: the leader killed, the standby takes over{note}",
    )
    print(
        f"kube writes: {row['kube_writes']}; goal: all ticked within {GOAL_S:.0f} s of the kill and the steady "
        f"state held: {'yes' if row['held'] else 'NO'}"
    )


def run(quick: bool, *, objects: int | None = None) -> dict[str, Any]:
    count = objects or (QUICK_OBJECTS if quick else FULL_OBJECTS)
    resync = 5.0 if quick else RESYNC_S
    row = measure(count, resync_s=resync, steady_window_s=2 * resync)
    print_table(row, quick=quick)
    return {"benchmark": "failover", "quick": quick, "b10_failover": row}


def main(argv: Sequence[str] | None = None) -> int:
    return _fleet.main(
        argv, name="failover", doc=__doc__ or "", run=run, quick_objects=QUICK_OBJECTS, full_objects=FULL_OBJECTS
    )


if __name__ == "__main__":
    raise SystemExit(main())
