"""Sets of IP addresses as sorted, disjoint intervals: the address space a caller's aws:SourceIp may come from.

AWS does not document which address AWS Backup uses (AWS-SEMANTICS fact 25), so its aws:SourceIp is judged over a
SET of addresses, exactly: a condition holds for the caller only if it holds for every address of the set, and
fails only if it fails for every one. Otherwise the verdict is Unknown. No sample stands in for the set.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

Interval = tuple[int, int]  # first and last address, inclusive
_WIDTH = {4: 32, 6: 128}

# Not globally reachable, so never a request's aws:SourceIp from the internet (IANA special-purpose address
# registries, RFC 6890 and its updates). The documentation ranges are included: they are not public, which is
# why the examples (and tests) use them as "a client's allowed range".
_SPECIAL_V4 = (
    "0.0.0.0/8",
    "10.0.0.0/8",
    "100.64.0.0/10",
    "127.0.0.0/8",
    "169.254.0.0/16",
    "172.16.0.0/12",
    "192.0.0.0/24",
    "192.0.2.0/24",
    "192.88.99.0/24",
    "192.168.0.0/16",
    "198.18.0.0/15",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "240.0.0.0/4",
)
# IPv6: only global unicast (2000::/3) is routed on the internet; minus documentation, 6to4/Teredo and ORCHID.
_GLOBAL_V6 = "2000::/3"
_SPECIAL_V6 = ("2001::/32", "2001:2::/48", "2001:10::/28", "2001:20::/28", "2001:db8::/32", "2002::/16", "3fff::/20")


def _merge(intervals: Iterable[Interval]) -> tuple[Interval, ...]:
    out: list[Interval] = []
    for start, end in sorted(intervals):
        if out and start <= out[-1][1] + 1:
            if end > out[-1][1]:
                out[-1] = (out[-1][0], end)
        else:
            out.append((start, end))
    return tuple(out)


def _intersect(a: Sequence[Interval], b: Sequence[Interval]) -> tuple[Interval, ...]:
    out: list[Interval] = []
    i = j = 0
    while i < len(a) and j < len(b):
        start, end = max(a[i][0], b[j][0]), min(a[i][1], b[j][1])
        if start <= end:
            out.append((start, end))
        if a[i][1] < b[j][1]:
            i += 1
        else:
            j += 1
    return tuple(out)


def _complement(a: Sequence[Interval], version: int) -> tuple[Interval, ...]:
    top = (1 << _WIDTH[version]) - 1
    out: list[Interval] = []
    nxt = 0
    for start, end in a:
        if start > nxt:
            out.append((nxt, start - 1))
        nxt = end + 1
    if nxt <= top:
        out.append((nxt, top))
    return tuple(out)


@dataclass(frozen=True, slots=True)
class AddressSet:
    """IPv4 and IPv6 addresses, each family a tuple of disjoint, sorted, non-adjacent intervals."""

    v4: tuple[Interval, ...] = ()
    v6: tuple[Interval, ...] = ()

    @classmethod
    def of(cls, cidrs: Iterable[str]) -> AddressSet:
        """The union of CIDRs (a bare address is a /32 or /128); raises ValueError for one that is not."""
        v4: list[Interval] = []
        v6: list[Interval] = []
        for text in cidrs:
            net = ipaddress.ip_network(text.strip(), strict=False)
            first = int(net.network_address)
            (v4 if net.version == 4 else v6).append((first, first + net.num_addresses - 1))
        return cls(_merge(v4), _merge(v6))

    def __and__(self, other: AddressSet) -> AddressSet:
        return AddressSet(_intersect(self.v4, other.v4), _intersect(self.v6, other.v6))

    def __or__(self, other: AddressSet) -> AddressSet:
        return AddressSet(_merge((*self.v4, *other.v4)), _merge((*self.v6, *other.v6)))

    def complement(self) -> AddressSet:
        return AddressSet(_complement(self.v4, 4), _complement(self.v6, 6))

    def __sub__(self, other: AddressSet) -> AddressSet:
        return self & other.complement()

    @property
    def empty(self) -> bool:
        return not self.v4 and not self.v6

    def issubset(self, other: AddressSet) -> bool:
        return (self - other).empty

    def first(self) -> str | None:
        """The lowest address (IPv4 first): a concrete member for a counterexample."""
        if self.v4:
            return str(ipaddress.IPv4Address(self.v4[0][0]))
        if self.v6:
            return str(ipaddress.IPv6Address(self.v6[0][0]))
        return None

    def __contains__(self, address: str) -> bool:
        ip = ipaddress.ip_address(address)
        intervals = self.v4 if ip.version == 4 else self.v6
        value = int(ip)
        return any(start <= value <= end for start, end in intervals)

    def to_cidrs(self) -> tuple[str, ...]:
        """The set as the fewest CIDRs that cover exactly it."""
        out: list[str] = []
        for family, intervals in ((ipaddress.IPv4Address, self.v4), (ipaddress.IPv6Address, self.v6)):
            for start, end in intervals:
                first, last = family(start), family(end)
                out += [str(n) for n in ipaddress.summarize_address_range(first, last)]
        return tuple(out)

    def describe(self) -> str:
        count = len(self.v4) + len(self.v6)
        return f"{count} address range{'s' if count != 1 else ''}"


@lru_cache(maxsize=1)
def public_addresses() -> AddressSet:
    """Every address that may be a request's aws:SourceIp from the internet: IPv4 and IPv6, minus non-public."""
    v4 = AddressSet(((0, (1 << 32) - 1),), ()) - AddressSet.of(_SPECIAL_V4)
    v6 = AddressSet.of((_GLOBAL_V6,)) - AddressSet.of(_SPECIAL_V6)
    return v4 | v6


@lru_cache(maxsize=64)
def aws_source_addresses(narrowed_to: tuple[str, ...] = ()) -> AddressSet:
    """The addresses AWS Backup's aws:SourceIp may be: any public address, or the public part of the given
    ranges (the user's copy of ip-ranges.json, or spec.verificationContext.awsSourceRanges)."""
    everything = public_addresses()
    return everything & AddressSet.of(narrowed_to) if narrowed_to else everything


def ranges_from_ip_ranges_json(text: str) -> tuple[str, ...]:
    """Every ip_prefix and ipv6_prefix of AWS's published ip-ranges.json (its format, from the user's copy: the
    file is never fetched). Raises ValueError when the text is not that format."""
    try:
        data = json.loads(text)
    except ValueError as exc:
        raise ValueError(f"not JSON: {exc}") from None
    if not isinstance(data, dict) or not isinstance(data.get("prefixes"), list):
        raise ValueError('not the ip-ranges.json format: no "prefixes" list')
    out: list[str] = []
    for entry in (*data["prefixes"], *(data.get("ipv6_prefixes") or [])):
        prefix = entry.get("ip_prefix") or entry.get("ipv6_prefix") if isinstance(entry, dict) else None
        if not isinstance(prefix, str):
            raise ValueError(f"an entry without ip_prefix or ipv6_prefix: {entry!r}")
        ipaddress.ip_network(prefix, strict=False)  # ValueError names the bad prefix
        out.append(prefix)
    if not out:
        raise ValueError("no prefixes")
    return tuple(out)
