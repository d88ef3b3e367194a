"""Reconciles in worker processes, so that the AWS work does not share kopf's core.

The operator is one Python process: kopf's event loop and every reconcile (boto3 and the policy core, about half
the CPU of a new object) share one GIL, so a burst is bound by one core however many the pod has. With
``BUCKETWARDEN_RECONCILE_PROCESSES`` > 0 every reconcile and cleanup that writes S3 directly runs in one of that
many child processes, chosen by the bucket's name: one bucket's read-modify-write stays in one process, under that
process's bucket lock, as it did in one. Each child has its own reconciler (its own AWS clients and caches) and a
thread pool; it returns the result, and its AWS calls, to the parent.

The parent keeps kopf, the indices, the tenancy and claim decisions, the status writes, the quiet resync ticks
(one GetBucketPolicy, with the parent's own clients) and the ACK path (its policy store is a live kopf object).

The children are started with ``spawn`` (kopf's loop and threads are never forked) and talk over a pipe. Nothing
crosses it but what the parent sent and the child computed: both ends are this program. A result comes back
without its policy documents and verification matrix (``for_the_parent``): the parent builds status, Events and
metrics from the conditions, findings and hashes, and the one reader of ``desired``, the ACK path, runs in the
parent. Those documents are hundreds of small frozen dataclasses, each unpickled through ``dataclasses.fields``:
reading the children's answers was 11 % of the operator process's GIL samples 5 to 40 s into a 10,000-object
burst. A test bucket's result is 13.5 KB and 170 µs to unpickle with them, 1.9 KB and 19 µs without.

A child that dies fails the calls it was running with a retryable error (the handler retries, as after any AWS
error) and is started again on the next call. A child exits when its pipe closes, so a killed operator leaves none
behind.
"""

from __future__ import annotations

import contextlib
import dataclasses
import itertools
import logging
import multiprocessing
import pickle
import signal
import threading
import zlib
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

import kopf

from bucketwarden.aws import AwsPort, BucketPolicyPort
from bucketwarden.errors import BucketWardenError
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.reconciler import Claim, PreviousState, ReconcileResult, Reconciles
from bucketwarden.spec import ProtectedBucketSpec

logger = logging.getLogger(__name__)

CallSink = Callable[[str, str], None]  # (api, outcome) of each AWS call, for the parent's metrics
# A child's reconciler, built in the child from the settings and its call sink (k8s/_runtime.py builds it).
ChildFactory = Callable[[OperatorSettings, CallSink], Reconciles]
_OPERATIONS = ("reconcile", "cleanup")


class WorkerLost(BucketWardenError):
    """A reconcile process died (or could not answer) while it ran a call; the handler retries."""

    reason = "ReconcileWorkerLost"
    retryable = True


def for_the_parent(value: object) -> object:
    """What of a child's answer crosses the pipe: a result without what the parent never reads."""
    if isinstance(value, ReconcileResult):
        return dataclasses.replace(value, observed=None, desired=None, verification=None)
    return value


