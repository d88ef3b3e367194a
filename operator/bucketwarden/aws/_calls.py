"""Counts AWS calls by API name and outcome, hooked into botocore's event system so nothing escapes it."""

from __future__ import annotations

import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from botocore.client import BaseClient

Outcome = Literal["ok", "error"]
CallHook = Callable[[str, Outcome], None]

logger = logging.getLogger(__name__)


def _api_of(event_name: str) -> str:
    # botocore event names are "<event>.<service-id>.<OperationName>".
    return event_name.rsplit(".", 1)[-1]


class AwsCallCounter:
    """Thread-safe counts of AWS API calls, by operation name.

    A *call* is one client method invocation as the caller sees it; it ends ``ok`` or ``error``.
    An *attempt* is one HTTP request; botocore's retries make several attempts for one call.
    ``attach(client)`` hooks ``after-call``/``after-call-error`` (calls) and ``before-send`` (attempts),
    so every request a client sends is counted, retries included. ``on_call(api, outcome)`` is called
    after each call, outside the lock, e.g. to feed Prometheus; its exceptions are logged, never raised.
    """

    def __init__(self, on_call: CallHook | None = None) -> None:
        self.on_call = on_call
        self._lock = threading.Lock()
        self._ok: Counter[str] = Counter()
        self._errors: Counter[str] = Counter()
        self._attempts: Counter[str] = Counter()
        self._scopes = threading.local()

    @contextmanager
    def scope(self) -> Iterator[Counter[str]]:
        """Count, into the yielded Counter, the calls THIS thread makes inside the block.

        botocore fires its events in the calling thread, so concurrent reconciles each see only their
        own calls. Scopes nest; an outer scope also sees the inner scope's calls.
        """
        calls: Counter[str] = Counter()
        stack: list[Counter[str]] = self._scopes.__dict__.setdefault("stack", [])
        stack.append(calls)
        try:
            yield calls
        finally:
            stack.remove(calls)

    def attach(self, client: BaseClient) -> None:
        """Count every call and attempt ``client`` makes. Attaching twice counts once."""
        events = client.meta.events
        tag = f"bucketwarden-call-counter-{id(self)}"
        events.register("before-send", self._on_before_send, unique_id=f"{tag}-send")
        events.register("after-call", self._on_after_call, unique_id=f"{tag}-call")
        events.register("after-call-error", self._on_after_call_error, unique_id=f"{tag}-error")

    def record(self, api: str, outcome: Outcome, *, attempts: int = 1) -> None:
        """Count one call; for callers that are not botocore clients (the in-memory fake)."""
        with self._lock:
            self._attempts[api] += attempts
        self._record_call(api, outcome)

    def snapshot(self) -> dict[str, int]:
        """API name -> calls made (successful and failed)."""
        with self._lock:
            return dict(self._ok + self._errors)

    def errors(self) -> dict[str, int]:
        """API name -> calls that failed (after botocore's retries)."""
        with self._lock:
            return dict(self._errors)

    def attempts(self) -> dict[str, int]:
        """API name -> HTTP requests sent, retries included."""
        with self._lock:
            return dict(self._attempts)

    def total(self) -> int:
        """All calls made, of any API."""
        with self._lock:
            return sum(self._ok.values()) + sum(self._errors.values())

    def reset(self) -> None:
        with self._lock:
            self._ok.clear()
            self._errors.clear()
            self._attempts.clear()

    def _record_call(self, api: str, outcome: Outcome) -> None:
        logger.debug("AWS call %s: %s", api, outcome)
        with self._lock:
            (self._ok if outcome == "ok" else self._errors)[api] += 1
        for calls in self._scopes.__dict__.get("stack", ()):
            calls[api] += 1
        hook = self.on_call
        if hook is not None:
            try:
                hook(api, outcome)
            except Exception:
                logger.exception("AwsCallCounter.on_call hook failed for %s", api)

    # botocore passes event_name and event-specific keyword arguments to every handler.
    def _on_before_send(self, event_name: str, **_: Any) -> None:
        with self._lock:
            self._attempts[_api_of(event_name)] += 1

    def _on_after_call(self, event_name: str, http_response: Any = None, **_: Any) -> None:
        status = getattr(http_response, "status_code", 200)
        self._record_call(_api_of(event_name), "ok" if status < 300 else "error")

    def _on_after_call_error(self, event_name: str, **_: Any) -> None:
        self._record_call(_api_of(event_name), "error")
