"""The one seam to kopf's private API: every ``kopf._*`` access of bucketwarden is in this module.

kopf is pinned below its next minor (``kopf>=1.45.2,<1.46`` in pyproject.toml). A private module that is gone
fails this module's import; ``check_kopf_private_api`` (run whenever the operator's registry is built) fails
loudly if what is used here has another shape. An import-linter contract (``.importlinter``, "kopf-seam")
forbids kopf's private modules everywhere else.

Work that runs outside a kopf handler (the resync queue, the drift-queue poller, the allow-list and ACK patches)
still patches objects with kopf's own API client (same connection, credentials and retries as kopf) and posts
Events through kopf's posting queue (same throttling and backoff as events from handlers). kopf offers neither
outside handlers:

- ``patch_obj`` patches the main resource and, when the resource has a status subresource, /status separately;
  ``api.patch`` sends one PATCH to any URL (ACK's Buckets, an annotation on a ProtectedBucket);
- kopf's posting queue is found through context variables that kopf sets only inside an object's processing, so
  a handler captures them (``PostingContext.capture``) and the outside work runs under them (``PostingContext.run``).

Two changes to kopf itself are carried here, for upstream (docs/kopf-upstream.md).

The first is ``linear_index_wait``. At start-up kopf makes one toggle per indexed object in one ``ToggleSet`` and
drops it once the object is indexed; every handler of every object waits on that set. kopf 1.45 wakes every waiter
on every make and drop, so a restart with N objects costs N x N wake-ups before the first handler runs (10,000
objects: nothing reconciled for minutes). The fix wakes the waiters only when the set's overall state changes, which
is all they wait for.

The second is ``direct_finalizer_patches``. kopf builds its JSON patches (``Patch.as_json_patch``) by deep-copying
the object's body, applying its edits to the copy and diffing the two. It does so for the finalizer of every new
object, and after every merge patch it sends (every status write), where it deep-copies the patched body only to
find no edits left. That was 9 % of the operator process's GIL samples 10 to 40 s into a 10,000-object burst. An
empty patch is now answered at once, and one of kopf's finalizer edits alone is written from the finalizer list.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
import importlib.metadata
import inspect
import logging
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar, cast

import kopf
from kopf._cogs.aiokits import aiotoggles as _aiotoggles
from kopf._cogs.clients import api as _api
from kopf._cogs.clients import patching as _patching
from kopf._cogs.clients.errors import APINotFoundError
from kopf._cogs.structs import finalizers as _finalizers
from kopf._cogs.structs import patches as _patches
from kopf._core.engines import posting as _posting

from bucketwarden.errors import BucketWardenError

__all__ = [
    "APINotFoundError",
    "KopfPrivateApiError",
    "PostingContext",
    "ToggleSet",
    "api_patch",
    "check_kopf_private_api",
    "direct_finalizer_patches",
    "finalizer_ops",
    "get_json",
    "kopf_finalizer_edits",
    "linear_index_wait",
    "patch_object",
]

T = TypeVar("T")

# The keyword arguments this module passes, per private callable.
_PATCH_OBJ_KEYWORDS = ("settings", "resource", "namespace", "name", "patch", "logger")
_API_PATCH_KEYWORDS = ("settings", "payload", "headers", "logger")
_API_GET_KEYWORDS = ("settings", "logger")
_POSTING_VARS = ("event_queue_var", "event_queue_loop_var", "settings_var")


class KopfPrivateApiError(BucketWardenError):
    """kopf's private API is not what this module was written against (kopf 1.45): the operator must not run."""

    reason = "KopfIncompatible"


def _kopf_version() -> str:
    try:
        return importlib.metadata.version("kopf")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _problems_of_callable(label: str, fn: object, keywords: tuple[str, ...]) -> list[str]:
    if not inspect.iscoroutinefunction(fn):
        return [f"{label} is not a coroutine function"]
    parameters = inspect.signature(fn).parameters
    missing = [name for name in keywords if name not in parameters]
    return [f"{label} lacks the parameters {', '.join(missing)}"] if missing else []


def kopf_private_api_problems() -> list[str]:
    """What of kopf's private API this module relies on is missing or shaped otherwise; empty when all is well."""
    problems: list[str] = []
    for var in _POSTING_VARS:
        if not isinstance(getattr(_posting, var, None), contextvars.ContextVar):
            problems.append(f"kopf._core.engines.posting.{var} is not a ContextVar")
    patch_obj = getattr(_patching, "patch_obj", None)
    patch_obj_problems = _problems_of_callable("kopf._cogs.clients.patching.patch_obj", patch_obj, _PATCH_OBJ_KEYWORDS)
    if not patch_obj_problems:  # its return type changed between kopf versions
        returned = inspect.signature(cast(Callable[..., Any], patch_obj)).return_annotation
        if typing.get_origin(returned) is not tuple or len(typing.get_args(returned)) != 2:
            patch_obj_problems.append(f"kopf._cogs.clients.patching.patch_obj returns {returned!r}, not a pair")
    problems += patch_obj_problems
    api_patch_fn = getattr(_api, "patch", None)
    problems += _problems_of_callable("kopf._cogs.clients.api.patch", api_patch_fn, _API_PATCH_KEYWORDS)
    problems += _problems_of_callable("kopf._cogs.clients.api.get", getattr(_api, "get", None), _API_GET_KEYWORDS)
    problems += _toggle_set_problems()
    problems += _finalizer_patch_problems()
    return problems


