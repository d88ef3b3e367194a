"""Address sets as intervals (AWS Backup's aws:SourceIp), and the per-action S3 condition keys table."""

from __future__ import annotations

import pytest

from bucketwarden.policy import AddressSet, public_addresses
from bucketwarden.policy._s3_keys import absent_for_action


@pytest.mark.parametrize(
    ("address", "public"),
    [
        pytest.param("13.248.1.1", True, id="aws-v4"),
        pytest.param("2600:1fa0::1", True, id="aws-v6"),
        pytest.param("10.1.2.3", False, id="rfc1918"),
        pytest.param("192.0.2.7", False, id="documentation"),
        pytest.param("100.64.0.1", False, id="cgnat"),
        pytest.param("224.0.0.1", False, id="multicast"),
        pytest.param("fd00::1", False, id="ula"),
        pytest.param("2001:db8::1", False, id="v6-documentation"),
    ],
)
def test_public_addresses_hold_only_what_may_be_a_source_ip(address: str, public: bool) -> None:
    assert (address in public_addresses()) is public


def test_address_set_operations_are_exact() -> None:
    a = AddressSet.of(["10.0.0.0/8"])
    b = AddressSet.of(["10.128.0.0/9", "11.0.0.0/8"])
    assert (a & b) == AddressSet.of(["10.128.0.0/9"])
    assert (a | b) == AddressSet.of(["10.0.0.0/7"])
    assert (a - b) == AddressSet.of(["10.0.0.0/9"])
    assert a.complement().complement() == a
    assert AddressSet.of(["10.0.0.0/9"]).issubset(a) and not b.issubset(a)
    assert (a - a).empty and (a - a).first() is None
    assert (a | b).to_cidrs() == ("10.0.0.0/7",)
    assert AddressSet.of(["10.0.0.1", "10.0.0.2"]).to_cidrs() == ("10.0.0.1/32", "10.0.0.2/32")


@pytest.mark.parametrize(
    ("action", "key", "absent"),
    [
        pytest.param("s3:GetObject", "s3:max-keys", True, id="list-key-on-getobject"),
        pytest.param("s3:ListBucket", "s3:max-keys", False, id="list-key-on-listbucket"),
        pytest.param("s3:GetObject", "s3:x-amz-server-side-encryption", True, id="sse-on-getobject"),
        pytest.param("s3:PutObject", "s3:x-amz-server-side-encryption", False, id="sse-on-putobject"),
        pytest.param("s3:ListBucket", "s3:existingobjecttag/class", True, id="object-tag-on-listbucket"),
        pytest.param("s3:GetObject", "s3:existingobjecttag/class", False, id="object-tag-on-getobject"),
        pytest.param("s3:GetObject", "s3:tlsversion", False, id="common-key"),
        pytest.param("s3:GetObject", "aws:sourceip", False, id="global-key"),
        pytest.param("s3:RestoreObject", "s3:max-keys", False, id="action-not-in-table-stays-unknown"),
        pytest.param("s3:GetObject", "s3:some-future-key", False, id="key-not-in-table-stays-unknown"),
    ],
)
def test_absent_for_action_follows_the_service_authorization_reference(action: str, key: str, absent: bool) -> None:
    assert absent_for_action(action, key) is absent
