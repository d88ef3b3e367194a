"""B4 scale: the operator process with 1,000 and 10,000 ProtectedBuckets: memory, CPU and time to converge.

``bucketwarden run`` runs as its own process against moto and the Kubernetes emulator (each in its own process),
with a long resync interval so that only first reconciles are measured, and the default 16 concurrent reconciles.
One operator process: its baseline at 0 objects (settled after start-up), then ProtectedBuckets are created while
it runs (8 client threads) up to 1,000; it is restarted with those 1,000 in place (the start-up path of an upgrade
or a rescheduled pod); then they are created up to 10,000. For each step: time from the first create until every
status says Ready=True, CPU seconds (utime+stime from /proc/PID/stat), peak RSS (the highest VmRSS sampled) and
settled RSS (VmRSS once the process is idle). A separate run with a heap census (bench/_census.py) shows what
the memory per object is made of.
Run: ``python -m bench.scale [--quick] [--max-objects N] [--no-census] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import _report
from bench._operator import (
    OperatorProcess,
    ProcessSample,
    count_ready,
    create_buckets,
    create_objects,
    create_roles,
    load_average,
)
from bench.workload import NAMESPACE
from bucketwarden.k8s import OperatorSettings
from bucketwarden_testkit import KubeClient, KubeEmulator, MotoServer, grant_namespaces

FULL_SCALES = (1000, 10000)
QUICK_SCALES = (20, 50)
GOAL_RSS_MB = {1000: 150.0, 10000: 400.0}
# Longer than any run: every reconcile measured is a first one, never a resync.
RESYNC_S = 1800.0
SAMPLE_S = 0.5
CENSUS_SCRIPT = Path(__file__).with_name("_census.py")


@dataclass(frozen=True, slots=True)
class Limits:
    timeout_s: float  # give up on a step after this long
    idle_window_s: float  # "settled": the process used under 3 % of a core over this many seconds


FULL_LIMITS = Limits(timeout_s=1200.0, idle_window_s=3.0)
QUICK_LIMITS = Limits(timeout_s=120.0, idle_window_s=1.0)


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


@dataclass
class Step:
    """Growing the operator's objects from ``start`` to ``objects`` (or restarting it with ``objects`` in place)."""

    objects: int
    start: int
    converged: bool = False
    first_ready_s: float | None = None  # first create (or process start) -> the first object is Ready
    converge_s: float | None = None  # first create (or process start) -> every status Ready=True
    metric_converge_s: float | None = None  # ... -> bucketwarden_managed_buckets{Ready=True} == objects
    create_s: float | None = None  # how long the client took to create the objects
    ready_at_end: int = 0
    settle_s: float | None = None  # converged -> idle: kopf still works through the watch events of its patches
    cpu_s: float = 0.0  # operator CPU from the step's start until it settled
    peak_rss_mb: float = 0.0
    settled: ProcessSample | None = None
    timeline: list[dict[str, float]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def r(x: float | None, digits: int = 2) -> float | None:
            return None if x is None else round(x, digits)

        added = self.objects - self.start
        return {
            "objects": self.objects,
            "start": self.start,
            "added": added,
            "converged": self.converged,
            "first_ready_s": r(self.first_ready_s),
            "converge_s": r(self.converge_s),
            "metric_converge_s": r(self.metric_converge_s),
            "create_s": r(self.create_s),
            "ready_at_end": self.ready_at_end,
            "settle_s": r(self.settle_s),
            "cpu_s": r(self.cpu_s),
            "cpu_ms_per_object": r(self.cpu_s / added * 1000, 1) if added else None,
            "peak_rss_mb": r(self.peak_rss_mb, 1),
            "settled_rss_mb": r(self.settled.rss_mb, 1) if self.settled else None,
            "timeline": self.timeline,
        }


def _watch(
    operator: OperatorProcess,
    client: KubeClient,
    step: Step,
    started: float,
    before: ProcessSample,
    *,
    creating: Callable[[], bool],
    limits: Limits,
) -> None:
    """Sample the process until every status is Ready (or ``timeout``), then until it is idle."""
    step.peak_rss_mb = before.rss_mb
    next_mark = 0.0
    while True:
        operator.check_alive()
        now = time.monotonic() - started
        sample = operator.sample()
        step.peak_rss_mb = max(step.peak_rss_mb, sample.rss_mb)
        ready = operator.ready_count()
        if now >= next_mark:  # a coarse timeline, every 10 s
            step.timeline.append({"t_s": round(now, 1), "ready": ready, **sample.to_json()})
            next_mark = now + 10.0
        if step.first_ready_s is None and ready > step.start:
            step.first_ready_s = now
        if step.metric_converge_s is None and ready >= step.objects:
            step.metric_converge_s = now
        if step.metric_converge_s is not None and not creating():
            _, in_status = count_ready(client)
            if in_status >= step.objects:
                step.converged, step.converge_s, step.ready_at_end = True, now, in_status
                break
        if now > limits.timeout_s:
            step.ready_at_end = ready
            _log(f"  gave up after {limits.timeout_s:.0f} s: {ready} of {step.objects} Ready")
            break
        time.sleep(SAMPLE_S)
    ended = time.monotonic()
    step.settled = operator.wait_idle(window=limits.idle_window_s)
    step.settle_s = time.monotonic() - ended
    step.peak_rss_mb = max(step.peak_rss_mb, step.settled.rss_mb)
    step.cpu_s = step.settled.cpu_s - before.cpu_s


def grow(operator: OperatorProcess, client: KubeClient, start: int, stop: int, *, limits: Limits) -> Step:
    """Create ProtectedBuckets ``start`` .. ``stop`` - 1 while the operator runs, and watch it converge."""
    step = Step(objects=stop, start=start)
    errors: list[BaseException] = []

    def create() -> None:
        began = time.monotonic()
        try:
            create_objects(client, range(start, stop))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)
        step.create_s = time.monotonic() - began

    before = operator.sample()
    started = time.monotonic()
    creator = threading.Thread(target=create, name="bench-create", daemon=True)
    creator.start()
    _watch(operator, client, step, started, before, creating=creator.is_alive, limits=limits)
    creator.join()
    if errors:
        raise errors[0]
    return step


