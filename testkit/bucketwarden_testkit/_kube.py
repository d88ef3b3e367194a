"""Kubernetes API targets for tests and the demo: the kmock-based emulator, or a real cluster from a kubeconfig.

Both give the same `KubeClient`, the same kubeconfig-based `ApiClient`, and the same kopf `ConnectionInfo`,
so a test runs unchanged against either.
"""

from __future__ import annotations

import abc
import importlib.util
import json
import os
import shutil
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, TypeVar, cast

import kopf
import kubernetes.client
import kubernetes.config
import yaml
from kubernetes.client.exceptions import ApiException

from ._process import HarnessError, ServerProcess, scrubbed_environ

JsonDict = dict[str, Any]
T = TypeVar("T")

# The kubernetes config loaders are untyped; these aliases give them the types they have.
_load_kube_config: Callable[..., None] = kubernetes.config.load_kube_config
_new_client_from_config: Callable[..., kubernetes.client.ApiClient] = kubernetes.config.new_client_from_config


class HarnessTimeoutError(HarnessError, TimeoutError):
    """A condition polled by the harness did not come true before the deadline."""


def wait_until(
    probe: Callable[[], T | Literal[False] | None],
    *,
    timeout: float = 30.0,
    interval: float = 0.1,
    what: str = "the condition",
) -> T:
    """Call `probe` until it returns something truthy, and return that; raise after `timeout` seconds.

    A probe may answer "not yet" with None or False (``x and y``): neither is ever returned."""
    deadline = time.monotonic() + timeout
    while True:
        result = probe()
        if result:
            return result
        if time.monotonic() > deadline:
            raise HarnessTimeoutError(f"{what} did not happen within {timeout} s")
        time.sleep(interval)


