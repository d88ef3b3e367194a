"""The headline numbers of ``bench/results.json``, as the README and docs/benchmarks.md quote them.

``python -m bench.headlines`` prints the block; ``--write`` puts it between the ``<!-- headlines:begin -->`` and
``<!-- headlines:end -->`` markers of README.md and docs/benchmarks.md. ``tests/unit/test_docs.py`` fails when
either file's block differs from what results.json gives, so a claim cannot drift from its measurement.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "bench" / "results.json"
BEGIN, END = "<!-- headlines:begin -->", "<!-- headlines:end -->"
DOCUMENTS = (ROOT / "README.md", ROOT / "docs" / "benchmarks.md")


def _n(value: float) -> str:
    return f"{value:,.0f}" if float(value).is_integer() else f"{value:,}"


def _b1(d: Mapping[str, Any]) -> str:
    b1 = d["b1_first_convergence"]
    return (
        f"**B1 first convergence**, {_n(b1['buckets'])} buckets: {b1['bucketwarden_s']} s, "
        f"{b1['total_calls_per_bucket']} AWS calls per bucket; {b1['ratio_vs_floor']} of a plain boto3 GET+PUT "
        f"loop's speed; {b1['speedup_vs_custodian']}x faster than Cloud Custodian's tuned `set-statements`."
    )


def _b2(d: Mapping[str, Any]) -> str:
    b2 = d["b2_steady_state"]
    return (
        f"**B2 steady state**, {_n(b2['buckets'])} buckets: {b2['get_per_bucket']} GetBucketPolicy per bucket, "
        f"{b2['writes']} writes, {b2['iam_calls']} IAM calls."
    )


def _b3(d: Mapping[str, Any]) -> str:
    b3, queue = d["b3_drift_latency_s"], d["b3_drift_queue"]
    return (
        f"**B3 drift**: at a {b3['interval_s']:g} s resync, repaired in p50 {b3['p50']:.1f} s, p95 {b3['p95']:.1f} s; "
        f"with the drift queue ({_n(queue['objects'])} objects, {queue['resync_s']:g} s resync) p95 "
        f"{queue['p95_s']} s."
    )


def _b4(d: Mapping[str, Any]) -> str:
    rows = d["b4_steady_state"]["rows"]
    largest = rows[-1]
    return (
        f"**B4 steady state** at the {d['b4_steady_state']['resync_s']:g} s resync, one replica: "
        f"{_n(largest['objects'])} objects {'held' if largest['held'] else 'NOT held'} (effective interval "
        f"{largest['effective_interval_s']} s, drift p95 {largest['drift']['p95_s']} s) at "
        f"{largest['core_share'] * 100:.0f} % of a core, {largest['cpu_ms_per_tick']} ms of CPU per tick, "
        f"{largest['rss_mb']:.0f} MB RSS."
    )


def _b5(d: Mapping[str, Any]) -> str:
    b5 = d["b5_core_us"]
    return (
        f"**B5 policy core**: render + merge + verify {b5['render_merge_verify_typical']:.0f} µs (10 CIDRs, 10 "
        f"foreign statements), {b5['render_merge_verify_large']:.0f} µs (100 and 100)."
    )


def _b8(d: Mapping[str, Any]) -> str:
    b8 = d["b8_restart"]
    writes = b8["kube_writes"].get("object_patch", 0) + b8["kube_writes"].get("status_patch", 0)
    return (
        f"**B8 restart**, {_n(b8['objects'])} objects converged: every object checked again "
        f"{b8['all_ticked_s']} s after the new process started ({b8['quiet_ticks']:,} quiet ticks, "
        f"{b8['full_ticks']} full), {b8['cpu_s']} s of CPU, {writes} object or status writes, "
        f"{b8['aws_calls'].get('GetBucketPolicy', 0):,} GetBucketPolicy and no PutBucketPolicy."
    )


def _b9(d: Mapping[str, Any]) -> str:
    b9 = d["b9_burst"]
    flat = b9["flatness"]
    return (
        f"**B9 burst**, {_n(b9['objects'])} created at once: all Ready in the API after {b9['all_ready_api_s']} s, "
        f"{b9['cpu_ms_per_object']} ms of CPU per object, {b9['per_object'].get('status_patch', 0)} status writes "
        f"per object; reconciles per second {flat['first_minute']} in the first minute, {flat['last_minute']} in "
        f"the last (ratio {flat['ratio']})."
    )


def _b9_processes(d: Mapping[str, Any]) -> str:
    b9 = d["b9_burst_processes"]
    flat = b9["flatness"]
    return (
        f"**B9 burst with {b9['reconcile_processes']} reconcile processes** (`BUCKETWARDEN_RECONCILE_PROCESSES`, "
        f"the sizing for 10,000), {_n(b9['objects'])} created at once: all Ready in the API after "
        f"{b9['all_ready_api_s']} s, {b9['cpu_ms_per_object']} ms of CPU per object (children included), peak RSS "
        f"{b9['peak_rss_mb']} MB; reconciles per second {flat['first_minute']} in the first minute, "
        f"{flat['last_minute']} in the last (ratio {flat['ratio']}; the goal is within 25 %)."
    )


def _b10(d: Mapping[str, Any]) -> str:
    b10 = d["b10_failover"]
    steady = b10["steady_under_ha"]
    return (
        f"**B10 failover**, 2 replicas, {_n(b10['objects'])} objects: the leader killed, the standby took the Lease "
        f"after {b10['lease_taken_s']} s and had checked every object {b10['all_ticked_s']} s after the kill, "
        f"with {b10['kube_writes_per_object']} writes per object; the steady state under HA: effective interval "
        f"{steady['effective_interval_s']} s at {steady['core_share'] * 100:.0f} % of a core."
    )


LINES: tuple[tuple[str, Callable[[Mapping[str, Any]], str]], ...] = (
    ("b1_first_convergence", _b1),
    ("b2_steady_state", _b2),
    ("b3_drift_queue", _b3),
    ("b4_steady_state", _b4),
    ("b5_core_us", _b5),
    ("b8_restart", _b8),
    ("b9_burst", _b9),
    ("b9_burst_processes", _b9_processes),
    ("b10_failover", _b10),
)


def render(results: Mapping[str, Any]) -> str:
    """The block: where the numbers come from, then one line per headline results.json holds."""
    machine = results.get("machine") or {}
    build = machine.get("build") or {}
    commit = str(build.get("commit") or "unknown")[:12]
    head = (
        f"From `bench/results.json`: one run of every benchmark on commit `{commit}`"
        f"{' (with uncommitted changes)' if build.get('dirty') else ''}, {machine.get('cores')} cores, "
        f"{machine.get('date')}; load average {machine.get('load_average_at_start')} at the start."
    )
    lines = [f"- {fn(results)}" for key, fn in LINES if key in results]
    return "\n".join([head, "", *lines])


def replace_block(text: str, block: str) -> str:
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    return f"{text[:start]}\n{block}\n{text[end:]}"


def block_of(text: str) -> str:
    return text[text.index(BEGIN) + len(BEGIN) : text.index(END)].strip("\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.headlines", description=__doc__.splitlines()[0])
    parser.add_argument("--write", action="store_true", help="update README.md and docs/benchmarks.md")
    args = parser.parse_args(argv)
    block = render(json.loads(RESULTS.read_text()))
    if args.write:
        for path in DOCUMENTS:
            path.write_text(replace_block(path.read_text(), block))
    print(block)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
