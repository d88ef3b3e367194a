"""kopf handlers for SourceAllowList: indices, propagation to the ProtectedBuckets using a list, its status, deletion.

Propagation: a change to a list touches one annotation on every ProtectedBucket that references it (found
through the users' part of the fleet index, k8s/_fleet_index.py). kopf sees a changed essence and runs that
bucket's ordinary update handler at once, which resolves the list from the `allow_lists_by_name` index: one
reconcile per bucket, no waiting for a resync, and nothing but `patch` on protectedbuckets, which the operator
already holds.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

import kopf
from pydantic import ValidationError

from bucketwarden.k8s._effective import allow_lists_from_index
from bucketwarden.k8s._fleet_index import USERS, FleetIndex, view
from bucketwarden.k8s._kopf_private import api_patch  # kopf's own authenticated client: the operator's credentials
from bucketwarden.k8s._settings import OperatorSettings
from bucketwarden.sources import allow_list_hash, resolve_sources
from bucketwarden.spec import (
    ALLOW_LIST_PLURAL,
    GROUP,
    PLURAL,
    VERSION,
    ProtectedBucketSpec,
    SourceAllowListSpec,
    SourceAllowListStatus,
)

ALLOW_LISTS_INDEX = "allow_lists_by_name"
# Outside kopf's own prefix (bucketwarden.io/), whose annotations kopf leaves out of the essence it diffs.
CHANGE_ANNOTATION = "sources.bucketwarden.io/allow-list"
ALLOW_LIST_IN_USE = "AllowListInUse"

MAX_NAMESPACES_SHOWN = 50

logger = logging.getLogger("bucketwarden")


# Same preamble shape as _ack.py's AckBucket (parallel declarations, see there).
class Usage(NamedTuple):
    """One ProtectedBucket's use of a list, as the fleet index keeps it under ``users``."""

    namespace: str
    name: str
    spec: Mapping[str, Any]
    resolved_sources_hash: str | None
    synced: bool


def users_of(index: Mapping[str, Iterable[Usage]] | None, name: str) -> list[Usage]:
    return sorted(({} if index is None else index).get(name, []), key=lambda u: (u.namespace, u.name))


def users_per_namespace(users: Iterable[Usage], limit: int = MAX_NAMESPACES_SHOWN) -> dict[str, int]:
    """namespace -> how many of its ProtectedBuckets use the list, the busiest namespaces first.

    A SourceAllowList is readable by every namespace (the chart's view role), so what it shows of its users must
    not name another tenant's resources: counts per namespace say who to ask, and each tenant lists its own.
    """
    counts = Counter(u.namespace for u in users)
    return dict(sorted(counts.items(), key=lambda item: (-item[1], item[0]))[:limit])


def describe_users(users: Iterable[Usage]) -> str:
    """ "team-a: 2, team-b: 1" (every namespace)."""
    return ", ".join(f"{namespace}: {count}" for namespace, count in users_per_namespace(users, limit=10**6).items())


def _in_sync(usage: Usage, lists: Mapping[str, SourceAllowListSpec]) -> bool:
    """Synced, and what it last wrote is the union of the lists as they are now."""
    try:
        spec = ProtectedBucketSpec.model_validate(dict(usage.spec))
    except ValidationError:
        return False
    resolved = resolve_sources(spec, lists)
    return usage.synced and resolved.complete and resolved.sources_hash == usage.resolved_sources_hash


def allow_list_status(
    name: str,  # noqa: ARG001 (kept for the callers' order; the status does not name itself)
    allow_list: SourceAllowListSpec,
    users: list[Usage],
    lists: Mapping[str, SourceAllowListSpec],
    generation: int | None,
) -> dict[str, Any]:
    status = SourceAllowListStatus(
        observed_generation=generation,
        sources_hash=allow_list_hash(allow_list),
        used_by=len(users),
        in_sync=sum(1 for u in users if _in_sync(u, lists)),
        users=users_per_namespace(users),
    )
    return status.model_dump(mode="json", by_alias=True)


