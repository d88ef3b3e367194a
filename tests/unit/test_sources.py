"""allowedSourcesFrom: the union of inline sources and the referenced SourceAllowLists, and its hash."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

from bucketwarden.sources import resolve_sources, sources_hash
from bucketwarden.spec import ProtectedBucketSpec, SourceAllowListSpec

CORP = SourceAllowListSpec(cidrs=["192.0.2.0/24", "198.51.100.0/24"], vpc_endpoints=["vpce-0123456789abcdef0"])
VPN = SourceAllowListSpec(cidrs=["203.0.113.0/24", "192.0.2.0/24"], vpcs=["vpc-0123456789abcdef0"])
LISTS = {"corp-egress": CORP, "vpn": VPN}


def bucket(**fields: Any) -> ProtectedBucketSpec:
    return ProtectedBucketSpec.model_validate({"bucketName": "awsbackup-test-001", **fields})


@pytest.mark.parametrize(
    ("fields", "cidrs", "endpoints", "vpcs"),
    [
        (
            {"allowedSourcesFrom": [{"name": "corp-egress"}]},
            ["192.0.2.0/24", "198.51.100.0/24"],
            ["vpce-0123456789abcdef0"],
            [],
        ),
        (
            {"allowedSourcesFrom": [{"name": "corp-egress"}, {"name": "vpn"}]},
            ["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"],
            ["vpce-0123456789abcdef0"],
            ["vpc-0123456789abcdef0"],
        ),
        (
            {"allowedSourceIps": ["203.0.113.7"], "allowedSourcesFrom": [{"name": "vpn"}]},
            ["203.0.113.7", "203.0.113.0/24", "192.0.2.0/24"],
            [],
            ["vpc-0123456789abcdef0"],
        ),
        ({"allowedSourceIps": ["203.0.113.7"]}, ["203.0.113.7"], [], []),
    ],
    ids=["one-list", "two-lists-deduplicated", "inline-first-then-lists", "no-reference"],
)
def test_resolve_sources_is_the_union_in_first_seen_order(
    fields: dict[str, Any], cidrs: list[str], endpoints: list[str], vpcs: list[str]
) -> None:
    resolved = resolve_sources(bucket(**fields), LISTS)
    assert resolved.complete
    assert resolved.spec.allowed_source_ips == cidrs
    assert resolved.spec.allowed_vpc_endpoints == endpoints
    assert resolved.spec.allowed_vpcs == vpcs
    assert resolved.sources_hash == sources_hash(cidrs, endpoints, vpcs)


def test_resolve_sources_reports_every_missing_list() -> None:
    spec = bucket(allowedSourcesFrom=[{"name": "gone"}, {"name": "vpn"}, {"name": "also-gone"}])
    resolved = resolve_sources(spec, LISTS)
    assert resolved.missing == ("gone", "also-gone")
    assert not resolved.complete
    assert "gone, also-gone" in resolved.missing_message and "nothing was written" in resolved.missing_message


def test_resolve_sources_keeps_everything_else_of_the_spec() -> None:
    spec = bucket(allowedSourcesFrom=[{"name": "vpn"}], exemptRoles=[{"name": "AWSBackupDefaultServiceRole"}])
    effective = resolve_sources(spec, LISTS).spec
    assert effective.exempt_roles == spec.exempt_roles
    assert effective.allowed_sources_from == spec.allowed_sources_from


def test_resolve_sources_hash_changes_when_a_list_changes() -> None:
    spec = bucket(allowedSourcesFrom=[{"name": "corp-egress"}])
    before = resolve_sources(spec, LISTS).sources_hash
    changed = {"corp-egress": CORP.model_copy(update={"cidrs": ["192.0.2.0/25"]})}
    assert resolve_sources(spec, changed).sources_hash != before


@given(st.permutations(["192.0.2.0/24", "198.51.100.0/24", "203.0.113.0/24"]), st.booleans())
def test_sources_hash_ignores_order_and_duplicates(cidrs: list[str], duplicate: bool) -> None:
    values = cidrs + cidrs[:1] if duplicate else cidrs
    assert sources_hash(values, [], []) == sources_hash(sorted(cidrs), [], [])


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"allowedSourcesFrom": [{"name": "a"}, {"name": "a"}]}, "names the same SourceAllowList twice"),
        ({"allowedSourcesFrom": [{"name": "Not_A_Name"}]}, "not a valid SourceAllowList name"),
        ({"allowedSourcesFrom": []}, "give at least one of"),
    ],
    ids=["duplicate", "bad-name", "empty"],
)
def test_spec_refuses_bad_references(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        bucket(**fields)


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({}, "give at least one of cidrs, vpcEndpoints and vpcs"),
        ({"cidrs": ["192.0.2.0/33"]}, "is not an IPv4 or IPv6 CIDR"),
        ({"vpcEndpoints": ["vpc-0123456789abcdef0"]}, "not a valid VPC endpoint id"),
        ({"cidrs": ["192.0.2.0/24"], "owner": "x" * 257}, "at most 256 characters"),
    ],
    ids=["empty", "bad-cidr", "vpc-as-endpoint", "owner-too-long"],
)
def test_allow_list_spec_refuses(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        SourceAllowListSpec.model_validate(fields)
