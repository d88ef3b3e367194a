"""The emulated Kubernetes API server that `KubeEmulator` runs in a child process.

kmock serves HTTP and API discovery. This module adds the object semantics kmock lacks and kopf relies on:
namespaces as objects, resourceVersion and generation, generateName, the status subresource, finalizers,
cascading namespace deletion, and watches that resume from a resourceVersion.
It is run as a script (`python _kmock_server.py --port-file F --resources JSON`) and imports nothing of ours,
so the child starts fast and does not depend on how bucketwarden is installed.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import copy
import dataclasses
import datetime
import json
import os
import re
import secrets
import string
import uuid
from collections.abc import Iterator, Mapping
from typing import Any

import aiohttp.web
import attrs
import jsonpatch
import kmock

JsonDict = dict[str, Any]
KindKey = tuple[str, str, str]  # (group, version, plural)
ObjectKey = tuple[KindKey, str | None, str]  # (kind, namespace, name)

# Watches resuming from an older resourceVersion than this many events ago get 410 Gone, as on a real
# server after etcd compaction; kopf then lists again.
HISTORY_LENGTH = 10_000

# Metadata the server owns: a patch or a replace can never change these.
SYSTEM_METADATA = ("name", "namespace", "uid", "creationTimestamp", "deletionTimestamp", "generation")


@dataclasses.dataclass(frozen=True)
class Kind:
    """One served resource; parsed from the JSON the parent passes on the command line."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool
    short_names: tuple[str, ...] = ()
    status_subresource: bool = False

    @property
    def key(self) -> KindKey:
        return (self.group, self.version, self.plural)

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}" if self.group else self.version

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Kind:
        return cls(
            group=str(data["group"]),
            version=str(data["version"]),
            plural=str(data["plural"]),
            kind=str(data["kind"]),
            singular=str(data["singular"]),
            namespaced=bool(data["namespaced"]),
            short_names=tuple(data.get("short_names", ())),
            status_subresource=bool(data.get("status_subresource", False)),
        )


# Always served: kopf needs namespaces, and posts events.
NAMESPACES = Kind("", "v1", "namespaces", "Namespace", "namespace", namespaced=False, short_names=("ns",))
EVENTS = Kind("", "v1", "events", "Event", "event", namespaced=True, short_names=("ev",))
# Leases: the operator's leader election (coordination.k8s.io/v1, always served on a real cluster).
LEASES = Kind("coordination.k8s.io", "v1", "leases", "Lease", "lease", namespaced=True)
# CRDs: creating one starts serving its resource, so the same CRD-applying setup works here and on a cluster.
CRDS = Kind(
    "apiextensions.k8s.io",
    "v1",
    "customresourcedefinitions",
    "CustomResourceDefinition",
    "customresourcedefinition",
    namespaced=False,
    short_names=("crd",),
    status_subresource=True,
)
VERBS = ("create", "delete", "get", "list", "patch", "update", "watch")


