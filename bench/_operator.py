"""The operator as B3 and B4 see it: ``bucketwarden run`` in its own process, on moto and the Kubernetes emulator.

Everything is measured from outside, as production would see it: RSS and peak RSS from /proc/PID/status, CPU
seconds from /proc/PID/stat, and progress from the operator's own metrics endpoint. The emulator and moto are
separate processes too, so the operator's numbers are its own.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Self

from bench.workload import NAMESPACE, ROLES, TRUST_POLICY, admin_s3, bucket_name, protected_bucket
from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    HarnessError,
    KubeClient,
    KubeEmulator,
    MotoServer,
    child_pids,
    scrubbed_environ,
)

READY_TRUE = re.compile(r'^bucketwarden_managed_buckets\{condition="Ready",status="True"\} ([0-9.e+]+)$', re.M)


def ready_in(text: str | None) -> int:
    """``bucketwarden_managed_buckets{condition="Ready",status="True"}`` in a metrics text (0 when absent)."""
    match = READY_TRUE.search(text or "")
    return int(float(match.group(1))) if match else 0


# Threads creating buckets and objects: the emulator serves one request at a time anyway, moto two or three.
SETUP_WORKERS = 8
# Threads creating ProtectedBuckets: more only contend for the GIL, in the process that also watches the operator.
CREATE_WORKERS = 4
_CLOCK_TICK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def load_average() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def _cpu_times() -> tuple[float, float]:
    """(busy, total) jiffies of every core, from /proc/stat's first line."""
    fields = [float(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
    return sum(fields) - idle, sum(fields)


def wait_machine_quiet(*, window: float = 2.0, busy_cores: float = 0.3, timeout: float = 60.0) -> float:
    """Wait until the whole machine used less than ``busy_cores`` cores over ``window`` seconds (what the setup
    left running, moto digesting thousands of buckets, a finished process's teardown); the cores busy in the last
    window. The load average cannot say this: it decays over a minute after the work has stopped."""
    deadline = time.monotonic() + timeout
    cores = os.cpu_count() or 1
    while True:
        busy0, total0 = _cpu_times()
        time.sleep(window)
        busy1, total1 = _cpu_times()
        busy = (busy1 - busy0) / max(total1 - total0, 1.0) * cores
        if busy <= busy_cores or time.monotonic() > deadline:
            return round(busy, 2)


@dataclass(frozen=True, slots=True)
class ProcessSample:
    """One look at the operator process from outside."""

    at_s: float  # seconds since the process started
    # With its child processes (BUCKETWARDEN_RECONCILE_PROCESSES): their RSS and CPU are the operator's too.
    rss_mb: float  # VmRSS, summed
    peak_rss_mb: float  # VmHWM: the highest RSS so far, each process's summed (an upper bound of the pod's)
    cpu_s: float  # user + system, all threads, live children and children that ended included

    def to_json(self) -> dict[str, float]:
        return {
            "at_s": round(self.at_s, 2),
            "rss_mb": round(self.rss_mb, 1),
            "peak_rss_mb": round(self.peak_rss_mb, 1),
            "cpu_s": round(self.cpu_s, 2),
        }


def _usage(pid: int, *, reaped: bool) -> tuple[float, float, float]:
    """(RSS MB, peak RSS MB, CPU s) of one process; ``reaped`` adds the CPU of its children that ended."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmRSS", "VmHWM"):
            fields[key] = int(value.split()[0]) / 1024  # kB -> MB
    stat = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the ")" ending the command name: state is field 0, ppid 1, utime 11, stime 12, cutime 13, cstime 14.
    ticks = int(stat[11]) + int(stat[12]) + ((int(stat[13]) + int(stat[14])) if reaped else 0)
    return fields["VmRSS"], fields["VmHWM"], ticks / _CLOCK_TICK


class OperatorProcess:
    """``python -m bucketwarden run`` with a kubeconfig for the emulator and moto's endpoint, as the e2e tests run it.

    Health port off, metrics on a free port, logs (JSON, INFO, as deployed) to a file in ``workdir``.
    """

    def __init__(
        self,
        moto: MotoServer,
        kube: KubeEmulator,
        workdir: Path,
        *,
        resync_interval_s: float,
        resync_jitter_s: float | None = None,
        extra_env: Mapping[str, str] | None = None,
        command: Sequence[str] | None = None,
    ) -> None:
        self.command = list(command or [sys.executable, "-m", "bucketwarden", "run"])
        self.metrics_port = free_port()
        env = {
            **moto.env(),
            "KUBECONFIG": str(kube.kubeconfig),
            "HOME": str(workdir),
            "BUCKETWARDEN_METRICS_PORT": str(self.metrics_port),
            "BUCKETWARDEN_HEALTH_PORT": "0",
            "BUCKETWARDEN_RESYNC_INTERVAL_SECONDS": str(resync_interval_s),
            "BUCKETWARDEN_LOG_FORMAT": "json",
            **(extra_env or {}),
        }
        if resync_jitter_s is not None:
            env["BUCKETWARDEN_RESYNC_JITTER_SECONDS"] = str(resync_jitter_s)
        self._env = scrubbed_environ(env)
        self.log_path = workdir / "operator.log"
        self._process: subprocess.Popen[bytes] | None = None
        self._started = 0.0

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def pid(self) -> int:
        if self._process is None:
            raise RuntimeError("the operator is not running")
        return self._process.pid

    @property
    def started(self) -> float:
        """time.monotonic() when the process was started."""
        return self._started

    def start(self, *, timeout: float = 60.0, wait: bool = True) -> None:
        """Start the process and wait until its metrics endpoint answers (the startup handler has run).

        ``wait=False``: return at once (a leader-election standby serves no metrics until it leads)."""
        with open(self.log_path, "wb") as log:
            self._started = time.monotonic()
            self._process = subprocess.Popen(
                self.command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                env=self._env,
            )
        if not wait:
            return
        deadline = time.monotonic() + timeout
        while self.metrics_text() is None:
            if self._process.poll() is not None:
                raise RuntimeError(f"the operator exited at startup:\n{self.log_tail()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"the operator's metrics did not answer within {timeout} s:\n{self.log_tail()}")
            time.sleep(0.1)

    def kill(self) -> None:
        """SIGKILL: a crash, a node lost; nothing is released."""
        if self._process is not None and self._process.poll() is None:
            self._process.kill()
            self._process.wait(30)

    def stop(self, timeout: float = 30.0) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.terminate()
        try:
            process.wait(timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout)

    def check_alive(self) -> None:
        if self._process is None or self._process.poll() is not None:
            raise RuntimeError(f"the operator is not running:\n{self.log_tail()}")

    def sample(self) -> ProcessSample:
        rss, peak, cpu = _usage(self.pid, reaped=True)
        for child in child_pids(self.pid):  # the reconcile processes, multiprocessing's tracker
            try:
                child_rss, child_peak, child_cpu = _usage(child, reaped=False)
            except (OSError, KeyError):  # it ended between the listing and the read
                continue
            rss, peak, cpu = rss + child_rss, peak + child_peak, cpu + child_cpu
        return ProcessSample(time.monotonic() - self._started, rss, peak, cpu)

    def metrics_text(self) -> str | None:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as response:
                return str(response.read().decode())
        except (urllib.error.URLError, OSError):
            return None

    def ready_count(self) -> int:
        """``bucketwarden_managed_buckets{condition="Ready",status="True"}``: set when a reconcile ends."""
        return ready_in(self.metrics_text())

    def wait_idle(self, *, window: float = 3.0, busy_share: float = 0.03, timeout: float = 60.0) -> ProcessSample:
        """Wait until the process used less than ``busy_share`` of a core over ``window`` seconds; the last sample."""
        deadline = time.monotonic() + timeout
        before = self.sample()
        while True:
            time.sleep(window)
            after = self.sample()
            if after.cpu_s - before.cpu_s <= busy_share * window or time.monotonic() > deadline:
                return after
            before = after

    def log_tail(self, lines: int = 20) -> str:
        if not self.log_path.exists():
            return "(no log)"
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def log_lines(self) -> list[str]:
        return self.log_path.read_text(errors="replace").splitlines() if self.log_path.exists() else []


def create_roles(moto: MotoServer) -> None:
    iam = moto.client("iam")
    for name, path in ROLES:
        iam.create_role(RoleName=name, Path=path, AssumeRolePolicyDocument=TRUST_POLICY)


def create_buckets(moto: MotoServer, indices: Iterable[int]) -> None:
    s3 = admin_s3(moto)
    with ThreadPoolExecutor(SETUP_WORKERS, thread_name_prefix="bench-setup") as pool:
        list(pool.map(lambda i: s3.create_bucket(Bucket=bucket_name(i)), indices))


def object_body(index: int) -> dict[str, Any]:
    """The ProtectedBucket for bucket ``index`` (bench/workload.py) as the API object a user applies."""
    resource = protected_bucket(index)
    return {"metadata": {"name": resource.name}, "spec": resource.spec.to_k8s()}


def create_objects(client: KubeClient, indices: Sequence[int]) -> None:
    """Create the ProtectedBuckets in the bench namespace, a few requests in flight at a time.

    On the emulator (plain HTTP) each is one POST of pre-encoded JSON on a kept-alive ``http.client`` connection
    per thread: 0.22 ms of CPU per create, against 0.69 ms through the kubernetes client's models and urllib3
    (measured creating 3,000). B9 creates 10,000 at once on the same two cores as the operator it measures, so
    the bench's own client must cost as little as it can. The benches run on the emulator only.
    """
    server = urllib.parse.urlsplit(client.api_client.configuration.host)
    if server.scheme != "http" or server.hostname is None:
        raise HarnessError(f"the benches create objects on the emulated API (plain HTTP), not on {server.geturl()}")
    resource = PROTECTED_BUCKETS
    path = (
        f"{server.path.rstrip('/')}/apis/{resource.group}/{resource.version}/namespaces/{NAMESPACE}/{resource.plural}"
    )
    # The kubernetes client's User-Agent, which _fleet.kube_writes leaves out of the operator's writes.
    headers = {
        "Content-Type": "application/json",
        "Accept": "application/json",
        "User-Agent": client.api_client.user_agent,
    }
    host, port = server.hostname, server.port or 80
    local = threading.local()
    opened: list[http.client.HTTPConnection] = []

    def create(index: int) -> None:
        connection: http.client.HTTPConnection | None = getattr(local, "connection", None)
        if connection is None:
            connection = local.connection = http.client.HTTPConnection(host, port, timeout=60.0)
            opened.append(connection)
        body = object_body(index)
        body["metadata"]["namespace"] = NAMESPACE
        encoded = json.dumps({"apiVersion": resource.api_version, "kind": resource.kind, **body}).encode()
        connection.request("POST", path, body=encoded, headers=headers)
        response = connection.getresponse()
        answer = response.read()
        if response.status != 201:
            raise RuntimeError(f"creating {body['metadata']['name']}: HTTP {response.status} {answer[:300]!r}")

    try:
        with ThreadPoolExecutor(CREATE_WORKERS, thread_name_prefix="bench-create") as workers:
            list(workers.map(create, indices))
    finally:
        for connection in opened:
            connection.close()


def is_ready(obj: Mapping[str, Any]) -> bool:
    conditions = (obj.get("status") or {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


def count_ready(client: KubeClient) -> tuple[int, int]:
    """(objects, objects whose status says Ready=True), from one list of the namespace."""
    items = client.list_objects(PROTECTED_BUCKETS, namespace=NAMESPACE)
    return len(items), sum(1 for obj in items if is_ready(obj))
