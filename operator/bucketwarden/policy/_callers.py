"""Who really calls a protected bucket, and what their requests carry: the verifier's model of the world, as data.

Each caller is a set of actions (with the resource type each acts on) and a request context. A context key is
either KNOWN (a value, or known to be absent), ALTERNATIVE (one of a few values; the verdict must hold for all),
or UNKNOWN (every key not listed here: an organisation id, a tag, an endpoint bucketwarden cannot see). A verdict
that hangs on an unknown key is "Unknown", never a guess. The sources of each fact are cited next to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

ResourceType = Literal["bucket", "object"]


@dataclass(frozen=True, slots=True)
class ModelledAction:
    action: str
    resource: ResourceType
    source: str  # where the fact comes from


def _actions(source: str, resource: ResourceType, names: Sequence[str]) -> tuple[ModelledAction, ...]:
    return tuple(ModelledAction(f"s3:{n}", resource, source) for n in names)


# AWS managed policy AWSBackupServiceRolePolicyForS3Backup (v4, May 2024; AWS Managed Policy Reference and the
# AWS Backup Developer Guide, "Managed policies for AWS Backup"): statement S3BucketBackupPermissions on
# arn:aws:s3:::* and S3ObjectBackupPermissions on arn:aws:s3:::*/*. s3:ListAllMyBuckets (Resource "*") is not
# governed by a bucket policy and is left out.
_BACKUP = "AWSBackupServiceRolePolicyForS3Backup"
AWS_BACKUP_BACKUP_ACTIONS: tuple[ModelledAction, ...] = (
    *_actions(
        _BACKUP,
        "bucket",
        (
            "GetInventoryConfiguration",
            "PutInventoryConfiguration",
            "ListBucketVersions",
            "ListBucket",
            "GetBucketVersioning",
            "GetBucketNotification",
            "PutBucketNotification",
            "GetBucketLocation",
            "GetBucketTagging",
            "GetBucketAcl",  # listed in the Developer Guide's copy of S3BucketBackupPermissions
        ),
    ),
    *_actions(
        _BACKUP,
        "object",
        (
            "GetObject",
            "GetObjectAcl",
            "GetObjectVersion",
            "GetObjectVersionAcl",
            "GetObjectTagging",
            "GetObjectVersionTagging",
        ),
    ),
)

# AWS managed policy AWSBackupServiceRolePolicyForS3Restore (v2, February 2023; AWS Managed Policy Reference):
# bucket actions on arn:aws:s3:::*, object actions on arn:aws:s3:::*/*. They matter when a backup is restored
# into this bucket. s3:CreateBucket is left out: a bucket policy cannot govern creating the bucket it is on.
_RESTORE = "AWSBackupServiceRolePolicyForS3Restore"
AWS_BACKUP_RESTORE_ACTIONS: tuple[ModelledAction, ...] = (
    *_actions(
        _RESTORE,
        "bucket",
        (
            "ListBucketVersions",
            "ListBucket",
            "GetBucketVersioning",
            "GetBucketLocation",
            "PutBucketVersioning",
            "PutBucketOwnershipControls",
            "GetBucketOwnershipControls",
        ),
    ),
    *_actions(
        _RESTORE,
        "object",
        (
            "GetObject",
            "GetObjectVersion",
            "DeleteObject",
            "PutObjectVersionAcl",
            "GetObjectVersionAcl",
            "GetObjectTagging",
            "PutObjectTagging",
            "GetObjectAcl",
            "PutObjectAcl",
            "ListMultipartUploadParts",
            "PutObject",
        ),
    ),
)


def _dedupe(actions: Sequence[ModelledAction]) -> tuple[ModelledAction, ...]:
    seen: dict[str, ModelledAction] = {}
    for a in actions:
        seen.setdefault(a.action, a)
    return tuple(seen.values())


AWS_BACKUP_ACTIONS: tuple[ModelledAction, ...] = _dedupe((*AWS_BACKUP_BACKUP_ACTIONS, *AWS_BACKUP_RESTORE_ACTIONS))

# The operator's own calls (its reconcile loop: GetBucketPolicy, PutBucketPolicy, DeleteBucketPolicy; the IAM
# policy in charts/bucketwarden documents them). Being denied these is a lockout (AWS-SEMANTICS fact 15).
# DeleteBucketPolicy is not among them: the operator calls it only when no foreign statement remains, and then no
# foreign Deny exists to deny it (ours exempts the operator). A foreign Deny on it (a security team's "nobody
# deletes this policy") is never a lockout, since that very statement keeps the document from ever being empty.
OPERATOR_ACTIONS: tuple[ModelledAction, ...] = _actions(
    "bucketwarden's reconcile loop", "bucket", ("GetBucketPolicy", "PutBucketPolicy")
)

# What an ordinary user on an allowed network does with the bucket.
USER_ACTIONS: tuple[ModelledAction, ...] = (
    *_actions("a client on an allowed network", "bucket", ("ListBucket",)),
    *_actions("a client on an allowed network", "object", ("GetObject", "PutObject")),
)

# Real AWS public addresses (S3 and EC2 ranges of ip-ranges.json): AWS Backup's and the operator's requests come
# from one of AWS's own addresses, which one is not known (the issue: "aws:SourceIp from AWS's own address space").
AWS_SOURCE_IPV4: tuple[str, ...] = ("3.5.140.2", "52.216.8.1", "54.231.0.1", "18.34.0.1")

# Keys no request of these callers carries (IAM User Guide, "AWS global condition context keys", Availability):
# no VPC endpoint is involved (aws:SourceVpce, aws:SourceVpc, aws:VpcSourceIp, aws:SourceVpcArn), no MFA age for
# a session without MFA, no user name for a role session, no service principal (aws:PrincipalServiceName and its
# list, aws:CalledVia* are only set for service principals and forward access sessions), no access point.
_ABSENT_FOR_SESSIONS: tuple[str, ...] = (
    "aws:SourceVpce",
    "aws:SourceVpc",
    "aws:SourceVpcArn",
    "aws:VpcSourceIp",
    "aws:MultiFactorAuthAge",
    "aws:username",
    "aws:PrincipalServiceName",
    "aws:PrincipalServiceNamesList",
    "aws:CalledVia",
    "aws:CalledViaFirst",
    "aws:CalledViaLast",
    "aws:FederatedProvider",
    "aws:SourceIdentity",
    "aws:Referer",
    "s3:DataAccessPointArn",
    "s3:DataAccessPointAccount",
    "s3:AccessPointNetworkOrigin",
)

# Keys whose values depend on facts bucketwarden cannot see; the user can state some in spec.verificationContext.
# Every key not modelled at all is unknown as well; these are named so the docs and messages can list them.
UNKNOWABLE_KEYS: tuple[str, ...] = (
    "aws:PrincipalOrgID",
    "aws:PrincipalOrgPaths",
    "aws:PrincipalTag/*",
    "aws:ResourceOrgID",
    "aws:ResourceOrgPaths",
    "aws:ResourceTag/*",
    "aws:SourceAccount",
    "aws:SourceArn",
    "aws:SourceOrgID",
    "aws:SourceOrgPaths",
    "aws:UserAgent",
    "s3:ExistingObjectTag/*",
    "s3:prefix",
    "s3:x-amz-server-side-encryption",
)

Values = tuple[str, ...] | None  # None: the key is absent from the request


@dataclass(frozen=True, slots=True)
class CallerContext:
    """A caller's request context: known keys, keys with a few possible values, and (implicitly) unknown keys.

    Keys are lowercased. ``alternatives`` lists every value a key may take; a condition on it must come out the
    same for all of them, or its outcome is unknown.
    """

    known: Mapping[str, Values]
    alternatives: Mapping[str, tuple[Values, ...]] = field(default_factory=dict)
    _base: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        out = {k: v for k, v in self.known.items() if v is not None}
        for key, options in self.alternatives.items():
            if options[0] is not None:
                out[key] = options[0]
        object.__setattr__(self, "_base", out)  # computed once: every judgement starts from it

    def base(self) -> Mapping[str, tuple[str, ...]]:
        """A concrete context: the known keys and the first alternative of each other key (do not modify)."""
        return self._base

    def status(self, key: str) -> Literal["known", "alternatives", "unknown"]:
        if key in self.known:
            return "known"
        if key in self.alternatives:
            return "alternatives"
        return "unknown"


@dataclass(frozen=True, slots=True)
class Caller:
    """One kind of caller: who (for messages), what it does, what its requests carry."""

    kind: Literal["role", "operator", "user"]
    who: str
    actions: tuple[ModelledAction, ...]
    context: CallerContext
    # What the verifier learnt about this caller, per compiled statement: a caller is built once per spec (and
    # clock step), statements are compiled once per meaning, so a resync judges each pair once. Bounded.
    memo: dict[tuple[int, str], tuple[object, object]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )


@dataclass(frozen=True, slots=True)
class StatedFacts:
    """What the user told bucketwarden in spec.verificationContext, as condition keys (lowercased)."""

    keys: tuple[tuple[str, tuple[str, ...]], ...] = ()  # for every caller in the bucket's account
    role_keys: tuple[tuple[str, tuple[str, ...]], ...] = ()  # for the exempt roles' sessions only


def now_values(now: float | None = None) -> dict[str, Values]:
    """aws:CurrentTime and aws:EpochTime: present in every request (IAM global condition keys)."""
    when = datetime.fromtimestamp(now, UTC) if now is not None else datetime.now(UTC)
    return {
        "aws:currenttime": (when.strftime("%Y-%m-%dT%H:%M:%SZ"),),
        "aws:epochtime": (str(int(when.timestamp())),),
    }


def _signed_https() -> dict[str, Values]:
    # Every SDK request over HTTPS, signed with SigV4 in the Authorization header (Amazon S3 User Guide, "Amazon
    # S3 condition key examples" and the Service Authorization Reference for S3: s3:authType REST-HEADER,
    # s3:signatureversion AWS4-HMAC-SHA256); AWS Backup and boto3 use HTTPS, so aws:SecureTransport is true.
    return {
        "aws:securetransport": ("true",),
        "s3:authtype": ("REST-HEADER",),
        "s3:signatureversion": ("AWS4-HMAC-SHA256",),
    }


def _tls_alternatives() -> dict[str, tuple[Values, ...]]:
    # S3 accepts TLS 1.2 and 1.3; which one a client negotiates is not known.
    return {"s3:tlsversion": (("1.2",), ("1.3",))}


def _with_facts(known: dict[str, Values], facts: Sequence[tuple[str, tuple[str, ...]]]) -> dict[str, Values]:
    for key, values in facts:
        known[key.lower()] = values
    return known


def backup_session(
    *,
    role_arn: str,
    account: str,
    user_id: str,
    session_arn: str,
    resource_account: str,
    region: str | None,
    facts: StatedFacts,
    now: float | None = None,
) -> CallerContext:
    """An AWS Backup job's S3 request, made with the exempt role's session (AWS-SEMANTICS facts 1, 4, 5, 6)."""
    known: dict[str, Values] = {
        **_signed_https(),
        **now_values(now),
        "aws:userid": (user_id,),
        "aws:principalarn": (role_arn,),  # a role session's PrincipalArn is the role's ARN, path included
        "bucketwarden:callerarn": (session_arn,),
        "aws:principalaccount": (account,),
        "aws:principaltype": ("AssumedRole",),
        # AWS Backup acts through its service role: both are false for its requests (fact 5).
        "aws:principalisawsservice": ("false",),
        "aws:viaawsservice": ("false",),
        # A role session is temporary credentials without MFA: the key is present and false.
        "aws:multifactorauthpresent": ("false",),
        "aws:resourceaccount": (resource_account,),
        "s3:resourceaccount": (resource_account,),
        **{k.lower(): None for k in _ABSENT_FOR_SESSIONS},
    }
    if region:
        known["aws:requestedregion"] = (region,)
    _with_facts(known, (*facts.keys, *facts.role_keys))
    alternatives = {
        **_tls_alternatives(),
        "aws:sourceip": tuple((a,) for a in AWS_SOURCE_IPV4),
    }
    return CallerContext(known, alternatives)


def operator_session(
    *,
    principal_arn: str,
    arn: str,
    account: str,
    user_id: str,
    assumed_role: bool,
    resource_account: str,
    region: str | None,
    facts: StatedFacts,
    source_ips: Sequence[str],
    now: float | None = None,
) -> CallerContext:
    """The operator's own boto3 calls, from wherever its cluster runs (an address outside the allowed ranges)."""
    known: dict[str, Values] = {
        **_signed_https(),
        **now_values(now),
        "aws:userid": (user_id,),
        "aws:principalarn": (principal_arn,),
        "bucketwarden:callerarn": (arn,),
        "aws:principalaccount": (account,),
        "aws:principaltype": ("AssumedRole" if assumed_role else "User",),
        "aws:principalisawsservice": ("false",),
        "aws:viaawsservice": ("false",),
        # Present (false) for temporary credentials, absent for an IAM user's long-term keys.
        "aws:multifactorauthpresent": ("false",) if assumed_role else None,
        "aws:resourceaccount": (resource_account,),
        "s3:resourceaccount": (resource_account,),
        **{k.lower(): None for k in _ABSENT_FOR_SESSIONS if not (k == "aws:username" and not assumed_role)},
    }
    if region:
        known["aws:requestedregion"] = (region,)
    _with_facts(known, facts.keys)
    alternatives = {**_tls_alternatives(), "aws:sourceip": tuple((a,) for a in source_ips)}
    return CallerContext(known, alternatives)


