"""kopf handlers for TenantPolicy: the indices the grants are read from, each policy's status, the start-up line.

The grants themselves are decided by ``bucketwarden.tenancy`` (pure) on every reconcile, from these indices.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from bucketwarden.k8s._background import when_indexed
from bucketwarden.k8s._claims import (
    NAMESPACE_LABELS_INDEX,
    TENANT_POLICIES_INDEX,
    ClaimEntry,
    tenancy_from,
    tenant_policy_entry,
)
from bucketwarden.k8s._fleet_index import CLAIMS, view
from bucketwarden.k8s._kopf_private import get_json, patch_object
from bucketwarden.k8s._nudge import nudge
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.spec import GROUP, TENANT_POLICY_PLURAL, VERSION, TenantPolicySpec, TenantPolicyStatus
from bucketwarden.tenancy import Tenancy

MAX_NAMESPACES_SHOWN = 50
TENANT_POLICY_STATUS_INDEX = "tenant_policy_statuses"

logger = logging.getLogger("bucketwarden")


def protected_per_policy(tenancy: Tenancy, claims: Mapping[str, Iterable[ClaimEntry]]) -> Counter[str]:
    """How many ProtectedBuckets each TenantPolicy authorizes now: one authorization per claim, for all policies
    at once (the claims are the whole fleet; the status loop runs in kopf's event loop)."""
    counts: Counter[str] = Counter()
    for entries in claims.values():
        for entry in entries:
            if entry.request is not None:
                policy = tenancy.authorize(entry.request).policy
                if policy is not None:
                    counts[policy] += 1
    return counts


def tenant_policy_status(
    name: str, tenancy: Tenancy, protected: Mapping[str, int], generation: int | None
) -> dict[str, Any]:
    """Which namespaces the policy ``name`` matches now, and how many ProtectedBuckets it authorizes
    (``protected``: from ``protected_per_policy``)."""
    matched = sorted(ns for ns in tenancy.namespace_labels if any(n == name for n, _ in tenancy.policies_for(ns)))
    status = TenantPolicyStatus(
        observed_generation=generation,
        matched_namespaces=matched[:MAX_NAMESPACES_SHOWN],
        matched_namespace_count=len(matched),
        protected_buckets=protected.get(name, 0),
    )
    return status.model_dump(mode="json", by_alias=True, exclude_none=True)


def describe_tenancy(tenancy: Tenancy) -> str:
    """The tenancy in force in one line, for the start-up log."""
    count = len(tenancy.policies)
    if count == 0:
        return (
            "tenancy: no TenantPolicy: every ProtectedBucket is NotAuthorized until a cluster admin grants its "
            "namespace its buckets (bucketwarden grant ... | kubectl apply -f -, or the chart's tenancy.grantAll)"
        )
    everyone = tenancy.grants_all_namespaces()
    wide = f"; {', '.join(everyone)} grant(s) every namespace" if everyone else "; none grants every namespace"
    return f"tenancy: {count} TenantPolicy(ies) in force{wide}"


def register_tenant_policies(registry: kopf.OperatorRegistry, settings: OperatorSettings) -> None:
    """Attach the TenantPolicy and namespace indices, the status loop and the tenancy line to ``registry``."""
    _register_tenancy_line(registry)
    _register_indices(registry)
    _register_status_loop(registry, settings.allow_list_status_seconds)


async def _cancel(memo: kopf.Memo, attribute: str) -> None:
    task = getattr(memo, attribute, None)
    if task is not None:
        task.cancel()


def _register_tenancy_line(registry: kopf.OperatorRegistry) -> None:
    @kopf.on.startup(id="tenancy", registry=registry)
    async def start_tenancy_line(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # A task, not the startup handler itself: kopf's client waits for the login, which follows start-up.
        memo.tenancy_task = asyncio.create_task(log_tenancy(settings), name="bucketwarden-tenancy-line")

    @kopf.on.cleanup(id="tenancy", registry=registry)
    async def stop_tenancy_line(memo: kopf.Memo, **_: Any) -> None:
        await _cancel(memo, "tenancy_task")


async def log_tenancy(settings: kopf.OperatorSettings) -> None:
    """List the TenantPolicies once with kopf's client, so the log states the tenancy in force as the operator
    starts, whatever the indices hold yet."""
    if os.environ.get("BUCKETWARDEN_BUCKET_CLAIMS"):
        logger.warning(
            "BUCKETWARDEN_BUCKET_CLAIMS is no longer read: grants are TenantPolicies now (see docs/multi-tenant.md)"
        )
    try:
        listed = await get_json(f"/apis/{GROUP}/{VERSION}/{TENANT_POLICY_PLURAL}", settings=settings, logger=logger)
    except Exception as exc:  # RBAC, a missing CRD: say so; the per-reconcile check still denies by default
        logger.warning("tenancy: could not list TenantPolicies (%s); every ProtectedBucket waits for a grant", exc)
        return
    found: dict[str, TenantPolicySpec] = {}
    for item in (listed or {}).get("items") or []:
        name = str((item.get("metadata") or {}).get("name") or "")
        entry = tenant_policy_entry(name, item.get("spec") or {})
        if entry:
            found.update(entry)
    logger.info(describe_tenancy(Tenancy(found)), extra={"tenant_policies": sorted(found)})


def _register_indices(registry: kopf.OperatorRegistry) -> None:
    policies = (GROUP, VERSION, TENANT_POLICY_PLURAL)

    @kopf.index(*policies, id=TENANT_POLICIES_INDEX, registry=registry)
    async def tenant_policies(name: str, spec: Mapping[str, Any], memo: kopf.Memo, **_: Any) -> Any:
        # An index, not a change handler: kopf would keep its bookkeeping in the TenantPolicy's annotations, and
        # the operator must not need write access to the grants. A new or changed grant is logged, and every
        # ProtectedBucket refused so far is reconciled at once (at start-up none has been refused yet).
        entry = tenant_policy_entry(name, spec)
        runtime = getattr(memo, "runtime", None)
        if runtime is not None:
            logger.info("TenantPolicy %s %s", name, "seen" if entry else "is invalid and grants nothing")
            nudge(runtime, runtime.refused.snapshot())
        return entry

    @kopf.index(*policies, id=TENANT_POLICY_STATUS_INDEX, registry=registry)
    async def tenant_policy_statuses(name: str, status: Mapping[str, Any], **_: Any) -> Any:
        # What each grant's status says now: a restarted operator rewrites only the statuses that changed.
        return {name: dict(status)}

    @kopf.index("", "v1", "namespaces", id=NAMESPACE_LABELS_INDEX, registry=registry)
    async def namespace_labels(name: str, labels: Mapping[str, str], **_: Any) -> Any:
        return {name: dict(labels)}


def _register_status_loop(registry: kopf.OperatorRegistry, interval: float) -> None:
    @kopf.on.startup(id="tenant-policy-status", registry=registry)
    async def start_status_loop(settings: kopf.OperatorSettings, memo: kopf.Memo, **kwargs: Any) -> None:
        # One task of our own, not a kopf timer per TenantPolicy: a timer would make kopf patch the grant itself
        # (its bookkeeping), and the operator gets no write access to grants, only to their status.
        indices = {k: v for k, v in kwargs.items() if isinstance(v, kopf.Index)}
        # Counted only once kopf's indices are complete: a count from a half-filled claims index would be written.
        memo.tenant_status_task = asyncio.create_task(
            when_indexed(memo.runtime.indexed, _status_loop(settings, indices, interval)),
            name="bucketwarden-tenant-policy-status",
        )

    @kopf.on.cleanup(id="tenant-policy-status", registry=registry)
    async def stop_status_loop(memo: kopf.Memo, **_: Any) -> None:
        await _cancel(memo, "tenant_status_task")


async def _status_loop(settings: kopf.OperatorSettings, indices: Mapping[str, Any], interval: float) -> None:
    """Every ``interval`` seconds, write each TenantPolicy's status where it changed (through /status only)."""
    resource = kopf.Resource(GROUP, VERSION, TENANT_POLICY_PLURAL, namespaced=False, subresources=frozenset({"status"}))
    written: dict[str, dict[str, Any]] = {}
    delay = min(interval, 0.5)
    while True:
        await asyncio.sleep(delay)
        # Every second until the indices hold a grant (they fill after start-up), then at the status interval.
        delay = interval if written else min(interval, 1.0)
        tenancy = tenancy_from(indices.get(TENANT_POLICIES_INDEX), indices.get(NAMESPACE_LABELS_INDEX))
        protected = protected_per_policy(tenancy, view(indices, CLAIMS)) if tenancy.policies else Counter[str]()
        for name in sorted(tenancy.policies):
            new = tenant_policy_status(name, tenancy, protected, None)
            shown = next(iter((indices.get(TENANT_POLICY_STATUS_INDEX) or {}).get(name, ())), None)
            if written.get(name) == new or shown == new:
                written[name] = new
                continue
            try:
                await patch_object(
                    settings=settings,
                    resource=resource,
                    namespace=None,
                    name=name,
                    patch=kopf.Patch({"status": new}),
                    logger=logger,
                )
            except Exception as exc:  # the API hiccuped, or the grant is gone: the next round writes it
                logger.debug("could not write the status of TenantPolicy %s: %s", name, exc)
                continue
            written[name] = new