def restart(operator: OperatorProcess, client: KubeClient, objects: int, *, limits: Limits) -> Step:
    """Start ``operator`` (a new process) with ``objects`` already in place; watch until all are Ready again."""
    step = Step(objects=objects, start=0)
    operator.start()
    zero = ProcessSample(0.0, 0.0, 0.0, 0.0)
    _watch(operator, client, step, operator.started, zero, creating=lambda: False, limits=limits)
    return step


def restart_curve(sizes: Sequence[int], *, limits: Limits) -> list[dict[str, Any]]:
    """kopf's start-up with N objects already in place, each N on fresh emulators: when is the first one Ready?

    kopf runs no handler until every object is indexed (``@kopf.index``), and that wait costs O(N^2): this is
    the time an operator restart leaves drift uncorrected. The objects are new to kopf, so each is then
    reconciled with a write; the wait before the first is the same as on a restart.
    """
    curve = []
    for n in sizes:
        with (
            MotoServer() as moto,
            KubeEmulator() as kube,
            tempfile.TemporaryDirectory(prefix="bench-b4-restart-") as tmp,
            kube.client() as client,
        ):
            create_roles(moto)
            create_buckets(moto, range(n))
            client.create_namespace(NAMESPACE)
            grant_namespaces(client)
            create_objects(client, range(n))
            operator = OperatorProcess(moto, kube, Path(tmp), resync_interval_s=RESYNC_S)
            try:
                step = restart(operator, client, n, limits=limits)
            finally:
                operator.stop()
        keep = ("objects", "first_ready_s", "converge_s", "cpu_s", "peak_rss_mb", "settled_rss_mb")
        row = {k: v for k, v in step.to_json().items() if k in keep}
        _log(f"  start-up with {n} objects in place: first Ready {row['first_ready_s']} s, all {row['converge_s']} s")
        curve.append(row)
    return curve


def _mb_per_1000(low: ProcessSample | None, high: ProcessSample | None, low_n: int, high_n: int) -> float | None:
    if low is None or high is None or high_n == low_n:
        return None
    return round((high.rss_mb - low.rss_mb) / (high_n - low_n) * 1000, 1)


