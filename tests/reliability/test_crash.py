"""Crash safety: the operator process is SIGKILLed between our GET and our PUT, and after the PUT but before the
status patch, on create and on update; then restarted. Everything converges: no lost statement, no duplicate
Sid, no stale status, and no PUT more than the change needs.

The operator runs as a separate process (crash_operator.py) against the emulated Kubernetes API and moto,
through AwsFaultProxy (no faults) so every PutBucketPolicy on the wire is counted.
"""

from __future__ import annotations

import contextlib
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bucketwarden.policy import PolicyDocument
from bucketwarden.spec import ProtectedBucketSpec
from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    AwsFaultProxy,
    KubeClient,
    KubeEmulator,
    MotoServer,
    scrubbed_environ,
    wait_until,
)
from tests.reliability._kit import (
    ADOPT_SID,
    ROLE,
    create_pb,
    delete_all,
    foreign_of,
    foreign_statements,
    hand_written_deny,
    policy_problems,
    policy_text,
    wait_for_reason,
)
from tests.shared import DEADLINE, TRUST_POLICY, unique

pytestmark = pytest.mark.timeout(180)

SCRIPT = Path(__file__).with_name("crash_operator.py")
CRASH_POINTS = ("before-put", "after-put")
# A fresh Python process with kopf and boto3 takes seconds to start on a busy 2-core machine.
START_DEADLINE = 1.5 * DEADLINE


class OperatorProcess:
    """crash_operator.py in a child process; we started it, so we may kill it by its pid."""

    def __init__(self, kube: KubeEmulator, moto: MotoServer, proxy: AwsFaultProxy, namespace: str, workdir: Path):
        self._argv = [
            sys.executable,
            str(SCRIPT),
            "--server",
            kube.server,
            "--namespace",
            namespace,
            "--aws-endpoint",
            proxy.endpoint_url,
            "--region",
            moto.region,
        ]
        self._env = scrubbed_environ(moto.env())
        self.workdir = workdir
        self.markers = workdir / "markers"
        self.markers.mkdir(exist_ok=True)
        self.process: subprocess.Popen[bytes] | None = None
        self.runs = 0

    def start(self, freeze: dict[str, str] | None = None) -> None:
        assert self.process is None
        for marker in self.markers.iterdir():
            marker.unlink()
        argv = [*self._argv, "--markers", str(self.markers)]
        for bucket, point in (freeze or {}).items():
            argv += ["--freeze", f"{bucket}={point}"]
        self.runs += 1
        with open(self.workdir / f"operator-{self.runs}.log", "wb") as log:
            self.process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=self._env)

    def wait_frozen(self, buckets: list[str]) -> None:
        """Until every bucket's worker froze at its point (its marker exists)."""

        def frozen() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                pytest.fail(f"the operator exited early:\n{self.log_tail()}")
            return all((self.markers / bucket).exists() for bucket in buckets)

        wait_until(frozen, timeout=START_DEADLINE, what=f"the operator to freeze at {buckets}")

    def kill(self) -> None:
        """SIGKILL: no cleanup, no status patch, no graceful shutdown."""
        process, self.process = self.process, None
        if process is not None:
            process.kill()
            process.wait(10)

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is not None and process.poll() is None:
            process.terminate()
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(10)

    def log_tail(self, lines: int = 40) -> str:
        text = (self.workdir / f"operator-{self.runs}.log").read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])


@dataclass
class Rig:
    client: KubeClient
    namespace: str
    operator: OperatorProcess
    proxy: AwsFaultProxy


@pytest.fixture
def rig(kube: KubeEmulator, moto: MotoServer) -> Iterator[Rig]:
    moto.reset()
    moto.client("iam").create_role(RoleName=ROLE, Path="/service-role/", AssumeRolePolicyDocument=TRUST_POLICY)
    namespace = unique("bw-crash")
    with (
        kube.client() as client,
        AwsFaultProxy(moto.endpoint_url) as proxy,
        tempfile.TemporaryDirectory(prefix="bw-crash-") as workdir,
    ):
        client.create_namespace(namespace)
        operator = OperatorProcess(kube, moto, proxy, namespace, Path(workdir))
        try:
            yield Rig(client, namespace, operator, proxy)
        finally:
            operator.kill()
            with contextlib.suppress(Exception):
                delete_all(client, namespace)


