"""Run a kopf operator in-process, in a background thread with its own event loop, against any target.

Sync tests and the demo drive the cluster from the main thread while the operator reacts in the background.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import logging
import os
import threading
import weakref
from collections.abc import Callable, Iterable
from pathlib import Path
from types import ModuleType, TracebackType
from typing import Any, Self

import kopf

from ._kube import KubeTarget, connection_info_from_kubeconfig
from ._process import HarnessError

logger = logging.getLogger(__name__)

Target = KubeTarget | kopf.ConnectionInfo | str | os.PathLike[str]

# Set in each operator thread; read by the login handler the runner adds to the registry (once per registry).
_connection: contextvars.ContextVar[Callable[[], kopf.ConnectionInfo] | None] = contextvars.ContextVar(
    "bucketwarden_testing_connection", default=None
)
_registries_with_login: weakref.WeakSet[kopf.OperatorRegistry] = weakref.WeakSet()
_registries_lock = threading.Lock()


# kopf uses the credentials of the highest priority: the harness's target beats any other login handler's.
HARNESS_LOGIN_PRIORITY = 1_000_000


async def login_via_harness(**kwargs: Any) -> kopf.ConnectionInfo | None:
    """Log in where the runner says; outside a runner thread, log in as kopf would by default."""
    connect = _connection.get()
    if connect is not None:
        info = await asyncio.to_thread(connect)
        return dataclasses.replace(info, priority=HARNESS_LOGIN_PRIORITY)
    default: kopf.ConnectionInfo | None = kopf.login_via_client(**kwargs)
    return default


def connector_for(target: Target) -> Callable[[], kopf.ConnectionInfo]:
    """A str starting with http:// or https:// is a server URL; any other str or path is a kubeconfig."""
    if isinstance(target, KubeTarget):
        return target.connection_info
    if isinstance(target, kopf.ConnectionInfo):
        return lambda: target
    if isinstance(target, str) and target.startswith(("http://", "https://")):
        return lambda: kopf.ConnectionInfo(server=target, insecure=True)
    path = Path(target).expanduser()
    return lambda: connection_info_from_kubeconfig(path)


def resolve_registry(registry: kopf.OperatorRegistry | ModuleType | None) -> kopf.OperatorRegistry:
    """A registry as is; a module (imported for its `@kopf.on` side effects) or None: kopf's default registry."""
    if isinstance(registry, kopf.OperatorRegistry):
        return registry
    module_registry = getattr(registry, "registry", None)
    if isinstance(module_registry, kopf.OperatorRegistry):
        return module_registry
    default: kopf.OperatorRegistry = kopf.get_default_registry()
    return default


def ensure_login_handler(registry: kopf.OperatorRegistry) -> None:
    """Add `login_via_harness` once: its presence also disables kopf's fallback logins (~/.kube/config)."""
    with _registries_lock:
        if registry not in _registries_with_login:
            kopf.on.login(registry=registry, id="bucketwarden-testing-login")(login_via_harness)
            _registries_with_login.add(registry)


class OperatorHandle:
    """A kopf operator running in a background thread. `stop()` it, or use it as a context manager."""

    def __init__(self, thread_name: str) -> None:
        self.stop_flag = threading.Event()
        self.ready_flag = threading.Event()
        self.error: BaseException | None = None
        self._thread_name = thread_name
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def stop(self, timeout: float = 30.0) -> None:
        """Ask kopf to stop gracefully and wait; re-raise what the operator died of, if anything."""
        self.stop_flag.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                raise HarnessError(f"the operator thread did not stop within {timeout} s")
        if self.error is not None:
            raise HarnessError(f"the operator failed: {self.error!r}") from self.error

    def _start(self, main: Callable[[], None], ready_timeout: float) -> None:
        self._thread = threading.Thread(target=main, name=self._thread_name, daemon=True)
        self._thread.start()
        if not self.ready_flag.wait(ready_timeout) or self.error is not None:
            self.stop_flag.set()
            self._thread.join(5)
            raise HarnessError(f"the operator did not become ready within {ready_timeout} s") from self.error


def run_operator_in_thread(
    registry: kopf.OperatorRegistry | ModuleType | None = None,
    *,
    server_or_kubeconfig: Target,
    namespaces: Iterable[str] = (),
    settings: kopf.OperatorSettings | None = None,
    memo: Any = None,
    ready_timeout: float = 30.0,
) -> OperatorHandle:
    """Start `kopf.operator(...)` in a daemon thread and return once its startup handlers have finished.

    `server_or_kubeconfig` is a `KubeEmulator`/`KubeCluster`, a `kopf.ConnectionInfo`, an http(s) URL
    (plain, insecure) or a kubeconfig path. No `namespaces` means cluster-wide. The operator runs
    standalone (no peering). The registry gets one extra login handler the first time; see `login_via_harness`.
    """
    resolved = resolve_registry(registry)
    ensure_login_handler(resolved)
    settings = settings if settings is not None else kopf.OperatorSettings()
    if settings.background.instant_exit_timeout is None:
        # Let a timer that is mid-tick finish on stop, rather than be orphaned with a ResourceWarning.
        settings.background.instant_exit_timeout = 5.0
    connect = connector_for(server_or_kubeconfig)
    watched = sorted(set(namespaces))
    handle = OperatorHandle(thread_name=f"kopf-operator-{'-'.join(watched) or 'clusterwide'}")

    async def operate() -> None:
        _connection.set(connect)
        await kopf.operator(
            registry=resolved,
            settings=settings,
            memo=memo,
            clusterwide=not watched,
            namespaces=watched,
            standalone=True,
            stop_flag=handle.stop_flag,
            ready_flag=handle.ready_flag,
        )

    def main() -> None:
        try:
            asyncio.run(operate())
        except BaseException as exc:
            logger.exception("the operator thread failed")
            handle.error = exc
        finally:
            handle.ready_flag.set()  # never leave the starter waiting for a dead operator

    handle._start(main, ready_timeout)
    return handle
