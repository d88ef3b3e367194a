"""The resync tick driven by the resync queue: kopf's view of one object, our resync, and kopf's patch.

kopf's fleet index (its ``targets``, k8s/_fleet_index.py) holds the latest body of every object this replica owns;
kopf's create, update and resume handler tracks each key in the queue (``_scheduler.ResyncQueue``) once it has
reconciled it. A due key is resynced here exactly as a kopf timer would have done it, from the indexed body: the
quiet path answers most ticks with one GetBucketPolicy; anything else is the full reconcile, whose status patch is
applied with kopf's client and whose Events go through kopf's posting queue. The body is as fresh as kopf's watch,
which is what a kopf timer sees too. When kopf's copy lags behind the status this process last wrote (a burst keeps
kopf's event processing minutes behind), the tick re-reads the object from the API first (a list by name, which the
operator's RBAC already grants): a lagging copy must not turn a quiet tick into a full reconcile and a second status
write.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping
from concurrent.futures import Executor
from dataclasses import dataclass, field
from typing import Any

import kopf

from bucketwarden.k8s._fleet_index import TARGETS, view
from bucketwarden.k8s._kopf_private import PostingContext, get_json, patch_object
from bucketwarden.k8s._metrics import Metrics
from bucketwarden.k8s._quiet import status_landed
from bucketwarden.k8s._scheduler import ResyncQueue
from bucketwarden.spec import GROUP, PLURAL, VERSION

logger = logging.getLogger("bucketwarden")

Resync = Callable[[Mapping[str, Any]], None]  # a timer-style resync from kopf-like handler kwargs


def target_key(namespace: str | None, name: str | None) -> str:
    return f"{namespace or ''}/{name or ''}"


@dataclass
class QueueTicker:
    """What a queue tick needs from kopf: set up at start-up, completed by the first index call."""

    queue: ResyncQueue
    resync: Resync
    executor: Executor
    kopf_settings: kopf.OperatorSettings
    memo: Any
    loop: asyncio.AbstractEventLoop  # the queue's: kopf's own
    metrics: Metrics
    indices: Mapping[str, Any] = field(default_factory=dict)
    posting: PostingContext | None = None
    resource: kopf.Resource | None = None
    reported_missing_posting: bool = False

    def observed(self, resource: kopf.Resource) -> None:
        """From the index handler (inside kopf's processing): learn kopf's posting context and resource once."""
        if self.posting is None:
            self.posting = PostingContext.capture()
            if self.posting is None:  # kopf sets it around every handler: its private API has changed
                self.missing_posting("capture", "kopf's posting context is missing inside an index handler")
        if self.resource is None:
            self.resource = resource

    def missing_posting(self, where: str, what: str) -> None:
        """Count every occurrence; log the first loudly (then at debug level: ticks come by the thousand)."""
        self.metrics.count_missing_posting_context(where)
        level = logging.DEBUG if self.reported_missing_posting else logging.ERROR
        self.reported_missing_posting = True
        logger.log(
            level,
            "%s: resync-queue ticks are skipped, so drift is not corrected between kopf's own events "
            "(see bucketwarden_posting_context_missing; k8s/_kopf_private.py is the seam to check)",
            what,
        )

    def _lags(self, key: str, body: Mapping[str, Any]) -> bool:
        """kopf's copy does not show the status of a reconcile this process remembers (its patch may not have been
        seen by kopf's watch yet)."""
        steady = getattr(getattr(self.memo, "runtime", None), "steady", None)
        return (
            steady is not None
            and steady.get(key) is not None
            and not status_landed(body.get("metadata"), body.get("status"))
        )

    async def _reread(self, body: Mapping[str, Any]) -> Mapping[str, Any] | None:
        """The object as the API has it now; None if it is gone."""
        meta = body.get("metadata") or {}
        url = (
            f"/apis/{GROUP}/{VERSION}/namespaces/{meta.get('namespace')}/{PLURAL}"
            f"?fieldSelector=metadata.name%3D{meta.get('name')}"
        )
        self.metrics.count_reread()
        try:
            listed = await get_json(url, settings=self.kopf_settings, logger=logger)
        except Exception as exc:  # the API hiccuped: judge from kopf's copy, as before
            logger.debug("could not re-read %s/%s: %s", meta.get("namespace"), meta.get("name"), exc)
            return body
        items = (listed or {}).get("items") or []
        return items[0] if items else None

    def track_soon(self, key: str) -> None:
        """From a kopf handler's thread: track ``key`` (its first tick one interval from now)."""
        self.loop.call_soon_threadsafe(self.queue.track, key)

    async def __call__(self, key: str) -> bool:
        """One resync of ``key``; False when the object is gone (the queue drops it)."""
        store = view(self.indices, TARGETS).get(key)
        body = next(iter(store), None) if store else None
        if body is not None and self._lags(key, body):
            body = await self._reread(body)
        if body is None:
            return False
        meta = body.get("metadata") or {}
        if meta.get("deletionTimestamp") or self.resource is None:
            return True  # kopf's delete handler has it; or kopf's index has not shown us the resource yet
        if self.posting is None:
            self.missing_posting("tick", f"no kopf posting context for the resync of {key}")
            return True
        patch = kopf.Patch()
        kwargs = {
            **self.indices,
            "body": body,
            "spec": body.get("spec") or {},
            "meta": meta,
            "status": body.get("status") or {},
            "namespace": meta.get("namespace"),
            "name": meta.get("name"),
            "patch": patch,
            "memo": self.memo,
        }
        context = self.posting.context()
        await asyncio.get_running_loop().run_in_executor(self.executor, context.run, self.resync, kwargs)
        if not patch:
            return True
        return await patch_object(
            settings=self.kopf_settings,
            resource=self.resource,
            namespace=meta.get("namespace"),
            name=str(meta.get("name")),
            patch=patch,
            logger=logger,
        )
