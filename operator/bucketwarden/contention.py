"""Writer-fight detection: when our statement keeps being removed right after each repair, stop rewriting it forever.

Pure. The state lives in the ProtectedBucket's status (status.contention), so a restarted operator keeps
backing off instead of starting the fight again. One reconcile is one step:

- ``should_write(state)`` before it: False while backing off (the reconcile then only observes and verifies);
- ``advance(state, repaired=..., in_sync=...)`` after it.

A repair is a write that restored our statement after someone else removed or changed it (not a spec
change). When the previous repair was undone within ``window`` reconciles, the repairs count up; from
``threshold`` repairs on the bucket is Contended, and each further repair waits twice as many reconciles
as the one before (capped). ``window`` reconciles in sync end the fight and reset everything.
"""

from __future__ import annotations

from dataclasses import dataclass

from bucketwarden.spec import Contention

CONTENDED = "Contended"
DEFAULT_WINDOW = 3  # resyncs: a removal this soon after a repair counts as a fight
DEFAULT_THRESHOLD = 3  # repairs in a row, each undone within the window
DEFAULT_MAX_BACKOFF = 32  # resyncs between two repairs at most


@dataclass(frozen=True, slots=True)
class ContentionPolicy:
    window: int = DEFAULT_WINDOW
    threshold: int = DEFAULT_THRESHOLD
    max_backoff: int = DEFAULT_MAX_BACKOFF


DEFAULT_POLICY = ContentionPolicy()


def should_write(state: Contention | None) -> bool:
    """Whether this reconcile may repair the policy; False while backing off."""
    return state is None or state.skipped <= 0


def is_contended(state: Contention | None, policy: ContentionPolicy = DEFAULT_POLICY) -> bool:
    return state is not None and state.repairs >= policy.threshold


def advance(
    state: Contention | None,
    *,
    repaired: bool,
    in_sync: bool,
    policy: ContentionPolicy = DEFAULT_POLICY,
) -> Contention | None:
    """The state after one reconcile. None when there is no fight to remember (status stays clean)."""
    current = state or Contention()
    if repaired:
        # The reconciles we sat out after the last repair do not count against the window.
        undone_soon = current.repairs > 0 and current.resyncs_since_repair <= policy.window + current.backoff
        repairs = current.repairs + 1 if undone_soon else 1
        backoff = 0
        if repairs >= policy.threshold:
            backoff = min(policy.max_backoff, max(1, current.backoff * 2))
        return Contention(repairs=repairs, resyncs_since_repair=0, skipped=backoff, backoff=backoff)
    if current.repairs == 0:
        return None
    since = current.resyncs_since_repair + 1
    if in_sync and since > policy.window:
        return None  # our statement stayed put for a whole window: the fight is over
    return current.model_copy(update={"resyncs_since_repair": since, "skipped": max(0, current.skipped - 1)})


def contended_message(state: Contention, policy: ContentionPolicy = DEFAULT_POLICY) -> str:
    wait = f"the next repair waits {state.skipped} resync(s)" if state.skipped else "the next repair is due"
    return (
        f"our statement was removed again within {policy.window} resyncs after each of the last {state.repairs} "
        "repairs: another writer owns the whole bucket policy (likely Terraform aws_s3_bucket_policy, a "
        "Crossplane BucketPolicy, an ACK Bucket's spec.policy, CloudFormation or a script). Writes back off: "
        f"{wait}. Let that tool carry our statement (bucketwarden render --format terraform-json|crossplane|"
        "statement, or policyWriter: ACK), or stop it"
    )
