"""Reconciles in child processes (k8s/_processes.py): the same result as in the operator's process, the AWS calls
counted in the parent, one bucket always in one process, errors carried back, and a dead child replaced.

The children are real ``spawn`` processes; each builds its reconciler on the in-memory AWS (the factory below),
so a child's writes stay in the child, and the test compares what the child returns with what the same reconcile
returns here.
"""

from __future__ import annotations

import os
import pickle
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from bucketwarden.aws import AwsCallCounter, InMemoryAws
from bucketwarden.errors import BucketNotFoundError
from bucketwarden.k8s._events import events_for
from bucketwarden.k8s._processes import ProcessReconciler, WorkerLost, route, threads_per_process
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.k8s._status import build_status
from bucketwarden.reconciler import PreviousState, Reconciler
from bucketwarden.spec import ProtectedBucketSpec, ProtectedBucketStatus

ROLE = "AWSBackupDefaultServiceRole"
BUCKETS = [f"awsbackup-proc-{i:03d}" for i in range(8)]
SLOW_BUCKET = "awsbackup-proc-slow"  # its reconcile in a child sleeps, so a test can kill the child mid-call


def spec(bucket: str = BUCKETS[0], **fields: Any) -> ProtectedBucketSpec:
    return ProtectedBucketSpec.model_validate(
        {"bucketName": bucket, "allowedSourceIps": ["192.0.2.0/24"], "exemptRoles": [{"name": ROLE}], **fields}
    )


def in_memory(on_call: Callable[[str, str], None] | None = None) -> InMemoryAws:
    aws = InMemoryAws(counter=AwsCallCounter(on_call=on_call), seed=7)
    for bucket in (*BUCKETS, SLOW_BUCKET):
        aws.create_bucket(bucket)
    aws.create_role(ROLE)
    return aws


class _SlowAws(InMemoryAws):
    def get(self, target: Any) -> str | None:
        if target.bucket == SLOW_BUCKET:
            time.sleep(30)
        return super().get(target)


def child_reconciler(settings: OperatorSettings, on_call: Callable[[str, str], None]) -> Reconciler:
    """The factory each child runs (module level, so ``spawn`` can import it)."""
    aws = _SlowAws(counter=AwsCallCounter(on_call=on_call), seed=7)
    for bucket in (*BUCKETS, SLOW_BUCKET):
        aws.create_bucket(bucket)
    aws.create_role(ROLE)
    return Reconciler(aws)


@pytest.fixture(scope="module")
def pooled() -> Iterator[tuple[ProcessReconciler, Counter[tuple[str, str]]]]:
    calls: Counter[tuple[str, str]] = Counter()
    lock = threading.Lock()

    def count(api: str, outcome: str) -> None:
        with lock:
            calls[(api, outcome)] += 1

    settings = OperatorSettings(reconcile_processes=2, max_concurrent_reconciles=4)
    reconciler = ProcessReconciler(Reconciler(in_memory()), settings, child_reconciler, count)
    yield reconciler, calls
    reconciler.close()


def test_a_reconcile_in_a_child_returns_what_the_same_reconcile_returns_here(
    pooled: tuple[ProcessReconciler, Counter[tuple[str, str]]],
) -> None:
    reconciler, _ = pooled
    here = Reconciler(in_memory()).reconcile(spec(BUCKETS[1]), PreviousState())
    there = reconciler.reconcile(spec(BUCKETS[1]), PreviousState())
    assert there.outcome == here.outcome == "Updated"
    assert there.policy_hash == here.policy_hash is not None
    assert there.statement_hash == here.statement_hash
    assert [(c.type, c.status, c.reason) for c in there.conditions] == [
        (c.type, c.status, c.reason) for c in here.conditions
    ]
    assert there.findings == here.findings and there.exempt_principals == here.exempt_principals
    assert (there.owned, there.adopted, there.operator_principal) == (here.owned, here.adopted, here.operator_principal)
    # What the parent never reads stays in the child: the documents and the verification matrix.
    assert here.verification is not None and here.desired is not None  # (no policy was observed before)
    assert (there.verification, there.desired, there.observed) == (None, None, None)
    assert there.aws_calls == here.aws_calls
    now = datetime(2026, 12, 6, tzinfo=UTC)
    status = [
        build_status(r, ProtectedBucketStatus(), generation=1, now=now, refresh_seconds=600) for r in (here, there)
    ]
    assert status[0] == status[1]  # the status the parent writes is the same
    assert events_for(there, ProtectedBucketStatus()) == events_for(here, ProtectedBucketStatus())
    # The child kept its write: the same spec again is in sync there.
    assert reconciler.reconcile(spec(BUCKETS[1]), PreviousState()).outcome == "InSync"


def test_the_childs_aws_calls_are_counted_in_the_parent(
    pooled: tuple[ProcessReconciler, Counter[tuple[str, str]]],
) -> None:
    reconciler, calls = pooled
    before = calls.copy()
    result = reconciler.reconcile(spec(BUCKETS[2]), PreviousState())
    counted = calls - before
    assert result.aws_calls  # GetBucketPolicy, PutBucketPolicy, ...
    per_api: Counter[str] = Counter()
    for (api, _outcome), n in counted.items():  # an absent policy is an "error" outcome, and still a call
        per_api[api] += n
    assert per_api == result.aws_calls