def measure(scales: Sequence[int], *, limits: Limits) -> dict[str, Any]:
    """Baseline, then each scale in turn, restarting after the first; one moto and one emulator throughout."""
    load_start = load_average()
    results: dict[str, Any] = {}
    with MotoServer() as moto, KubeEmulator() as kube, tempfile.TemporaryDirectory(prefix="bench-b4-") as tmp:
        began = time.monotonic()
        create_roles(moto)
        create_buckets(moto, range(max(scales)))
        _log(f"B4: {max(scales)} buckets created in {time.monotonic() - began:.1f} s")
        with kube.client() as client:
            client.create_namespace(NAMESPACE)
            grant_namespaces(client)
            operator = OperatorProcess(moto, kube, Path(tmp), resync_interval_s=RESYNC_S)
            try:
                operator.start()
                baseline = operator.wait_idle(window=limits.idle_window_s)
                _log(f"  baseline: {baseline.rss_mb:.1f} MB, {baseline.cpu_s:.1f} s CPU to start")
                steps: list[Step] = []
                restarted: Step | None = None
                created = 0
                for n, scale in enumerate(scales):
                    step = grow(operator, client, created, scale, limits=limits)
                    steps.append(step)
                    created = scale
                    _log(
                        f"  {scale}: converged={step.converged} in {step.converge_s} s, "
                        f"{step.cpu_s:.1f} s CPU, peak {step.peak_rss_mb:.1f} MB, "
                        f"settled {step.settled.rss_mb if step.settled else 0:.1f} MB"
                    )
                    if not step.converged:
                        break
                    if n == 0 and len(scales) > 1:
                        operator.stop()
                        operator = OperatorProcess(moto, kube, Path(tmp), resync_interval_s=RESYNC_S)
                        restarted = restart(operator, client, scale, limits=limits)
                        _log(f"  restart with {scale}: all Ready {restarted.converge_s} s after the process started")
            finally:
                operator.stop()
    results["baseline"] = {"rss_mb": round(baseline.rss_mb, 1), "cpu_s": round(baseline.cpu_s, 2)}
    results["steps"] = [s.to_json() for s in steps]
    results["restart"] = restarted.to_json() if restarted else None
    first, last = steps[0], steps[-1]
    after_restart = restarted.settled if restarted else first.settled
    results["mb_per_1000"] = {
        f"0_to_{first.objects}": _mb_per_1000(baseline, first.settled, 0, first.objects),
        f"{first.objects}_to_{last.objects}": _mb_per_1000(after_restart, last.settled, first.objects, last.objects),
    }
    results["load_average"] = {"start": load_start, "end": load_average()}
    return results


