"""Fail closed when a change of the allowed sources cannot be written in full (S3's 20 KB): keep only what both
the statement in force and the new spec allow, so every removal takes effect and the additions wait. Pure."""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from bucketwarden.policy._cidr import Network, analyse_cidrs, collapse
from bucketwarden.policy._document import Statement
from bucketwarden.spec import ProtectedBucketSpec

SOURCES_PENDING = "SourcesPending"


@dataclass(frozen=True, slots=True)
class Narrowing:
    """The new spec cut down to the sources the statement in force allows too."""

    spec: ProtectedBucketSpec
    removed: tuple[str, ...]  # allowed by the statement in force, not (wholly) by the new spec: written away now
    pending: tuple[str, ...]  # allowed by the new spec, not (wholly) in force: they wait until the whole fits

    @property
    def empty(self) -> bool:
        """Nothing is left that both allow: writing it would deny every client that is not exempt."""
        s = self.spec
        return not (s.allowed_source_ips or s.allowed_vpc_endpoints or s.allowed_vpcs)


def _networks(texts: Iterable[str]) -> tuple[Network, ...]:
    parsed = []
    for text in texts:
        try:
            parsed.append(ipaddress.ip_network(text.strip(), strict=False))
        except ValueError:
            continue  # not an address: allows nothing an address could match
    return collapse(parsed)


def intersect_networks(a: Sequence[Network], b: Sequence[Network]) -> tuple[Network, ...]:
    """The addresses in both. Two CIDRs either nest or are disjoint, so each overlap is the smaller of a pair."""
    overlaps: list[Network] = []
    for x in a:
        for y in b:
            if x.version != y.version:
                continue
            if x.subnet_of(y):  # type: ignore[arg-type]
                overlaps.append(x)
            elif y.subnet_of(x):  # type: ignore[arg-type]
                overlaps.append(y)
    return collapse(overlaps)


def _uncovered(networks: Sequence[Network], by: Sequence[Network]) -> tuple[str, ...]:
    """Each network not wholly inside the union of ``by`` (both collapsed: the overlaps are disjoint)."""
    return tuple(
        str(n) for n in networks if sum(o.num_addresses for o in intersect_networks((n,), by)) != n.num_addresses
    )


def live_sources(statement: Statement) -> tuple[tuple[str, ...], tuple[str, ...], tuple[str, ...]]:
    """(CIDRs, VPC endpoints, VPCs) a statement of ours allows; condition keys are case-insensitive (lowercased)."""
    conditions = statement.conditions
    cidrs = conditions.get("NotIpAddress", {}).get("aws:sourceip", ())
    vpc = conditions.get("StringNotEquals", {})
    return cidrs, vpc.get("aws:sourcevpce", ()), vpc.get("aws:sourcevpc", ())


def narrow_to_live(spec: ProtectedBucketSpec, live: Statement) -> Narrowing:
    """``spec`` with only the sources ``live`` (our statement in the policy now) allows as well."""
    live_cidrs, live_vpces, live_vpcs = live_sources(live)
    old, new = _networks(live_cidrs), analyse_cidrs(spec.allowed_source_ips).networks
    both = intersect_networks(old, new)
    vpces = [v for v in dict.fromkeys(spec.allowed_vpc_endpoints) if v in live_vpces]
    vpcs = [v for v in dict.fromkeys(spec.allowed_vpcs) if v in live_vpcs]
    removed = (
        *_uncovered(old, new),
        *(v for v in dict.fromkeys(live_vpces) if v not in spec.allowed_vpc_endpoints),
        *(v for v in dict.fromkeys(live_vpcs) if v not in spec.allowed_vpcs),
    )
    pending = (
        *_uncovered(new, old),
        *(v for v in dict.fromkeys(spec.allowed_vpc_endpoints) if v not in live_vpces),
        *(v for v in dict.fromkeys(spec.allowed_vpcs) if v not in live_vpcs),
    )
    # model_copy, not validation: the sources may be empty, which the caller checks (Narrowing.empty).
    narrowed = spec.model_copy(
        update={"allowed_source_ips": [str(n) for n in both], "allowed_vpc_endpoints": vpces, "allowed_vpcs": vpcs}
    )
    return Narrowing(narrowed, removed, pending)
