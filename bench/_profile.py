"""Sample a step of this process with py-spy and summarise where the GIL went, by function.

py-spy is not a dependency (``.venv/bin/pip install py-spy``); pyinstrument would see only one of the worker
threads. py-spy attaches to this process, which needs ptrace rights (root, or kernel.yama.ptrace_scope=0).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

T = TypeVar("T")


def py_spy() -> str | None:
    found = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
    return found if Path(found).exists() else None


@dataclass(frozen=True, slots=True)
class Profiled(Generic[T]):
    result: T
    shares: dict[str, float] | None  # group -> % of GIL samples; None if profiling did not work
    error: str | None = None


def profile(step: Callable[[], T], out: Path, name: str) -> Profiled[T]:
    """Run ``step`` under py-spy; writes ``out/NAME-pyspy.txt`` (collapsed stacks) and ``out/NAME-profile.txt``.

    The step runs even if profiling does not work; ``error`` then says why.
    """
    spy = py_spy()
    if spy is None:
        return Profiled(step(), None, "py-spy is not installed (.venv/bin/pip install py-spy)")
    out.mkdir(parents=True, exist_ok=True)
    raw = out / f"{name}-pyspy.txt"
    raw.unlink(missing_ok=True)
    # --gil: only the thread holding the GIL, i.e. the Python work that the client's 16 threads queue for.
    # --nonblocking: sample without pausing the process, or the step runs several times slower.
    argv = [spy, "record", "--pid", str(os.getpid()), "--rate", "200", "--gil", "--nonblocking"]
    argv += ["--format", "raw", "--output", str(raw)]
    recorder = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)  # let it attach
    try:
        result = step()
    finally:
        recorder.send_signal(signal.SIGINT)
        _, errors = recorder.communicate(timeout=60)
    if not raw.exists():
        return Profiled(result, None, f"py-spy failed: {errors.strip()[-500:]}")
    collapsed = raw.read_text()
    (out / f"{name}-profile.txt").write_text(summarise_stacks(collapsed))
    return Profiled(result, group_shares(collapsed))


# Where a sample's time belongs: the first group (in this order) with a frame anywhere on the stack.
# py-spy writes frames as "function (package/module.py:LINE)".
GROUPS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("AWS SDK and HTTP (boto3, botocore, urllib3)", ("(botocore/", "(boto3/", "(urllib3/", "(http/client.py")),
    ("policy core (bucketwarden.policy)", ("(bucketwarden/policy/",)),
    ("pydantic models", ("(pydantic/", "(pydantic_core/")),
    ("rest of bucketwarden", ("(bucketwarden/",)),
)


def group_shares(collapsed: str) -> dict[str, float]:
    """Share of samples per group of GROUPS (plus "other": threads, queues, the benchmark)."""
    counts: Counter[str] = Counter()
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if stack and count_text.isdigit():
            group = next((g for g, marks in GROUPS if any(m in stack for m in marks)), "other")
            counts[group] += int(count_text)
    total = max(sum(counts.values()), 1)
    return {group: round(100 * counts[group] / total, 1) for group in [*(g for g, _ in GROUPS), "other"]}


def summarise_stacks(collapsed: str, top: int = 45) -> str:
    """Group shares, then inclusive and self sample shares per function, from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in collapsed.splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        total += count
        frames = [_frame(f) for f in stack.split(";")]
        own[frames[-1]] += count
        for frame in set(frames):
            inclusive[frame] += count
    total = max(total, 1)
    lines = [f"{total} samples of the thread holding the GIL", "", "share %     group"]
    lines += [f"{share:10.1f}  {group}" for group, share in group_shares(collapsed).items()]
    lines += ["", "inclusive %  function"]
    lines += [f"{100 * c / total:10.1f}  {f}" for f, c in inclusive.most_common(top)]
    lines += ["", "self %      function"]
    lines += [f"{100 * c / total:10.1f}  {f}" for f, c in own.most_common(top)]
    return "\n".join(lines) + "\n"


def _frame(frame: str) -> str:
    # "function (path/to/module.py:LINE)" -> "function (dir/module.py)": lines would split one function in rows.
    name, _, where = frame.partition(" (")
    path = where.rstrip(")").rsplit(":", 1)[0]
    parts = path.replace("\\", "/").split("/")
    short = "/".join(parts[-2:]) if len(parts) > 1 else path
    return f"{name} ({short})" if where else name
