"""``bucketwarden run`` with a heap census on SIGUSR1: what B4's memory per ProtectedBucket is made of.

Run as a script (``python bench/_census.py OUT_PREFIX``), so it imports nothing of bench/. On every SIGUSR1 it
writes OUT_PREFIX.<n>.json: Python objects by type (count and bytes, str and int referents included), asyncio
tasks by coroutine, and the sizes of what kopf and bucketwarden keep per object: kopf's last-seen body of each
object (with its status and annotations), kopf's index entries, and bucketwarden's metrics state.
A diagnostic only: the walk itself allocates, so B4's measured runs never use it.
"""

from __future__ import annotations

import asyncio
import gc
import json
import signal
import sys
from collections import Counter
from collections.abc import Callable, Iterable
from pathlib import Path
from types import FrameType
from typing import Any

JSON_CONTAINERS = (dict, list, tuple, set, frozenset)


def deep_size(roots: Iterable[Any], *, into: Callable[[Any], bool] = lambda _: False) -> int:
    """Bytes of ``roots`` and everything reachable through containers (and objects ``into`` accepts), once each."""
    seen: set[int] = set()
    stack = list(roots)
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, JSON_CONTAINERS):
            stack.extend(obj)
        elif into(obj):
            stack.extend(_fields(obj))
    return total


def _fields(obj: Any) -> list[Any]:
    """The attribute values of an object, from its __dict__ and its __slots__."""
    values = list(getattr(obj, "__dict__", {}).values())
    for cls in type(obj).__mro__:
        for slot in getattr(cls, "__slots__", ()):
            if hasattr(obj, slot) and slot not in ("__dict__", "__weakref__"):
                values.append(getattr(obj, slot))
    return values


def _of_type(name: str, module_prefix: str) -> list[Any]:
    return [o for o in gc.get_objects() if type(o).__name__ == name and type(o).__module__.startswith(module_prefix)]


def heap_by_type() -> dict[str, list[int]]:
    """type -> [count, bytes] of every object the collector tracks, plus the untracked ones they refer to."""
    gc.collect()
    counts: Counter[str] = Counter()
    sizes: Counter[str] = Counter()
    seen: set[int] = set()

    def add(obj: Any) -> None:
        if id(obj) not in seen:
            seen.add(id(obj))
            name = type(obj).__name__
            counts[name] += 1
            sizes[name] += sys.getsizeof(obj)

    for obj in gc.get_objects():
        add(obj)
        for ref in gc.get_referents(obj):
            if not gc.is_tracked(ref):
                add(ref)
    return {name: [counts[name], sizes[name]] for name in counts}


def kopf_bodies() -> dict[str, int]:
    """kopf's per-object memories and the last-seen body each keeps for its timer (parts in bytes)."""
    memories = [m for ms in _of_type("ResourceMemories", "kopf.") for m in vars(ms)["_items"].values()]
    raws = [
        vars(m.daemons_memory.live_fresh_body)["_src"] for m in memories if m.daemons_memory.live_fresh_body is not None
    ]
    return {
        "memories": len(memories),
        "bodies": len(raws),
        "body_bytes": deep_size(raws),
        "status_bytes": deep_size(r.get("status") for r in raws),
        "annotations_bytes": deep_size(r.get("metadata", {}).get("annotations") for r in raws),
        "spec_bytes": deep_size(r.get("spec") for r in raws),
    }


def policy_caches() -> dict[str, Any]:
    """bucketwarden's bounded policy caches (compiled statements, regexes): they grow with buckets up to a limit."""
    import functools

    from bucketwarden.policy import _cidr, _conditions, _evaluate

    lru = {
        f"{module.__name__.rsplit('.', 1)[-1]}.{name}": fn.cache_info().currsize
        for module in (_cidr, _conditions)
        for name, fn in vars(module).items()
        if isinstance(fn, functools._lru_cache_wrapper)
    }
    compiled = [vars(_evaluate).get("_statements", {}), vars(_evaluate).get("_policies", {})]
    return {
        "compiled_statements": len(compiled[0]),
        "compiled_policies": len(compiled[1]),
        "compiled_bytes": deep_size(compiled, into=lambda o: type(o).__module__.startswith("bucketwarden.policy")),
        "lru_entries": lru,
    }


def census() -> dict[str, Any]:
    rss_kb = next(
        int(line.split()[1]) for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmRSS")
    )
    tasks: Counter[str] = Counter()
    for task in asyncio.all_tasks(asyncio.get_event_loop()):
        tasks[getattr(task.get_coro(), "__qualname__", "?")] += 1
    indexers = _of_type("OperatorIndexer", "kopf.")
    # The package of kopf's indexers, named from the objects found (not spelled out: the kopf seam is the one module
    # that names kopf's private packages).
    engines = type(indexers[0]).__module__.rpartition(".")[0] if indexers else "kopf"
    metrics = _of_type("Metrics", "bucketwarden.")
    return {
        "rss_kb": rss_kb,
        "types": heap_by_type(),
        "tasks": dict(tasks),
        "kopf": kopf_bodies(),
        "index_bytes": deep_size(
            [vars(i.index) for i in indexers], into=lambda o: type(o).__module__.startswith(engines)
        ),
        "metrics_state_bytes": deep_size(vars(m)["_states"] for m in metrics),
        "policy_caches": policy_caches(),
    }


def main() -> int:
    prefix = sys.argv[1]
    written = 0

    def dump(signum: int, frame: FrameType | None) -> None:
        nonlocal written
        try:
            text = json.dumps(census())
        except Exception as exc:  # never take the operator down; the benchmark reports the error
            text = json.dumps({"error": repr(exc)})
        Path(f"{prefix}.{written}.json.tmp").write_text(text)
        Path(f"{prefix}.{written}.json.tmp").rename(f"{prefix}.{written}.json")
        written += 1

    signal.signal(signal.SIGUSR1, dump)
    from bucketwarden.cli import main as cli_main

    return cli_main(["run"])


if __name__ == "__main__":
    raise SystemExit(main())
