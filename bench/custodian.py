"""The B1 peer: Cloud Custodian's ``set-statements`` enforcing the same statement, run as ``custodian run`` on moto.

c7n lives in its own venv (it pins an older boto3), created from bench/custodian-requirements.txt on first use.
One c7n policy per group of buckets that exempts the same roles, since a c7n statement is static apart from
``{bucket_name}``. The policies share one in-memory resource cache, so the buckets are described once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from bench.workload import ADOPTED_SID, Workload, group_prefix
from bucketwarden_testkit import MotoServer

ROOT = Path(__file__).resolve().parent.parent
VENV = ROOT / ".bench-venv" / "c7n"
REQUIREMENTS = Path(__file__).with_name("custodian-requirements.txt")
CUSTODIAN = VENV / "bin" / "custodian"

# "tuned" fetches only what set-statements needs (Location and Tags are always fetched);
# "default" is c7n out of the box: ten describe calls per bucket.
Variant = Literal["tuned", "default"]


def available() -> bool:
    return CUSTODIAN.exists()


def ensure_installed() -> None:
    """Create .bench-venv/c7n from the pinned requirements, once (about 30 s)."""
    if available():
        return
    print(f"installing Cloud Custodian into {VENV} ...", file=sys.stderr, flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(VENV)], check=True)
    pip = [str(VENV / "bin" / "python"), "-m", "pip", "install", "-q", "--disable-pip-version-check"]
    subprocess.run([*pip, "-r", str(REQUIREMENTS)], check=True)


def version() -> str:
    out = subprocess.run([str(CUSTODIAN), "version"], capture_output=True, text=True, check=True)
    return out.stdout.strip()


def policy_file(workload: Workload, variant: Variant) -> dict[str, Any]:
    """The c7n policies: per group, set our statement and remove the hand-written one (else it stays too)."""
    policies = []
    for group, statement in enumerate(workload.group_statements):
        policy: dict[str, Any] = {
            "name": f"bucketwarden-bench-g{group}",
            "resource": "aws.s3",
            "mode": {"type": "pull"},
            "filters": [{"type": "value", "key": "Name", "op": "glob", "value": group_prefix(group) + "*"}],
            "actions": [{"type": "set-statements", "remove": [ADOPTED_SID], "statements": [statement]}],
        }
        if variant == "tuned":
            policy["query"] = [{"augment-keys": ["Policy"]}]
        policies.append(policy)
    return {"policies": policies}


@dataclass(frozen=True, slots=True)
class CustodianRun:
    variant: Variant
    engine_s: float  # what c7n itself reports: resource fetch plus action time, over all policies
    api_calls: dict[str, int] = field(default_factory=dict)  # from c7n's api-stats

    def calls_per_bucket(self, buckets: int) -> float:
        return sum(self.api_calls.values()) / buckets


def run(moto: MotoServer, workload: Workload, variant: Variant) -> CustodianRun:
    """Run custodian once against moto; the caller times it, resets the policies before and checks them after."""
    with tempfile.TemporaryDirectory(prefix="bucketwarden-bench-c7n-") as tmp:
        work = Path(tmp)
        (work / "policy.yml").write_text(yaml.safe_dump(policy_file(workload, variant), sort_keys=False))
        # HOME keeps c7n's caches and config away from the user's.
        env = {**os.environ, **moto.env(), "HOME": str(work)}
        env.pop("AWS_PROFILE", None)
        argv = [str(CUSTODIAN), "run", "-s", str(work / "out"), "--cache", "memory", str(work / "policy.yml")]
        done = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"custodian run failed ({done.returncode}):\n{done.stderr[-4000:]}")
        engine = 0.0
        calls: Counter[str] = Counter()
        for metadata in (work / "out").glob("*/metadata.json"):
            data = json.loads(metadata.read_text())
            metrics = data.get("metrics", ())
            engine += sum(m["Value"] for m in metrics if m["MetricName"] in ("ResourceTime", "ActionTime"))
            calls.update(data.get("api-stats", {}))
    return CustodianRun(variant, engine, dict(sorted(calls.items())))
