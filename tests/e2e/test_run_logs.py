"""Logs of the real processes (issue 14, logs): `bucketwarden run` writes INFO only for start-up, changes and
failures, with structured JSON fields, and nothing for quiet resyncs or /healthz probes; the CLI at DEBUG shows
its AWS calls and decisions."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bucketwarden import __version__
from bucketwarden_testkit import (
    PROTECTED_BUCKETS,
    KubeEmulator,
    MotoServer,
    grant_namespaces,
    scrubbed_environ,
    wait_until,
)
from tests.shared import fetch, free_port

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(180)]

NAMESPACE = "run-logs"
BUCKETS = ("run-logs-a", "run-logs-b", "run-logs-c")
RESYNC_S = 1.0
RECONCILES = re.compile(r'^bucketwarden_reconciles_total\{result="[A-Za-z]+"\} ([0-9.e+]+)$', re.M)
FIELDS = {"bucket", "namespace", "name", "outcome", "reason", "action", "aws_calls", "duration"}


class Operator:
    def __init__(self, log: Path, metrics_port: int, health_port: int) -> None:
        self.log, self.metrics_port, self.health_port = log, metrics_port, health_port

    def records(self) -> list[dict[str, Any]]:
        lines = self.log.read_text(encoding="utf-8", errors="replace").splitlines()
        return [json.loads(line) for line in lines if line.startswith("{")]

    def reconciles(self) -> float:
        return sum(float(n) for n in RECONCILES.findall(fetch(f"http://127.0.0.1:{self.metrics_port}/metrics")))


@pytest.fixture(scope="module")
def running(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[MotoServer, Operator]]:
    tmp = tmp_path_factory.mktemp("run-logs")
    with MotoServer() as moto, KubeEmulator() as kube:
        for bucket in BUCKETS:
            moto.client("s3").create_bucket(Bucket=bucket)
        metrics_port, health_port = free_port(), free_port()
        env = scrubbed_environ(
            {
                **moto.env(),
                "KUBECONFIG": str(kube.kubeconfig),
                "BUCKETWARDEN_METRICS_PORT": str(metrics_port),
                "BUCKETWARDEN_HEALTH_PORT": str(health_port),
                "BUCKETWARDEN_RESYNC_INTERVAL_SECONDS": str(RESYNC_S),
                "BUCKETWARDEN_LOG_FORMAT": "json",
                "BUCKETWARDEN_LOG_LEVEL": "INFO",
                "HOME": str(tmp),
            }
        )
        log_path = tmp / "operator.log"
        with log_path.open("w") as log:
            process = subprocess.Popen(
                [sys.executable, "-m", "bucketwarden", "run"], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        try:
            with kube.client() as client:
                client.create_namespace(NAMESPACE)
                grant_namespaces(client)
                for bucket in BUCKETS:
                    body = {
                        "metadata": {"name": bucket},
                        "spec": {"bucketName": bucket, "allowedSourceIps": ["192.0.2.0/24"]},
                    }
                    client.create_object(PROTECTED_BUCKETS, body, namespace=NAMESPACE)
                for bucket in BUCKETS:
                    client.wait_for_status(
                        PROTECTED_BUCKETS,
                        bucket,
                        lambda s: any(
                            c.get("type") == "Ready" and c.get("status") == "True" for c in s.get("conditions", [])
                        ),
                        namespace=NAMESPACE,
                        timeout=60,
                    )
            yield moto, Operator(log_path, metrics_port, health_port)
        finally:
            process.terminate()
            process.wait(30)


def test_run_quiet_resyncs_and_probes_write_no_info_line(running: tuple[MotoServer, Operator]) -> None:
    _, operator = running
    # The resync after each create's write reconciles fully once; after that every tick is quiet.
    start = operator.reconciles()
    wait_until(lambda: operator.reconciles() >= start + 2 * len(BUCKETS), timeout=60, what="first resyncs")
    mark = len(operator.records())
    start = operator.reconciles()
    for _ in range(5):
        fetch(f"http://127.0.0.1:{operator.health_port}/healthz")
    wait_until(lambda: operator.reconciles() >= start + 3 * len(BUCKETS), timeout=60, what="three quiet rounds")
    new = operator.records()[mark:]
    assert [r for r in new if r.get("severity") != "debug"] == []


def test_run_logs_a_change_at_info_with_structured_fields(running: tuple[MotoServer, Operator]) -> None:
    moto, operator = running
    mark = len(operator.records())
    moto.client("s3").delete_bucket_policy(Bucket=BUCKETS[0])

    def repaired() -> list[dict[str, Any]]:
        return [r for r in operator.records()[mark:] if r.get("bucket") == BUCKETS[0] and r.get("action") == "put"]

    wait_until(lambda: bool(repaired()), timeout=60, what="the repair logged")
    [record] = repaired()
    assert record["severity"] == "info"
    assert set(record) >= FIELDS
    assert (record["namespace"], record["name"], record["outcome"]) == (NAMESPACE, BUCKETS[0], "Updated")
    assert record["aws_calls"] >= 2 and record["duration"] > 0


def test_run_start_up_line_says_what_how_and_as_whom(running: tuple[MotoServer, Operator]) -> None:
    moto, operator = running
    [startup] = [r for r in operator.records() if "aws_identity" in r]
    assert startup["severity"] == "info"
    assert startup["version"] == __version__
    assert startup["aws_identity"] == moto.client("sts").get_caller_identity()["Arn"]
    assert startup["aws_region"] == moto.region
    assert startup["namespaces"] == []
    assert startup["resync_interval_seconds"] == RESYNC_S
    non_default = startup["non_default_settings"]
    assert non_default["resync_interval_seconds"] == RESYNC_S
    assert non_default["health_port"] == operator.health_port
    assert "log_format" not in non_default  # json is the default


def test_cli_debug_shows_aws_calls_and_decisions(tmp_path: Path) -> None:
    with MotoServer() as moto:
        moto.client("s3").create_bucket(Bucket="cli-debug")
        manifest = tmp_path / "pb.yaml"
        manifest.write_text(
            "apiVersion: bucketwarden.io/v1alpha1\nkind: ProtectedBucket\nmetadata: {name: pb}\n"
            "spec: {bucketName: cli-debug, allowedSourceIps: [192.0.2.0/24]}\n",
            encoding="utf-8",
        )
        env = scrubbed_environ({**moto.env(), "HOME": str(tmp_path), "BUCKETWARDEN_LOG_LEVEL": "DEBUG"})
        result = subprocess.run(
            [sys.executable, "-m", "bucketwarden", "plan", "-f", str(manifest)],
            env=env,
            capture_output=True,
            text=True,
            check=False,
        )
    assert "AWS call GetBucketPolicy" in result.stderr, result.stderr
    assert "reconcile cli-debug:" in result.stderr, result.stderr