def read_policy(moto: MotoServer, bucket: str) -> str | None:
    try:
        return str(moto.client("s3").get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError:
        return None


def spec_for(bucket: str, cidrs: list[str]) -> dict[str, Any]:
    return {"bucketName": bucket, "allowedSourceIps": cidrs, "exemptRoles": [{"name": ROLE}], "adoptSids": [ADOPT_SID]}


def puts(proxy: AwsFaultProxy, bucket: str) -> int:
    return sum(1 for r in proxy.records() if r.api == "PutBucketPolicy" and r.bucket == bucket and r.status == 200)


def test_operator_killed_between_get_and_put_or_before_status_patch_converges_on_restart(
    rig: Rig, moto: MotoServer, figures: dict[str, Any]
) -> None:
    client, namespace, operator, proxy = rig.client, rig.namespace, rig.operator, rig.proxy
    s3 = moto.client("s3")
    buckets = {point: unique(f"bw-crash-{point}") for point in CRASH_POINTS}  # one bucket per crash point
    names = {point: unique("pb") for point in CRASH_POINTS}
    foreign = {}
    for point, bucket in buckets.items():
        statements = [*foreign_statements(bucket), hand_written_deny(bucket)]
        s3.create_bucket(Bucket=bucket)
        s3.put_bucket_policy(Bucket=bucket, Policy=policy_text(*statements))
        spec = ProtectedBucketSpec.model_validate(spec_for(bucket, ["192.0.2.0/24"]))
        foreign[point] = foreign_of(PolicyDocument.parse(policy_text(*statements)), spec.owned_sids)
        create_pb(client, namespace, names[point], spec_for(bucket, ["192.0.2.0/24"]))
    freeze = {bucket: point for point, bucket in buckets.items()}
    killed = []

    for generation, cidrs in ((1, ["192.0.2.0/24"]), (2, ["192.0.2.0/24", "198.51.100.0/24"])):
        if generation == 2:
            for point, bucket in buckets.items():
                patch = {"spec": spec_for(bucket, cidrs)}
                client.patch_object(PROTECTED_BUCKETS, names[point], patch, namespace=namespace)
        stale = {point: client.get_object(PROTECTED_BUCKETS, names[point], namespace=namespace) for point in buckets}
        before = {point: read_policy(moto, bucket) for point, bucket in buckets.items()}

        # 1. Frozen at the crash point, then killed.
        operator.start(freeze)
        operator.wait_frozen(list(buckets.values()))
        operator.kill()
        killed += [f"{point} (generation {generation})" for point in CRASH_POINTS]
        assert read_policy(moto, buckets["before-put"]) == before["before-put"]  # killed before writing
        written = read_policy(moto, buckets["after-put"]) or ""
        assert written != before["after-put"] and all(cidr in written for cidr in cidrs)  # killed after writing
        for point in CRASH_POINTS:  # nothing reported for the change: the status is as before the crash
            now = client.get_object(PROTECTED_BUCKETS, names[point], namespace=namespace)
            previous = stale[point]
            assert now is not None and previous is not None
            assert now.get("status") == previous.get("status")

        # 2. Restarted: converges, with exactly the PUTs still needed.
        proxy.reset_records()
        operator.start()
        for point, bucket in buckets.items():
            obj = wait_for_reason(client, namespace, names[point], "Protected", status="True", timeout=START_DEADLINE)
            assert obj["metadata"]["generation"] == generation
            text = read_policy(moto, bucket)
            spec = ProtectedBucketSpec.model_validate(spec_for(bucket, cidrs))
            assert policy_problems(text, spec, foreign[point]) == [], operator.log_tail()
            assert obj["status"]["policyHash"] == PolicyDocument.parse(text or "").policy_hash  # not stale
            assert all(cidr in (text or "") for cidr in cidrs)
        operator.stop()
        assert puts(proxy, buckets["before-put"]) == 1  # the write the crash prevented
        assert puts(proxy, buckets["after-put"]) == 0  # already written: only status was missing

    figures["crash_points_tested"] = killed
