"""Sharding past one replica: each operator process owns a stable hash shard of the ProtectedBuckets.

kopf peering is active/standby, so one process is the ceiling of one peering group. With
``BUCKETWARDEN_SHARD_COUNT=N`` and ``BUCKETWARDEN_SHARD_INDEX=i`` a process reconciles only the objects whose
namespace/name hashes to ``i`` (mod N): every object has exactly one owner while all shards run, and a shard
that dies leaves only its own objects unreconciled until Kubernetes restarts it. The hash depends on nothing but
the name, so no coordination is needed; changing N moves objects between shards, which is safe because each
shard simply starts (or stops) reconciling them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from typing import Any


def shard_of(namespace: str | None, name: str | None, count: int) -> int:
    """The shard that owns namespace/name: a stable hash (not Python's salted hash()), mod ``count``."""
    digest = hashlib.blake2b(f"{namespace or ''}/{name or ''}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


def shard_filter(count: int, index: int) -> Callable[..., bool] | None:
    """A kopf ``when=`` filter for shard ``index`` of ``count``; None when there is one shard (no filter)."""
    if count <= 1:
        return None

    def owned(namespace: str | None = None, name: str | None = None, **_: Any) -> bool:
        return shard_of(namespace, name, count) == index

    return owned