def test_a_cleanup_runs_in_the_bucket_process_and_finds_what_it_wrote(
    pooled: tuple[ProcessReconciler, Counter[tuple[str, str]]],
) -> None:
    reconciler, _ = pooled
    written = reconciler.reconcile(spec(BUCKETS[3]), PreviousState())
    assert written.owned is not None
    removed = reconciler.cleanup(spec(BUCKETS[3]), PreviousState(owned=written.owned))
    assert removed.outcome == "Deleted", removed.conditions


def test_an_error_in_the_child_is_the_same_error_here(
    pooled: tuple[ProcessReconciler, Counter[tuple[str, str]]],
) -> None:
    reconciler, _ = pooled
    result = reconciler.reconcile(spec("awsbackup-no-such-bucket"), PreviousState())
    assert isinstance(result.error, BucketNotFoundError)  # a result carrying an error crosses intact
    assert result.error.reason == BucketNotFoundError.reason
    with pytest.raises(AttributeError, match="has no attribute"):  # raised in the child, raised here, same type
        reconciler._workers[0].call("reconcile", ("not a spec",))
    with pytest.raises(WorkerLost, match="unknown operation"):  # the child runs only reconcile and cleanup
        reconciler._workers[0].call("__init__", ())


def test_one_bucket_always_goes_to_one_process_and_buckets_spread() -> None:
    assert {route(bucket, 4) for _ in range(3) for bucket in BUCKETS[:1]} == {route(BUCKETS[0], 4)}
    assert len({route(f"bucket-{i}", 4) for i in range(100)}) == 4
    assert threads_per_process(OperatorSettings(reconcile_processes=3, max_concurrent_reconciles=16)) == 6
    assert threads_per_process(OperatorSettings(reconcile_processes=8, max_concurrent_reconciles=4)) == 2


def test_a_child_killed_mid_call_fails_that_call_retryably_and_is_replaced(
    pooled: tuple[ProcessReconciler, Counter[tuple[str, str]]],
) -> None:
    reconciler, _ = pooled
    index = route(SLOW_BUCKET, len(reconciler.processes))
    child = reconciler.processes[index]
    assert child is not None and child.pid is not None
    outcome: list[BaseException] = []

    def slow() -> None:
        try:
            reconciler.reconcile(spec(SLOW_BUCKET), PreviousState())
        except BaseException as exc:
            outcome.append(exc)

    caller = threading.Thread(target=slow)
    caller.start()
    time.sleep(1.0)  # the call is in the child's sleep
    os.kill(child.pid, signal.SIGKILL)
    caller.join(timeout=20)
    assert not caller.is_alive()
    assert len(outcome) == 1 and isinstance(outcome[0], WorkerLost) and outcome[0].retryable
    # The next call to that process starts a new child, which answers.
    other = next(b for b in BUCKETS if route(b, len(reconciler.processes)) == index)
    assert reconciler.reconcile(spec(other), PreviousState()).outcome in ("Updated", "InSync")
    replaced = reconciler.processes[index]
    assert replaced is not None and replaced.pid != child.pid


def test_a_failing_call_sink_loses_the_counts_not_the_answers() -> None:
    def broken(api: str, outcome: str) -> None:
        raise RuntimeError("metrics are down")

    settings = OperatorSettings(reconcile_processes=1)
    reconciler = ProcessReconciler(Reconciler(in_memory()), settings, child_reconciler, broken)
    outcomes: list[str] = []

    def both() -> None:  # the second answer arrives only if the reader thread survived the first count
        outcomes.extend(reconciler.reconcile(spec(bucket), PreviousState()).outcome for bucket in BUCKETS[5:7])

    caller = threading.Thread(target=both, daemon=True)  # bounded: without the guard the call waits for ever
    try:
        caller.start()
        caller.join(timeout=60)
        assert outcomes == ["Updated", "Updated"]
    finally:
        reconciler.close()


def test_close_stops_every_child() -> None:
    settings = OperatorSettings(reconcile_processes=2)
    reconciler = ProcessReconciler(Reconciler(in_memory()), settings, child_reconciler, lambda api, outcome: None)
    children = [p for p in reconciler.processes if p is not None]
    assert len(children) == 2 and all(p.is_alive() for p in children)
    began = time.monotonic()
    reconciler.close()
    # Said on failure: how long close() waited, and each child's pid and exit code (None: still running).
    seen = (round(time.monotonic() - began, 2), [(p.pid, p.exitcode) for p in children])
    assert not any(p.is_alive() for p in children), seen
    with pytest.raises(WorkerLost):
        reconciler.reconcile(spec(), PreviousState())


def test_a_verified_result_pickles_without_the_verifiers_memo() -> None:
    result = Reconciler(in_memory()).reconcile(spec(BUCKETS[4]), PreviousState())
    assert result.verification is not None and result.verification.results
    callers = [r.scenario.caller for r in result.verification.results if r.scenario.caller is not None]
    assert any(caller.memo for caller in callers)  # the verifier remembered per statement: closures
    with pytest.raises(AttributeError, match="local object"):  # which is why the memo stays behind
        pickle.dumps([caller.memo for caller in callers])
    copy = pickle.loads(pickle.dumps(result))
    assert copy.policy_hash == result.policy_hash
    assert copy.verification is not None and copy.verification.verdict == result.verification.verdict
    copied = [r.scenario.caller for r in copy.verification.results if r.scenario.caller is not None]
    assert copied == callers  # equal: the memo is not compared
    assert all(not caller.memo for caller in copied)
