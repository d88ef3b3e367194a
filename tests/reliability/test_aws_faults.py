"""AWS faults on the wire: AwsFaultProxy between the real AwsGateway and moto injects 503 SlowDown, 500
InternalError, throttling, read timeouts and connection resets on S3, IAM and STS, seeded.

The fleet test reconciles 200 buckets, each with foreign statements, under a 20 % fault rate, in level-based
passes (as the operator's resync does) until every bucket is Ready, and checks every final policy.
"""

from __future__ import annotations

import itertools
import os
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from botocore.exceptions import ClientError

from bucketwarden.aws import AwsCallCounter, AwsGateway, AwsSettings
from bucketwarden.k8s import Metrics
from bucketwarden.k8s._object import backoff as _backoff
from bucketwarden.policy import PolicyDocument
from bucketwarden.reconciler import PreviousState, Reconciler, ReconcileResult
from bucketwarden.spec import ManagementPolicy, ProtectedBucketSpec
from bucketwarden_testkit import TRANSIENT_FAULTS, AwsFaultProxy, ErrorReply, Fault, MotoServer, Reply
from tests.reliability._kit import (
    foreign_of,
    lost_statements,
    ms,
    percentile,
    policy_problems,
    seed_fleet,
)

# CI-sized by default; a larger run: BUCKETWARDEN_RELIABILITY_BUCKETS=1000 BUCKETWARDEN_RELIABILITY_FAULT_RATE=0.3
N_BUCKETS = int(os.environ.get("BUCKETWARDEN_RELIABILITY_BUCKETS", "200"))
FAULT_RATE = float(os.environ.get("BUCKETWARDEN_RELIABILITY_FAULT_RATE", "0.2"))
SEED = int(os.environ.get("BUCKETWARDEN_RELIABILITY_SEED", "20261129"))
# botocore's total attempts per call (AwsSettings.max_attempts; production uses 5). The fleet uses 2, so that at a
# 20 % fault rate about 4 % of calls still fail after botocore's retries and the level-based passes must cover them.
FLEET_MAX_ATTEMPTS = 2
MAX_ATTEMPTS = 3
MAX_PASSES = 10
CONCURRENCY = 16
READ_TIMEOUT = 0.3  # the client's; the proxy withholds a timed-out answer for HANG seconds
HANG = 1.0
ROLE_CACHE_SECONDS = 0.1


def gateway(
    moto: MotoServer, endpoint: str, metrics: Metrics, *, max_attempts: int = MAX_ATTEMPTS, ttl_seconds: float = 300.0
) -> AwsGateway:
    """The real gateway through the proxy, its calls counted into ``metrics`` as the operator wires it."""
    settings = AwsSettings(
        region=moto.region,
        endpoint_url=endpoint,
        max_attempts=max_attempts,
        read_timeout=READ_TIMEOUT,
        connect_timeout=1.0,
        max_pool_connections=CONCURRENCY * 2,
    )
    counter = AwsCallCounter(on_call=metrics.count_aws_call)
    return AwsGateway(settings, counter, session=moto.session(), ttl_seconds=ttl_seconds)


def reconcile_pass(
    reconciler: Reconciler,
    specs: Mapping[str, ProtectedBucketSpec],
    buckets: Iterable[str],
    previous: Mapping[str, ReconcileResult],
    metrics: Metrics,
) -> dict[str, ReconcileResult]:
    """One resync of ``buckets``, CONCURRENCY at a time, as the operator's workers do it."""

    def one(bucket: str) -> tuple[str, ReconcileResult]:
        before = previous.get(bucket)
        result = reconciler.reconcile(specs[bucket], PreviousState(before.statement_hash if before else None))
        metrics.observe(bucket, result)
        return bucket, result

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        return dict(pool.map(one, sorted(buckets)))


def stored_policy(s3: Any, bucket: str) -> str | None:
    try:
        return str(s3.get_bucket_policy(Bucket=bucket)["Policy"])
    except ClientError:
        return None


def error_calls(metrics: Metrics, api: str | None = None) -> float:
    total = 0.0
    for metric in metrics.registry.collect():
        for sample in metric.samples:
            labels = sample.labels
            if sample.name == "bucketwarden_aws_calls_total" and labels.get("outcome") == "error":
                total += sample.value if api in (None, labels.get("api")) else 0.0
    return total