def census(objects: int, *, limits: Limits) -> dict[str, Any]:
    """The operator under bench/_census.py, with a heap census at 0, at a fifth of ``objects`` and at ``objects``.

    Per object is the difference between the last two, so one-off costs (botocore's service models, loaded at the
    first reconcile; the reconcile threads) are kept apart: they are what the first fifth adds beyond that.
    """
    first = max(1, objects // 5)
    with (
        MotoServer() as moto,
        KubeEmulator() as kube,
        tempfile.TemporaryDirectory(prefix="bench-b4-census-") as tmp,
        kube.client() as client,
    ):
        create_roles(moto)
        create_buckets(moto, range(objects))
        client.create_namespace(NAMESPACE)
        grant_namespaces(client)
        prefix = Path(tmp) / "census"
        command = [sys.executable, str(CENSUS_SCRIPT), str(prefix)]
        with OperatorProcess(moto, kube, Path(tmp), resync_interval_s=RESYNC_S, command=command) as operator:
            operator.wait_idle(window=limits.idle_window_s)
            empty = _take_census(operator, prefix, 0)
            converged = grow(operator, client, 0, first, limits=limits).converged
            some = _take_census(operator, prefix, 1)
            converged = grow(operator, client, first, objects, limits=limits).converged and converged
            full = _take_census(operator, prefix, 2)
    summary = census_summary(some, full, objects - first)
    one_off_kb = (some["rss_kb"] - empty["rss_kb"]) - summary["rss_kb_per_object"] * first
    return {
        "objects": objects,
        "from": first,
        "converged": converged,
        **summary,
        "one_off_rss_mb": round(one_off_kb / 1024, 1),
    }


def _take_census(operator: OperatorProcess, prefix: Path, n: int) -> dict[str, Any]:
    os.kill(operator.pid, signal.SIGUSR1)
    target = Path(f"{prefix}.{n}.json")
    deadline = time.monotonic() + 120
    while not target.exists():
        operator.check_alive()
        if time.monotonic() > deadline:
            raise TimeoutError(f"no census from the operator within 120 s:\n{operator.log_tail()}")
        time.sleep(0.2)
    data: dict[str, Any] = json.loads(target.read_text())
    if "error" in data:
        raise RuntimeError(f"the census failed in the operator process: {data['error']}")
    return data


def census_summary(before: dict[str, Any], after: dict[str, Any], objects: int) -> dict[str, Any]:
    """What ``objects`` more ProtectedBuckets cost, per object: RSS, the heap by type, and what kopf keeps."""

    def per(after_value: float, before_value: float) -> float:
        return round((after_value - before_value) / objects, 1)

    types = {
        name: (count - before["types"].get(name, [0, 0])[0], size - before["types"].get(name, [0, 0])[1])
        for name, (count, size) in after["types"].items()
    }
    top = sorted(types.items(), key=lambda kv: -kv[1][1])[:12]
    tasks = {
        name: per(count, before["tasks"].get(name, 0))
        for name, count in after["tasks"].items()
        if count > before["tasks"].get(name, 0)
    }
    kopf, kopf_before = after["kopf"], before["kopf"]
    caches, caches_before = after["policy_caches"], before["policy_caches"]
    return {
        "rss_kb_per_object": round((after["rss_kb"] - before["rss_kb"]) / objects, 1),
        "python_heap_bytes_per_object": round(sum(size for _, size in types.values()) / objects, 1),
        "types_per_object": {
            name: {"count": round(c / objects, 2), "bytes": round(s / objects, 1)} for name, (c, s) in top
        },
        "asyncio_tasks_per_object": tasks,
        "kopf_memories_per_object": per(kopf["memories"], kopf_before["memories"]),
        "kopf_body_bytes_per_object": per(kopf["body_bytes"], kopf_before["body_bytes"]),
        "of_which_status_bytes": per(kopf["status_bytes"], kopf_before["status_bytes"]),
        "of_which_spec_bytes": per(kopf["spec_bytes"], kopf_before["spec_bytes"]),
        "of_which_annotations_bytes": per(kopf["annotations_bytes"], kopf_before["annotations_bytes"]),
        "index_bytes_per_object": per(after["index_bytes"], before["index_bytes"]),
        "metrics_state_bytes_per_object": per(after["metrics_state_bytes"], before["metrics_state_bytes"]),
        "policy_cache_bytes_per_object": per(caches["compiled_bytes"], caches_before["compiled_bytes"]),
        "policy_caches_at_end": caches,
    }


def goals(b4: dict[str, dict[str, Any]]) -> dict[str, bool | None]:
    return {
        f"rss_peak_at_{n}_at_most_{limit:g}_mb": (b4[str(n)]["peak_rss_mb"] <= limit) if str(n) in b4 else None
        for n, limit in GOAL_RSS_MB.items()
    }


def print_tables(results: dict[str, Any], *, quick: bool) -> None:
    note = ", quick mode: not a measurement" if quick else ""
    base = results["baseline"]
    rows: list[list[object]] = [["0 (after start-up)", "-", "-", base["cpu_s"], "-", base["rss_mb"], base["rss_mb"]]]
    labelled = [(f"{s['start']} -> {s['objects']}", s) for s in results["steps"]]
    if results["restart"]:
        labelled.insert(1, (f"restart with {results['restart']['objects']}", results["restart"]))
    for label, step in labelled:
        converge = step["converge_s"] if step["converged"] else f"> {step['ready_at_end']} Ready"
        rows.append(
            [
                label,
                step["first_ready_s"],
                converge,
                step["cpu_s"],
                step["cpu_ms_per_object"],
                step["peak_rss_mb"],
                step["settled_rss_mb"],
            ]
        )
    _report.print_table(
        ["ProtectedBuckets", "first Ready s", "all Ready s", "CPU s", "CPU ms/object", "peak RSS MB", "settled RSS MB"],
        rows,
        title=f"B4 operator at scale: resync {RESYNC_S:g} s, 16 concurrent reconciles{note}",
    )
    per_1000 = ", ".join(f"{k.replace('_to_', ' -> ')}: {v}" for k, v in results["mb_per_1000"].items())
    print(f"RSS growth, MB per 1,000 ProtectedBuckets: {per_1000}")
    census_ = results.get("census")
    if census_:
        print(
            f"census, {census_['from']} -> {census_['objects']} objects, per object: "
            f"{census_['rss_kb_per_object']} KB RSS, {census_['python_heap_bytes_per_object'] / 1024:.1f} KB Python "
            f"heap, of which kopf's copy of the body {census_['kopf_body_bytes_per_object'] / 1024:.1f} KB (status "
            f"{census_['of_which_status_bytes'] / 1024:.1f} KB); asyncio tasks {census_['asyncio_tasks_per_object']}; "
            f"one-off {census_['one_off_rss_mb']} MB"
        )
    for name, met in results["goals"].items():
        print(f"goal {name}: {'-' if met is None else ('yes' if met else 'NO')}")
    print()
    if results.get("restart_curve"):
        _report.print_table(
            ["objects in place", "first Ready s", "all Ready s", "CPU s", "peak RSS MB", "settled RSS MB"],
            [
                [r["objects"], r["first_ready_s"], r["converge_s"], r["cpu_s"], r["peak_rss_mb"], r["settled_rss_mb"]]
                for r in results["restart_curve"]
            ],
            title="B4 start-up with the objects already in place (kopf waits until all are indexed)",
        )


def run(
    quick: bool, *, max_objects: int | None = None, with_census: bool = True, restart_sizes: Sequence[int] = ()
) -> dict[str, Any]:
    """B4 on fresh moto and emulator processes: print the table, return the numbers."""
    scales = tuple(n for n in (QUICK_SCALES if quick else FULL_SCALES) if max_objects is None or n <= max_objects)
    if max_objects is not None and max_objects not in scales:
        scales = (*scales, max_objects)
    limits = QUICK_LIMITS if quick else FULL_LIMITS
    results = measure(scales, limits=limits)
    measured = [s for s in results["steps"] if s["converged"]]
    b4 = {
        str(s["objects"]): {
            "rss_mb": s["settled_rss_mb"],
            "peak_rss_mb": s["peak_rss_mb"],
            "cpu_s": s["cpu_s"],
            "converge_s": s["converge_s"],
        }
        for s in measured
    }
    results["b4_operator"] = {
        **b4,
        "measured_at": max((s["objects"] for s in measured), default=0),
        "baseline_rss_mb": results["baseline"]["rss_mb"],
        "mb_per_1000": results["mb_per_1000"],
    }
    results["goals"] = goals(b4)
    if with_census:
        results["census"] = census(scales[0], limits=limits)
    if restart_sizes:
        results["restart_curve"] = restart_curve(restart_sizes, limits=limits)
    print_tables(results, quick=quick)
    return {
        "benchmark": "scale",
        "quick": quick,
        "resync_interval_s": RESYNC_S,
        "max_concurrent_reconciles": OperatorSettings().max_concurrent_reconciles,
        **results,
    }


def add_arguments(parser: argparse.ArgumentParser, *, standalone: bool = True) -> None:
    if standalone:
        parser.add_argument("--quick", action="store_true", help="20 and 50 objects: checks it runs")
        parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    parser.add_argument(
        "--max-objects", type=int, metavar="N", help="B4: stop at N ProtectedBuckets (e.g. 5000 on a slow machine)"
    )
    parser.add_argument("--no-census", action="store_true", help="B4: skip the heap census run")
    parser.add_argument(
        "--restart-curve",
        metavar="N,N,...",
        type=lambda text: [int(n) for n in text.split(",")],
        default=[],
        help="B4: also time start-up with N objects in place, e.g. 500,1000,2000,3000 (about 7 minutes)",
    )


def options(args: argparse.Namespace) -> dict[str, Any]:
    return {"max_objects": args.max_objects, "with_census": not args.no_census, "restart_sizes": args.restart_curve}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.scale", description=__doc__.splitlines()[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    results = run(args.quick, **options(args))
    if args.json:
        _report.write_json(args.json, {"scale": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
