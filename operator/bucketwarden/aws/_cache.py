"""A thread-safe TTL cache with single-flight loading: concurrent misses of one key cost one load."""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Generic, NamedTuple, TypeVar, cast

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")

Clock = Callable[[], float]


class CacheStats(NamedTuple):
    """``misses`` is the number of loads started; every other lookup is a hit."""

    hits: int
    misses: int


@dataclass
class _Entry(Generic[V]):
    value: V | None
    error: BaseException | None
    expires_at: float


@dataclass
class _Flight(Generic[V]):
    done: threading.Event = field(default_factory=threading.Event)
    value: V | None = None
    error: BaseException | None = None


def _fresh(error: BaseException) -> BaseException:
    # One exception object raised in many threads would collect their tracebacks; raise a copy.
    clone = copy.copy(error).with_traceback(None)
    clone.__cause__ = error.__cause__
    return clone


class TtlCache(Generic[K, V]):
    """Values live ``ttl`` seconds. Errors of a type in ``negative_types`` live ``negative_ttl`` seconds.

    While one thread loads a key, other threads asking for it wait and share that load's result, error
    included, so a burst of identical lookups makes exactly one call. Errors of other types (throttling,
    outages) are shared with the waiters of that one load but not kept. Locks are per key: loads of
    different keys run in parallel.
    """

    def __init__(
        self,
        *,
        ttl: float,
        clock: Clock,
        negative_ttl: float = 0.0,
        negative_types: tuple[type[BaseException], ...] = (),
    ) -> None:
        self._ttl = ttl
        self._negative_ttl = negative_ttl
        self._negative_types = negative_types
        self._clock = clock
        self._lock = threading.Lock()
        self._entries: dict[K, _Entry[V]] = {}
        self._flights: dict[K, _Flight[V]] = {}
        self._generation = 0
        self._hits = 0
        self._misses = 0

    def get(self, key: K, load: Callable[[], V]) -> V:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry.expires_at > self._clock():
                self._hits += 1
                return self._unwrap(entry.value, entry.error)
            flight = self._flights.get(key)
            leader = flight is None
            if flight is None:
                flight = self._flights[key] = _Flight()
                self._misses += 1
            else:
                self._hits += 1
            generation = self._generation
        if not leader:
            flight.done.wait()
            return self._unwrap(flight.value, flight.error)
        try:
            flight.value = load()
        except BaseException as exc:
            flight.error = exc
        with self._lock:
            del self._flights[key]
            # An invalidate() during the load means the caller asked for a newer answer: do not keep this one.
            if generation == self._generation:
                self._store(key, flight)
        flight.done.set()
        if flight.error is not None:
            raise flight.error
        return cast(V, flight.value)

    def invalidate(self, predicate: Callable[[K], bool] | None = None) -> None:
        """Drop every entry (or those whose key matches); loads in progress are not kept."""
        with self._lock:
            self._generation += 1
            if predicate is None:
                self._entries.clear()
            else:
                for key in [k for k in self._entries if predicate(k)]:
                    del self._entries[key]

    def stats(self) -> CacheStats:
        with self._lock:
            return CacheStats(hits=self._hits, misses=self._misses)

    def _store(self, key: K, flight: _Flight[V]) -> None:
        now = self._clock()
        if flight.error is None:
            self._entries[key] = _Entry(flight.value, None, now + self._ttl)
        elif isinstance(flight.error, self._negative_types) and self._negative_ttl > 0:
            self._entries[key] = _Entry(None, flight.error, now + self._negative_ttl)
        else:
            self._entries.pop(key, None)

    @staticmethod
    def _unwrap(value: V | None, error: BaseException | None) -> V:
        if error is not None:
            raise _fresh(error)
        return cast(V, value)
