"""Living beside ACK: an index of ACK Buckets (s3.services.k8s.aws/v1alpha1) and the patch of their spec.policy.

An ACK Bucket owns its bucket's whole policy document. The index tells a ProtectedBucket that one exists for
its bucket (it then writes nothing unless policyWriter: ACK), and finds the one its bucketRef names. The
patch touches spec.policy alone (a merge patch), so Argo CD needs to ignore only that field.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping
from typing import Any, NamedTuple

import kopf

from bucketwarden.errors import AckPatchError, PolicyParseError
from bucketwarden.k8s._kopf_private import APINotFoundError, api_patch  # kopf's own client: the operator's credentials
from bucketwarden.policy import PolicyDocument, remove_policy
from bucketwarden.principals import BucketTarget
from bucketwarden.spec import PolicyWriter, ProtectedBucketSpec

ACK_GROUP, ACK_VERSION, ACK_PLURAL = "s3.services.k8s.aws", "v1alpha1", "buckets"
ACK_INDEX = "ack_buckets"
PATCH_TIMEOUT_SECONDS = 30.0

logger = logging.getLogger("bucketwarden")


# Constants, logger, then an index's record of a namespaced object: _allowlists.py's Usage has the same shape
# (parallel declarations; the two records share only namespace and name).
class AckBucket(NamedTuple):
    namespace: str
    name: str
    bucket: str
    policy: str | None

    @property
    def ref(self) -> str:
        return f"{self.namespace}/{self.name}"


AckPatcher = Callable[[AckBucket, str], None]


class AckPolicyStore:
    """The policy writer for policyWriter: ACK, as a BucketPolicyPort over one ACK Bucket's spec.policy.

    The reconciler reads, verifies and writes the document ACK will write to S3 (not the live one): what is
    verified is what is written. ``patched`` holds the text sent, if any.
    """

    def __init__(self, entry: AckBucket, patch: AckPatcher | None) -> None:
        self._entry = entry
        self._patch = patch
        self.patched: str | None = None

    def get(self, target: BucketTarget) -> str | None:  # noqa: ARG002 (the BucketPolicyPort signature)
        return self._entry.policy or None

    def put(self, target: BucketTarget, policy_text: str) -> None:  # noqa: ARG002 (the BucketPolicyPort signature)
        try:
            if self._patch is not None:
                self._patch(self._entry, policy_text)
        except Exception as exc:  # kopf's API errors, a timeout, a lost connection: reported, never a crash
            raise AckPatchError(f"could not patch ACK Bucket {self._entry.ref} spec.policy: {exc}") from exc
        self.patched = policy_text

    def delete(self, target: BucketTarget) -> None:  # noqa: ARG002 (the BucketPolicyPort signature)
        # A reconcile always keeps our statement, so it never deletes; removal on deletion is cleanup_beside_ack.
        raise AckPatchError(f"bucketwarden never deletes the whole spec.policy of ACK Bucket {self._entry.ref}")


def ack_owner(index: Mapping[Any, Iterable[AckBucket]] | None, bucket: str) -> AckBucket | None:
    """The ACK Bucket that manages ``bucket``, if any (the first by namespace/name when several claim it)."""
    found = sorted((index or {}).get(("bucket", bucket), []))
    return found[0] if found else None


def ack_by_ref(index: Mapping[Any, Iterable[AckBucket]] | None, namespace: str, name: str) -> AckBucket | None:
    found = list((index or {}).get(("ref", namespace, name), []))
    return found[0] if found else None


def ack_policy_patch(policy_text: str | None) -> dict[str, Any]:
    """The merge patch bucketwarden sends to an ACK Bucket: spec.policy and nothing else (None removes it)."""
    return {"spec": {"policy": policy_text}}


def patch_ack_policy(memo: Any, entry: AckBucket, policy_text: str | None) -> None:
    """Patch spec.policy of an ACK Bucket from a (sync) handler thread, through kopf's client on its loop."""
    url = f"/apis/{ACK_GROUP}/{ACK_VERSION}/namespaces/{entry.namespace}/{ACK_PLURAL}/{entry.name}"
    call = api_patch(
        url,
        settings=memo.kopf_settings,
        payload=ack_policy_patch(policy_text),
        headers={"Content-Type": "application/merge-patch+json"},
        logger=logger,
    )
    asyncio.run_coroutine_threadsafe(call, memo.kopf_loop).result(timeout=PATCH_TIMEOUT_SECONDS)


def cleanup_beside_ack(kwargs: Mapping[str, Any], spec: ProtectedBucketSpec) -> bool:
    """Deletion of a ProtectedBucket that lives beside ACK. True when handled here (no direct S3 cleanup).

    Written through ACK: our statement leaves the ACK Bucket's spec.policy (ACK then writes the rest). Beside an
    ACK Bucket without writing through it: we never wrote, so there is nothing to clean up.
    """
    index = kwargs.get(ACK_INDEX)
    if spec.policy_writer is not PolicyWriter.ACK:
        return ack_owner(index, spec.bucket_name) is not None
    entry = ack_by_ref(index, str(kwargs.get("namespace") or ""), spec.bucket_ref.name if spec.bucket_ref else "")
    if entry is None or entry.bucket != spec.bucket_name or not entry.policy:
        return True
    try:
        current = PolicyDocument.parse(entry.policy)
    except PolicyParseError:
        return True  # not ours to repair
    if not current.find(spec.statement_sid):
        return True
    remaining = remove_policy(current, spec.owned_sids)
    try:
        patch_ack_policy(kwargs["memo"], entry, remaining.to_json() if remaining is not None else None)
    except APINotFoundError:  # deleted since the index saw it: its policy (and our statement) went with it
        logger.info("ACK Bucket %s/%s is gone; nothing to clean up", entry.namespace, entry.name)
    return True


def register_ack(registry: kopf.OperatorRegistry) -> None:
    """The ACK Bucket index; inert (nothing is watched) where the ACK CRD is not installed."""

    @kopf.on.startup(id="ack-loop", registry=registry)
    async def keep_loop(memo: kopf.Memo, **_: Any) -> None:
        memo.kopf_loop = asyncio.get_running_loop()  # sync handlers hand their API calls to it

    @kopf.index(ACK_GROUP, ACK_VERSION, ACK_PLURAL, id=ACK_INDEX, registry=registry)
    async def ack_buckets(namespace: str | None, name: str, spec: Any, **_: Any) -> Any:
        bucket = spec.get("name")
        if not isinstance(bucket, str) or not bucket:
            return None
        policy = spec.get("policy")
        entry = AckBucket(namespace or "", name, bucket, policy if isinstance(policy, str) else None)
        return {("bucket", bucket): entry, ("ref", entry.namespace, name): entry}
