"""Claims on buckets and the tenancy in force, from kopf's indices; and the arbitration between claimants.

Every ProtectedBucket is indexed by its bucket (``claims_by_bucket``), every TenantPolicy by name and every
namespace's labels by name. A reconcile asks two questions of them, looking only at its own bucket's claims:
does a TenantPolicy grant this resource what it asks (else NotAuthorized, no AWS call), and which authorized,
valid claimant owns the bucket (the oldest creationTimestamp, then uid). A refused or invalid resource is never
a claimant, so it cannot hold a bucket against its rightful owner.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from pydantic import ValidationError

from bucketwarden.spec import ProtectedBucketSpec, TenantPolicySpec
from bucketwarden.tenancy import Request, Tenancy

CLAIMS_INDEX = "claims_by_bucket"
TENANT_POLICIES_INDEX = "tenant_policies"
NAMESPACE_LABELS_INDEX = "namespace_labels"


class ClaimEntry(NamedTuple):
    """One ProtectedBucket's claim on its bucket, as the claims index keeps it."""

    created: str  # metadata.creationTimestamp (RFC 3339, so it sorts as text)
    uid: str
    namespace: str
    name: str
    sid: str | None  # spec.statementSid; None for an invalid spec
    request: Request | None  # what it asks a grant for; None for an invalid spec (never a claim)
    deleting: bool = False  # metadata.deletionTimestamp is set: it is handing the bucket over

    @property
    def key(self) -> str:
        return f"{self.namespace}/{self.name}"


Parse = tuple[Request | None, str | None]  # what a claim asks a grant for, and its Sid; (None, None): invalid


class SpecParses:
    """claim_entry's parse of a spec, remembered by (uid, generation); bounded, the oldest forgotten first.

    The claims index runs on every watch event, and three of the four a creation makes (our status, kopf's
    annotations, the finalizer) change no spec: they are not validated again. Kubernetes bumps the generation on
    every spec change and sets uid itself, so a tenant cannot make a remembered parse stand for another spec.
    """

    def __init__(self, size: int = 65_536) -> None:
        self._size = size
        self._parses: OrderedDict[tuple[str, int], Parse] = OrderedDict()

    def __len__(self) -> int:
        return len(self._parses)

    def parse(self, namespace: str, name: str, meta: Mapping[str, Any], spec: Mapping[str, Any]) -> Parse:
        uid, generation = meta.get("uid"), meta.get("generation")
        if not isinstance(uid, str) or not uid or not isinstance(generation, int):
            return parse_claim(namespace, name, spec)
        key = (uid, generation)
        found = self._parses.get(key)
        if found is None:
            found = self._parses[key] = parse_claim(namespace, name, spec)
            if len(self._parses) > self._size:
                self._parses.popitem(last=False)
        return found


def parse_claim(namespace: str, name: str, spec: Mapping[str, Any]) -> Parse:
    try:
        parsed = ProtectedBucketSpec.model_validate(dict(spec))
    except ValidationError:
        return None, None
    return Request.of(namespace, name, parsed), parsed.statement_sid


def claim_entry(
    namespace: str, name: str, meta: Mapping[str, Any], spec: Mapping[str, Any], parses: SpecParses | None = None
) -> dict[str, ClaimEntry] | None:
    """The claims index's value for one ProtectedBucket: {bucket: entry}; None without a bucket name."""
    bucket = spec.get("bucketName")
    if not isinstance(bucket, str) or not bucket:
        return None
    if parses is None:
        request, sid = parse_claim(namespace, name, spec)
    else:
        request, sid = parses.parse(namespace, name, meta, spec)
    created = str(meta.get("creationTimestamp") or "")
    deleting = bool(meta.get("deletionTimestamp"))
    return {bucket: ClaimEntry(created, str(meta.get("uid") or ""), namespace, name, sid, request, deleting)}


def tenant_policy_entry(name: str, spec: Mapping[str, Any]) -> dict[str, TenantPolicySpec] | None:
    """The TenantPolicy index's value: parsed once per watch event, never per reconcile. Invalid: no grant."""
    try:
        return {name: TenantPolicySpec.model_validate(dict(spec))}
    except ValidationError:
        return None


class _IndexLabels(Mapping[str, Mapping[str, str]]):
    """Namespace labels read straight from kopf's index (no copy of the whole cluster per reconcile)."""

    def __init__(self, index: Mapping[str, Iterable[Mapping[str, str]]]) -> None:
        self._index = index

    def __getitem__(self, namespace: str) -> Mapping[str, str]:
        for labels in self._index.get(namespace, ()):
            return labels
        raise KeyError(namespace)

    def __iter__(self) -> Iterator[str]:
        return iter(self._index)

    def __len__(self) -> int:
        return len(self._index)


def tenancy_from(policies: Mapping[str, Iterable[TenantPolicySpec]] | None, namespaces: Any) -> Tenancy:
    """The tenancy in force, from the TenantPolicy and namespace-labels indices (cheap: tens of policies)."""
    by_name = {name: spec for name, specs in (policies or {}).items() for spec in specs}
    return Tenancy(by_name, _IndexLabels(namespaces or {}))


@dataclass(frozen=True, slots=True)
class Arbitration:
    """Who owns a bucket among its authorized, valid claimants; and every other claimant's Sid."""

    owner: ClaimEntry | None
    rivals: Mapping[str, str] = field(default_factory=dict)  # Sid -> namespace/name, this resource excluded

    def owned_by(self, namespace: str, name: str) -> bool:
        """Whether (namespace, name) may write: it owns the bucket, or no authorized claim is indexed yet."""
        return self.owner is None or (self.owner.namespace, self.owner.name) == (namespace, name)


def arbitrate(
    entries: Iterable[ClaimEntry], tenancy: Tenancy, namespace: str, name: str, *, leaving: bool = False
) -> Arbitration:
    """The deterministic owner of a bucket: oldest creationTimestamp, then uid, among claims a grant covers.

    A claimant being deleted is no claimant for the others (the next one takes over as soon as it has cleaned
    up), but still one for itself, so its own cleanup runs as the owner's. ``leaving``: not even for itself
    (who takes over from (namespace, name)?).
    """

    def counts(e: ClaimEntry) -> bool:
        if (e.namespace, e.name) == (namespace, name):
            return not leaving
        return not e.deleting

    valid = [e for e in entries if e.request is not None and counts(e) and tenancy.authorize(e.request).allowed]
    valid.sort(key=lambda e: (e.created, e.uid))
    rivals = {e.sid: e.key for e in valid if e.sid and (e.namespace, e.name) != (namespace, name)}
    return Arbitration(valid[0] if valid else None, rivals)