def user_request(
    *, account: str, user_arn: str, user_id: str, user_name: str, resource_account: str, now: float | None = None
) -> dict[str, Values]:
    """An IAM user's request from an allowed network or VPC endpoint (long-term keys: no MFA keys)."""
    return {
        **_signed_https(),
        **now_values(now),
        "aws:userid": (user_id,),
        "aws:principalarn": (user_arn,),
        "aws:principalaccount": (account,),
        "aws:principaltype": ("User",),
        "aws:username": (user_name,),
        "aws:principalisawsservice": ("false",),
        "aws:viaawsservice": ("false",),
        "aws:resourceaccount": (resource_account,),
        "s3:resourceaccount": (resource_account,),
        "s3:tlsversion": ("1.2",),
    }


# Every condition key a bucket policy may test that bucketwarden knows by name (IAM "AWS global condition context
# keys" and the Service Authorization Reference for Amazon S3), lowercased; families end in "/".
KNOWN_CONDITION_KEYS: frozenset[str] = frozenset(
    k.lower()
    for k in (
        *_ABSENT_FOR_SESSIONS,
        *(u for u in UNKNOWABLE_KEYS if not u.endswith("*")),
        "aws:SecureTransport",
        "aws:CurrentTime",
        "aws:EpochTime",
        "aws:TokenIssueTime",
        "aws:MultiFactorAuthPresent",
        "aws:PrincipalAccount",
        "aws:PrincipalArn",
        "aws:PrincipalType",
        "aws:PrincipalIsAWSService",
        "aws:ViaAWSService",
        "aws:userid",
        "aws:SourceIp",
        "aws:RequestedRegion",
        "aws:ResourceAccount",
        "aws:TagKeys",
        "aws:Ec2InstanceSourceVpc",
        "aws:Ec2InstanceSourcePrivateIPv4",
        "s3:authType",
        "s3:signatureversion",
        "s3:signatureAge",
        "s3:TlsVersion",
        "s3:ResourceAccount",
        "s3:delimiter",
        "s3:max-keys",
        "s3:VersionId",
        "s3:LocationConstraint",
        "s3:object-lock-mode",
        "s3:object-lock-retain-until-date",
        "s3:object-lock-legal-hold",
        "s3:x-amz-acl",
        "s3:x-amz-content-sha256",
        "s3:x-amz-copy-source",
        "s3:x-amz-metadata-directive",
        "s3:x-amz-server-side-encryption-aws-kms-key-id",
        "s3:x-amz-storage-class",
        "s3:x-amz-grant-full-control",
        "s3:x-amz-grant-read",
        "s3:x-amz-grant-write",
        "s3:RequestObjectTagKeys",
        "s3:AccessGrantsInstanceArn",
        "bucketwarden:callerArn",
    )
)
KNOWN_CONDITION_KEY_FAMILIES: tuple[str, ...] = (
    "aws:principaltag/",
    "aws:resourcetag/",
    "aws:requesttag/",
    "s3:existingobjecttag/",
    "s3:requestobjecttag/",
)
# Keys whose values are IP addresses or dates: the CLI checks what a user types for them.
ADDRESS_KEYS: frozenset[str] = frozenset({"aws:sourceip", "aws:vpcsourceip"})
DATE_KEYS: frozenset[str] = frozenset({"aws:currenttime", "aws:tokenissuetime", "aws:epochtime"})


def is_known_condition_key(key: str) -> bool:
    key = key.lower()
    return key in KNOWN_CONDITION_KEYS or key.startswith(KNOWN_CONDITION_KEY_FAMILIES)
