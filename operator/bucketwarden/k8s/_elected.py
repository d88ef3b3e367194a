"""``bucketwarden run`` with leader election: a standby waits for the Lease, the leader runs the operator.

The Lease is read and written with aiohttp (kopf's own HTTP client library) and the credentials kubectl would use
(k8s/_login.py), because kopf is not running while a replica waits. Liveness is served here, for the standby and
the leader alike (kopf's own endpoint exists only while kopf runs, and a standby that failed its probe would be
restarted for waiting).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import socket
import ssl
import tempfile
import uuid
from pathlib import Path
from typing import Any

import aiohttp
import aiohttp.web
import kopf

from bucketwarden.k8s._leader import LeaderElector, LeaseApiError, LeaseConflictError, LeaseTiming
from bucketwarden.k8s._login import login_as_kubectl
from bucketwarden.k8s._renewer import Renewer
from bucketwarden.k8s._settings import OperatorSettings

logger = logging.getLogger("bucketwarden")

SERVICE_ACCOUNT_NAMESPACE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
LOST_LEADERSHIP_EXIT = 3  # non-zero: the pod restarts as a standby
STOP_GRACE_SECONDS = 5.0


def lease_namespace(settings: OperatorSettings) -> str:
    """Where the Lease lives: the setting, else the pod's own namespace, else "default"."""
    if settings.leader_election_namespace:
        return settings.leader_election_namespace
    if os.environ.get("POD_NAMESPACE"):
        return os.environ["POD_NAMESPACE"]
    with contextlib.suppress(OSError):
        return SERVICE_ACCOUNT_NAMESPACE.read_text().strip() or "default"
    return "default"


def identity() -> str:
    """This replica's holder identity: the pod's name (unique per pod), plus a suffix unique per process."""
    return f"{os.environ.get('POD_ID') or socket.gethostname()}_{uuid.uuid4().hex[:8]}"


def _material(path: Any, data: str | bytes | None, keep: list[Any]) -> str | None:
    """A certificate or key as a file path (ssl wants files): the path given, or the data in a temporary file."""
    if path:
        return os.fsdecode(path)
    if not data:
        return None
    handle = tempfile.NamedTemporaryFile(prefix="bucketwarden-", suffix=".pem")  # noqa: SIM115 (kept open: ssl reads it later)
    handle.write(data.encode() if isinstance(data, str) else data)
    handle.flush()
    keep.append(handle)
    return handle.name


class ApiLeases:
    """The one Lease, through the API server's REST interface."""

    def __init__(self, info: kopf.ConnectionInfo, *, namespace: str, name: str) -> None:
        self._keep: list[Any] = []
        self._collection = f"{info.server.rstrip('/')}/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        self._url = f"{self._collection}/{name}"
        headers = {"Accept": "application/json", "User-Agent": "bucketwarden-leader-election"}
        if info.token:
            headers["Authorization"] = f"{info.scheme or 'Bearer'} {info.token}"
        auth = aiohttp.BasicAuth(info.username, info.password or "") if info.username else None
        context: ssl.SSLContext | bool = False if info.insecure else self._ssl(info)
        self._session = aiohttp.ClientSession(
            headers=headers,
            auth=auth,
            connector=aiohttp.TCPConnector(ssl=context),
            timeout=aiohttp.ClientTimeout(total=5.0),
        )

    def _ssl(self, info: kopf.ConnectionInfo) -> ssl.SSLContext:
        ca = info.ca_data.decode() if isinstance(info.ca_data, bytes) else info.ca_data
        context = ssl.create_default_context(cafile=os.fsdecode(info.ca_path) if info.ca_path else None, cadata=ca)
        cert = _material(info.certificate_path, info.certificate_data, self._keep)
        key = _material(info.private_key_path, info.private_key_data, self._keep)
        if cert:
            context.load_cert_chain(cert, key)
        return context

    async def _send(self, method: str, url: str, body: dict[str, Any] | None = None) -> dict[str, Any] | None:
        async with self._session.request(method, url, json=body) as response:
            if response.status == 404 and method == "GET":
                return None
            if response.status == 409:
                raise LeaseConflictError(await response.text())
            if response.status >= 400:
                raise LeaseApiError(f"{method} {url}: {response.status} {await response.text()}")
            result: dict[str, Any] = await response.json()
            return result

    async def get(self) -> dict[str, Any] | None:
        return await self._send("GET", self._url)

    async def create(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._send("POST", self._collection, body) or {}

    async def replace(self, body: dict[str, Any]) -> dict[str, Any]:
        return await self._send("PUT", self._url, body) or {}

    async def close(self) -> None:
        await self._session.close()
        for handle in self._keep:
            handle.close()


async def _serve_health(port: int) -> aiohttp.web.AppRunner | None:
    if not port:
        return None

    async def healthz(_: aiohttp.web.Request) -> aiohttp.web.Response:
        return aiohttp.web.json_response({"ok": True})

    app = aiohttp.web.Application()
    app.router.add_get("/healthz", healthz)
    runner = aiohttp.web.AppRunner(app, access_log=None)
    await runner.setup()
    await aiohttp.web.TCPSite(runner, "0.0.0.0", port).start()
    return runner


async def run_elected(registry: kopf.OperatorRegistry, settings: OperatorSettings, kopf_kwargs: dict[str, Any]) -> int:
    """Wait for the Lease, run the operator while it is held; 0 on a graceful stop, non-zero when it was lost."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    health = await _serve_health(settings.health_port)
    info = login_as_kubectl(logger=logger, settings=kopf.OperatorSettings())
    if info is None:
        raise kopf.LoginError("leader election: no in-cluster service account and no kubeconfig to log in with")
    namespace = lease_namespace(settings)
    store = ApiLeases(info, namespace=namespace, name=settings.leader_election_name)
    timing = LeaseTiming(
        settings.leader_election_lease_seconds,
        settings.leader_election_renew_deadline_seconds,
        settings.leader_election_retry_seconds,
    )
    elector = LeaderElector(
        store, name=settings.leader_election_name, namespace=namespace, identity=identity(), timing=timing
    )
    try:
        if not await elector.acquire(stop):
            return 0
        kwargs = {k: v for k, v in kopf_kwargs.items() if k != "liveness_endpoint"}  # served here
        lost = asyncio.Event()

        def on_lost() -> None:  # from the renewer's thread
            with contextlib.suppress(RuntimeError):  # this loop has already finished
                loop.call_soon_threadsafe(lost.set)

        # Renewed on its own thread and loop: kopf's loop, however busy, never delays a renewal (k8s/_renewer.py).
        renewer = Renewer(
            elector,
            lambda: ApiLeases(info, namespace=namespace, name=settings.leader_election_name),
            on_lost,
            ApiLeases.close,
        )
        renewer.start()
        operator = asyncio.create_task(kopf.operator(registry=registry, memo=kopf.Memo(), stop_flag=stop, **kwargs))
        losing = asyncio.create_task(lost.wait())
        done, _ = await asyncio.wait({operator, losing}, return_when=asyncio.FIRST_COMPLETED)
        if operator in done:
            losing.cancel()
            await asyncio.to_thread(renewer.stop, release=True)
            operator.result()
            return 0
        logger.error("leader election: the Lease could not be renewed; stopping the operator (a standby takes over)")
        stop.set()
        with contextlib.suppress(TimeoutError, asyncio.CancelledError, Exception):
            await asyncio.wait_for(operator, STOP_GRACE_SECONDS)
        await asyncio.to_thread(renewer.stop, release=False)
        return LOST_LEADERSHIP_EXIT
    finally:
        await store.close()
        if health is not None:
            await health.cleanup()
