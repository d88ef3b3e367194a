"""CIDR handling for aws:SourceIp: host bits, collapsing, and ranges that can never match."""

from __future__ import annotations

import ipaddress

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bucketwarden.policy import CidrReport, analyse_cidrs
from bucketwarden.policy._cidr import NON_PUBLIC_RANGES, Network, collapse, contains, parse_network


@pytest.mark.parametrize(
    ("cidrs", "host_bits"),
    [
        pytest.param(["192.0.2.0/24"], [], id="clean"),
        pytest.param(["192.0.2.7/24"], [("192.0.2.7/24", "192.0.2.0/24")], id="ipv4-host-bits"),
        pytest.param(["2001:db8::1/32"], [("2001:db8::1/32", "2001:db8::/32")], id="ipv6-host-bits"),
        pytest.param(["192.0.2.7"], [], id="bare-address"),
        pytest.param(["192.0.2.7/32"], [], id="host-route"),
        pytest.param(["2001:DB8::/32"], [], id="ipv6-upper-case-is-not-host-bits"),
        pytest.param([" 192.0.2.0/24 "], [], id="whitespace"),
        pytest.param(
            ["198.51.100.1/24", "203.0.113.9/30"],
            [("198.51.100.1/24", "198.51.100.0/24"), ("203.0.113.9/30", "203.0.113.8/30")],
            id="several",
        ),
    ],
)
def test_analyse_cidrs_reports_host_bits(cidrs: list[str], host_bits: list[tuple[str, str]]) -> None:
    assert list(analyse_cidrs(cidrs).host_bits) == host_bits


@pytest.mark.parametrize(
    ("cidrs", "networks", "collapsed"),
    [
        pytest.param(["192.0.2.0/24", "203.0.113.0/24"], ["192.0.2.0/24", "203.0.113.0/24"], [], id="disjoint"),
        pytest.param(["203.0.113.0/24", "192.0.2.0/24"], ["192.0.2.0/24", "203.0.113.0/24"], [], id="sorted"),
        pytest.param(["192.0.2.0/24", "192.0.2.0/24"], ["192.0.2.0/24"], ["192.0.2.0/24"], id="duplicate"),
        pytest.param(
            ["192.0.2.0/25", "192.0.2.128/25"], ["192.0.2.0/24"], ["192.0.2.0/25", "192.0.2.128/25"], id="adjacent"
        ),
        pytest.param(["198.51.100.0/24", "198.51.100.64/26"], ["198.51.100.0/24"], ["198.51.100.64/26"], id="inside"),
        pytest.param(
            ["198.51.100.0/24", "198.51.100.64/26", "198.51.100.64/26"],
            ["198.51.100.0/24"],
            ["198.51.100.64/26"],
            id="inside-and-duplicate-reported-once",
        ),
        pytest.param(["192.0.2.7/24", "192.0.2.0/24"], ["192.0.2.0/24"], ["192.0.2.0/24"], id="same-after-host-bits"),
        pytest.param(
            ["2001:db8::/33", "2001:db8:8000::/33", "192.0.2.0/24"],
            ["192.0.2.0/24", "2001:db8::/32"],
            ["2001:db8::/33", "2001:db8:8000::/33"],
            id="ipv6-adjacent-and-ipv4",
        ),
    ],
)
def test_analyse_cidrs_collapses_overlaps(cidrs: list[str], networks: list[str], collapsed: list[str]) -> None:
    report = analyse_cidrs(cidrs)
    assert report.texts == networks
    assert list(report.collapsed) == collapsed


@pytest.mark.parametrize(
    "cidr",
    [
        "10.0.0.0/8",
        "10.1.2.0/24",
        "10.255.255.255",
        "172.16.0.0/12",
        "172.31.255.0/24",
        "192.168.0.0/16",
        "192.168.1.10",
        "100.64.0.0/10",
        "100.127.0.0/16",
        "127.0.0.1",
        "169.254.169.254",
        "0.0.0.0/8",
        "fc00::/7",
        "fd12:3456:789a::/48",
        "fe80::/64",
        "::1",
    ],
)
def test_analyse_cidrs_flags_non_public_ranges(cidr: str) -> None:
    # Fact 13: these never appear as aws:SourceIp; Access Analyzer reports "Private NotIpAddress".
    assert analyse_cidrs([cidr]).non_public == (str(parse_network(cidr)),)


