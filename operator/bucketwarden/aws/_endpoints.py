"""botocore's endpoint-rule cache, sized for a fleet instead of a hundred buckets.

Every botocore call resolves its endpoint by evaluating the service's endpoint rule set (a tree of rules in
Python) over the call's parameters; for S3 the bucket is one of them. botocore remembers the answers in one LRU
cache of 100 entries, shared by every client in the process. A resync cycles through every bucket in turn, so with
more than 100 buckets that cache never hits, and the rule set is evaluated on every call: a tenth of the CPU of a
quiet resync tick at 10,000 buckets (py-spy, `docs/benchmarks.md`).

``enlarge_endpoint_cache`` gives one client its own LRU cache in front of botocore's, large enough for a shard's
buckets. The answer for equal parameters is the same object botocore's own cache would return (a rule set is pure
in its parameters), so nothing about the request changes. It reaches into two private botocore attributes
(``client._ruleset_resolver._provider``); when they are not there (another botocore), the client is left as it is
and the cost is only the CPU again. ``tests/unit/test_endpoints.py`` pins both.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import Any

logger = logging.getLogger("bucketwarden")

# More than the buckets one shard serves (docs/benchmarks.md, "Sizing shards": at most 10,000 at the 60 s resync).
# An LRU cache smaller than the set it cycles through never hits. An entry, key included, is about 1.1 KB
# (tracemalloc), so a full cache is about 18 MB per client.
ENDPOINT_CACHE_SIZE = 16_384


def _frozen(value: Any) -> Any:
    return tuple(value) if isinstance(value, list) else value


def enlarge_endpoint_cache(client: Any, size: int = ENDPOINT_CACHE_SIZE) -> bool:
    """Put a ``size``-entry cache in front of ``client``'s endpoint rule set; False if botocore has no such seam."""
    provider = getattr(getattr(client, "_ruleset_resolver", None), "_provider", None)
    resolve: Callable[..., Any] | None = getattr(provider, "resolve_endpoint", None)
    if provider is None or resolve is None or not callable(resolve):
        logger.debug("botocore has no endpoint provider on %r: its endpoint cache stays as it is", client)
        return False

    # A key is the parameter names (one shared tuple per set of names, interned here) and then their values: a
    # third smaller than (name, value) pairs, 1.1 KB per cached bucket instead of 1.8 KB (tracemalloc).
    names_seen: dict[tuple[str, ...], tuple[str, ...]] = {}

    @functools.lru_cache(maxsize=size)
    def cached(key: tuple[Any, ...]) -> Any:
        return resolve(**dict(zip(key[0], key[1:], strict=True)))

    def resolve_endpoint(**params: Any) -> Any:
        names = tuple(sorted(params))
        names = names_seen.setdefault(names, names)
        return cached((names, *(_frozen(params[name]) for name in names)))

    resolve_endpoint.cache_info = cached.cache_info  # type: ignore[attr-defined]
    provider.resolve_endpoint = resolve_endpoint
    return True
