"""TenantPolicy grants, decided purely: who may claim which bucket, role and SourceAllowList, and what a refusal says.

Each case is an attack or a use from issue 20: a namespace asks for something, and only an admin's grant decides.
"""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from bucketwarden.principals import MAX_SESSION_NAME, RoleAssumption, tenant_session_name
from bucketwarden.spec import ProtectedBucketSpec, TenantPolicySpec
from bucketwarden.tenancy import Request, Tenancy, grant_command, render_grant

ROLE_B = "arn:aws:iam::222233334444:role/bucketwarden-tenants/team-b-writer"


def policy(**fields: Any) -> TenantPolicySpec:
    return TenantPolicySpec.model_validate(fields)


TEAMS = Tenancy(
    {
        "team-a": policy(namespaces=["team-a"], buckets=["team-a-*", "shared-*"]),
        "team-b": policy(
            namespaces=["team-b"],
            buckets=["team-b-*"],
            assumeRoleArns=["arn:aws:iam::222233334444:role/bucketwarden-tenants/*"],
            externalIds=[{"roleArn": "arn:aws:iam::222233334444:role/*", "externalId": "team-b-ext-1"}],
            sourceAllowLists=["office-*"],
        ),
        "team-c": policy(namespaceSelector={"matchLabels": {"tenant": "c"}}, buckets=["shared-*"]),
    },
    {"team-a": {}, "team-b": {}, "tenant-c-prod": {"tenant": "c"}, "intruder": {"tenant": "C"}},
)


@pytest.mark.parametrize(
    ("request_", "allowed", "policy_name"),
    [
        pytest.param(Request("team-a", "pb", "team-a-data"), True, "team-a", id="own-bucket"),
        pytest.param(Request("team-a", "pb", "shared-logs"), True, "team-a", id="shared-glob"),
        pytest.param(Request("team-a", "pb", "team-b-data"), False, None, id="squat-another-teams-bucket"),
        pytest.param(Request("team-b", "pb", "team-b-data"), True, "team-b", id="rightful-owner"),
        pytest.param(Request("team-c-other", "pb", "shared-logs"), False, None, id="no-policy-at-all"),
        pytest.param(Request("tenant-c-prod", "pb", "shared-logs"), True, "team-c", id="by-label-selector"),
        pytest.param(Request("intruder", "pb", "shared-logs"), False, None, id="label-values-are-case-sensitive"),
        pytest.param(Request("Team-a", "pb", "team-a-data"), False, None, id="names-are-case-sensitive"),
        pytest.param(Request("team-a", "pb", "team-a-data", ROLE_B), False, None, id="deputy-role-without-grant"),
        pytest.param(Request("team-b", "pb", "team-b-data", ROLE_B), True, "team-b", id="granted-role"),
        pytest.param(
            Request("team-b", "pb", "team-b-data", "arn:aws:iam::222233334444:role/admin"),
            False,
            None,
            id="role-outside-the-granted-path",
        ),
        pytest.param(
            Request("team-b", "pb", "team-b-data", allow_lists=("office-eu",)), True, "team-b", id="granted-list"
        ),
        pytest.param(
            Request("team-b", "pb", "team-b-data", allow_lists=("office-eu", "everyone")),
            False,
            None,
            id="one-list-not-granted",
        ),
        pytest.param(
            Request("team-a", "pb", "team-a-data", allow_lists=("anything",)), True, "team-a", id="lists-default-all"
        ),
    ],
)
def test_tenancy_authorize_grants_only_what_a_policy_names(
    request_: Request, allowed: bool, policy_name: str | None
) -> None:
    decision = TEAMS.authorize(request_)
    assert (decision.allowed, decision.policy) == (allowed, policy_name)
    if not allowed:
        assert "bucketwarden made no AWS call" in decision.message
        assert "bucketwarden grant --namespace" in decision.message


def test_tenancy_default_deny_without_any_policy() -> None:
    decision = Tenancy().authorize(Request("team-a", "pb", "team-a-data"))
    assert not decision.allowed
    assert "no TenantPolicy grants namespace team-a anything" in decision.message
    assert grant_command(Request("team-a", "pb", "team-a-data")) in decision.message