@dataclass(frozen=True)
class ResourceSpec:
    """The identity of one custom resource: what discovery reports and what a CRD declares."""

    group: str
    version: str
    plural: str
    kind: str
    singular: str
    namespaced: bool = True
    short_names: tuple[str, ...] = ()
    status_subresource: bool = True

    @property
    def api_version(self) -> str:
        return f"{self.group}/{self.version}"

    @property
    def crd_name(self) -> str:
        return f"{self.plural}.{self.group}"

    def as_json(self) -> JsonDict:
        """The form `_kmock_server.Kind.from_json` reads on the child's command line."""
        return {
            "group": self.group,
            "version": self.version,
            "plural": self.plural,
            "kind": self.kind,
            "singular": self.singular,
            "namespaced": self.namespaced,
            "short_names": list(self.short_names),
            "status_subresource": self.status_subresource,
        }

    @classmethod
    def from_crd(cls, crd: Mapping[str, Any]) -> list[ResourceSpec]:
        """One spec per served version of a CustomResourceDefinition manifest."""
        spec = crd["spec"]
        names = spec["names"]
        return [
            cls(
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

    def crd_manifest(self) -> JsonDict:
        """A schema-less CRD for this resource: for throwaway test resources on a real cluster."""
        version: JsonDict = {
            "name": self.version,
            "served": True,
            "storage": True,
            "schema": {"openAPIV3Schema": {"type": "object", "x-kubernetes-preserve-unknown-fields": True}},
        }
        if self.status_subresource:
            version["subresources"] = {"status": {}}
        return {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": self.crd_name},
            "spec": {
                "group": self.group,
                "scope": "Namespaced" if self.namespaced else "Cluster",
                "names": {
                    "plural": self.plural,
                    "singular": self.singular,
                    "kind": self.kind,
                    "shortNames": list(self.short_names),
                },
                "versions": [version],
            },
        }


PROTECTED_BUCKETS = ResourceSpec(
    group="bucketwarden.io",
    version="v1alpha1",
    plural="protectedbuckets",
    kind="ProtectedBucket",
    singular="protectedbucket",
    short_names=("pb",),
)


TENANT_POLICIES = ResourceSpec(
    group="bucketwarden.io",
    version="v1alpha1",
    plural="tenantpolicies",
    kind="TenantPolicy",
    singular="tenantpolicy",
    short_names=("tp",),
    namespaced=False,
)


def grant_namespaces(
    client: KubeClient,
    name: str = "all-namespaces",
    namespaces: Sequence[str] = ("*",),
    buckets: Sequence[str] = ("*",),
    **extra: Any,
) -> JsonDict:
    """Create a TenantPolicy (what a cluster admin does once per tenant; the chart's tenancy.grantAll is this)."""
    spec = {"namespaces": list(namespaces), "buckets": list(buckets), **extra}
    return client.create_object(TENANT_POLICIES, {"metadata": {"name": name}, "spec": spec})


def load_crds(paths: Iterable[str | os.PathLike[str]]) -> list[JsonDict]:
    """Every CustomResourceDefinition document in the given YAML files."""
    crds: list[JsonDict] = []
    for path in paths:
        with open(path, encoding="utf-8") as file:
            crds += [doc for doc in yaml.safe_load_all(file) if doc and doc.get("kind") == "CustomResourceDefinition"]
    return crds


def kubeconfig_for(server: str, *, namespace: str = "default") -> JsonDict:
    """A kubeconfig for an unauthenticated plain-HTTP server (the emulator); the token is a placeholder."""
    name = "bucketwarden-emulator"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": name, "cluster": {"server": server, "insecure-skip-tls-verify": True}}],
        "users": [{"name": name, "user": {"token": "emulator"}}],
        "contexts": [{"name": name, "context": {"cluster": name, "user": name, "namespace": namespace}}],
        "current-context": name,
    }


def connection_info_from_kubeconfig(path: str | os.PathLike[str], *, context: str | None = None) -> kopf.ConnectionInfo:
    """Credentials for kopf, read the way the kubernetes client reads them (exec plugins, cert data, tokens)."""
    config = kubernetes.client.Configuration()
    _load_kube_config(config_file=os.fspath(path), context=context, client_configuration=config, persist_config=False)
    header = config.get_api_key_with_prefix("BearerToken") or config.get_api_key_with_prefix("authorization")
    parts = header.split(" ", 1) if header else []
    scheme, token = (parts[0], parts[1]) if len(parts) == 2 else (None, parts[0] if parts else None)
    return kopf.ConnectionInfo(
        server=config.host,
        ca_path=config.ssl_ca_cert,
        insecure=not config.verify_ssl,
        username=config.username or None,
        password=config.password or None,
        scheme=scheme,
        token=token,
        certificate_path=config.cert_file,
        private_key_path=config.key_file,
    )


class KubeTarget(abc.ABC):
    """Where the Kubernetes API is: the emulator or a real cluster."""

    emulated: bool

    @property
    @abc.abstractmethod
    def kubeconfig(self) -> Path:
        """A kubeconfig file for this target, usable by any kubeconfig-reading client."""

    @abc.abstractmethod
    def connection_info(self) -> kopf.ConnectionInfo:
        """What a kopf `@kopf.on.login()` handler returns for this target."""

    def api_client(self) -> kubernetes.client.ApiClient:
        """A new kubernetes `ApiClient` built from the kubeconfig; never touches the global default config."""
        return _new_client_from_config(config_file=str(self.kubeconfig), persist_config=False)

    def client(self) -> KubeClient:
        return KubeClient(self.api_client())


class KubeEmulator(KubeTarget):
    """kmock serving an emulated Kubernetes API over plain HTTP on 127.0.0.1, in a child process.

    Serves v1 namespaces (with `default`), v1 events, CRDs (applying one serves its resource) and the given
    custom resources. See docs/testing.md for what it emulates beyond kmock itself (resourceVersion, status
    subresource, finalizers, watches)::

        with KubeEmulator() as kube, kube.client() as client:
            client.create_namespace("demo")
    """

    emulated = True

    def __init__(
        self, resources: Iterable[ResourceSpec] = (PROTECTED_BUCKETS, TENANT_POLICIES), *, startup_timeout: float = 30.0
    ) -> None:
        self.resources = tuple(resources)
        script = Path(__file__).with_name("_kmock_server.py")
        argv = [str(script), "--resources", json.dumps([resource.as_json() for resource in self.resources])]
        self._process = ServerProcess(
            "kmock", argv, env=scrubbed_environ(), probe_path="/version", startup_timeout=startup_timeout
        )
        self._workdir: Path | None = None

    def __enter__(self) -> Self:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    def start(self) -> None:
        if importlib.util.find_spec("kmock") is None:
            raise HarnessError("kmock is not installed; install the test kit (testkit/README.md)")
        self._process.start()
        self._workdir = Path(tempfile.mkdtemp(prefix="bucketwarden-kube-"))
        self.write_kubeconfig(self._workdir / "kubeconfig")

    def stop(self) -> None:
        self._process.stop()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    @property
    def server(self) -> str:
        """The API server URL, e.g. http://127.0.0.1:40123."""
        return self._process.url

    @property
    def kubeconfig(self) -> Path:
        if self._workdir is None:
            raise HarnessError("the Kubernetes emulator is not running")
        return self._workdir / "kubeconfig"

    def write_kubeconfig(self, path: str | os.PathLike[str], *, namespace: str = "default") -> Path:
        """Write a kubeconfig pointing at the emulator (plain HTTP, no auth) and return its path."""
        target = Path(path)
        target.write_text(yaml.safe_dump(kubeconfig_for(self.server, namespace=namespace)), encoding="utf-8")
        return target

    def connection_info(self) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=self.server, insecure=True)

    # --- fault scripting and the request log (emulator only; used by tests/reliability) --------------------

    def script_faults(self, **faults: Any) -> JsonDict:
        """Script faults for the next requests; returns the server's fault state. Settings (unset: unchanged):

        ``status_patch_errors=N``: the next N PATCH .../status answer 500, unapplied.
        ``status_patch_timeouts=N, hang_seconds=S``: the next N hang S seconds, then 504, unapplied.
        ``watch_cuts=N, watch_cut_after=E``: the next N watch streams to send E events (from now) are cut.
        ``plural="protectedbuckets"``: only for that resource (None: any).
        ``forbidden_plurals=["namespaces"]``: listing and watching those answer 403, as missing RBAC would.
        """
        return cast(JsonDict, self._admin("POST", "faults", faults))

    def fault_state(self) -> JsonDict:
        """What is still scripted, and ``injected``: the faults sent so far, by kind."""
        return cast(JsonDict, self._admin("GET", "faults"))

    def requests(self) -> list[JsonDict]:
        """Every API request served so far (``method``, ``path``, ``watch``, ``userAgent``), oldest first."""
        return cast(list[JsonDict], self._admin("GET", "requests"))

    def clear_requests(self) -> None:
        self._admin("DELETE", "requests")

    def enforce_rbac(self, tokens: Mapping[str, str], grants: Mapping[str, Sequence[Mapping[str, Any]]]) -> JsonDict:
        """Authorise every request bearing one of ``tokens`` (token -> user) against ``grants`` (user -> rules).

        A rule is an RBAC PolicyRule plus ``namespace`` (None: cluster-wide, from a ClusterRoleBinding); see
        ``bucketwarden_testkit.rbac_grants`` to derive them from rendered Roles and bindings. A request no rule
        grants is answered 403 Forbidden; requests with no scripted token (the harness's own) are not checked.
        """
        return cast(JsonDict, self._admin("POST", "rbac", {"enabled": True, "tokens": tokens, "grants": grants}))

    def stop_enforcing_rbac(self) -> JsonDict:
        return cast(JsonDict, self._admin("POST", "rbac", {"enabled": False}))

    def rbac_state(self) -> JsonDict:
        """``allowed``: requests authorised by a grant; ``denied``: every refused request (user, path, message)."""
        return cast(JsonDict, self._admin("GET", "rbac"))

    def _admin(self, method: str, what: str, payload: Mapping[str, Any] | None = None) -> Any:
        data = None if payload is None else json.dumps(payload).encode()
        request = urllib.request.Request(
            f"{self.server}/_emulator/{what}", data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as response:
            return json.loads(response.read())


class KubeCluster(KubeTarget):
    """A real cluster (kind, k3d, anything) given by a kubeconfig file and optionally a context."""

    emulated = False

    def __init__(self, kubeconfig: str | os.PathLike[str], *, context: str | None = None) -> None:
        self._kubeconfig = Path(kubeconfig).expanduser()
        self.context = context

    @property
    def kubeconfig(self) -> Path:
        return self._kubeconfig

    def api_client(self) -> kubernetes.client.ApiClient:
        return _new_client_from_config(config_file=str(self._kubeconfig), context=self.context, persist_config=False)

    def connection_info(self) -> kopf.ConnectionInfo:
        return connection_info_from_kubeconfig(self._kubeconfig, context=self.context)


class KubeClient:
    """The few calls tests and the demo make, the same against the emulator and a real API server.

    Custom objects go through `CustomObjectsApi`; "not found" is a value (`None`/`False`), not an exception.
    Status is written through the `/status` subresource, as a real server requires.
    """

    def __init__(self, api_client: kubernetes.client.ApiClient) -> None:
        self.api_client = api_client
        self.custom = kubernetes.client.CustomObjectsApi(api_client)
        self.core = kubernetes.client.CoreV1Api(api_client)
        self.extensions = kubernetes.client.ApiextensionsV1Api(api_client)

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.api_client.close()  # type: ignore[no-untyped-call]

    # --- custom objects ------------------------------------------------------------------------------------

    def create_object(
        self, resource: ResourceSpec, body: Mapping[str, Any], *, namespace: str | None = None
    ) -> JsonDict:
        obj: JsonDict = {"apiVersion": resource.api_version, "kind": resource.kind, **body}
        obj["metadata"] = dict(obj.get("metadata") or {})
        if resource.namespaced:
            namespace = namespace or obj["metadata"].get("namespace")
            if not namespace:
                raise HarnessError(f"{resource.plural} are namespaced; pass namespace=")
            obj["metadata"]["namespace"] = namespace
            result = self.custom.create_namespaced_custom_object(
                resource.group, resource.version, namespace, resource.plural, obj
            )
        else:
            result = self.custom.create_cluster_custom_object(resource.group, resource.version, resource.plural, obj)
        return cast(JsonDict, result)

    def get_object(self, resource: ResourceSpec, name: str, *, namespace: str | None = None) -> JsonDict | None:
        try:
            if resource.namespaced:
                result = self.custom.get_namespaced_custom_object(
                    resource.group, resource.version, self._ns(resource, namespace), resource.plural, name
                )
            else:
                result = self.custom.get_cluster_custom_object(resource.group, resource.version, resource.plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return cast(JsonDict, result)

    def list_objects(
        self, resource: ResourceSpec, *, namespace: str | None = None, label_selector: str | None = None
    ) -> list[JsonDict]:
        result: Any
        if resource.namespaced and namespace:
            result = self.custom.list_namespaced_custom_object(
                resource.group, resource.version, namespace, resource.plural, label_selector=label_selector
            )
        else:
            result = self.custom.list_cluster_custom_object(
                resource.group, resource.version, resource.plural, label_selector=label_selector
            )
        return cast(list[JsonDict], result["items"])

    def patch_object(
        self,
        resource: ResourceSpec,
        name: str,
        patch: Mapping[str, Any] | Sequence[Mapping[str, Any]],
        *,
        namespace: str | None = None,
    ) -> JsonDict:
        """A JSON merge patch (a mapping) or a JSON patch (a list of operations) of the main resource."""
        body: JsonDict | list[JsonDict]
        if isinstance(patch, Mapping):
            body, content_type = dict(patch), "application/merge-patch+json"
        else:
            body, content_type = [dict(op) for op in patch], "application/json-patch+json"
        if resource.namespaced:
            result = self.custom.patch_namespaced_custom_object(
                resource.group,
                resource.version,
                self._ns(resource, namespace),
                resource.plural,
                name,
                body,
                _content_type=content_type,
            )
        else:
            result = self.custom.patch_cluster_custom_object(
                resource.group, resource.version, resource.plural, name, body, _content_type=content_type
            )
        return cast(JsonDict, result)

    def patch_status(
        self, resource: ResourceSpec, name: str, status: Mapping[str, Any], *, namespace: str | None = None
    ) -> JsonDict:
        """Merge-patch `status` through the /status subresource (writes to the main resource ignore it)."""
        body = {"status": dict(status)}
        if resource.namespaced:
            result = self.custom.patch_namespaced_custom_object_status(
                resource.group, resource.version, self._ns(resource, namespace), resource.plural, name, body
            )
        else:
            result = self.custom.patch_cluster_custom_object_status(
                resource.group, resource.version, resource.plural, name, body
            )
        return cast(JsonDict, result)

    def delete_object(self, resource: ResourceSpec, name: str, *, namespace: str | None = None) -> bool:
        """Ask for deletion; with finalizers the object lingers until they are removed. False if absent."""
        try:
            if resource.namespaced:
                self.custom.delete_namespaced_custom_object(
                    resource.group, resource.version, self._ns(resource, namespace), resource.plural, name
                )
            else:
                self.custom.delete_cluster_custom_object(resource.group, resource.version, resource.plural, name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    # --- waiting -------------------------------------------------------------------------------------------

    def wait_for(
        self,
        resource: ResourceSpec,
        name: str,
        condition: Callable[[JsonDict | None], bool],
        *,
        namespace: str | None = None,
        timeout: float = 30.0,
        interval: float = 0.1,
        what: str = "the condition",
    ) -> JsonDict | None:
        """Poll the object until `condition(obj_or_None)` holds; return that object (None if it is gone)."""
        deadline = time.monotonic() + timeout
        while True:
            obj = self.get_object(resource, name, namespace=namespace)
            if condition(obj):
                return obj
            if time.monotonic() > deadline:
                raise HarnessTimeoutError(f"{resource.kind} {name!r}: {what} not met within {timeout} s; last: {obj}")
            time.sleep(interval)

    def wait_for_status(
        self,
        resource: ResourceSpec,
        name: str,
        condition: Callable[[JsonDict], bool],
        *,
        namespace: str | None = None,
        timeout: float = 30.0,
    ) -> JsonDict:
        """Poll until the object exists and `condition(status)` holds; return the whole object."""
        obj = self.wait_for(
            resource,
            name,
            lambda obj: obj is not None and condition(obj.get("status") or {}),
            namespace=namespace,
            timeout=timeout,
            what="the status condition",
        )
        assert obj is not None
        return obj

    def wait_until_gone(
        self, resource: ResourceSpec, name: str, *, namespace: str | None = None, timeout: float = 30.0
    ) -> None:
        self.wait_for(resource, name, lambda obj: obj is None, namespace=namespace, timeout=timeout, what="deletion")

    # --- namespaces, events, CRDs --------------------------------------------------------------------------

    def create_namespace(self, name: str, *, labels: Mapping[str, str] | None = None) -> None:
        metadata = kubernetes.client.V1ObjectMeta(name=name, labels=dict(labels or {}))
        self.core.create_namespace(kubernetes.client.V1Namespace(metadata=metadata))

    def delete_namespace(self, name: str) -> bool:
        """Delete a namespace and, as on a real server, everything in it (finalizers hold it up)."""
        try:
            self.core.delete_namespace(name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    def list_events(self, namespace: str, *, involved_name: str | None = None) -> list[JsonDict]:
        """Core v1 events in a namespace (kopf posts one per handler outcome), as plain dicts."""
        events = self.core.list_namespaced_event(namespace).items
        serialize: Callable[[Any], JsonDict] = self.api_client.sanitize_for_serialization  # camelCase keys
        result = [serialize(event) for event in events]
        if involved_name is not None:
            result = [event for event in result if event.get("involvedObject", {}).get("name") == involved_name]
        return result

    def apply_crd(self, crd: Mapping[str, Any], *, timeout: float = 60.0) -> None:
        """Create or replace a CustomResourceDefinition, then wait until the API serves it (real clusters)."""
        name = crd["metadata"]["name"]
        model: Any = kubernetes.client.V1CustomResourceDefinition.from_dict(dict(crd))
        try:
            self.extensions.create_custom_resource_definition(model)
        except ApiException as exc:
            if exc.status != 409:
                raise
            existing: Any = self.extensions.read_custom_resource_definition(name)
            model.metadata.resource_version = existing.metadata.resource_version
            self.extensions.replace_custom_resource_definition(name, model)
        deadline = time.monotonic() + timeout
        while True:
            current: Any = self.extensions.read_custom_resource_definition(name)
            conditions = (current.status and current.status.conditions) or []
            if any(c.type == "Established" and c.status == "True" for c in conditions):
                return
            if time.monotonic() > deadline:
                raise HarnessTimeoutError(f"CRD {name} was not established within {timeout} s")
            time.sleep(0.5)

    def delete_crd(self, name: str) -> bool:
        try:
            self.extensions.delete_custom_resource_definition(name)
        except ApiException as exc:
            if exc.status == 404:
                return False
            raise
        return True

    @staticmethod
    def _ns(resource: ResourceSpec, namespace: str | None) -> str:
        if not namespace:
            raise HarnessError(f"{resource.plural} are namespaced; pass namespace=")
        return namespace