def status_patch(current: Mapping[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """``new`` as a merge patch over ``current``: a namespace gone from ``users`` is sent as null, or the merge
    would keep its old count."""
    old_users = current.get("users")
    if not isinstance(old_users, Mapping):
        return new
    gone = {namespace: None for namespace in old_users if namespace not in new["users"]}
    return {**new, "users": {**new["users"], **gone}}


def status_changes(current: Mapping[str, Any], new: dict[str, Any]) -> dict[str, Any] | None:
    """The merge patch that brings ``current`` to ``new``; None when it says that already."""
    if {k: v for k, v in current.items() if k in new} == new:
        return None
    return status_patch(current, new)


def _parse(spec: Mapping[str, Any]) -> SourceAllowListSpec | None:
    try:
        return SourceAllowListSpec.model_validate(dict(spec))
    except ValidationError:
        return None


async def _touch(kopf_settings: kopf.OperatorSettings, usage: Usage, value: str) -> None:
    url = f"/apis/{GROUP}/{VERSION}/namespaces/{usage.namespace}/{PLURAL}/{usage.name}"
    payload = {"metadata": {"annotations": {CHANGE_ANNOTATION: value}}}
    try:
        await api_patch(
            url,
            settings=kopf_settings,
            payload=payload,
            headers={"Content-Type": "application/merge-patch+json"},
            logger=logger,
        )
    except Exception as exc:  # gone meanwhile, or the API hiccuped: its next resync resolves the list anyway
        logger.warning("could not signal %s/%s of an allow-list change: %s", usage.namespace, usage.name, exc)


async def _touch_all(kopf_settings: kopf.OperatorSettings, users: Iterable[Usage], value: str) -> None:
    for usage in users:
        await _touch(kopf_settings, usage, value)


def usage_of(
    namespace: str | None, name: str, spec: Mapping[str, Any], status: Mapping[str, Any]
) -> dict[str, Usage] | None:
    """One ProtectedBucket's entry in the users' part of the fleet index: each list it references -> its use of it."""
    refs = [r.get("name") for r in spec.get("allowedSourcesFrom") or [] if isinstance(r, Mapping)]
    if not refs:
        return None
    conditions = status.get("conditions") or []
    synced = any(c.get("type") == "Synced" and c.get("status") == "True" for c in conditions)
    usage = Usage(namespace or "", name, dict(spec), status.get("resolvedSourcesHash"), synced)
    return {ref: usage for ref in refs if isinstance(ref, str)}


def in_use_message(name: str, users: Sequence[Usage]) -> str:
    # Counts per namespace, not names: the Event is as readable as the list itself.
    return (
        f"SourceAllowList {name} is still referenced by {len(users)} ProtectedBucket(s), per namespace: "
        f"{describe_users(users)}; deletion waits until none references it (remove it from their "
        "allowedSourcesFrom)"
    )


def register_allow_lists(registry: kopf.OperatorRegistry, settings: OperatorSettings, fleet: FleetIndex) -> None:
    """Attach the SourceAllowList handlers and index to ``registry``, and the users' part to ``fleet``."""
    lists_resource = (GROUP, VERSION, ALLOW_LIST_PLURAL)

    @kopf.on.startup(id="allow-lists-settings", registry=registry)
    def keep_settings(settings: kopf.OperatorSettings, memo: kopf.Memo, **_: Any) -> None:
        memo.kopf_settings = settings  # the API client needs them to patch other objects

    @kopf.index(*lists_resource, id=ALLOW_LISTS_INDEX, registry=registry)
    async def allow_lists_by_name(name: str, spec: Mapping[str, Any], **_: Any) -> Any:
        return {name: dict(spec)}

    def allow_list_users(kwargs: Mapping[str, Any]) -> Any:
        return usage_of(kwargs.get("namespace"), kwargs["name"], kwargs["spec"], kwargs["status"])

    fleet.add(USERS, allow_list_users)

    def _lists(kwargs: Mapping[str, Any]) -> dict[str, SourceAllowListSpec]:
        return allow_lists_from_index(kwargs[ALLOW_LISTS_INDEX])

    @kopf.on.resume(*lists_resource, id="propagate", registry=registry)
    @kopf.on.create(*lists_resource, id="propagate", registry=registry)
    @kopf.on.update(*lists_resource, id="propagate", registry=registry)
    async def propagate(name: str, spec: Mapping[str, Any], meta: Mapping[str, Any], **kwargs: Any) -> None:
        allow_list = _parse(spec)
        if allow_list is None:
            return  # admission refuses it; the users report it missing rather than writing a partial union
        users = users_of(view(kwargs, USERS), name)
        await _touch_all(kwargs["memo"].kopf_settings, users, f"{name}@{allow_list_hash(allow_list)}")
        lists = _lists(kwargs)
        new = allow_list_status(name, allow_list, users, lists, meta.get("generation"))
        kwargs["patch"].status.update(status_patch(kwargs.get("status") or {}, new))

    @kopf.timer(*lists_resource, id="usage", interval=settings.allow_list_status_seconds, registry=registry)
    def usage(name: str, spec: Mapping[str, Any], meta: Mapping[str, Any], **kwargs: Any) -> None:
        allow_list = _parse(spec)
        if allow_list is None:
            return
        users = users_of(view(kwargs, USERS), name)
        new = allow_list_status(name, allow_list, users, _lists(kwargs), meta.get("generation"))
        changes = status_changes(dict(kwargs["status"]), new)
        if changes is not None:
            kwargs["patch"].status.update(changes)

    @kopf.on.delete(*lists_resource, id="in-use", registry=registry)
    def refuse_in_use(name: str, body: kopf.Body, **kwargs: Any) -> None:
        users = users_of(view(kwargs, USERS), name)
        if users:
            message = in_use_message(name, users)
            kopf.event(body, type="Warning", reason=ALLOW_LIST_IN_USE, message=message)
            raise kopf.TemporaryError(message, delay=settings.allow_list_status_seconds)