def test_fleet_converges_under_a_20_percent_fault_rate(moto: MotoServer, figures: dict[str, Any]) -> None:
    fleet = seed_fleet(moto, N_BUCKETS, "bw-fault")
    metrics = Metrics()
    with AwsFaultProxy(moto.endpoint_url, rate=FAULT_RATE, seed=SEED, hang_seconds=HANG) as proxy:
        # A short role cache: IAM and STS are called again and again during a pass, and meet the faults too.
        aws = gateway(
            moto, proxy.endpoint_url, metrics, max_attempts=FLEET_MAX_ATTEMPTS, ttl_seconds=ROLE_CACHE_SECONDS
        )
        reconciler = Reconciler(aws)
        latest: dict[str, ReconcileResult] = {}
        unready: list[ReconcileResult] = []
        pending = set(fleet.specs)
        started = time.perf_counter()
        passes = 0
        while pending and passes < MAX_PASSES:
            passes += 1
            results = reconcile_pass(reconciler, fleet.specs, pending, latest, metrics)
            latest.update(results)
            unready += [r for r in results.values() if not r.ready]
            pending -= {bucket for bucket, r in results.items() if r.ready}
        converged_in = time.perf_counter() - started
        assert not pending, f"{len(pending)} buckets not Ready after {passes} passes"

        calls, attempts, errors = aws.counter.snapshot(), aws.counter.attempts(), aws.counter.errors()
        records, injected = proxy.records(), proxy.injected()

        # The faults stop: one more resync of every bucket must find nothing left to write.
        proxy.configure(rate=0.0)
        puts_before = aws.counter.snapshot().get("PutBucketPolicy", 0)
        final = reconcile_pass(reconciler, fleet.specs, fleet.specs, latest, metrics)
        assert {r.outcome for r in final.values()} == {"InSync"}
        assert aws.counter.snapshot().get("PutBucketPolicy", 0) == puts_before

    # Nothing lost, nothing duplicated, in every bucket.
    s3 = moto.client("s3")
    lost = 0
    for bucket, spec in fleet.specs.items():
        text = stored_policy(s3, bucket)
        assert policy_problems(text, spec, fleet.foreign[bucket]) == [], bucket
        lost += lost_statements(fleet.foreign[bucket], foreign_of(PolicyDocument.parse(text or ""), spec.owned_sids))
    assert lost == 0

    # Faults of every kind, on every service, were injected, and some outlasted botocore's retries.
    assert set(injected) == {fault.value for fault in Fault}
    assert {r.service for r in records if r.outcome != "forwarded"} == {"s3", "iam", "sts"}
    assert unready, "no reconcile failed: the fault rate no longer exercises the level-based retry"
    for result in unready:  # while failing, the status says why, and that waiting helps
        synced = result.condition("Synced")
        assert synced is not None and (synced.status, synced.reason) == ("False", "AwsUnavailable"), synced
        assert result.retryable

    # Retries are bounded: never more than max_attempts per call (botocore's own header says so too).
    per_call = {call_id: sorted(r.attempt or 0 for r in tries) for call_id, tries in proxy.calls().items()}
    assert max(len(tries) for tries in per_call.values()) <= FLEET_MAX_ATTEMPTS
    assert all(tries == list(range(1, len(tries) + 1)) for tries in per_call.values())
    assert all(r.max_attempts == FLEET_MAX_ATTEMPTS for r in records if r.max_attempts is not None)
    for api, n in calls.items():
        assert attempts[api] <= FLEET_MAX_ATTEMPTS * n, api
    ratio = sum(attempts.values()) / sum(calls.values())
    assert ratio < 1.5, "retries stampede"

    # ... with backoff and jitter: every retry waits, and the waits differ.
    gaps = [
        later.at - earlier.at
        for tries in proxy.calls().values()
        # in attempt order: a hung attempt is recorded when it ends, after the retry that followed it began
        for earlier, later in itertools.pairwise(sorted(tries, key=lambda r: r.attempt or 0))
        if Fault.READ_TIMEOUT.value not in (earlier.outcome, later.outcome)  # a timeout's gap is the client's timeout
    ]
    assert gaps and min(gaps) > 0
    assert statistics.pstdev(gaps) > 0.2 * statistics.mean(gaps), "retries are not jittered"

    # Metrics count the failed calls, from the same counter.
    assert error_calls(metrics) == sum(errors.values()) > 0
    assert aws.counter.snapshot().get("PutBucketPolicy", 0) - errors.get("PutBucketPolicy", 0) <= N_BUCKETS

    windows = [r.get_to_put_seconds for r in latest.values() if r.get_to_put_seconds is not None]
    figures["aws_faults"] = {
        "buckets": N_BUCKETS,
        "fault_rate": FAULT_RATE,
        "seed": SEED,
        "max_attempts_per_call": FLEET_MAX_ATTEMPTS,
        "passes_to_converge": passes,
        "seconds_to_converge": round(converged_in, 1),
        "statements_lost": lost,
        "duplicate_sids": 0,
        "faults_injected": dict(sorted(injected.items())),
        "requests": len(records),
        "calls": sum(calls.values()),
        "attempts_per_call": round(ratio, 3),
        "max_attempts_seen": max(len(t) for t in per_call.values()),
        "calls_failed_after_retries": sum(errors.values()),
        "reconciles_failed_AwsUnavailable": len(unready),
        "retry_gap_ms_p50_p99": [ms(percentile(gaps, 50)), ms(percentile(gaps, 99))],
        "get_to_put_ms_under_faults_p50_p99": [ms(percentile(windows, 50)), ms(percentile(windows, 99))],
    }


