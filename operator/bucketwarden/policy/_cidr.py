"""CIDR handling for aws:SourceIp: normalise, collapse, and spot ranges that can never match."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

Network = ipaddress.IPv4Network | ipaddress.IPv6Network

# aws:SourceIp only ever carries public addresses: a request from a private address reaches S3 through a
# VPC endpoint, where aws:SourceIp is absent. IAM Access Analyzer reports these as "Private NotIpAddress".
NON_PUBLIC_RANGES: tuple[Network, ...] = tuple(
    ipaddress.ip_network(n)
    for n in (
        "10.0.0.0/8",
        "172.16.0.0/12",
        "192.168.0.0/16",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "0.0.0.0/8",
        "fc00::/7",
        "fe80::/10",
        "::1/128",
    )
)
# What an allow list is measured against to tell whether it restricts anything. IPv4: every address but those
# aws:SourceIp never carries (the ranges above, and multicast, the reserved 240/4 and the benchmarking and IETF
# ranges, none of them routed on the internet). IPv6: the global unicast space 2000::/3, which is every
# public IPv6 address today.
_NEVER_A_PUBLIC_SOURCE_V4: tuple[ipaddress.IPv4Network, ...] = tuple(
    n for n in NON_PUBLIC_RANGES if isinstance(n, ipaddress.IPv4Network)
) + tuple(ipaddress.IPv4Network(n) for n in ("192.0.0.0/24", "198.18.0.0/15", "224.0.0.0/4", "240.0.0.0/4"))
ALL_IPV4 = ipaddress.IPv4Network("0.0.0.0/0")
PUBLIC_IPV6 = ipaddress.IPv6Network("2000::/3")


@dataclass(frozen=True, slots=True)
class CidrReport:
    """The normalised, collapsed networks, and what normalising changed."""

    networks: tuple[Network, ...]
    host_bits: tuple[tuple[str, str], ...]  # (as written, normalised)
    collapsed: tuple[str, ...]  # entries absorbed by a wider or adjacent range
    non_public: tuple[str, ...]
    all_public: tuple[str, ...]  # "IPv4" and/or "IPv6": the families in which every public address is allowed
    network_texts: tuple[str, ...] = ()  # str() of each network, computed once: render asks on every reconcile

    @property
    def texts(self) -> list[str]:
        return list(self.network_texts)

    @property
    def has_ipv4(self) -> bool:
        return any(n.version == 4 for n in self.networks)

    @property
    def has_ipv6(self) -> bool:
        return any(n.version == 6 for n in self.networks)


def parse_network(text: str) -> Network:
    return ipaddress.ip_network(text.strip(), strict=False)


def _sort_key(n: Network) -> tuple[int, int, int]:
    return (n.version, int(n.network_address), n.prefixlen)


def collapse(networks: Iterable[Network]) -> tuple[Network, ...]:
    v4 = [n for n in networks if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in networks if isinstance(n, ipaddress.IPv6Network)]
    merged: list[Network] = [*ipaddress.collapse_addresses(v4), *ipaddress.collapse_addresses(v6)]
    return tuple(sorted(merged, key=_sort_key))


def analyse_cidrs(texts: Sequence[str]) -> CidrReport:
    """Normalise host bits and collapse ranges; cached, since every reconcile of a spec asks again."""
    return _analyse_cidrs(tuple(texts))


@functools.lru_cache(maxsize=4096)
def _analyse_cidrs(texts: tuple[str, ...]) -> CidrReport:
    """Normalise host bits ("192.0.2.7/24" -> "192.0.2.0/24"), and collapse overlaps and duplicates."""
    host_bits: list[tuple[str, str]] = []
    parsed: list[Network] = []
    for text in texts:
        net = parse_network(text)
        if "/" in text and str(net) != text.strip():
            try:
                ipaddress.ip_network(text.strip(), strict=True)
            except ValueError:
                host_bits.append((text, str(net)))
        parsed.append(net)
    networks = collapse(parsed)
    kept = set(networks)
    collapsed = tuple(str(n) for n in dict.fromkeys(parsed) if n not in kept)
    if len(set(parsed)) != len(parsed):
        collapsed += tuple(sorted({str(n) for n in parsed if parsed.count(n) > 1}))
    # Each entry is reported once, however often it was written.
    collapsed = tuple(dict.fromkeys(collapsed))
    non_public = tuple(
        dict.fromkeys(
            str(n)
            for n in parsed
            if any(n.version == r.version and n.subnet_of(r) for r in NON_PUBLIC_RANGES)  # type: ignore[arg-type]
        )
    )
    return CidrReport(
        networks, tuple(host_bits), collapsed, non_public, covers_all_public(networks), tuple(str(n) for n in networks)
    )


def covers_all_public(networks: Iterable[Network]) -> tuple[str, ...]:
    """The address families ("IPv4", "IPv6") in which these ranges allow every address a request may come from.

    Measured on the union, not entry by entry: 0.0.0.0/1 plus 128.0.0.0/1, or eight /3s, allow every address
    just as 0.0.0.0/0 does; and leaving out only private or reserved ranges (which aws:SourceIp never carries)
    leaves out nothing.
    """
    nets = list(networks)
    v4 = [n for n in nets if isinstance(n, ipaddress.IPv4Network)]
    v6 = [n for n in nets if isinstance(n, ipaddress.IPv6Network)]
    families = []
    # collapse_addresses yields the canonical decomposition: a block wholly covered lies inside one of its networks.
    if v4 and ALL_IPV4 in ipaddress.collapse_addresses([*v4, *_NEVER_A_PUBLIC_SOURCE_V4]):
        families.append("IPv4")
    if any(PUBLIC_IPV6.subnet_of(n) for n in ipaddress.collapse_addresses(v6)):
        families.append("IPv6")
    return tuple(families)


def contains(networks: Iterable[Network], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == n.version and ip in n for n in networks)
