"""What every kopf handler shares, kept in kopf's memo: built once at startup, never in module globals."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

import kopf

from bucketwarden.k8s._metrics import Metrics
from bucketwarden.k8s._nudge import KeySet
from bucketwarden.k8s._quiet import SteadyStates
from bucketwarden.k8s._resync import QueueTicker
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.k8s._warmup import Warmup
from bucketwarden.reconciler import Reconciler, Reconciles


@dataclass(slots=True)
class Runtime:
    """What every handler shares."""

    settings: OperatorSettings
    reconciler: Reconciles
    metrics: Metrics
    clock: Callable[[], datetime]
    steady: SteadyStates = field(default_factory=SteadyStates)
    ticker: QueueTicker | None = None  # the resync queue, when it replaces kopf's timers (no peering)
    # kopf's loop and settings, for nudging another claimant from a handler thread (set by an async startup handler)
    loop: asyncio.AbstractEventLoop | None = None
    kopf_settings: kopf.OperatorSettings | None = None
    refused: KeySet = field(default_factory=KeySet)  # NotAuthorized now: reconciled again when a grant appears
    warmup: Warmup = field(default_factory=Warmup)  # objects known and not checked yet by this process
    indexed: asyncio.Event = field(default_factory=asyncio.Event)  # kopf's indices are complete (k8s/_background.py)


ReconcilerFactory = Callable[[OperatorSettings, Metrics], Reconciles]


def default_reconciler(settings: OperatorSettings, metrics: Metrics) -> Reconciles:
    """The AWS reconciler; with ``reconcile_processes`` its S3 reconciles run in child processes."""
    local = aws_reconciler(settings, metrics.count_aws_call)
    if settings.reconcile_processes == 0:
        return local
    from bucketwarden.k8s._processes import ProcessReconciler

    return ProcessReconciler(local, settings, aws_reconciler, metrics.count_aws_call)


def aws_reconciler(settings: OperatorSettings, on_call: Callable[[str, str], None]) -> Reconciler:
    """A reconciler on the AWS gateway, its calls counted into ``on_call`` (the operator's or a child's)."""
    from bucketwarden.aws import AwsCallCounter, AwsGateway

    gateway = AwsGateway(
        counter=AwsCallCounter(on_call=on_call),
        ttl_seconds=settings.role_cache_ttl_seconds,
        readiness_ttl_seconds=settings.backup_readiness_ttl_seconds,
    )
    return Reconciler(gateway, readiness=gateway.readiness if settings.backup_readiness_checks else None)


def utc_now() -> datetime:
    return datetime.now(UTC)
