"""Reconcile other ProtectedBuckets now instead of at their next resync: a handover, a released race, a new grant.

One in this replica's resync queue is made due; any other gets an annotation, a change kopf sees wherever it runs
(another shard, kopf timers under peering).
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

import kopf

from bucketwarden.k8s._kopf_private import patch_object
from bucketwarden.spec import GROUP, PLURAL, VERSION

# Outside kopf's own prefix, so kopf counts it in the essence it diffs and runs the update handler.
HANDOVER_ANNOTATION = "claims.bucketwarden.io/handover"

logger = logging.getLogger("bucketwarden")


def nudge(runtime: Any, keys: Iterable[str]) -> None:
    """Reconcile each namespace/name in ``keys`` soon. Call from any thread; ``runtime`` is the k8s Runtime."""
    for key in dict.fromkeys(keys):
        ticker = runtime.ticker
        if ticker is not None and key in ticker.queue:
            ticker.loop.call_soon_threadsafe(ticker.queue.poke, key)
            continue
        if runtime.loop is None or runtime.kopf_settings is None:
            continue  # before start-up finished: the object's own create/resume handler runs anyway
        namespace, _, name = key.partition("/")
        stamp = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        coroutine = patch_object(
            settings=runtime.kopf_settings,
            resource=kopf.Resource(GROUP, VERSION, PLURAL, namespaced=True),
            namespace=namespace,
            name=name,
            patch=kopf.Patch({"metadata": {"annotations": {HANDOVER_ANNOTATION: stamp}}}),
            logger=logger,
        )
        asyncio.run_coroutine_threadsafe(coroutine, runtime.loop)


class KeySet:
    """A thread-safe set of namespace/name keys (the ProtectedBuckets refused for want of a grant)."""

    def __init__(self) -> None:
        self._keys: set[str] = set()
        self._lock = threading.Lock()

    def mark(self, key: str, present: bool) -> None:
        with self._lock:
            if present:
                self._keys.add(key)
            else:
                self._keys.discard(key)

    def snapshot(self) -> list[str]:
        with self._lock:
            return sorted(self._keys)
