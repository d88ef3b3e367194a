"""Event-driven drift: long-poll the SQS queue of policy events and reconcile the affected ProtectedBucket at once.

Each event's bucket is mapped to its ProtectedBucket through the claims part of the fleet index (the oldest claim, as
for conflicts). Writes the operator made itself are skipped (the event's principal is the operator's own). For
anything else the object is nudged: made due now in this replica's resync queue, whose tick sees the new text and
runs the same level-based reconcile as every other path, with its status, events and metrics; or, for an object
the queue does not hold (kopf timers under peering, another shard's object), given the event's id in an
annotation, a change kopf sees, so the owner's update handler runs it. A duplicate event finds the bucket in sync
(or carries the same id, which changes nothing); events out of order are harmless, because the reconcile reads
the policy as it is now, not as the event describes it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from bucketwarden.aws import DriftQueue, PolicyEvent, QueueMessage, parse_policy_event
from bucketwarden.errors import BucketWardenError
from bucketwarden.principals import CallerIdentity

logger = logging.getLogger("bucketwarden.drift")

DRIFT_ANNOTATION = "drift.bucketwarden.io/event"
ERROR_BACKOFF_SECONDS = 5.0

Verdict = Literal["reconciled", "own-write", "unmanaged", "not-a-policy-event"]
# (namespace, name, event id) -> patch the object's annotation; injected so tests and the operator share the logic.
Nudge = Callable[[str, str, str], Awaitable[None]]
Claimant = Callable[[str], tuple[str, str] | None]


def judge(event: PolicyEvent | None, *, claimant: Claimant, me: CallerIdentity | None) -> Verdict:
    """What to do with one message: reconcile its ProtectedBucket, or why not."""
    if event is None:
        return "not-a-policy-event"
    if me is not None and event.made_by(me):
        return "own-write"
    if claimant(event.bucket) is None:
        return "unmanaged"
    return "reconciled"


class DriftPoller:
    """The loop: receive a batch, judge and nudge each message, delete the batch; forever, until cancelled."""

    def __init__(
        self,
        queue: DriftQueue,
        *,
        claimant: Claimant,
        whoami: Callable[[], CallerIdentity],
        nudge: Nudge,
        on_verdict: Callable[[Verdict], None] = lambda _: None,
    ) -> None:
        self._queue = queue
        self._claimant = claimant
        self._whoami = whoami
        self._nudge = nudge
        self._on_verdict = on_verdict

    async def run(self) -> None:
        await asyncio.to_thread(self._queue.check)
        logger.info("drift queue %s: long-polling for bucket policy events", self._queue.url)
        while True:
            try:
                messages = await asyncio.to_thread(self._queue.receive)
                await self.handle(messages)
            except BucketWardenError as exc:
                logger.warning(
                    "drift queue %s: %s; retrying in %ss", self._queue.url, exc.message, ERROR_BACKOFF_SECONDS
                )
                await asyncio.sleep(ERROR_BACKOFF_SECONDS)

    async def handle(self, messages: list[QueueMessage]) -> list[Verdict]:
        me: CallerIdentity | None
        try:
            me = await asyncio.to_thread(self._whoami) if messages else None
        except BucketWardenError:
            me = None  # reconciling our own write costs one GET; skipping a foreign one would cost drift
        verdicts = []
        for message in messages:
            event = parse_policy_event(message.body)
            verdict = judge(event, claimant=self._claimant, me=me)
            if verdict == "reconciled" and event is not None:
                holder = self._claimant(event.bucket)
                if holder is not None:
                    await self._nudge(holder[0], holder[1], event.event_id)
            logger.debug(
                "drift event %s for %s: %s",
                event.event_name if event else "-",
                event.bucket if event else "-",
                verdict,
                extra={"bucket": event.bucket if event else None, "outcome": verdict},
            )
            self._on_verdict(verdict)
            verdicts.append(verdict)
            await asyncio.to_thread(self._queue.delete, message)
        return verdicts


def claimant_from_index(index: Any) -> Claimant:
    """The (namespace, name) holding a bucket in the claims part of the fleet index: the oldest claim wins."""

    def claimant(bucket: str) -> tuple[str, str] | None:
        # The oldest valid claim (creationTimestamp, then uid); its own reconcile re-checks grant and ownership.
        claims = sorted((e for e in index.get(bucket, []) if e.request is not None), key=lambda e: (e.created, e.uid))
        return (claims[0].namespace, claims[0].name) if claims else None

    return claimant
