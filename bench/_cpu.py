"""What one timed step cost: wall seconds, CPU of the client (this process and finished children), CPU of moto.

On a 2-core machine moto and the tool under test share the CPUs, so CPU per bucket explains what wall time hides.
"""

from __future__ import annotations

import os
import resource
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

_MOTO_SCRIPT = "_moto_server.py"


@dataclass(frozen=True, slots=True)
class Cost:
    seconds: float
    client_cpu_s: float  # this process, every thread, plus children that ended (a `custodian run`)
    server_cpu_s: float | None  # the moto server process; None where /proc is not available

    def per_bucket_ms(self, buckets: int) -> dict[str, float | None]:
        server = None if self.server_cpu_s is None else round(self.server_cpu_s / buckets * 1000, 3)
        return {"client": round(self.client_cpu_s / buckets * 1000, 3), "server": server}


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


class ServerCpu:
    """CPU seconds used so far by the moto server that this process started (Linux /proc)."""

    def __init__(self) -> None:
        self._stat = self._find()
        self._tick = os.sysconf("SC_CLK_TCK") if self._stat else 100

    @staticmethod
    def _find() -> Path | None:
        me = os.getpid()
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                cmdline = stat.with_name("cmdline").read_bytes()
            except OSError:
                continue
            if int(fields[1]) == me and _MOTO_SCRIPT.encode() in cmdline:
                return stat
        return None

    def seconds(self) -> float | None:
        if self._stat is None:
            return None
        try:
            fields = self._stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        # After the ")" ending the command name: state is field 0, utime field 11, stime field 12.
        return (int(fields[11]) + int(fields[12])) / self._tick


def measure(server: ServerCpu, step: Callable[[], T]) -> tuple[T, Cost]:
    wall, cpu, children, moto = time.perf_counter(), time.process_time(), _children_cpu(), server.seconds()
    result = step()
    moto_after = server.seconds()
    cost = Cost(
        seconds=time.perf_counter() - wall,
        client_cpu_s=time.process_time() - cpu + _children_cpu() - children,
        server_cpu_s=None if moto is None or moto_after is None else moto_after - moto,
    )
    return result, cost