@pytest.mark.parametrize(
    "cidr",
    [
        "192.0.2.0/24",  # TEST-NET-1: documentation, used in examples and the seed case
        "198.51.100.0/24",  # TEST-NET-2
        "203.0.113.0/24",  # TEST-NET-3
        "2001:db8::/32",  # IPv6 documentation
        "8.8.8.0/24",
        "11.0.0.0/8",
        "172.15.255.0/24",  # just below 172.16/12
        "172.32.0.0/16",  # just above
        "100.63.255.0/24",  # just below 100.64/10
        "100.128.0.0/16",  # just above
        "192.169.0.0/16",
        "2600:1f18::/32",
    ],
)
def test_analyse_cidrs_does_not_flag_public_or_documentation_ranges(cidr: str) -> None:
    assert analyse_cidrs([cidr]).non_public == ()


def test_analyse_cidrs_does_not_flag_a_range_that_only_contains_private_space() -> None:
    # 8.0.0.0/7 is 8/8 and 9/8: public. 10.0.0.0/7 covers 10/8 and 11/8; it still matches public 11/8 callers.
    assert analyse_cidrs(["10.0.0.0/7"]).non_public == ()


def test_analyse_cidrs_reports_each_non_public_entry_once() -> None:
    assert analyse_cidrs(["10.0.0.0/24", "10.0.0.0/24", "10.0.0.0/8"]).non_public == ("10.0.0.0/24", "10.0.0.0/8")


EIGHT_SLASH_THREES = [f"{32 * i}.0.0.0/3" for i in range(8)]
# Every IPv4 address but 10/8, which aws:SourceIp never carries: still allows every public caller.
ALL_BUT_PRIVATE = [
    str(n) for n in ipaddress.IPv4Network("0.0.0.0/0").address_exclude(ipaddress.IPv4Network("10.0.0.0/8"))
]


@pytest.mark.parametrize(
    ("cidrs", "all_public"),
    [
        pytest.param(["0.0.0.0/1", "128.0.0.0/1"], ("IPv4",), id="two-halves-make-all"),
        pytest.param(EIGHT_SLASH_THREES, ("IPv4",), id="eight-slash-threes"),
        pytest.param(EIGHT_SLASH_THREES[:7], ("IPv4",), id="seven-slash-threes-miss-only-multicast-and-reserved"),
        pytest.param(EIGHT_SLASH_THREES[1:], (), id="seven-slash-threes-miss-public-space"),
        pytest.param(ALL_BUT_PRIVATE, ("IPv4",), id="all-but-private-ranges"),
        pytest.param(["::/1", "8000::/1", "192.0.2.0/24"], ("IPv6",), id="ipv6-halves"),
        pytest.param(["2000::/3", "2001:db8::/32"], ("IPv6",), id="global-unicast"),
        pytest.param(["2000::/4", "3000::/4"], ("IPv6",), id="global-unicast-in-two"),
        pytest.param(["2000::/4"], (), id="half-of-global-unicast"),
        pytest.param(["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"], ("IPv4", "IPv6"), id="both"),
        pytest.param(["0.0.0.0/1", "2001:db8::/32"], (), id="half-of-ipv4"),
        pytest.param(["192.0.2.0/24", "2001:db8::/32"], (), id="none"),
        pytest.param(["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16"], (), id="private-only-allows-no-public"),
    ],
)
def test_analyse_cidrs_reports_allow_all_public(cidrs: list[str], all_public: tuple[str, ...]) -> None:
    assert analyse_cidrs(cidrs).all_public == all_public


