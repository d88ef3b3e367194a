"""kopf's one index of the ProtectedBuckets, and the views its readers use.

Three readers need the ProtectedBuckets indexed: the claims on each bucket (``_claims``), the latest body of each
object this replica resyncs (``_resync``), and the users of each SourceAllowList (``_allowlists``). kopf runs every
index handler of a resource on every watch event of every object, and its cost per handler (the call, the kwargs,
the index update) was about 16 % of the operator's process in the first minute of a 10,000-object burst, against
8 % for the work of all three (B9 profile, docs/benchmarks.md). So there is one handler: it asks each reader's part
for its entries and files them under tagged keys, ``(tag, key)``; each reader sees its own tag through an
``IndexView``, a plain ``Mapping`` of kopf's live index (never a copy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import kopf

from bucketwarden.spec import GROUP, PLURAL, VERSION

logger = logging.getLogger("bucketwarden")

FLEET_INDEX = "protected_buckets"
CLAIMS = "claims"  # bucket name -> ClaimEntry (every ProtectedBucket, every shard)
TARGETS = "targets"  # namespace/name -> the latest body (this replica's objects, with the resync queue)
USERS = "users"  # SourceAllowList name -> Usage

# One reader's entries for one object, from kopf's index-handler kwargs: {key: value}, or None for none.
Part = Callable[[Mapping[str, Any]], Mapping[str, Any] | None]


class IndexView(Mapping[str, Any]):
    """The keys of one tag in kopf's fleet index, untagged: ``view[key]`` is kopf's store under ``(tag, key)``.

    Lookups are O(1). Iteration, ``len`` and truthiness walk the whole index (every tag), so only periodic work
    iterates (the TenantPolicy status loop); the reconcile path only looks up (``tests/unit/test_k8s_quiet.py``
    runs it over an index that fails on any walk), and tells a missing index by ``is None``, never by truthiness.
    """

    __slots__ = ("_index", "_tag")

    def __init__(self, index: Mapping[Any, Any], tag: str) -> None:
        self._index = index
        self._tag = tag

    def __getitem__(self, key: str) -> Any:
        return self._index[(self._tag, key)]

    def __contains__(self, key: object) -> bool:
        return (self._tag, key) in self._index

    def __iter__(self) -> Iterator[str]:
        tag = self._tag
        return (key for key_tag, key in self._index if key_tag == tag)

    def __len__(self) -> int:
        return sum(1 for _ in self)

    def __bool__(self) -> bool:
        return any(True for _ in self)


def view(indices: Mapping[str, Any], tag: str) -> IndexView:
    """``tag``'s view of the fleet index among kopf's indices (a handler's kwargs); empty without one. The view
    reads kopf's live index, which is empty (falsy) at start-up and filled later: never swapped for a copy."""
    index = indices.get(FLEET_INDEX)
    return IndexView({} if index is None else index, tag)


class FleetIndex:
    """The parts of the one ProtectedBucket index, collected while the handlers register; ``register`` adds it."""

    def __init__(self) -> None:
        self._parts: dict[str, Part] = {}

    def add(self, tag: str, part: Part) -> None:
        if tag in self._parts:
            raise ValueError(f"fleet index part {tag!r} added twice")
        self._parts[tag] = part

    def entries(self, kwargs: Mapping[str, Any]) -> dict[tuple[str, str], Any] | None:
        """Every part's entries for one object, under tagged keys; None when no part has any.

        A part that fails on an object contributes nothing for it, and the other parts still do: as when each was
        an index of its own (kopf drops an object from an index whose handler raised). A spec the API server's
        schema would refuse (a test bed has none) must not take an object out of every reader's sight.
        """
        out: dict[tuple[str, str], Any] = {}
        for tag, part in self._parts.items():
            try:
                found = part(kwargs)
            except Exception:
                logger.warning(
                    "fleet index: the %s part failed for %s/%s; it is left out of that part",
                    tag,
                    kwargs.get("namespace"),
                    kwargs.get("name"),
                    exc_info=True,
                )
                continue
            if found:
                for key, value in found.items():
                    out[(tag, key)] = value
        return out or None

    def register(self, registry: kopf.OperatorRegistry) -> None:
        entries = self.entries

        @kopf.index(GROUP, VERSION, PLURAL, id=FLEET_INDEX, registry=registry)
        async def protected_buckets(**kwargs: Any) -> Any:
            # async: runs in kopf's loop, no executor hop; every part is short and pure, or O(1) bookkeeping.
            return entries(kwargs)
