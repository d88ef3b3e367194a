"""B3 with the drift queue: how long an out-of-band edit survives when CloudTrail events arrive through SQS.

``bucketwarden run`` (its own process) on moto (S3, IAM, STS and SQS) and the emulated API, with
BUCKETWARDEN_DRIFT_QUEUE_URL set and a 10-minute resync, so the resync never repairs anything within the run. After
1,000 ProtectedBuckets are Ready, a number of buckets lose their policy out of band (DeleteBucketPolicy) one by
one, at random times; right after each edit the bench sends the event EventBridge would deliver (the CloudTrail
"AWS API Call via CloudTrail" JSON of tests/fixtures/cloudtrail, for that bucket and a foreign principal) and polls
the bucket every 100 ms until our statement is back. Latency runs from the edit to the repair, so it covers the
queue's long poll, the annotation nudge, kopf's update handler and the reconcile; it does NOT cover CloudTrail's and
EventBridge's own delivery delay on AWS, which moto cannot show.
Run: ``python -m bench.drift_queue [--quick] [--json FILE]``.
"""

from __future__ import annotations

import argparse
import copy
import json
import random
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench import _report
from bench._operator import OperatorProcess, create_buckets, create_objects, create_roles, load_average
from bench.drift import percentile
from bench.steady import OUR_SID, wait_converged
from bench.workload import NAMESPACE, admin_s3, bucket_name
from bucketwarden_testkit import KubeEmulator, MotoServer, grant_namespaces

FULL = {"objects": 1000, "edits": 40}
QUICK = {"objects": 20, "edits": 4}
RESYNC_S = 600.0
GOAL_P95_S = 5.0
POLL_S = 0.1
EVENT = Path(__file__).resolve().parents[1] / "tests" / "fixtures" / "cloudtrail" / "delete-bucket-policy.json"


def _log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def event_for(bucket: str, n: int) -> str:
    event: dict[str, Any] = json.loads(EVENT.read_text(encoding="utf-8"))
    event = copy.deepcopy(event)
    event["detail"]["requestParameters"]["bucketName"] = bucket
    event["detail"]["eventID"] = f"bench-{n:06d}"
    return json.dumps(event)


def run(quick: bool) -> dict[str, Any]:
    cfg = QUICK if quick else FULL
    objects, edits = cfg["objects"], cfg["edits"]
    load_start = load_average()
    with (
        MotoServer() as moto,
        KubeEmulator() as kube,
        tempfile.TemporaryDirectory(prefix="bench-b3q-") as tmp,
        kube.client() as client,
    ):
        create_roles(moto)
        create_buckets(moto, range(objects))
        sqs = moto.client("sqs")
        queue_url = sqs.create_queue(QueueName="bucketwarden-drift")["QueueUrl"]
        client.create_namespace(NAMESPACE)
        grant_namespaces(client)
        env = {"BUCKETWARDEN_DRIFT_QUEUE_URL": queue_url, "BUCKETWARDEN_DRIFT_QUEUE_WAIT_SECONDS": "20"}
        with OperatorProcess(moto, kube, Path(tmp), resync_interval_s=RESYNC_S, extra_env=env) as operator:
            create_objects(client, range(objects))
            converge_s = wait_converged(operator, client, objects, timeout_s=900)
            _log(f"B3 queue: {objects} Ready in {converge_s:.0f} s; {edits} edits")
            time.sleep(5.0)  # let kopf's handling of the creates' status patches settle
            s3 = admin_s3(moto)
            rng = random.Random(3)
            latencies: list[float] = []
            before = operator.sample()
            for n, index in enumerate(rng.sample(range(objects), edits)):
                time.sleep(rng.uniform(0.2, 1.0))
                bucket = bucket_name(index)
                s3.delete_bucket_policy(Bucket=bucket)
                edited = time.monotonic()
                sqs.send_message(QueueUrl=queue_url, MessageBody=event_for(bucket, n))
                deadline = edited + 120
                while time.monotonic() < deadline:
                    try:
                        if OUR_SID in s3.get_bucket_policy(Bucket=bucket)["Policy"]:
                            latencies.append(time.monotonic() - edited)
                            break
                    except s3.exceptions.ClientError:
                        pass
                    time.sleep(POLL_S)
            after = operator.sample()
    restored = len(latencies)
    p95 = round(percentile(latencies, 0.95), 2) if latencies else None
    row = {
        "objects": objects,
        "resync_s": RESYNC_S,
        "edits": edits,
        "restored": restored,
        "p50_s": round(percentile(latencies, 0.5), 2) if latencies else None,
        "p95_s": p95,
        "max_s": round(max(latencies), 2) if latencies else None,
        "converge_s": round(converge_s, 1),
        "operator_cpu_s": round(after.cpu_s - before.cpu_s, 2),
        "rss_mb": round(after.rss_mb, 1),
        "goal_p95_at_most_5_s": bool(p95 is not None and p95 <= GOAL_P95_S and restored == edits),
        "load_average": {"start": load_start, "end": load_average()},
    }
    note = ", quick mode: not a measurement" if quick else ""
    _report.print_table(
        ["objects", "resync s", "edits", "restored", "p50 s", "p95 s", "max s", "goal p95 <= 5 s"],
        [
            [
                objects,
                RESYNC_S,
                edits,
                restored,
                row["p50_s"],
                p95,
                row["max_s"],
                "yes" if row["goal_p95_at_most_5_s"] else "NO",
            ]
        ],
        title=f"B3 drift latency with the drift queue (SQS){note}",
    )
    return {"benchmark": "drift_queue", "quick": quick, "b3_drift_queue": row}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.drift_queue", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="20 objects, 4 edits: checks it runs")
    parser.add_argument("--json", metavar="FILE", help="also write the results as JSON")
    args = parser.parse_args(argv)
    results = run(args.quick)
    if args.json:
        _report.write_json(args.json, {"drift_queue": results})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