@dataclass
class Wire:
    """One proxy and one gateway shared by the single-fault tests (building boto3 clients costs seconds)."""

    proxy: AwsFaultProxy
    aws: AwsGateway

    def fresh(self, seed: int = SEED) -> Metrics:
        """No faults, no records, no cached identities; the gateway's calls counted into new metrics."""
        self.proxy.reset(seed=seed)
        self.aws.invalidate()
        metrics = Metrics()
        self.aws.counter.on_call = metrics.count_aws_call
        return metrics


@pytest.fixture(scope="module")
def wire(moto: MotoServer) -> Iterator[Wire]:
    with AwsFaultProxy(moto.endpoint_url, seed=SEED, hang_seconds=HANG) as proxy:
        yield Wire(proxy, gateway(moto, proxy.endpoint_url, Metrics()))


FAULT_CASES = [
    pytest.param("s3", "GetBucketPolicy", ErrorReply(503, "SlowDown", "Please reduce your request rate."), id="s3-503"),
    pytest.param("s3", "PutBucketPolicy", ErrorReply(500, "InternalError", "internal"), id="s3-500"),
    pytest.param("iam", "GetRole", ErrorReply(400, "Throttling", "Rate exceeded"), id="iam-throttling"),
    pytest.param("sts", "GetCallerIdentity", ErrorReply(500, "InternalError", "internal"), id="sts-500"),
    pytest.param("s3", "PutBucketPolicy", Fault.CONNECTION_RESET, id="s3-connection-reset"),
    pytest.param("s3", "PutBucketPolicy", Fault.READ_TIMEOUT, id="s3-read-timeout"),
]


@pytest.mark.parametrize(("service", "api", "reply"), FAULT_CASES)
def test_fault_that_outlasts_retries_is_reported_as_aws_unavailable_then_heals(
    moto: MotoServer, wire: Wire, service: str, api: str, reply: Reply
) -> None:
    fleet = seed_fleet(moto, 1, f"bw-{service}")
    [(bucket, spec)] = fleet.specs.items()
    s3 = moto.client("s3")
    before = stored_policy(s3, bucket)
    metrics = wire.fresh()
    wire.proxy.script(reply, service=service, api=api)

    failed = Reconciler(wire.aws).reconcile(spec)

    synced = failed.condition("Synced")
    assert synced is not None and (synced.status, synced.reason) == ("False", "AwsUnavailable")
    assert failed.retryable and not failed.ready
    [attempts] = [[r.attempt for r in tries] for tries in wire.proxy.calls().values() if tries[0].api == api]
    assert attempts == list(range(1, MAX_ATTEMPTS + 1))  # exactly max_attempts, then it gives up
    assert error_calls(metrics, api) == 1
    if reply is not Fault.READ_TIMEOUT:
        assert stored_policy(s3, bucket) == before  # nothing half-written

    wire.proxy.clear_rules()
    healed = Reconciler(wire.aws).reconcile(spec, PreviousState(failed.statement_hash))

    assert healed.ready, healed.conditions
    assert policy_problems(stored_policy(s3, bucket), spec, fleet.foreign[bucket]) == []
    if reply is Fault.READ_TIMEOUT:
        # The PUT reached S3 although the client never heard back: the next pass finds it done, writes nothing.
        assert (healed.outcome, healed.action) == ("InSync", "none")


def test_proxy_decisions_are_reproducible_for_a_seed(moto: MotoServer, wire: Wire) -> None:
    """The same seed fails the same requests (decisions hash the request and its repeat count, not the clock or
    thread order); another seed fails others."""
    fleet = seed_fleet(moto, 8, "bw-seed")

    def faults_seen(seed: int) -> Counter[tuple[str, str | None, str, int | None]]:
        wire.fresh(seed)
        wire.proxy.configure(rate=0.3, faults=[Fault.INTERNAL_ERROR])
        for spec in fleet.specs.values():
            Reconciler(wire.aws).reconcile(spec.model_copy(update={"management_policy": ManagementPolicy.OBSERVE}))
        return Counter((r.api, r.bucket, r.outcome, r.attempt) for r in wire.proxy.records())

    first = faults_seen(1)
    assert first == faults_seen(1)
    assert first != faults_seen(2)
    wire.proxy.configure(faults=TRANSIENT_FAULTS)


def test_operator_retry_backoff_is_jittered_and_capped() -> None:
    """kopf-level retries (TemporaryError) of many failing buckets spread out instead of stampeding."""
    for retry in range(12):
        delays = [_backoff(retry) for _ in range(200)]
        assert min(delays) >= 1.0
        assert max(delays) <= min(300.0, 5.0 * 2 ** min(retry, 6))
        assert len({round(d, 3) for d in delays}) > 150