def test_tenancy_refusal_names_the_missing_role_and_the_command() -> None:
    decision = TEAMS.authorize(Request("team-a", "pb", "team-a-data", ROLE_B))
    assert f"the role {ROLE_B}" in decision.message
    assert f"--assume-role-arn {ROLE_B}" in decision.message


def test_tenancy_granted_role_carries_external_id_and_a_session_naming_the_resource() -> None:
    decision = TEAMS.authorize(Request("team-b", "nightly", "team-b-data", ROLE_B))
    assert decision.assume_role == RoleAssumption(ROLE_B, "team-b-ext-1", "bw-team-b-nightly")


def test_tenancy_same_role_in_two_namespaces_never_shares_a_session() -> None:
    wide = Tenancy({"all": policy(namespaces=["*"], buckets=["*"], assumeRoleArns=[ROLE_B])})
    a = wide.authorize(Request("team-a", "pb", "x-data", ROLE_B)).assume_role
    b = wide.authorize(Request("team-b", "pb", "x-data", ROLE_B)).assume_role
    assert a is not None and b is not None
    assert a != b  # sessions (and their clients) are cached per RoleAssumption
    assert a.external_id is None  # the grant names none


def test_tenancy_grants_all_namespaces_is_reported() -> None:
    tenancy = Tenancy({"all-namespaces": policy(namespaces=["*"], buckets=["*"]), **TEAMS.policies})
    assert tenancy.grants_all_namespaces() == ["all-namespaces"]
    assert TEAMS.grants_all_namespaces() == []


def test_tenancy_request_of_spec_carries_every_field_a_grant_must_cover() -> None:
    spec = ProtectedBucketSpec.model_validate(
        {"bucketName": "team-b-data", "assumeRoleArn": ROLE_B, "allowedSourcesFrom": [{"name": "office-eu"}]}
    )
    assert Request.of("team-b", "pb", spec) == Request("team-b", "pb", "team-b-data", ROLE_B, ("office-eu",))


@pytest.mark.parametrize(
    ("namespace", "name", "expected"),
    [
        pytest.param("team-a", "pb", "bw-team-a-pb", id="short"),
        pytest.param("n" * 63, "m" * 253, ("bw-" + "n" * 63)[:MAX_SESSION_NAME], id="trimmed-to-64"),
        pytest.param("team.a", "my.bucket", "bw-team.a-my.bucket", id="dots-are-allowed"),
    ],
)
def test_tenant_session_name_identifies_the_resource_within_sts_limits(
    namespace: str, name: str, expected: str
) -> None:
    session = tenant_session_name(namespace, name)
    assert session == expected
    assert len(session) <= MAX_SESSION_NAME


@pytest.mark.parametrize(
    "spec",
    [
        pytest.param({"buckets": ["x"]}, id="names-no-namespace"),
        pytest.param({"namespaces": ["a"], "buckets": []}, id="grants-no-bucket"),
        pytest.param({"namespaces": ["Team-A"], "buckets": ["x"]}, id="uppercase-namespace"),
        pytest.param({"namespaces": ["a"], "buckets": ["[a-z]*"]}, id="no-character-classes"),
        pytest.param({"namespaces": ["a"], "buckets": ["x"], "assumeRoleArns": ["*"]}, id="role-glob-not-an-arn"),
        pytest.param(
            {"namespaceSelector": {"matchExpressions": [{"key": "t", "operator": "In"}]}, "buckets": ["x"]},
            id="in-without-values",
        ),
    ],
)
def test_tenant_policy_spec_refuses_a_grant_that_is_not_well_formed(spec: dict[str, Any]) -> None:
    with pytest.raises(ValidationError):
        TenantPolicySpec.model_validate(spec)


def test_render_grant_round_trips_through_the_model() -> None:
    manifest = render_grant("g", ["team-b"], ["team-b-*"], assume_role_arns=[ROLE_B], external_id="ext-123456")
    spec = TenantPolicySpec.model_validate(manifest["spec"])
    decision = Tenancy({"g": spec}).authorize(Request("team-b", "pb", "team-b-data", ROLE_B))
    assert decision.allowed
    assert decision.assume_role is not None and decision.assume_role.external_id == "ext-123456"