@pytest.mark.parametrize(
    ("cidrs", "ipv4", "ipv6"),
    [
        pytest.param(["192.0.2.0/24"], True, False, id="ipv4-only"),
        pytest.param(["2001:db8::/32"], False, True, id="ipv6-only"),
        pytest.param(["192.0.2.0/24", "2001:db8::/32"], True, True, id="dual-stack"),
        pytest.param([], False, False, id="empty"),
    ],
)
def test_cidr_report_address_families(cidrs: list[str], ipv4: bool, ipv6: bool) -> None:
    # Fact 14: an IPv4-only list locks dual-stack clients out; lint needs to know which families are covered.
    report = analyse_cidrs(cidrs)
    assert (report.has_ipv4, report.has_ipv6) == (ipv4, ipv6)


def test_analyse_cidrs_empty() -> None:
    assert analyse_cidrs([]) == CidrReport((), (), (), (), ())


def test_analyse_cidrs_rejects_garbage() -> None:
    with pytest.raises(ValueError, match="does not appear to be an IPv4 or IPv6 network"):
        analyse_cidrs(["192.0.2.0/33"])


@pytest.mark.parametrize(
    ("address", "inside"),
    [
        pytest.param("192.0.2.77", True, id="inside-v4"),
        pytest.param("192.0.3.1", False, id="outside-v4"),
        pytest.param("2001:db8::5", True, id="inside-v6"),
        pytest.param("::ffff:192.0.2.77", False, id="mapped-v6-is-another-family"),
    ],
)
def test_contains(address: str, inside: bool) -> None:
    assert contains(analyse_cidrs(["192.0.2.0/24", "2001:db8::/32"]).networks, address) is inside


def test_non_public_ranges_are_networks() -> None:
    assert all(n.network_address == ipaddress.ip_network(str(n)).network_address for n in NON_PUBLIC_RANGES)


# --- properties ---------------------------------------------------------------------------------------------------

ipv4_networks = st.builds(
    lambda addr, prefix: ipaddress.IPv4Network((addr, prefix), strict=False),
    st.integers(0, 2**32 - 1),
    st.integers(8, 32),
)
ipv6_networks = st.builds(
    lambda addr, prefix: ipaddress.IPv6Network((addr, prefix), strict=False),
    st.integers(0, 2**128 - 1),
    st.integers(16, 128),
)
# A small address space (192.0.2.0/24) makes overlaps and adjacency common.
dense_ipv4_networks = st.builds(
    lambda host, prefix: ipaddress.IPv4Network((0xC0000200 + host, prefix), strict=False),
    st.integers(0, 255),
    st.integers(24, 32),
)
network_lists = st.lists(st.one_of(ipv4_networks, ipv6_networks, dense_ipv4_networks), max_size=12)


@settings(max_examples=200, deadline=None)
@given(networks=network_lists, probes=st.lists(st.integers(0, 255), max_size=8))
def test_collapse_covers_exactly_the_same_addresses(networks: list[Network], probes: list[int]) -> None:
    collapsed = collapse(networks)
    samples = [str(n.network_address) for n in networks] + [str(n.broadcast_address) for n in networks]
    samples += [str(ipaddress.IPv4Address(0xC0000200 + p)) for p in probes]
    for address in samples:
        assert contains(collapsed, address) == contains(networks, address)


@settings(max_examples=200, deadline=None)
@given(networks=network_lists)
def test_analyse_cidrs_is_idempotent(networks: list[Network]) -> None:
    report = analyse_cidrs([str(n) for n in networks])
    again = analyse_cidrs(report.texts)
    assert again.texts == report.texts
    assert again.host_bits == ()
    assert again.collapsed == ()
    # The result is sorted, IPv4 first, and no two networks overlap.
    assert list(report.networks) == sorted(
        report.networks, key=lambda n: (n.version, int(n.network_address), n.prefixlen)
    )
    for a, b in zip(report.networks, report.networks[1:], strict=False):
        assert a.version != b.version or not a.overlaps(b)