def threads_per_process(settings: OperatorSettings) -> int:
    """The reconciles a child runs at once: the operator's limit, shared out (at least 2, for I/O overlap)."""
    processes = max(1, settings.reconcile_processes)
    return max(2, -(-settings.max_concurrent_reconciles // processes))


def route(bucket: str, processes: int) -> int:
    """The process a bucket's calls go to: stable for a bucket, spread across buckets."""
    return zlib.crc32(bucket.encode()) % processes


class ProcessReconciler:
    """A ``Reconciles`` whose direct-S3 reconciles and cleanups run in child processes (see the module)."""

    def __init__(
        self,
        local: Reconciles,
        settings: OperatorSettings,
        factory: ChildFactory,
        on_call: CallSink,
        *,
        context: str = "spawn",
    ) -> None:
        self._local = local
        self._workers = [
            _Worker(settings, factory, on_call, multiprocessing.get_context(context), index)
            for index in range(settings.reconcile_processes)
        ]

    @property
    def aws(self) -> AwsPort:
        return self._local.aws

    @property
    def readiness_checks(self) -> bool:
        return self._local.readiness_checks

    @property
    def processes(self) -> Sequence[BaseProcess | None]:
        """The live child processes (None where one is not running); for tests and the benchmarks."""
        return [worker.process for worker in self._workers]

    def reconcile(
        self,
        spec: ProtectedBucketSpec,
        previous: PreviousState | None = None,
        claim: Claim | None = None,
        policy_store: BucketPolicyPort | None = None,
    ) -> ReconcileResult:
        if policy_store is not None:  # the ACK path writes a kopf object: it stays in this process
            return self._local.reconcile(spec, previous, claim, policy_store)
        return self._call("reconcile", spec, previous, claim)

    def cleanup(
        self, spec: ProtectedBucketSpec, previous: PreviousState | None = None, claim: Claim | None = None
    ) -> ReconcileResult:
        return self._call("cleanup", spec, previous, claim)

    def _call(
        self, operation: str, spec: ProtectedBucketSpec, previous: PreviousState | None, claim: Claim | None
    ) -> ReconcileResult:
        worker = self._workers[route(spec.bucket_name, len(self._workers))]
        result = worker.call(operation, (spec, previous, claim))
        if not isinstance(result, ReconcileResult):
            raise WorkerLost(f"reconcile process {worker.index} answered {type(result).__name__}, not a result")
        return result

    def close(self) -> None:
        for worker in self._workers:
            worker.close()


class _Worker:
    """The parent's side of one child: start it, send calls, match the answers to the waiting threads."""

    def __init__(
        self,
        settings: OperatorSettings,
        factory: ChildFactory,
        on_call: CallSink,
        context: Any,
        index: int,
    ) -> None:
        self.index = index
        self.process: BaseProcess | None = None
        self._settings = settings
        self._factory = factory
        self._on_call = on_call
        self._context = context
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._conn: Connection | None = None
        self._pending: dict[int, Future[Any]] = {}
        self._closed = False
        # One thread at a time waits for a child: two waitpid()s race, and the loser's multiprocessing records no
        # exit code, so the child looks alive after it was reaped (and close() would signal a reused pid).
        self._reaping = threading.Lock()
        with self._lock:
            self._start()

    def _start(self) -> None:
        parent, child = self._context.Pipe(duplex=True)
        process = self._context.Process(
            target=child_main,
            args=(child, self._settings, self._factory),
            name=f"bucketwarden-reconcile-{self.index}",
            daemon=True,
        )
        process.start()
        child.close()  # the child holds its end; ours closing lets the child see EOF when we go
        self.process, self._conn, self._pending = process, parent, {}
        reader = threading.Thread(
            target=self._read, args=(parent, process, self._pending), name=f"{process.name}-reader", daemon=True
        )
        reader.start()

    def call(self, operation: str, args: tuple[Any, ...]) -> Any:
        future: Future[Any] = Future()
        with self._lock:
            if self._closed:
                raise WorkerLost("the operator is stopping")
            if self._conn is None:
                self._start()
            conn, pending = self._conn, self._pending
            assert conn is not None
            call_id = next(self._ids)
            pending[call_id] = future
            try:
                conn.send((call_id, operation, args))
            except Exception as exc:
                pending.pop(call_id, None)
                if isinstance(exc, (OSError, ValueError)):  # a closed or broken pipe
                    raise WorkerLost(f"reconcile process {self.index} is gone: {exc}") from None
                raise
        return future.result()

    def _read(self, conn: Connection, process: BaseProcess, pending: dict[int, Future[Any]]) -> None:
        while True:
            try:
                call_id, ok, payload, calls = conn.recv()
            except (EOFError, OSError):
                break
            try:
                for api, outcome in calls:
                    self._on_call(api, outcome)
            except Exception:  # metrics must never stop the answers: every waiting call would hang
                logger.exception("counting a reconcile process's AWS calls failed")
            with self._lock:
                future = pending.pop(call_id, None)
            if future is None:
                continue
            try:
                value = pickle.loads(payload)
            except Exception as exc:  # a result that does not load here is a failed call, not a dead child
                future.set_exception(WorkerLost(f"reconcile process {self.index} sent an unreadable answer: {exc}"))
                continue
            if ok:
                future.set_result(value)
            else:
                future.set_exception(value)
        with self._reaping:
            process.join(timeout=1.0)
        with self._lock:
            if self._conn is conn:
                self._conn, self.process = None, None
            lost = list(pending.values())
            pending.clear()
        if lost and not self._closed:
            logger.error(
                "reconcile process %s exited (code %s) with %d call(s) running; they are retried",
                self.index,
                process.exitcode,
                len(lost),
            )
        for future in lost:
            future.set_exception(WorkerLost(f"reconcile process {self.index} exited (code {process.exitcode})"))
        conn.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
            conn, process = self._conn, self.process
            if conn is not None:
                # A stop message, not a close: our reader thread is blocked on this pipe, and closing it under
                # the reader would not reach the child. The child finishes what it runs and exits.
                with contextlib.suppress(OSError, ValueError):
                    conn.send(None)
        if process is not None:
            with self._reaping:
                process.join(timeout=10.0)
                if process.is_alive():
                    process.terminate()
                    process.join(timeout=5.0)


def register_close(registry: kopf.OperatorRegistry) -> None:
    """Stop the reconcile processes when kopf stops (they also exit on their own when the pipe closes)."""

    @kopf.on.cleanup(id="reconcile-processes", registry=registry)
    def close_reconciler(memo: kopf.Memo, **_: Any) -> None:
        runtime = getattr(memo, "runtime", None)
        if runtime is not None:
            runtime.reconciler.close()


def child_main(conn: Connection, settings: OperatorSettings, factory: ChildFactory) -> None:
    """A reconcile process: run each call on a thread, answer with its result (pickled here) and AWS calls."""
    from bucketwarden.k8s._logs import configure_logging

    # Ctrl-C reaches the whole process group: the operator stops its children itself, after its handlers.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    configure_logging(settings)
    calls: list[tuple[str, str]] = []
    calls_lock = threading.Lock()
    send_lock = threading.Lock()

    def count(api: str, outcome: str) -> None:
        with calls_lock:
            calls.append((api, outcome))

    reconciler = factory(settings, count)

    def serve(call_id: int, operation: str, args: tuple[Any, ...]) -> None:
        ok = True
        value: object
        try:
            if operation not in _OPERATIONS:
                raise WorkerLost(f"unknown operation {operation!r}")
            value = for_the_parent(getattr(reconciler, operation)(*args))
        except Exception as exc:
            logger.exception("%s in a reconcile process failed", operation)
            ok, value = False, exc
        try:
            payload = pickle.dumps(value, protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:
            ok, payload = False, pickle.dumps(WorkerLost(f"the {operation} result could not be sent: {exc}"))
        with calls_lock:
            drained = calls[:]
            calls.clear()
        with send_lock, contextlib.suppress(OSError):  # the parent is gone; the loop below sees EOF
            conn.send((call_id, ok, payload, drained))

    with ThreadPoolExecutor(threads_per_process(settings), thread_name_prefix="reconcile") as pool:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the operator is gone
            if message is None:
                break  # the operator is stopping
            pool.submit(serve, *message)
