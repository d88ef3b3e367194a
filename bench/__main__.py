"""Run the benchmarks: ``python -m bench [--quick] [--json FILE] [NAME ...]``.

Each benchmark module offers ``run(quick: bool) -> dict``: it prints its own table and returns its numbers.
Register new ones in BENCHMARKS. A full run of every benchmark writes bench/results.json: the machine, each
benchmark's headline keys (``b1_...`` to ``b10_...``) at the top level, and each benchmark's details, each with the
load average at its start.
"""

from __future__ import annotations

import argparse
import functools
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from bench import _report, audit, burst, convergence, core, drift, drift_queue, failover, restart, scale, steady

BENCHMARKS: dict[str, Callable[[bool], dict[str, Any]]] = {
    "core": core.run,
    "convergence": convergence.run,
    "drift": drift.run,
    "scale": scale.run,
    "audit": audit.run,
    "steady": steady.run,
    "drift_queue": drift_queue.run,
    "restart": restart.run,
    "burst": burst.run,
    "failover": failover.run,
}
DEFAULT_JSON = Path(__file__).with_name("results.json")
HEADLINE_KEY = re.compile(r"^b[0-9]+_")


def results_document(machine: Mapping[str, Any], results: Mapping[str, Mapping[str, Any]]) -> dict[str, Any]:
    """The JSON results: machine, the headline keys of every benchmark, then every benchmark's own section."""
    headlines = {key: value for r in results.values() for key, value in r.items() if HEADLINE_KEY.match(key)}
    return {"machine": dict(machine), **headlines, **results}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__.splitlines()[0])
    parser.add_argument(
        "names", nargs="*", metavar="NAME", help=f"benchmarks to run (default all): {', '.join(BENCHMARKS)}"
    )
    parser.add_argument("--quick", action="store_true", help="a few iterations only: checks it runs, not speed")
    parser.add_argument(
        "--json",
        metavar="FILE",
        help=f"write the results as JSON (default: {DEFAULT_JSON.name} next to this file, on a full run of all)",
    )
    convergence.add_arguments(parser, standalone=False)
    scale.add_arguments(parser, standalone=False)
    args = parser.parse_args(argv)
    unknown = sorted(set(args.names) - set(BENCHMARKS))
    if unknown:
        parser.error(f"unknown benchmark(s) {', '.join(unknown)}; choose from {', '.join(BENCHMARKS)}")
    runners: dict[str, Callable[[bool], dict[str, Any]]] = {
        **BENCHMARKS,
        "convergence": functools.partial(convergence.run, **convergence.options(args)),
        "scale": functools.partial(scale.run, **scale.options(args)),
    }
    machine = _report.machine_info()
    print(
        f"machine: {machine['cores']} cores, {machine['memory_gb']} GB, Python {machine['python']}, {machine['date']}\n"
    )
    # A quick or partial run must not overwrite the full results that docs/benchmarks.md quotes.
    target = args.json or (DEFAULT_JSON if not args.quick and not args.names else None)
    results: dict[str, dict[str, Any]] = {}
    for name in args.names or BENCHMARKS:
        load = [round(x, 2) for x in os.getloadavg()]
        results[name] = {**runners[name](args.quick), "load_average_at_start": load}
        machine["load_average_at_end"] = [round(x, 2) for x in os.getloadavg()]
        if target:  # after each benchmark: a run stopped half-way keeps what it measured
            _report.write_json(target, results_document(machine, results))
    if target:
        print(f"results written to {target}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
