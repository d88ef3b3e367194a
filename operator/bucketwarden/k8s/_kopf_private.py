"""kopf internals the resync queue and the drift-queue poller rely on (kopf is pinned; re-check on an upgrade).

(``_ack.py`` and ``_allowlists.py`` call kopf's API client, ``kopf._cogs.clients.api``, directly as well.)

Work that runs outside a kopf handler (the resync queue, the drift-queue poller) still patches objects with kopf's
own API client (same connection, credentials and retries as kopf) and posts Events through kopf's posting queue
(same throttling and backoff as events from handlers). kopf offers neither outside handlers:

- ``patch_obj`` patches the main resource and, when the resource has a status subresource, /status separately;
- kopf's posting queue is found through context variables that kopf sets only inside an object's processing, so
  a handler captures them (``PostingContext.capture``) and the outside work runs under them (``PostingContext.run``).
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import kopf

T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class PostingContext:
    """kopf's event queue and its loop, as seen inside a handler."""

    queue: Any
    loop: asyncio.AbstractEventLoop

    @classmethod
    def capture(cls) -> PostingContext | None:
        """Inside a kopf handler: the posting queue it would post to; None elsewhere."""
        from kopf._core.engines import posting

        try:
            return cls(posting.event_queue_var.get(), posting.event_queue_loop_var.get())
        except LookupError:
            return None

    def context(self) -> contextvars.Context:
        """A copy of the current context in which ``kopf.event`` posts to the captured queue."""
        from kopf._core.engines import posting

        ctx = contextvars.copy_context()
        ctx.run(posting.event_queue_var.set, self.queue)
        ctx.run(posting.event_queue_loop_var.set, self.loop)
        return ctx

    def run(self, fn: Callable[..., T], /, *args: Any, **kwargs: Any) -> T:
        """``fn(*args, **kwargs)`` where ``kopf.event`` works (call it from any thread)."""
        return self.context().run(fn, *args, **kwargs)


async def patch_object(
    *,
    settings: kopf.OperatorSettings,
    resource: kopf.Resource,
    namespace: str | None,
    name: str,
    patch: kopf.Patch,
    logger: logging.Logger,
) -> bool:
    """Merge-patch an object (its status through /status where the resource has the subresource); False: gone."""
    from kopf._cogs.clients.patching import patch_obj

    patched, _ = await patch_obj(
        settings=settings,
        resource=resource,
        namespace=cast(Any, namespace),
        name=name,
        patch=patch,
        logger=logger,
    )
    return patched is not None


async def get_json(url: str, *, settings: kopf.OperatorSettings, logger: logging.Logger) -> Any:
    """GET an API path (relative to the server root) with kopf's authenticated client; the decoded JSON."""
    from kopf._cogs.clients import api

    return await api.get(url, settings=settings, logger=logger)