def check_kopf_private_api() -> None:
    """Fail loudly, before any handler runs, if kopf's private API is not the one this module expects."""
    problems = kopf_private_api_problems()
    if problems:
        raise KopfPrivateApiError(
            f"kopf {_kopf_version()} does not have the private API bucketwarden uses (written against kopf 1.45; "
            f"install the pinned kopf, see constraints.txt): {'; '.join(problems)}"
        )


@dataclass(frozen=True, slots=True)
class PostingContext:
    """kopf's event queue and its loop (and the settings events are posted with), as seen inside a handler."""

    queue: Any
    loop: asyncio.AbstractEventLoop
    settings: kopf.OperatorSettings | None = None

    @classmethod
    def capture(cls) -> PostingContext | None:
        """Inside a kopf handler: the posting queue it would post to; None elsewhere."""
        try:
            queue, loop = _posting.event_queue_var.get(), _posting.event_queue_loop_var.get()
        except LookupError:
            return None
        return cls(queue, loop, _posting.settings_var.get(None))

    def context(self) -> contextvars.Context:
        """A copy of the current context in which ``kopf.event`` posts to the captured queue."""
        ctx = contextvars.copy_context()
        ctx.run(_posting.event_queue_var.set, self.queue)
        ctx.run(_posting.event_queue_loop_var.set, self.loop)
        if self.settings is not None:
            ctx.run(_posting.settings_var.set, self.settings)
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
    result = await _patching.patch_obj(
        settings=settings,
        resource=resource,
        namespace=cast(Any, namespace),
        name=name,
        patch=patch,
        logger=logger,
    )
    if not isinstance(result, tuple) or len(result) != 2:  # other kopf versions returned the body alone
        raise KopfPrivateApiError(f"kopf's patch_obj returned {type(result).__name__}, not a (body, patch) pair")
    patched, _ = result
    return patched is not None


async def get_json(url: str, *, settings: kopf.OperatorSettings, logger: logging.Logger) -> Any:
    """GET an API path (relative to the server root) with kopf's authenticated client; the decoded JSON."""
    return await _api.get(url, settings=settings, logger=logger)


async def api_patch(
    url: str, *, settings: kopf.OperatorSettings, payload: object, headers: dict[str, str], logger: logging.Logger
) -> Any:
    """One PATCH to ``url`` (relative to the API root) with kopf's authenticated client; 404 raises APINotFoundError."""
    return await _api.patch(url, settings=settings, payload=payload, headers=headers, logger=logger)


ToggleSet: Any = _aiotoggles.ToggleSet  # kopf's start-up wait primitive, for the tests of linear_index_wait

# ToggleSet's private attributes and methods that linear_index_wait replaces or reads.
_TOGGLE_SET_ATTRIBUTES = ("_condition", "_toggles", "_fn")
_TOGGLE_SET_METHODS = ("make_toggle", "drop_toggle", "drop_toggles", "is_on")


def _toggle_set_problems() -> list[str]:
    toggle_set = getattr(_aiotoggles, "ToggleSet", None)
    if toggle_set is None:
        return ["kopf._cogs.aiokits.aiotoggles.ToggleSet is gone"]
    if getattr(toggle_set, "_bucketwarden_linear", False):
        return []  # already replaced by linear_index_wait
    problems = [f"ToggleSet.{m} is missing" for m in _TOGGLE_SET_METHODS if not callable(getattr(toggle_set, m, None))]
    probe = toggle_set(all)
    problems += [f"ToggleSet has no {a}" for a in _TOGGLE_SET_ATTRIBUTES if not hasattr(probe, a)]
    return problems


async def _make_toggle(self: Any, __val: bool = False, *, name: str | None = None) -> Any:
    toggle = _aiotoggles.Toggle(__val, name=name, condition=self._condition)
    async with self._condition:
        before = self.is_on()
        self._toggles.add(toggle)
        if self.is_on() != before:
            self._condition.notify_all()
    return toggle


async def _drop_toggles(self: Any, toggles: Any) -> None:
    async with self._condition:
        before = self.is_on()
        self._toggles.difference_update(toggles)
        if self.is_on() != before:
            self._condition.notify_all()


async def _drop_toggle(self: Any, toggle: Any) -> None:
    await _drop_toggles(self, (toggle,))


