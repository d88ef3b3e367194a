"""kopf handlers for TenantPolicy: the indices the grants are read from, each policy's status, the start-up line.

The grants themselves are decided by ``bucketwarden.tenancy`` (pure) on every reconcile, from these indices.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Iterable, Mapping
from typing import Any

import kopf

from bucketwarden.k8s._claims import (
    CLAIMS_INDEX,
    NAMESPACE_LABELS_INDEX,
    TENANT_POLICIES_INDEX,
    ClaimEntry,
    tenancy_from,
    tenant_policy_entry,
)
from bucketwarden.k8s._kopf_private import get_json
from bucketwarden.k8s._nudge import nudge
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.spec import GROUP, TENANT_POLICY_PLURAL, VERSION, TenantPolicySpec, TenantPolicyStatus
from bucketwarden.tenancy import Tenancy

MAX_NAMESPACES_SHOWN = 50

logger = logging.getLogger("bucketwarden")


def tenant_policy_status(
    name: str, tenancy: Tenancy, claims: Mapping[str, Iterable[ClaimEntry]], generation: int | None
) -> dict[str, Any]:
    """Which namespaces the policy ``name`` matches now, and how many ProtectedBuckets it authorizes."""
    matched = sorted(ns for ns in tenancy.namespace_labels if any(n == name for n, _ in tenancy.policies_for(ns)))
    protected = sum(
        1
        for entries in claims.values()
        for entry in entries
        if entry.request is not None and tenancy.authorize(entry.request).policy == name
    )
    status = TenantPolicyStatus(
        observed_generation=generation,
        matched_namespaces=matched[:MAX_NAMESPACES_SHOWN],
        matched_namespace_count=len(matched),
        protected_buckets=protected,
    )
    return status.model_dump(mode="json", by_alias=True)


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
    """Attach the TenantPolicy and namespace indices, the status timer and the tenancy line to ``registry``."""
    policies = (GROUP, VERSION, TENANT_POLICY_PLURAL)

    @kopf.on.startup(id="tenancy", registry=registry)
    async def start_tenancy_line(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # A task, not the startup handler itself: kopf's client waits for the login, which follows start-up.
        memo.tenancy_task = asyncio.create_task(log_tenancy(settings), name="bucketwarden-tenancy-line")

    @kopf.on.cleanup(id="tenancy", registry=registry)
    async def stop_tenancy_line(memo: kopf.Memo, **_: Any) -> None:
        task = getattr(memo, "tenancy_task", None)
        if task is not None:
            task.cancel()

    async def log_tenancy(settings: kopf.OperatorSettings) -> None:
        # Lists the TenantPolicies once with kopf's client, so the log states the tenancy in force as the operator
        # starts, whatever the indices hold yet.
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

    @kopf.index(*policies, id=TENANT_POLICIES_INDEX, registry=registry)
    def tenant_policies(name: str, spec: Mapping[str, Any], **_: Any) -> Any:
        return tenant_policy_entry(name, spec)

    @kopf.index("", "v1", "namespaces", id=NAMESPACE_LABELS_INDEX, registry=registry)
    def namespace_labels(name: str, labels: Mapping[str, str], **_: Any) -> Any:
        return {name: dict(labels)}

    @kopf.timer(*policies, id="status", interval=settings.allow_list_status_seconds, registry=registry)
    def status(name: str, meta: Mapping[str, Any], **kwargs: Any) -> None:
        tenancy = tenancy_from(kwargs[TENANT_POLICIES_INDEX], kwargs[NAMESPACE_LABELS_INDEX])
        if name not in tenancy.policies:
            return  # invalid: admission refuses it on a real API server; it grants nothing
        new = tenant_policy_status(name, tenancy, kwargs[CLAIMS_INDEX], meta.get("generation"))
        if {k: v for k, v in dict(kwargs["status"]).items() if k in new} != new:
            kwargs["patch"].status.update(new)

    @kopf.on.resume(*policies, id="announce", registry=registry)
    @kopf.on.create(*policies, id="announce", registry=registry)
    @kopf.on.update(*policies, id="announce", registry=registry)
    def announce(name: str, reason: str, **kwargs: Any) -> None:
        # Every change of a grant is logged with the tenancy it leaves in force (at start-up: once per policy),
        # and the ProtectedBuckets it now covers are reconciled at once: a grant takes effect without a resync wait.
        tenancy = tenancy_from(kwargs[TENANT_POLICIES_INDEX], kwargs[NAMESPACE_LABELS_INDEX])
        logger.info("TenantPolicy %s: %s", name, describe_tenancy(tenancy))
        runtime = getattr(kwargs["memo"], "runtime", None)
        if runtime is None or reason == "resume":
            return  # at start-up every ProtectedBucket is reconciled by its own resume handler anyway
        covered = [
            entry.key
            for entries in kwargs[CLAIMS_INDEX].values()
            for entry in entries
            if entry.request is not None and tenancy.authorize(entry.request).policy == name
        ]
        nudge(runtime, covered)
