"""Resolve a ProtectedBucket's allowedSourcesFrom into the effective spec the reconciler renders. Pure.

The union of the inline values and every referenced SourceAllowList is what is written. The reconciler
never sees a reference: it receives a spec whose allowedSourceIps/VpcEndpoints/Vpcs already hold the union.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from bucketwarden.spec import ProtectedBucketSpec, SourceAllowListSpec

SOURCE_LIST_NOT_FOUND = "SourceListNotFound"


@dataclass(frozen=True, slots=True)
class ResolvedSources:
    """The effective spec, the hash of the sources it allows, and the references that could not be resolved."""

    spec: ProtectedBucketSpec
    sources_hash: str
    missing: tuple[str, ...] = ()

    @property
    def complete(self) -> bool:
        return not self.missing

    @property
    def missing_message(self) -> str:
        names = ", ".join(self.missing)
        return (
            f"SourceAllowList {names} not found (allowedSourcesFrom): create it or remove the reference; "
            "the last good bucket policy is kept, nothing was written"
        )


def _union(groups: Iterable[Iterable[str]]) -> list[str]:
    """Every value once, in first-seen order: inline values first, then each list in reference order."""
    return list(dict.fromkeys(value for group in groups for value in group))


def sources_hash(cidrs: Iterable[str], vpc_endpoints: Iterable[str], vpcs: Iterable[str]) -> str:
    """A short hash of a set of sources, by meaning (order and duplicates do not count)."""
    canonical = json.dumps(
        {"cidrs": sorted(set(cidrs)), "vpcEndpoints": sorted(set(vpc_endpoints)), "vpcs": sorted(set(vpcs))},
        separators=(",", ":"),
    )
    return "sha256:" + hashlib.sha256(canonical.encode()).hexdigest()[:16]


def allow_list_hash(allow_list: SourceAllowListSpec) -> str:
    return sources_hash(allow_list.cidrs, allow_list.vpc_endpoints, allow_list.vpcs)


def resolve_sources(spec: ProtectedBucketSpec, lists: Mapping[str, SourceAllowListSpec]) -> ResolvedSources:
    """The spec with every referenced list folded into its inline allow lists.

    ``lists`` maps a SourceAllowList's name to its (valid) spec; a name absent from it is reported missing,
    and the caller must not write: a policy without the missing list's sources would lock its users out.
    """
    found = [lists[ref.name] for ref in spec.allowed_sources_from if ref.name in lists]
    missing = tuple(ref.name for ref in spec.allowed_sources_from if ref.name not in lists)
    cidrs = _union([spec.allowed_source_ips, *(item.cidrs for item in found)])
    vpc_endpoints = _union([spec.allowed_vpc_endpoints, *(item.vpc_endpoints for item in found)])
    vpcs = _union([spec.allowed_vpcs, *(item.vpcs for item in found)])
    # model_copy skips validation on purpose: the union may exceed one list's maxItems, and the reconciler's
    # policy-size check (S3's 20 KB) is the real bound on what can be written.
    effective = spec.model_copy(
        update={"allowed_source_ips": cidrs, "allowed_vpc_endpoints": vpc_endpoints, "allowed_vpcs": vpcs}
    )
    return ResolvedSources(effective, sources_hash(cidrs, vpc_endpoints, vpcs), missing)