def linear_index_wait() -> None:
    """Make kopf's start-up index wait linear: wake a ToggleSet's waiters only when its overall state changes.

    Every waiter of a ToggleSet waits for the set's overall state (``ToggleSet.wait_for``); adding or dropping a
    toggle can change only that, so a wake-up that leaves it as it was wakes everyone for nothing. A toggle's own
    ``turn_to`` still wakes everyone (peering's toggles flip that way). Idempotent; checked by
    ``check_kopf_private_api`` first.
    """
    toggle_set = _aiotoggles.ToggleSet
    if getattr(toggle_set, "_bucketwarden_linear", False):
        return
    toggle_set.make_toggle = _make_toggle  # type: ignore[method-assign]
    toggle_set.drop_toggle = _drop_toggle  # type: ignore[method-assign]
    toggle_set.drop_toggles = _drop_toggles  # type: ignore[method-assign]
    toggle_set._bucketwarden_linear = True  # type: ignore[attr-defined]


# kopf's body edits that direct_finalizer_patches writes directly; any other edit takes kopf's own deep copy and diff.
_FINALIZER_EDITS = {"block_deletion": True, "allow_deletion": False}  # name -> whether it adds the finalizer


def _finalizer_patch_problems() -> list[str]:
    problems = [
        f"kopf's finalizers.{n} is missing" for n in _FINALIZER_EDITS if not callable(getattr(_finalizers, n, None))
    ]
    if getattr(_patches.Patch, "_bucketwarden_direct", False):
        return problems  # as_json_patch already replaced by direct_finalizer_patches
    if not callable(getattr(_patches.Patch, "as_json_patch", None)):
        problems.append("kopf.Patch has no as_json_patch")
    probe = _patches.Patch()
    if not hasattr(probe, "_original") or not isinstance(getattr(probe, "fns", None), list):
        problems.append("kopf.Patch has no _original body or no list of body edits (fns)")
    return problems


def _finalizer_edit(fn: object) -> tuple[str, bool] | None:
    """(finalizer, whether it is added) for kopf's ``partial(block_deletion|allow_deletion, finalizer=...)``."""
    if not isinstance(fn, functools.partial) or fn.args or set(fn.keywords) != {"finalizer"}:
        return None
    for name, adds in _FINALIZER_EDITS.items():
        if fn.func is getattr(_finalizers, name):
            finalizer = fn.keywords["finalizer"]
            return (finalizer, adds) if isinstance(finalizer, str) else None
    return None


def finalizer_ops(fns: list[Any], body: Mapping[str, Any]) -> list[dict[str, Any]] | None:
    """The JSON patch ops of ``fns`` applied to ``body``, when every one is kopf's finalizer edit; None otherwise.

    kopf applies the edits in order to a copy of the body (adding appends once, removing removes every copy, an
    emptied list is deleted) and sends the difference after a resourceVersion test, so one op on the whole list
    has the same effect.
    """
    meta = body.get("metadata")
    if not isinstance(meta, Mapping):
        return None
    current = meta.get("finalizers")
    if current is not None and not (isinstance(current, list) and all(isinstance(f, str) for f in current)):
        return None
    new = list(current or [])
    for fn in fns:
        edit = _finalizer_edit(fn)
        if edit is None:
            return None
        finalizer, adds = edit
        if adds and finalizer not in new:
            new.append(finalizer)
        elif not adds:
            new = [f for f in new if f != finalizer]
    if not new:  # kopf deletes an emptied list (an empty one left only by no removal at all: nothing to send)
        return [] if current is None else [{"op": "remove", "path": "/metadata/finalizers"}]
    if new == current:
        return []
    return [{"op": "add" if current is None else "replace", "path": "/metadata/finalizers", "value": new}]


def direct_finalizer_patches() -> None:
    """Write kopf's finalizer JSON patches directly, without kopf's deep copy and diff of the body.

    Only a patch whose sole content is kopf's finalizer edits takes this path (``finalizer_ops``), and an empty
    patch is answered at once: kopf's ``patch_obj`` asks for the JSON patch of its remaining edits after every merge
    patch (every status write), and kopf deep-copies the patched body before it finds there are none. Any other
    patch is built by kopf as before. Idempotent; checked by ``check_kopf_private_api`` first.
    """
    patch_cls: Any = _patches.Patch
    if getattr(patch_cls, "_bucketwarden_direct", False):
        return
    kopfs = patch_cls.as_json_patch

    def as_json_patch(self: Any, body: Any = None) -> Any:
        if not self:
            return []  # kopf's answer too, after a deep copy of the body: every merge patch of kopf's asks this
        base = body if body is not None else self._original
        if base is not None and self.fns and not dict.__len__(self):
            ops = finalizer_ops(self.fns, base)
            if ops is not None:
                return ops
        return kopfs(self, body)

    patch_cls.as_json_patch = as_json_patch
    patch_cls._bucketwarden_kopf_as_json_patch = kopfs  # for the tests: kopf's own, to compare against
    patch_cls._bucketwarden_direct = True


def kopf_finalizer_edits(finalizer: str) -> tuple[Callable[[Any], None], Callable[[Any], None]]:
    """kopf's own (add, remove) body edits of ``finalizer``, built as kopf's processing builds them (for tests)."""
    return (
        functools.partial(_finalizers.block_deletion, finalizer=finalizer),
        functools.partial(_finalizers.allow_deletion, finalizer=finalizer),
    )
