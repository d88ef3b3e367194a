"""Who the operator is (sts:GetCallerIdentity) and the current RoleId of each exempt role (iam:GetRole)."""

from __future__ import annotations

import json
import time
import urllib.parse
from collections.abc import Callable
from typing import NamedTuple

from bucketwarden.aws._cache import CacheStats, Clock, TtlCache
from bucketwarden.aws._errors import map_client_error
from bucketwarden.aws._session import ClientFactory
from bucketwarden.errors import AwsError, CrossAccountRoleError, RoleNotFoundError
from bucketwarden.principals import CallerIdentity, ResolvedRole, RoleAssumption
from bucketwarden.spec import ExemptRole

DEFAULT_TTL_SECONDS = 300.0
DEFAULT_NEGATIVE_TTL_SECONDS = 10.0

MSG_CROSS_ACCOUNT = (
    "exempt role {arn} is in account {role_account}, but the operator acts in account {account}: "
    "iam:GetRole can only read roles of the account the operator acts in, so its RoleId cannot be "
    "resolved; set spec.assumeRoleArn to a role in account {role_account}, or use exemptionKey: "
    "principalArn, which needs no RoleId"
)
MSG_ROLE_NOT_FOUND = (
    "role {name} not found in account {account}; create it or fix spec.exemptRoles "
    "(a deleted role that is created again gets a new RoleId, which bucketwarden picks up)"
)
MSG_ROLE_ARN_MISMATCH = (
    "role {ref} not found: account {account} has a role named {name}, but its ARN is {actual}; "
    "fix the path in spec.exemptRoles[].arn"
)
_UNKNOWN_ACCOUNT = "(the operator's account)"


class RoleRecord(NamedTuple):
    """What iam:GetRole says about a role."""

    name: str
    arn: str
    role_id: str
    trust_policy: str | None = None  # the AssumeRolePolicyDocument as JSON, for the AWS Backup readiness checks


def trust_policy_text(document: object) -> str | None:
    """GetRole's AssumeRolePolicyDocument as JSON text. IAM sends it URL-encoded; boto3 decodes it into a dict."""
    if document is None:
        return None
    if isinstance(document, str):
        return urllib.parse.unquote(document)
    return json.dumps(document, sort_keys=True)


def _arn_account(arn: str) -> str:
    return arn.split(":")[4]


def resolve_role_with(
    role: ExemptRole, caller: Callable[[], CallerIdentity], get_role: Callable[[str], RoleRecord]
) -> ResolvedRole:
    """Resolve ``role`` with the given lookups: the checks shared by the real resolver and the fake.

    ``caller`` is only asked when needed: up front for an ARN (account check), and for a name only to
    word a not-found error.
    """
    account: str | None = None
    if role.arn is not None:
        account = caller().account
        role_account = _arn_account(role.arn)
        if role_account != account:
            message = MSG_CROSS_ACCOUNT.format(arn=role.arn, role_account=role_account, account=account)
            raise CrossAccountRoleError(message, api="GetRole")
    try:
        record = get_role(role.role_name)
    except RoleNotFoundError as exc:
        if account is None:
            try:
                account = caller().account
            except AwsError:
                account = _UNKNOWN_ACCOUNT
        raise RoleNotFoundError(MSG_ROLE_NOT_FOUND.format(name=role.role_name, account=account), api="GetRole") from exc
    if role.arn is not None and record.arn != role.arn:
        message = MSG_ROLE_ARN_MISMATCH.format(ref=role.arn, account=account, name=record.name, actual=record.arn)
        raise RoleNotFoundError(message, api="GetRole")
    return ResolvedRole(
        ref=role.ref, name=record.name, arn=record.arn, role_id=record.role_id, trust_policy=record.trust_policy
    )


class IdentityResolver:
    """Caller identity and exempt-role RoleIds, cached for ``ttl_seconds`` and shared by all buckets.

    Lookups are single-flight per key, ``(assume_role, role.ref)`` for roles: however many reconciles
    ask for one role at once, iam:GetRole is called once per TTL. A role that does not exist
    (RoleNotFoundError) is remembered for ``negative_ttl_seconds`` (default 10 s), so a burst of reconciles
    for a missing role costs one call too, yet a role created to fix it is seen within seconds. Other
    errors (throttling, outages, cross-account) are never kept. A recreated role's new RoleId is seen
    when its entry expires, or at once after ``invalidate(ref)``.
    """

    def __init__(
        self,
        factory: ClientFactory,
        *,
        ttl_seconds: float = DEFAULT_TTL_SECONDS,
        negative_ttl_seconds: float = DEFAULT_NEGATIVE_TTL_SECONDS,
        clock: Clock = time.monotonic,
    ) -> None:
        self._factory = factory
        self._callers: TtlCache[RoleAssumption | None, CallerIdentity] = TtlCache(ttl=ttl_seconds, clock=clock)
        self._roles: TtlCache[tuple[RoleAssumption | None, str], ResolvedRole] = TtlCache(
            ttl=ttl_seconds,
            clock=clock,
            negative_ttl=negative_ttl_seconds,
            negative_types=(RoleNotFoundError,),
        )

    def caller_identity(self, assume_role: RoleAssumption | None = None) -> CallerIdentity:
        """The principal the operator acts as (through ``assume_role`` if given)."""
        return self._callers.get(assume_role, lambda: self._fetch_caller(assume_role))

    def resolve_role(self, role: ExemptRole, *, assume_role: RoleAssumption | None = None) -> ResolvedRole:
        """The role's current ARN and RoleId, in the account the operator acts in."""
        return self._roles.get(
            (assume_role, role.ref),
            lambda: resolve_role_with(
                role,
                lambda: self.caller_identity(assume_role),
                lambda name: self._fetch_role(name, assume_role),
            ),
        )

    def invalidate(self, ref: str | None = None) -> None:
        """Forget one role (by name or ARN as the spec wrote it), or everything, caller identity included."""
        if ref is None:
            self._roles.invalidate()
            self._callers.invalidate()
        else:
            self._roles.invalidate(lambda key: key[1] == ref)

    def cache_stats(self) -> CacheStats:
        """Hits and misses of the role cache (a miss is one iam:GetRole)."""
        return self._roles.stats()

    def _fetch_caller(self, assume_role: RoleAssumption | None) -> CallerIdentity:
        try:
            response = self._factory.sts(assume_role).get_caller_identity()
        except Exception as exc:
            raise map_client_error(exc, api="GetCallerIdentity") from exc
        return CallerIdentity(account=response["Account"], arn=response["Arn"], user_id=response["UserId"])

    def _fetch_role(self, name: str, assume_role: RoleAssumption | None) -> RoleRecord:
        try:
            role = self._factory.iam(assume_role).get_role(RoleName=name)["Role"]
        except Exception as exc:
            raise map_client_error(exc, api="GetRole") from exc
        trust = trust_policy_text(role.get("AssumeRolePolicyDocument"))
        return RoleRecord(name=role["RoleName"], arn=role["Arn"], role_id=role["RoleId"], trust_policy=trust)
