"""What B8 (restart), B9 (burst) and B10 (failover) share: a converged fleet, the Kubernetes writes an operator
made (from the emulator's request log), and the operator's progress read from its metrics endpoint."""

from __future__ import annotations

import argparse
import re
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

from bench import _report
from bench._operator import OperatorProcess

TICKS = re.compile(r'^bucketwarden_resync_ticks_total\{path="([a-z]+)"\} ([0-9.e+]+)$', re.M)
UNCHECKED = re.compile(r"^bucketwarden_objects_unchecked ([0-9.e+-]+)$", re.M)
AWS_CALLS = re.compile(r'^bucketwarden_aws_calls_total\{api="([A-Za-z]+)",outcome="([a-z]+)"\} ([0-9.e+]+)$', re.M)
RECONCILES = re.compile(r'^bucketwarden_reconciles_total\{result="[A-Za-z]+"\} ([0-9.e+]+)$', re.M)
QUEUE_DEPTH = re.compile(r"^bucketwarden_reconcile_queue_depth ([0-9.e+-]+)$", re.M)
OLDEST = re.compile(r"^bucketwarden_reconcile_queue_oldest_seconds ([0-9.e+-]+)$", re.M)
WRITES = ("POST", "PUT", "PATCH", "DELETE")
BENCH_CLIENT = "OpenAPI-Generator"


def ticks(text: str | None) -> dict[str, float]:
    """Resync ticks by path (quiet, full) from a metrics text."""
    return {path: float(count) for path, count in TICKS.findall(text or "")}


def gauge(pattern: re.Pattern[str], text: str | None) -> float | None:
    found = pattern.findall(text or "")
    return float(found[0]) if found else None


def reconciles(text: str | None) -> float:
    return sum(float(n) for n in RECONCILES.findall(text or ""))


def aws_calls(text: str | None) -> dict[str, int]:
    """AWS calls by API (every outcome) from a metrics text."""
    out: Counter[str] = Counter()
    for api, _, count in AWS_CALLS.findall(text or ""):
        out[api] += int(float(count))
    return dict(sorted(out.items()))


def kube_writes(requests: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """The operator's writes by kind: status patches, object patches, Events, other; reads and watches left out.
    The bench's own requests (the kubernetes client, "OpenAPI-Generator/...") are not the operator's."""
    out: Counter[str] = Counter()
    for request in requests:
        if request.get("method") not in WRITES or str(request.get("userAgent", "")).startswith(BENCH_CLIENT):
            continue
        path = str(request.get("path", ""))
        if "/events" in path:
            out["events"] += 1
        elif "/leases" in path:
            out["lease"] += 1
        elif path.endswith("/status") and "/protectedbuckets/" in path:
            out["status_patch"] += 1
        elif "/protectedbuckets/" in path and request.get("method") == "PATCH":
            out["object_patch"] += 1
        else:
            out["other"] += 1
    return dict(sorted(out.items()))


def wait_all_ticked(
    operator: OperatorProcess, objects: int, timeout_s: float, *, since: float | None = None
) -> tuple[float, list[list[float]]]:
    """Seconds from ``since`` (default: the process start) until the process has checked every object (known, none
    unchecked, ticks >= objects); and the series [seconds, ticks, Ready gauge] sampled every second."""
    series: list[list[float]] = []
    began = operator.started if since is None else since
    while True:
        operator.check_alive()
        text = operator.metrics_text()
        elapsed = time.monotonic() - began
        done = sum(ticks(text).values())
        ready = operator.ready_count()
        series.append([round(elapsed, 1), done, ready])
        if done >= objects and gauge(UNCHECKED, text) == 0 and ready >= objects:
            return elapsed, series
        if elapsed > timeout_s:
            raise TimeoutError(f"{done:.0f} ticks of {objects} objects after {timeout_s:.0f} s")
        time.sleep(1.0)


def main(
    argv: Sequence[str] | None,
    *,
    name: str,
    doc: str,
    run: Callable[..., dict[str, Any]],
    quick_objects: int,
    full_objects: int,
) -> int:
    """The command line B8, B9 and B10 share: ``python -m bench.NAME [--quick] [--objects N] [--json FILE]``."""
    parser = argparse.ArgumentParser(prog=f"python -m bench.{name}", description=doc.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{quick_objects} objects: checks it runs")
    parser.add_argument("--objects", type=int, help=f"default {full_objects}")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.quick, objects=args.objects)
    if args.json:
        _report.write_json(args.json, {name: results})
    return 0
