"""IdentityResolver against moto over HTTP, and InMemoryAws against the same scenarios (``aws`` fixture)."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import pytest

from bucketwarden.aws import AwsGateway
from bucketwarden.errors import CrossAccountRoleError, RoleNotFoundError
from bucketwarden.principals import RoleAssumption
from bucketwarden.spec import ExemptRole
from tests.aws._harness import ACCOUNT, AdminClients, Harness

BACKUP_ROLE = "AWSBackupDefaultServiceRole"
BACKUP_PATH = "/service-role/"
BACKUP_ARN = f"arn:aws:iam::{ACCOUNT}:role{BACKUP_PATH}{BACKUP_ROLE}"
TTL = 300.0


@pytest.mark.parametrize(
    ("role", "expected_calls"),
    [
        pytest.param(ExemptRole(name=BACKUP_ROLE), {"GetRole": 1}, id="by-name"),
        # An ARN is checked against the account the operator acts in first.
        pytest.param(ExemptRole(arn=BACKUP_ARN), {"GetRole": 1, "GetCallerIdentity": 1}, id="by-arn"),
    ],
)
def test_identity_resolves_role_id(aws: Harness, role: ExemptRole, expected_calls: dict[str, int]) -> None:
    arn, role_id = aws.create_role(BACKUP_ROLE, BACKUP_PATH)

    resolved = aws.port.resolve_role(role)

    assert (resolved.ref, resolved.name, resolved.arn, resolved.role_id) == (role.ref, BACKUP_ROLE, arn, role_id)
    assert resolved.role_id is not None and resolved.role_id.startswith("AROA")
    assert resolved.user_id_pattern == f"{role_id}:*"
    assert aws.counter.snapshot() == expected_calls


@pytest.mark.parametrize(
    "role",
    [ExemptRole(name="NoSuchRole"), ExemptRole(arn=f"arn:aws:iam::{ACCOUNT}:role/NoSuchRole")],
    ids=["name", "arn"],
)
def test_identity_missing_role_raises_role_not_found(aws: Harness, role: ExemptRole) -> None:
    with pytest.raises(RoleNotFoundError, match=f"role NoSuchRole not found in account {ACCOUNT}") as caught:
        aws.port.resolve_role(role)

    assert caught.value.reason == "RoleNotFound"
    assert not caught.value.retryable


def test_identity_arn_with_wrong_path_raises_role_not_found(aws: Harness) -> None:
    aws.create_role(BACKUP_ROLE, BACKUP_PATH)
    wrong = f"arn:aws:iam::{ACCOUNT}:role/{BACKUP_ROLE}"  # the path /service-role/ is missing

    with pytest.raises(RoleNotFoundError, match=r"but its ARN is .*/service-role/.*fix the path"):
        aws.port.resolve_role(ExemptRole(arn=wrong))


def test_identity_cross_account_arn_raises_without_get_role(aws: Harness) -> None:
    other = "arn:aws:iam::210987654321:role/service-role/AWSBackupDefaultServiceRole"

    with pytest.raises(CrossAccountRoleError, match="iam:GetRole can only read roles of the account") as caught:
        aws.port.resolve_role(ExemptRole(arn=other))

    assert caught.value.reason == "CrossAccountRole"
    assert "assumeRoleArn" in caught.value.message
    assert "principalArn" in caught.value.message
    assert "GetRole" not in aws.counter.snapshot()


def test_identity_recreated_role_is_picked_up_after_ttl_not_before(aws: Harness) -> None:
    _, old_id = aws.create_role(BACKUP_ROLE, BACKUP_PATH)
    role = ExemptRole(name=BACKUP_ROLE)
    assert aws.port.resolve_role(role).role_id == old_id

    new_id = aws.recreate_role(BACKUP_ROLE)
    assert new_id != old_id
    aws.advance(TTL - 1)
    assert aws.port.resolve_role(role).role_id == old_id  # still cached: no GetRole yet

    aws.advance(2)
    assert aws.port.resolve_role(role).role_id == new_id
    assert aws.counter.snapshot() == {"GetRole": 2}


def test_identity_invalidate_forces_a_new_lookup(aws: Harness) -> None:
    aws.create_role(BACKUP_ROLE, BACKUP_PATH)
    role = ExemptRole(name=BACKUP_ROLE)
    aws.port.resolve_role(role)
    new_id = aws.recreate_role(BACKUP_ROLE)

    aws.port.invalidate(BACKUP_ROLE)

    assert aws.port.resolve_role(role).role_id == new_id
    assert aws.counter.snapshot() == {"GetRole": 2}


def test_identity_missing_role_is_remembered_briefly(aws: Harness) -> None:
    role = ExemptRole(name=BACKUP_ROLE)
    for _ in range(3):
        with pytest.raises(RoleNotFoundError):
            aws.port.resolve_role(role)
    assert aws.counter.snapshot()["GetRole"] == 1

    _, role_id = aws.create_role(BACKUP_ROLE, BACKUP_PATH)
    aws.advance(11)  # the negative entry lives 10 s

    assert aws.port.resolve_role(role).role_id == role_id
    assert aws.counter.snapshot()["GetRole"] == 2


def test_identity_single_flight_100_threads_make_one_get_role(aws: Harness) -> None:
    _, role_id = aws.create_role(BACKUP_ROLE, BACKUP_PATH)
    aws.set_latency("GetRole", 0.2)  # keep the first lookup in flight while the others arrive
    role = ExemptRole(name=BACKUP_ROLE)
    start = threading.Barrier(100)

    def reconcile() -> str | None:
        start.wait()
        return aws.port.resolve_role(role).role_id

    with ThreadPoolExecutor(max_workers=100) as pool:
        results = list(pool.map(lambda _: reconcile(), range(100)))

    assert results == [role_id] * 100
    assert aws.counter.snapshot() == {"GetRole": 1}


def test_identity_100_buckets_sharing_3_roles_make_3_get_role_calls(aws: Harness) -> None:
    names = ["AWSBackupDefaultServiceRole", "DataSyncRole", "ReplicationRole"]
    ids = {name: aws.create_role(name)[1] for name in names}
    roles = [ExemptRole(name=name) for name in names]

    def reconcile(_: int) -> dict[str, str | None]:
        return {role.ref: aws.port.resolve_role(role).role_id for role in roles}

    with ThreadPoolExecutor(max_workers=16) as pool:
        results = list(pool.map(reconcile, range(100)))

    assert results == [ids] * 100
    assert aws.counter.snapshot() == {"GetRole": 3}


def test_identity_caller_identity_after_assume_role(aws: Harness) -> None:
    role_arn, role_id = aws.create_role("bucketwarden-operator")

    caller = aws.port.caller_identity(RoleAssumption(role_arn))
    aws.port.caller_identity(RoleAssumption(role_arn))  # cached

    assert caller.account == ACCOUNT
    assert caller.arn == f"arn:aws:sts::{ACCOUNT}:assumed-role/bucketwarden-operator/bucketwarden"
    assert caller.user_id == f"{role_id}:bucketwarden"
    assert caller.role_id == role_id
    assert caller.exempt_pattern == f"{role_id}:*"
    assert aws.counter.snapshot() == {"AssumeRole": 1, "GetCallerIdentity": 1}


def test_identity_resolves_roles_through_assumed_role(aws: Harness) -> None:
    operator_arn, _ = aws.create_role("bucketwarden-operator")
    _, backup_id = aws.create_role(BACKUP_ROLE, BACKUP_PATH)

    resolved = aws.port.resolve_role(ExemptRole(arn=BACKUP_ARN), assume_role=RoleAssumption(operator_arn))

    assert resolved.role_id == backup_id
    assert aws.counter.snapshot() == {"AssumeRole": 1, "GetCallerIdentity": 1, "GetRole": 1}


def test_identity_caller_identity_with_plain_keys(gateway: AwsGateway) -> None:
    caller = gateway.caller_identity()
    gateway.caller_identity()

    # moto reports the access key id as UserId; AWS would report the user's AIDA... id.
    assert caller.account == ACCOUNT
    assert not caller.is_assumed_role
    assert caller.exempt_pattern == caller.user_id
    assert gateway.counter.snapshot() == {"GetCallerIdentity": 1}


def test_identity_role_cache_is_keyed_by_assumed_role(gateway: AwsGateway, admin: AdminClients) -> None:
    admin.iam.create_role(RoleName="op", AssumeRolePolicyDocument="{}")
    admin.iam.create_role(RoleName=BACKUP_ROLE, AssumeRolePolicyDocument="{}")
    role = ExemptRole(name=BACKUP_ROLE)

    gateway.resolve_role(role)
    gateway.resolve_role(role, assume_role=RoleAssumption(f"arn:aws:iam::{ACCOUNT}:role/op"))
    gateway.resolve_role(role)

    assert gateway.counter.snapshot()["GetRole"] == 2
    assert gateway.cache_stats() == (1, 2)
