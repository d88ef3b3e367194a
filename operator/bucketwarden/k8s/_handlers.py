"""kopf wiring, kept thin: which handler runs on which event. Every path ends in the same reconcile of one object.

create and update start a reconcile early (k8s/_object.py); a resync tick at the interval catches drift
(k8s/_background.py), and after a restart the first tick of every object comes at once (k8s/_warmup.py); the
delete handler (kopf adds the finalizer) honours deletionPolicy.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

import kopf

from bucketwarden.k8s._ack import register_ack
from bucketwarden.k8s._allowlists import register_allow_lists
from bucketwarden.k8s._background import register_drift_queue, register_indices_ready, register_resync, whoami
from bucketwarden.k8s._background import start_drift_poller as start_drift_poller
from bucketwarden.k8s._bookkeeping import storages as bookkeeping_storages
from bucketwarden.k8s._claims import SpecParses, claim_entry
from bucketwarden.k8s._fleet_index import CLAIMS, FleetIndex
from bucketwarden.k8s._login import login_as_kubectl
from bucketwarden.k8s._logs import log_startup, startup_fields
from bucketwarden.k8s._metrics import Metrics
from bucketwarden.k8s._object import INVALID_SPEC as INVALID_SPEC
from bucketwarden.k8s._object import finalize_object, handle_change
from bucketwarden.k8s._object import reconcile_object as reconcile_object
from bucketwarden.k8s._object import resync_object as resync_object
from bucketwarden.k8s._processes import register_close
from bucketwarden.k8s._runtime import ReconcilerFactory as ReconcilerFactory
from bucketwarden.k8s._runtime import Runtime, utc_now
from bucketwarden.k8s._runtime import default_reconciler as default_reconciler
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.k8s._shards import shard_filter
from bucketwarden.k8s._tenants import register_tenant_policies
from bucketwarden.spec import GROUP, PLURAL, VERSION
from bucketwarden.tenancy import NOT_AUTHORIZED as NOT_AUTHORIZED

FINALIZER = f"{GROUP}/finalizer"

logger = logging.getLogger("bucketwarden")


def register(registry: kopf.OperatorRegistry, settings: OperatorSettings, factory: ReconcilerFactory) -> None:
    """Attach every handler to ``registry``."""
    resource = (GROUP, VERSION, PLURAL)
    operator_settings = settings  # kopf passes its own settings= to startup handlers

    @kopf.on.login(id="login", registry=registry)
    def login(**kwargs: Any) -> kopf.ConnectionInfo | None:
        # A fresh registry has none of kopf's default login handlers: log in as kubectl would, from the
        # in-cluster service account or the kubeconfig (KUBECONFIG, ~/.kube/config).
        try:
            info = login_as_kubectl(**kwargs)
        except Exception as exc:  # no kubeconfig here: another login handler may still succeed
            logger.debug("kubeconfig/in-cluster login unavailable: %s", exc)
            return None
        return info

    @kopf.on.startup(id="configure", registry=registry)
    def configure(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        # kopf's bookkeeping lives in status.kopf (declared in every CRD), in the same patch as our status: not in
        # annotations, which cost a PATCH per handled change and which a tenant can forge (k8s/_bookkeeping.py).
        settings.persistence.progress_storage, settings.persistence.diffbase_storage = bookkeeping_storages()
        settings.persistence.finalizer = FINALIZER
        settings.posting.level = logging.WARNING  # our own kopf.event() calls are always posted
        settings.execution.max_workers = operator_settings.max_concurrent_reconciles
        if operator_settings.namespaces:
            # Namespaced installs hold Roles only: kopf must not list or watch namespaces and CRDs cluster-wide
            # (each would be 403 nine times at start-up). It watches exactly the named namespaces instead, and
            # picks up CRD changes on restart (docs/multi-tenant.md, "Namespaced mode and RBAC").
            settings.scanning.disabled = True
        if getattr(memo, "runtime", None) is None:
            metrics = Metrics()
            memo.runtime = Runtime(operator_settings, factory(operator_settings, metrics), metrics, utc_now)
            metrics.serve(operator_settings.metrics_port)
            identity, region = whoami(memo.runtime.reconciler.aws)
            log_startup(startup_fields(operator_settings, identity=identity, region=region))

    register_close(registry)
    fleet = FleetIndex()  # kopf's one index of the ProtectedBuckets; each reader adds its part (k8s/_fleet_index.py)
    register_allow_lists(registry, settings, fleet)
    if settings.ack_coexistence:  # opt-in: it needs RBAC on ACK's Buckets, which the chart does not grant
        register_ack(registry)

    register_drift_queue(registry, settings)

    parses = SpecParses()  # one spec validation per generation, not per watch event

    def claims_by_bucket(kwargs: Any) -> Any:
        return claim_entry(kwargs["namespace"], kwargs["name"], kwargs["meta"], kwargs["spec"], parses)

    fleet.add(CLAIMS, claims_by_bucket)

    register_tenant_policies(registry, settings)

    @kopf.on.startup(id="nudge-loop", registry=registry)
    async def keep_loop(memo: kopf.Memo, settings: kopf.OperatorSettings, **_: Any) -> None:
        # async: captures kopf's own loop, so a handler thread can nudge another claimant through it
        memo.runtime.loop = asyncio.get_running_loop()
        memo.runtime.kopf_settings = settings

    # The claims part of the index stays unfiltered: every shard must see every claim to decide conflicts alike.
    mine = shard_filter(settings.shard_count, settings.shard_index)

    def reconcile_on_change(**kwargs: Any) -> None:
        handle_change(kwargs)

    kopf.on.create(*resource, id="reconcile", when=mine, registry=registry)(reconcile_on_change)
    kopf.on.update(*resource, id="reconcile", when=mine, registry=registry)(reconcile_on_change)
    if settings.peering:
        # Under kopf's peering the resync is kopf's per-object timers, and a restart reconciles every object
        # again. Without it a restart needs no handler: the resync queue takes every object kopf handled
        # before, from what its status records (k8s/_warmup.py), and kopf writes nothing.
        kopf.on.resume(*resource, id="reconcile", when=mine, registry=registry)(reconcile_on_change)

    register_resync(registry, settings, mine, fleet)
    fleet.register(registry)
    register_indices_ready(registry)

    @kopf.on.delete(*resource, id="cleanup", when=mine, registry=registry)
    def finalize(**kwargs: Any) -> None:
        finalize_object(kwargs)
