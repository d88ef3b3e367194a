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


@dataclass(frozen=True, slots=True)
class CidrReport:
    """The normalised, collapsed networks, and what normalising changed."""

    networks: tuple[Network, ...]
    host_bits: tuple[tuple[str, str], ...]  # (as written, normalised)
    collapsed: tuple[str, ...]  # entries absorbed by a wider or adjacent range
    non_public: tuple[str, ...]
    allow_all: tuple[str, ...]
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
    # Checked after collapsing: 0.0.0.0/1 plus 128.0.0.0/1 allows every address just as 0.0.0.0/0 does.
    allow_all = tuple(str(n) for n in networks if n.prefixlen == 0)
    return CidrReport(networks, tuple(host_bits), collapsed, non_public, allow_all, tuple(str(n) for n in networks))


def contains(networks: Iterable[Network], address: str) -> bool:
    ip = ipaddress.ip_address(address)
    return any(ip.version == n.version and ip in n for n in networks)
