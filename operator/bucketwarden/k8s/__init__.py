"""The Kubernetes side: kopf handlers, status and events, metrics and settings. Thin around the reconciler."""

from __future__ import annotations

import asyncio
import random
from typing import Any

import kopf

from bucketwarden.k8s._handlers import register
from bucketwarden.k8s._kopf_private import check_kopf_private_api, direct_finalizer_patches, linear_index_wait
from bucketwarden.k8s._logs import configure_logging
from bucketwarden.k8s._metrics import Metrics
from bucketwarden.k8s._object import reconcile_object
from bucketwarden.k8s._runtime import ReconcilerFactory, Runtime, default_reconciler
from bucketwarden.k8s._settings import OperatorSettings

__all__ = [
    "Metrics",
    "OperatorSettings",
    "ReconcilerFactory",
    "Runtime",
    "build_registry",
    "configure_logging",
    "default_reconciler",
    "operator_kwargs",
    "reconcile_object",
    "run_operator",
]


def build_registry(
    settings: OperatorSettings | None = None, factory: ReconcilerFactory | None = None
) -> kopf.OperatorRegistry:
    """A fresh kopf registry with all bucketwarden handlers; tests and the demo inject their own factory."""
    check_kopf_private_api()  # fails loudly, before any handler runs, on a kopf this operator was not written for
    linear_index_wait()  # kopf's start-up index wait, linear instead of quadratic (docs/kopf-upstream.md)
    direct_finalizer_patches()  # kopf's finalizer patches without a deep copy and diff of the body (same doc)
    registry = kopf.OperatorRegistry()
    register(registry, settings or OperatorSettings(), factory or default_reconciler)
    return registry


def operator_kwargs(settings: OperatorSettings, namespaces: list[str] | None = None) -> dict[str, Any]:
    """Arguments for kopf.run / kopf.operator from the settings."""
    watched = namespaces or settings.namespaces
    # kopf makes peering mandatory as soon as a peering name is passed: pass it only when peering is on.
    kwargs: dict[str, Any] = {"standalone": not settings.peering}
    if settings.peering:
        kwargs["peering_name"] = settings.peering_name
        kwargs["priority"] = settings.priority if settings.priority is not None else random.randint(1, 1_000_000)
    if watched:
        kwargs["namespaces"] = watched
    else:
        kwargs["clusterwide"] = True
    if settings.health_port:
        kwargs["liveness_endpoint"] = f"http://0.0.0.0:{settings.health_port}/healthz"
    return kwargs


def run_operator(namespaces: list[str] | None = None, settings: OperatorSettings | None = None) -> int:
    """``bucketwarden run``: the operator in the foreground until SIGTERM."""
    settings = settings or OperatorSettings()
    if namespaces:  # --namespace wins over BUCKETWARDEN_NAMESPACES (the handlers must know: kopf's cluster
        # scanning is off when namespaced), and the start-up line says so
        settings = settings.model_copy(update={"namespaces": namespaces})
    configure_logging(settings)
    registry = build_registry(settings)
    if settings.leader_election:
        from bucketwarden.k8s._elected import run_elected

        return asyncio.run(run_elected(registry, settings, operator_kwargs(settings, namespaces)))
    kopf.run(registry=registry, memo=kopf.Memo(), **operator_kwargs(settings, namespaces))
    return 0