class ApiError(Exception):
    """An error answered as a Kubernetes `Status` document."""

    def __init__(self, code: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.reason = reason
        self.message = message

    def status(self) -> JsonDict:
        return {
            "apiVersion": "v1",
            "kind": "Status",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        }

    def response(self) -> aiohttp.web.Response:
        return aiohttp.web.json_response(self.status(), status=self.code)


def not_found(kind: Kind, name: str) -> ApiError:
    return ApiError(404, "NotFound", f'{kind.plural} "{name}" not found')


@dataclasses.dataclass(frozen=True)
class Route:
    kind: Kind
    namespace: str | None
    name: str | None
    subresource: str | None


@dataclasses.dataclass(frozen=True)
class Selector:
    """The equality-based subset of label and field selectors: `a=b`, `a==b`, `a!=b`, `a`, `!a`."""

    labels: tuple[tuple[str, str, str | None], ...] = ()
    fields: tuple[tuple[str, str, str], ...] = ()

    @classmethod
    def parse(cls, label_selector: str, field_selector: str) -> Selector:
        labels: list[tuple[str, str, str | None]] = []
        for term in filter(None, (t.strip() for t in label_selector.split(","))):
            if "(" in term:
                raise ApiError(400, "BadRequest", f"set-based label selectors are not emulated: {term!r}")
            if "!=" in term:
                key, value = term.split("!=", 1)
                labels.append((key.strip(), "!=", value.strip()))
            elif "=" in term:
                key, value = term.replace("==", "=").split("=", 1)
                labels.append((key.strip(), "=", value.strip()))
            elif term.startswith("!"):
                labels.append((term[1:].strip(), "absent", None))
            else:
                labels.append((term, "present", None))
        fields: list[tuple[str, str, str]] = []
        for term in filter(None, (t.strip() for t in field_selector.split(","))):
            op = "!=" if "!=" in term else "="
            key, value = term.replace("==", "=").split(op, 1)
            if key.strip() not in ("metadata.name", "metadata.namespace"):
                raise ApiError(400, "BadRequest", f"field selector not emulated: {term!r}")
            fields.append((key.strip(), op, value.strip()))
        return cls(tuple(labels), tuple(fields))

    def matches(self, obj: JsonDict) -> bool:
        meta = obj.get("metadata", {})
        obj_labels = meta.get("labels") or {}
        for key, op, value in self.labels:
            present = key in obj_labels
            if (
                (op == "=" and obj_labels.get(key) != value)
                or (op == "!=" and present and obj_labels.get(key) == value)
                or (op == "present" and not present)
                or (op == "absent" and present)
            ):
                return False
        for key, op, value in self.fields:
            actual = meta.get(key.split(".", 1)[1])
            if (op == "=") != (actual == value):
                return False
        return True


@dataclasses.dataclass(eq=False)
class Watcher:
    kind: KindKey
    namespace: str | None
    selector: Selector
    queue: asyncio.Queue[JsonDict] = dataclasses.field(default_factory=asyncio.Queue)

    def wants(self, kind: KindKey, obj: JsonDict) -> bool:
        namespace = obj.get("metadata", {}).get("namespace")
        in_scope = self.namespace is None or namespace == self.namespace
        return kind == self.kind and in_scope and self.selector.matches(obj)


def merge_patch(target: Any, patch: Any) -> Any:
    """RFC 7386 JSON merge patch (kmock's own merge fails when a scalar is replaced by an object)."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = dict(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def now_rfc3339() -> str:
    return datetime.datetime.now(tz=datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def generated_name(prefix: str) -> str:
    return prefix + "".join(secrets.choice(string.ascii_lowercase + string.digits) for _ in range(5))


# --- fault scripting and the request log (tests/reliability) ----------------------------------------------
# A test scripts faults with POST /_emulator/faults and reads what the server was asked with GET
# /_emulator/requests (see KubeEmulator.script_faults and .requests). Nothing here runs unless scripted.

ADMIN_PREFIX = "/_emulator/"
REQUEST_LOG_LENGTH = 100_000


@dataclasses.dataclass
class FaultScript:
    """Faults the next requests meet. Counts go down as faults are injected; ``injected`` counts them up."""

    status_patch_errors: int = 0  # the next N PATCH .../status answer 500 InternalError, unapplied
    status_patch_timeouts: int = 0  # the next N PATCH .../status hang for hang_seconds, then 504, unapplied
    hang_seconds: float = 5.0
    watch_cuts: int = 0  # the next N watch streams to send watch_cut_after events (from now) are cut
    watch_cut_after: int = 1
    plural: str | None = None  # only requests for this resource (None: any)
    forbidden_plurals: list[str] = dataclasses.field(default_factory=list)  # list and watch answer 403, as RBAC
    epoch: int = 0  # bumped on every change; watch streams count their events from the latest change
    injected: collections.Counter[str] = dataclasses.field(default_factory=collections.Counter)

    def update(self, changes: Mapping[str, Any]) -> None:
        allowed = {"status_patch_errors", "status_patch_timeouts", "hang_seconds", "watch_cuts", "watch_cut_after"}
        unknown = set(changes) - allowed - {"plural", "forbidden_plurals"}
        if unknown:
            raise ApiError(400, "BadRequest", f"unknown fault settings: {sorted(unknown)}")
        for key in allowed & set(changes):
            setattr(self, key, type(getattr(self, key))(changes[key]))
        if "plural" in changes:
            self.plural = None if changes["plural"] is None else str(changes["plural"])
        if "forbidden_plurals" in changes:
            self.forbidden_plurals = [str(p) for p in changes["forbidden_plurals"] or ()]
        self.epoch += 1

    def applies(self, kind: Kind) -> bool:
        return self.plural in (None, kind.plural)

    def as_json(self) -> JsonDict:
        data = dataclasses.asdict(self)
        data["injected"] = dict(self.injected)
        return data


# --- RBAC --------------------------------------------------------------------------------------------------
# Off until scripted (POST /_emulator/rbac). Then a request bearing one of the scripted tokens is authorised as
# its user against that user's grants, as a real API server's RBAC authoriser would (403 Forbidden otherwise).
# Any other request is the harness itself (creating namespaces, CRDs, test objects: no token, or the
# kubeconfig's placeholder) and is not checked. Non-resource URLs (discovery, /version) are allowed, as
# system:discovery grants them to every authenticated user.


@dataclasses.dataclass(frozen=True)
class Grant:
    """One flattened RBAC rule: ``namespace`` None for a ClusterRoleBinding, else the RoleBinding's namespace."""

    namespace: str | None
    api_groups: tuple[str, ...]
    resources: tuple[str, ...]
    verbs: tuple[str, ...]
    resource_names: tuple[str, ...] = ()

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> Grant:
        return cls(
            namespace=data.get("namespace"),
            api_groups=tuple(data.get("apiGroups", ())),
            resources=tuple(data.get("resources", ())),
            verbs=tuple(data.get("verbs", ())),
            resource_names=tuple(data.get("resourceNames", ())),
        )

    def allows(self, group: str, resource: str, verb: str, namespace: str | None, name: str | None) -> bool:
        if self.namespace is not None and self.namespace != namespace:
            return False  # a RoleBinding grants only inside its namespace, never cluster-scoped or all-namespace
        return (
            any(g in ("*", group) for g in self.api_groups)
            and any(r in ("*", resource) for r in self.resources)
            and any(v in ("*", verb) for v in self.verbs)
            and (not self.resource_names or (name is not None and name in self.resource_names))
        )


@dataclasses.dataclass
class RbacPolicy:
    enabled: bool = False
    tokens: dict[str, str] = dataclasses.field(default_factory=dict)  # bearer token -> user name
    grants: dict[str, list[Grant]] = dataclasses.field(default_factory=dict)  # user -> grants
    allowed: int = 0
    denied: list[JsonDict] = dataclasses.field(default_factory=list)

    def update(self, changes: Mapping[str, Any]) -> None:
        self.enabled = bool(changes.get("enabled", True))
        self.tokens = {str(k): str(v) for k, v in (changes.get("tokens") or {}).items()}
        self.grants = {
            str(user): [Grant.from_json(g) for g in grants] for user, grants in (changes.get("grants") or {}).items()
        }
        self.allowed, self.denied = 0, []

    def as_json(self) -> JsonDict:
        return {
            "enabled": self.enabled,
            "users": sorted(set(self.tokens.values())),
            "allowed": self.allowed,
            "denied": list(self.denied),
        }

    def check(self, raw_request: aiohttp.web.BaseRequest, route: Route | None) -> str | None:
        """Raise 403 unless the request may go on; return the user it was authorised as (None: the harness)."""
        if not self.enabled:
            return None
        header = raw_request.headers.get("Authorization", "")
        user = self.tokens.get(header[7:].strip()) if header.lower().startswith("bearer ") else None
        if user is None:
            return None  # the harness
        if route is None:
            return user  # a non-resource URL: discovery, /version
        attrs_ = request_attributes(raw_request.method, raw_request.query, route)
        group, resource, verb, namespace, name = attrs_
        if any(g.allows(group, resource, verb, namespace, name) for g in self.grants.get(user, [])):
            self.allowed += 1
            return user
        where = f' in the namespace "{namespace}"' if namespace else " at the cluster scope"
        api_group = f'"{group}"' if group else '""'
        message = (
            f'{resource} is forbidden: User "{user}" cannot {verb} resource "{resource}" '
            f"in API group {api_group}{where}"
        )
        self.denied.append({"user": user, "method": raw_request.method, "path": raw_request.path, "message": message})
        raise ApiError(403, "Forbidden", message)


def request_attributes(
    method: str, query: Mapping[str, str], route: Route
) -> tuple[str, str, str, str | None, str | None]:
    """(apiGroup, resource[/subresource], verb, namespace, name), as the RBAC authoriser sees a request."""
    resource = route.kind.plural + (f"/{route.subresource}" if route.subresource else "")
    if method == "GET":
        verb = "get" if route.name else ("watch" if query.get("watch") in ("true", "1") else "list")
    else:
        verbs = {"POST": "create", "PATCH": "patch", "PUT": "update"}
        verb = verbs.get(method) or ("delete" if route.name else "deletecollection")
    namespace = route.namespace if route.kind.namespaced else None
    return route.kind.group, resource, verb, namespace, route.name


_CORE_PATH = re.compile(r"^/api/(?P<version>v1)(?P<rest>/.*)?$")
_GROUP_PATH = re.compile(r"^/apis/(?P<group>[^/]+)/(?P<version>[^/]+)(?P<rest>/.*)?$")


@attrs.define(kw_only=True)
class EmulatedApiServer(kmock.KubernetesScaffold):
    """kmock's scaffold (HTTP, discovery, 404s) plus an in-memory object store with Kubernetes semantics."""

    kinds: dict[KindKey, Kind] = attrs.field(factory=dict)
    _objects: dict[ObjectKey, JsonDict] = attrs.field(factory=dict, init=False)
    _revision: int = attrs.field(default=0, init=False)
    _history: collections.deque[tuple[int, KindKey, JsonDict]] = attrs.field(
        factory=lambda: collections.deque(maxlen=HISTORY_LENGTH), init=False
    )
    _watchers: set[Watcher] = attrs.field(factory=set, init=False)
    _faults: FaultScript = attrs.field(factory=FaultScript, init=False)
    _rbac: RbacPolicy = attrs.field(factory=RbacPolicy, init=False)
    _request_log: collections.deque[JsonDict] = attrs.field(
        factory=lambda: collections.deque(maxlen=REQUEST_LOG_LENGTH), init=False
    )

    def serve_kind(self, kind: Kind) -> None:
        self.kinds[kind.key] = kind
        self.resources[f"{kind.api_version}/{kind.plural}"] = kmock.ResourceInfo(
            kind=kind.kind,
            singular=kind.singular,
            namespaced=kind.namespaced,
            shortnames=set(kind.short_names),
            verbs=set(VERBS),
            subresources={"status"} if kind.status_subresource else set(),
        )

    def unserve_kind(self, kind: Kind) -> None:
        self.kinds.pop(kind.key, None)
        self.resources.pop(f"{kind.api_version}/{kind.plural}", None)

    def add_namespace(self, name: str) -> None:
        self._create(Route(NAMESPACES, None, None, None), {"metadata": {"name": name}})

    # --- HTTP entry ----------------------------------------------------------------------------------------

    async def __call__(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        if raw_request.path.startswith(ADMIN_PREFIX):
            return await self._admin(raw_request)
        route = self._route(raw_request.path)
        try:
            user = self._rbac.check(raw_request, route)
        except ApiError as exc:
            self._log_request(raw_request, status=exc.code)
            return exc.response()
        self._log_request(raw_request, user=user)
        if raw_request.method == "GET" and raw_request.path.rstrip("/") == "/api/v1":
            return aiohttp.web.json_response(self._core_resources())  # kmock says "groupVersion": "/v1"
        if route is None:  # discovery, /version, unknown endpoints: kmock answers those
            response: aiohttp.web.StreamResponse = await super().__call__(raw_request)
            return response
        try:
            return await self._serve(route, raw_request)
        except ApiError as exc:
            return exc.response()

    def _core_resources(self) -> JsonDict:
        resources = []
        for kind in self.kinds.values():
            if kind.group == "":
                resource = {
                    "name": kind.plural,
                    "singularName": kind.singular,
                    "namespaced": kind.namespaced,
                    "kind": kind.kind,
                    "verbs": list(VERBS),
                    "shortNames": list(kind.short_names),
                }
                resources.append(resource)
                if kind.status_subresource:
                    resources.append({**resource, "name": f"{kind.plural}/status", "verbs": ["get", "patch"]})
        return {"apiVersion": "v1", "kind": "APIResourceList", "groupVersion": "v1", "resources": resources}

    def _route(self, path: str) -> Route | None:
        match = _CORE_PATH.match(path) or _GROUP_PATH.match(path)
        if match is None:
            return None
        group = match.groupdict().get("group") or ""
        parts = [part for part in (match["rest"] or "").split("/") if part]
        if not parts:
            return None
        # kmock's own parser crashes on /api/v1/namespaces and reads /api/v1/namespaces/NAME as a scope.
        if group == "" and parts[0] == "namespaces" and len(parts) <= 2:
            return Route(NAMESPACES, None, parts[1] if len(parts) == 2 else None, None)
        namespace = None
        if parts[0] == "namespaces" and len(parts) >= 3:
            namespace, parts = parts[1], parts[2:]
        kind = self.kinds.get((group, match["version"], parts[0]))
        if kind is None:
            return None
        if namespace is not None and not kind.namespaced:
            return None
        name = parts[1] if len(parts) > 1 else None
        subresource = "/".join(parts[2:]) or None
        return Route(kind, namespace, name, subresource)

    async def _serve(self, route: Route, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        method = raw_request.method
        query = raw_request.query
        if route.name is None:
            if method == "GET" and route.kind.plural in self._faults.forbidden_plurals:
                self._faults.injected["forbidden"] += 1
                message = f"{route.kind.plural} is forbidden: cannot list or watch {route.kind.plural} (injected)"
                raise ApiError(403, "Forbidden", message)
            if method == "GET" and query.get("watch") in ("true", "1"):
                return await self._watch(route, raw_request)
            if method == "GET":
                return aiohttp.web.json_response(self._list(route, query))
            if method == "POST":
                return aiohttp.web.json_response(self._create(route, await _json_body(raw_request)), status=201)
        else:
            if route.kind.namespaced and route.namespace is None:
                raise ApiError(404, "NotFound", f"{route.kind.plural} are namespaced: {raw_request.path}")
            if method == "GET":
                return aiohttp.web.json_response(self._fetch(route))
            if method == "PATCH":
                if route.subresource == "status":
                    await self._status_patch_fault(route)
                body = await _json_body(raw_request)
                return aiohttp.web.json_response(self._patch(route, raw_request.content_type, body))
            if method == "PUT":
                return aiohttp.web.json_response(self._replace(route, await _json_body(raw_request)))
            if method == "DELETE":
                options = await _json_body(raw_request) if raw_request.can_read_body else {}
                return aiohttp.web.json_response(self._delete(route, options or {}))
        raise ApiError(405, "MethodNotAllowed", f"{method} is not supported on {raw_request.path}")

    # --- reading -------------------------------------------------------------------------------------------

    def _select(self, route: Route, query: Mapping[str, str]) -> Iterator[JsonDict]:
        selector = Selector.parse(query.get("labelSelector", ""), query.get("fieldSelector", ""))
        for (kind, namespace, _), obj in self._objects.items():
            if kind == route.kind.key and route.namespace in (None, namespace) and selector.matches(obj):
                yield obj

    def _list(self, route: Route, query: Mapping[str, str]) -> JsonDict:
        return {
            "apiVersion": route.kind.api_version,
            "kind": f"{route.kind.kind}List",
            "metadata": {"resourceVersion": str(self._revision)},
            "items": [copy.deepcopy(obj) for obj in self._select(route, query)],
        }

    def _get(self, route: Route) -> JsonDict:
        assert route.name is not None
        obj = self._objects.get((route.kind.key, route.namespace, route.name))
        if obj is None:
            raise not_found(route.kind, route.name)
        return obj

    def _fetch(self, route: Route) -> JsonDict:
        if route.subresource not in (None, "status") or (
            route.subresource == "status" and not route.kind.status_subresource
        ):
            raise ApiError(404, "NotFound", f"no subresource {route.subresource!r} on {route.kind.plural}")
        return self._get(route)

    async def _watch(self, route: Route, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        query = raw_request.query
        selector = Selector.parse(query.get("labelSelector", ""), query.get("fieldSelector", ""))
        watcher = Watcher(route.kind.key, route.namespace, selector)
        since = query.get("resourceVersion", "")
        expired = since.isdigit() and bool(self._history) and int(since) < self._history[0][0] - 1
        backlog: list[JsonDict]
        if since in ("", "0"):  # "start at most recent": the current state as synthetic ADDED events
            backlog = [{"type": "ADDED", "object": copy.deepcopy(obj)} for obj in self._select(route, query)]
        elif not since.isdigit():
            raise ApiError(400, "BadRequest", f"invalid resourceVersion {since!r}")
        elif expired:  # as after etcd compaction: the client must list again
            message = f"too old resource version: {since} ({self._history[0][0] - 1})"
            backlog = [{"type": "ERROR", "object": ApiError(410, "Expired", message).status()}]
        else:
            backlog = [
                event
                for revision, kind, event in self._history
                if revision > int(since) and watcher.wants(kind, event["object"])
            ]
        # No await between taking the backlog and subscribing: no event can fall in between.
        if not expired:
            self._watchers.add(watcher)
        response = aiohttp.web.StreamResponse(headers={"Content-Type": "application/json"})
        timeout = float(query["timeoutSeconds"]) if query.get("timeoutSeconds") else None
        cut = _WatchCut(self._faults, route.kind)
        try:
            await response.prepare(raw_request)
            for event in backlog:
                await response.write(json.dumps(event).encode() + b"\n")
                if cut.due():
                    return _abort(raw_request, response)
            if not expired:
                async with asyncio.timeout(timeout):
                    while True:
                        change = await watcher.queue.get()
                        await response.write(json.dumps(change).encode() + b"\n")
                        if cut.due():
                            return _abort(raw_request, response)
        except (TimeoutError, ConnectionError):
            pass  # the server-side timeout, or the client went away
        finally:
            self._watchers.discard(watcher)
        with contextlib.suppress(ConnectionError):
            await response.write_eof()
        return response

    # --- fault scripting and the request log --------------------------------------------------------------

    async def _admin(self, raw_request: aiohttp.web.BaseRequest) -> aiohttp.web.StreamResponse:
        what = raw_request.path.removeprefix(ADMIN_PREFIX).strip("/")
        try:
            if what == "faults" and raw_request.method == "POST":
                self._faults.update(await _json_body(raw_request) or {})
            elif what == "requests" and raw_request.method == "GET":
                return aiohttp.web.json_response(list(self._request_log))
            elif what == "requests" and raw_request.method == "DELETE":
                self._request_log.clear()
            elif what == "rbac":
                if raw_request.method == "POST":
                    self._rbac.update(await _json_body(raw_request) or {})
                return aiohttp.web.json_response(self._rbac.as_json())
            elif not (what == "faults" and raw_request.method == "GET"):
                raise ApiError(404, "NotFound", f"no emulator endpoint {raw_request.method} {raw_request.path}")
        except ApiError as exc:
            return exc.response()
        return aiohttp.web.json_response(self._faults.as_json())

    def _log_request(self, raw_request: aiohttp.web.BaseRequest, *, user: str | None = None, status: int = 0) -> None:
        self._request_log.append(
            {
                "method": raw_request.method,
                "path": raw_request.path,
                "watch": raw_request.query.get("watch") in ("true", "1"),
                "userAgent": raw_request.headers.get("User-Agent", ""),
                "user": user,
                "status": status,  # 0: served (whatever it answered); 403: refused by RBAC
            }
        )

    async def _status_patch_fault(self, route: Route) -> None:
        faults = self._faults
        if not faults.applies(route.kind):
            return
        if faults.status_patch_errors > 0:
            faults.status_patch_errors -= 1
            faults.injected["status_patch_error"] += 1
            raise ApiError(500, "InternalError", "injected: the status patch failed (etcdserver: request timed out)")
        if faults.status_patch_timeouts > 0:
            faults.status_patch_timeouts -= 1
            faults.injected["status_patch_timeout"] += 1
            await asyncio.sleep(faults.hang_seconds)
            raise ApiError(504, "Timeout", "injected: the status patch timed out and was not applied")

    # --- writing -------------------------------------------------------------------------------------------

    def _publish(self, kind: Kind, event_type: str, obj: JsonDict) -> None:
        self._revision += 1
        obj["metadata"]["resourceVersion"] = str(self._revision)
        event = {"type": event_type, "object": copy.deepcopy(obj)}
        self._history.append((self._revision, kind.key, event))
        for watcher in self._watchers:
            if watcher.wants(kind.key, obj):
                watcher.queue.put_nowait(event)

    def _create(self, route: Route, body: Any) -> JsonDict:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        kind = route.kind
        obj = copy.deepcopy(body)
        meta = obj.setdefault("metadata", {})
        if kind.namespaced:
            meta["namespace"] = self._creatable_namespace(route, meta)
        else:
            meta.pop("namespace", None)
        if not meta.get("name"):
            if not meta.get("generateName"):
                raise ApiError(422, "Invalid", "metadata.name or metadata.generateName is required")
            meta["name"] = generated_name(meta["generateName"])
        key = (kind.key, meta.get("namespace"), meta["name"])
        if key in self._objects:
            raise ApiError(409, "AlreadyExists", f'{kind.plural} "{meta["name"]}" already exists')
        obj["apiVersion"] = kind.api_version
        obj["kind"] = kind.kind
        meta.update(uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339(), generation=1)
        meta.pop("deletionTimestamp", None)
        if kind.status_subresource:
            obj.pop("status", None)
        if kind is NAMESPACES:
            obj["status"] = {"phase": "Active"}
        if kind is CRDS:
            self._serve_crd(obj)
        self._objects[key] = obj
        self._publish(kind, "ADDED", obj)
        return obj

    def _creatable_namespace(self, route: Route, meta: JsonDict) -> str:
        """The namespace a namespaced object is POSTed into: the request's, existing and not terminating."""
        if route.namespace is None:
            raise ApiError(405, "MethodNotAllowed", f"{route.kind.plural} are namespaced; POST into a namespace")
        if meta.get("namespace") not in (None, route.namespace):
            raise ApiError(400, "BadRequest", "the namespace of the object does not match the request")
        namespace = self._objects.get((NAMESPACES.key, None, route.namespace))
        if namespace is None:
            raise not_found(NAMESPACES, route.namespace)
        if namespace["metadata"].get("deletionTimestamp"):
            message = f"unable to create new content in namespace {route.namespace} because it is terminating"
            raise ApiError(403, "Forbidden", message)
        return route.namespace

    def _patch(self, route: Route, content_type: str, patch: Any) -> JsonDict:
        old = self._get(route)
        if content_type == "application/json-patch+json" and isinstance(patch, list):
            try:
                new = jsonpatch.apply_patch(old, patch, in_place=False)
            except (jsonpatch.JsonPatchException, jsonpatch.JsonPointerException) as exc:
                raise ApiError(422, "Invalid", f"the JSON patch could not be applied: {exc}") from exc
            precondition = None  # a JSON patch tests the resourceVersion itself, with a `test` op
        elif content_type in ("application/merge-patch+json", "application/strategic-merge-patch+json"):
            if not isinstance(patch, dict):
                raise ApiError(400, "BadRequest", "a merge patch must be a JSON object")
            if content_type.startswith("application/strategic") and route.kind.group:
                raise ApiError(415, "UnsupportedMediaType", "strategic merge patch is not supported for CRs")
            new = merge_patch(old, patch)
            precondition = (patch.get("metadata") or {}).get("resourceVersion")
        else:
            raise ApiError(415, "UnsupportedMediaType", f"the patch content type {content_type!r} is not emulated")
        return self._update(route, old, new, precondition)

    def _replace(self, route: Route, body: Any) -> JsonDict:
        if not isinstance(body, dict):
            raise ApiError(400, "BadRequest", "the body must be a JSON object")
        old = self._get(route)
        return self._update(route, old, copy.deepcopy(body), (body.get("metadata") or {}).get("resourceVersion"))

    def _update(self, route: Route, old: JsonDict, candidate: JsonDict, precondition: str | None) -> JsonDict:
        kind = route.kind
        if precondition is not None and precondition != old["metadata"]["resourceVersion"]:
            message = "the object has been modified; please apply your changes to the latest version and try again"
            raise ApiError(409, "Conflict", message)
        # What a real server keeps apart: the status subresource writes only status, the main resource never.
        if route.subresource == "status" and kind.status_subresource:
            new = copy.deepcopy(old)
            _copy_key(candidate, new, "status")
        elif route.subresource is not None:
            raise ApiError(404, "NotFound", f"no subresource {route.subresource!r} on {kind.plural}")
        else:
            new = candidate
            if kind.status_subresource:
                _copy_key(old, new, "status")
        new.setdefault("metadata", {})
        for field in (*SYSTEM_METADATA, "resourceVersion"):
            _copy_key(old["metadata"], new["metadata"], field)
        new["apiVersion"], new["kind"] = old["apiVersion"], old["kind"]
        if old["metadata"].get("deletionTimestamp"):
            added = set(new["metadata"].get("finalizers") or ()) - set(old["metadata"].get("finalizers") or ())
            if added:
                message = "Forbidden: no new finalizers can be added if the object is being deleted"
                raise ApiError(422, "Invalid", message)
        if new == old:
            return old  # a no-op write changes no resourceVersion and sends no watch event
        if _desired_state(new, kind) != _desired_state(old, kind):
            new["metadata"]["generation"] = old["metadata"].get("generation", 1) + 1
        key = (kind.key, new["metadata"].get("namespace"), new["metadata"]["name"])
        if kind is CRDS:
            self._serve_crd(new)
        self._objects[key] = new
        self._publish(kind, "MODIFIED", new)
        if new["metadata"].get("deletionTimestamp") and not new["metadata"].get("finalizers"):
            self._remove(kind, key)
        return new

    def _delete(self, route: Route, options: Mapping[str, Any]) -> JsonDict:
        obj = self._get(route)
        preconditions = options.get("preconditions") or {}
        for field in ("resourceVersion", "uid"):
            if preconditions.get(field) not in (None, obj["metadata"].get(field)):
                raise ApiError(409, "Conflict", f"precondition failed: {field}")
        key = (route.kind.key, route.namespace, obj["metadata"]["name"])
        self._begin_deletion(route.kind, key)
        if route.kind is NAMESPACES:
            for object_key in [k for k in self._objects if k[1] == obj["metadata"]["name"]]:
                self._begin_deletion(self.kinds[object_key[0]], object_key)
            self._reap_namespaces()
        return copy.deepcopy(obj)

    def _begin_deletion(self, kind: Kind, key: ObjectKey) -> None:
        obj = self._objects[key]
        if obj["metadata"].get("finalizers") or kind is NAMESPACES:
            if not obj["metadata"].get("deletionTimestamp"):
                obj["metadata"]["deletionTimestamp"] = now_rfc3339()
                obj["metadata"]["deletionGracePeriodSeconds"] = 0
                if kind is NAMESPACES:
                    obj["status"] = {"phase": "Terminating"}
                self._publish(kind, "MODIFIED", obj)
        else:
            self._remove(kind, key)

    def _remove(self, kind: Kind, key: ObjectKey) -> None:
        obj = self._objects.pop(key)
        self._publish(kind, "DELETED", obj)
        if kind is CRDS:
            self._unserve_crd(obj)
        if key[1] is not None:
            self._reap_namespaces()

    def _serve_crd(self, crd: JsonDict) -> None:
        """Serve the CRD's resource and report it Established, as the API server does within a second."""
        try:
            kinds = kinds_of_crd(crd)
        except (KeyError, TypeError) as exc:
            raise ApiError(422, "Invalid", f"not a valid CustomResourceDefinition: missing {exc}") from exc
        for kind in kinds:
            self.serve_kind(kind)
        crd["status"] = {
            "acceptedNames": crd["spec"]["names"],
            "storedVersions": [version["name"] for version in crd["spec"]["versions"] if version.get("storage")],
            "conditions": [
                {"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "message": "no conflicts found"},
                {"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "message": "emulated"},
            ],
        }

    def _unserve_crd(self, crd: JsonDict) -> None:
        """Stop serving the resource; as on a real server, its objects go with it."""
        for kind in kinds_of_crd(crd):
            self.unserve_kind(kind)
            for key in [key for key in self._objects if key[0] == kind.key]:
                self._publish(kind, "DELETED", self._objects.pop(key))

    def _reap_namespaces(self) -> None:
        """A terminating namespace disappears once nothing is left in it (finalizers hold it up)."""
        occupied = {namespace for _, namespace, _ in self._objects}
        for key, obj in list(self._objects.items()):
            if key[0] == NAMESPACES.key and obj["metadata"].get("deletionTimestamp") and key[2] not in occupied:
                self._objects.pop(key)
                self._publish(NAMESPACES, "DELETED", obj)


def kinds_of_crd(crd: JsonDict) -> list[Kind]:
    spec = crd["spec"]
    names = spec["names"]
    return [
        Kind(
            group=spec["group"],
            version=version["name"],
            plural=names["plural"],
            kind=names["kind"],
            singular=names.get("singular") or names["kind"].lower(),
            namespaced=spec.get("scope", "Namespaced") == "Namespaced",
            short_names=tuple(names.get("shortNames", ())),
            status_subresource="status" in (version.get("subresources") or {}),
        )
        for version in spec["versions"]
        if version.get("served", True)
    ]


async def _json_body(raw_request: aiohttp.web.BaseRequest) -> Any:
    text = await raw_request.text()
    if not text:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ApiError(400, "BadRequest", f"the body is not JSON: {exc}") from exc


def _copy_key(source: JsonDict, target: JsonDict, key: str) -> None:
    if key in source:
        target[key] = copy.deepcopy(source[key])
    else:
        target.pop(key, None)


class _WatchCut:
    """Whether a watch stream is due to be cut: it counts the events it sent since the fault script changed."""

    def __init__(self, faults: FaultScript, kind: Kind) -> None:
        self._faults = faults
        self._kind = kind
        self._epoch = faults.epoch
        self._sent = 0

    def due(self) -> bool:
        faults = self._faults
        if faults.epoch != self._epoch:
            self._epoch, self._sent = faults.epoch, 0
        self._sent += 1
        if faults.watch_cuts <= 0 or not faults.applies(self._kind) or self._sent < faults.watch_cut_after:
            return False
        faults.watch_cuts -= 1
        faults.injected["watch_cut"] += 1
        return True


def _abort(raw_request: aiohttp.web.BaseRequest, response: aiohttp.web.StreamResponse) -> aiohttp.web.StreamResponse:
    """Cut a stream mid-way, as a dropped connection does: no end of the chunked body, just a closed socket."""
    transport = raw_request.transport
    if transport is not None:
        transport.abort()
    return response


def _desired_state(obj: JsonDict, kind: Kind) -> JsonDict:
    """What metadata.generation counts changes of: all but metadata, and status when it is a subresource."""
    ignored = {"metadata", "status"} if kind.status_subresource else {"metadata"}
    return {key: value for key, value in obj.items() if key not in ignored}


# --- the child process ------------------------------------------------------------------------------------


async def serve(kinds: list[Kind], *, host: str, port_file: str, parent_pid: int | None) -> None:
    """Serve until killed; the parent stops it with SIGTERM (nothing in memory is worth a graceful exit)."""
    handler = EmulatedApiServer()
    for kind in (NAMESPACES, EVENTS, LEASES, CRDS, *kinds):
        handler.serve_kind(kind)
    handler.add_namespace("default")
    async with handler, kmock.Server(handler, host=host) as server:
        write_port_file(port_file, server.port)
        # An orphaned child (the parent was killed) must not keep the port forever.
        while parent_pid is None or os.getppid() == parent_pid:
            await asyncio.sleep(1.0)


def write_port_file(path: str, port: int) -> None:
    """Tell the parent the port, atomically: it polls for the file."""
    with open(path + ".tmp", "w", encoding="utf-8") as file:
        file.write(f"{port}\n")
    os.replace(path + ".tmp", path)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument("--resources", default="[]", help="a JSON list of resource specs")
    args = parser.parse_args(argv)
    kinds = [Kind.from_json(item) for item in json.loads(args.resources)]
    asyncio.run(serve(kinds, host=args.host, port_file=args.port_file, parent_pid=args.parent_pid))


if __name__ == "__main__":
    main()
