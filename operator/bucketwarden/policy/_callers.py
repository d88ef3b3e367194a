"""Who really calls a protected bucket, and what their requests carry: the verifier's model of the world, as data.

Each caller is a set of actions (with the resource type each acts on) and a request context. A context key is
either KNOWN (a value, or known to be absent), ALTERNATIVE (one of a few values; the verdict must hold for all),
or UNKNOWN (every key not listed here: an organisation id, a tag, an endpoint bucketwarden cannot see). A verdict
that hangs on an unknown key is "Unknown", never a guess. The sources of each fact are cited next to it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Literal

from bucketwarden.policy._addresses import AddressSet
from bucketwarden.policy._s3_keys import absent_for_action

ResourceType = Literal["bucket", "object"]


@dataclass(frozen=True, slots=True)
class ModelledAction:
    action: str
    resource: ResourceType
    source: str  # where the fact comes from


def _actions(source: str, resource: ResourceType, names: Sequence[str]) -> tuple[ModelledAction, ...]:
    return tuple(ModelledAction(f"s3:{n}", resource, source) for n in names)


def _policy_actions(source: str, *, bucket: Sequence[str], objects: Sequence[str] = ()) -> tuple[ModelledAction, ...]:
    """A policy's S3 actions on buckets (arn:aws:s3:::*) and on objects (arn:aws:s3:::*/*), from one source."""
    return (*_actions(source, "bucket", bucket), *_actions(source, "object", objects))


# The managed policies an AWS Backup service role carries for S3, as data, dated. Source: AWS Managed Policy
# Reference, read on 2026-12-06 (the pages' "Policy version" and "Edited time"), and the AWS Backup Developer Guide,
# "Managed policies for AWS Backup". Only S3 actions on buckets (arn:aws:s3:::*) and objects (arn:aws:s3:::*/*)
# are kept: the rest is not governed by a bucket policy.
#
# AWSBackupServiceRolePolicyForS3Backup v4 (default), edited 2024-05-17 17:12 UTC: statements S3BucketPermissions
# and S3ObjectPermissions. Issue 21 reports a newer version that adds s3:ListTagsForResource on buckets; the
# Reference pages we could read still show v4 as the default, so that action is modelled too, marked as reported
# and not confirmed: modelling an action AWS Backup may not use can only turn a Pass into a Fail, never the reverse.
S3_BACKUP_POLICY = "AWSBackupServiceRolePolicyForS3Backup"
S3_BACKUP_POLICY_VERSION = "v4 (2024-05-17) + s3:ListTagsForResource (reported in issue 21, unconfirmed)"
AWS_BACKUP_BACKUP_ACTIONS: tuple[ModelledAction, ...] = _policy_actions(
    S3_BACKUP_POLICY,
    bucket=(
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
        "ListTagsForResource",  # reported in issue 21 as added by a version after v4
    ),
    objects=(
        "GetObject",
        "GetObjectAcl",
        "GetObjectVersion",
        "GetObjectVersionAcl",
        "GetObjectTagging",
        "GetObjectVersionTagging",
    ),
)

# AWSBackupServiceRolePolicyForS3Restore v2 (default), edited 2023-02-07 00:06 UTC: bucket actions on
# arn:aws:s3:::*, object actions on arn:aws:s3:::*/*. They matter when a backup is restored into this bucket.
# s3:CreateBucket is left out: a bucket policy cannot govern creating the bucket it is on.
S3_RESTORE_POLICY = "AWSBackupServiceRolePolicyForS3Restore"
S3_RESTORE_POLICY_VERSION = "v2 (2023-02-07)"
# The same shape as AWS_BACKUP_BACKUP_ACTIONS: one table per managed policy, parallel data by design.
AWS_BACKUP_RESTORE_ACTIONS: tuple[ModelledAction, ...] = _policy_actions(
    S3_RESTORE_POLICY,
    bucket=(
        "ListBucketVersions",
        "ListBucket",
        "GetBucketVersioning",
        "GetBucketLocation",
        "PutBucketVersioning",
        "PutBucketOwnershipControls",
        "GetBucketOwnershipControls",
    ),
    objects=(
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
# ListBucket is the read check the verification matrix has always made for the operator; both engines model it.
OPERATOR_ACTIONS: tuple[ModelledAction, ...] = _policy_actions(
    "bucketwarden's reconcile loop", bucket=("ListBucket", "GetBucketPolicy", "PutBucketPolicy")
)

# What an ordinary user on an allowed network does with the bucket.
USER_ACTIONS: tuple[ModelledAction, ...] = _policy_actions(
    "a client on an allowed network", bucket=("ListBucket",), objects=("GetObject", "PutObject")
)

# Real AWS public addresses (S3 and EC2 ranges of ip-ranges.json). They play "a client outside the allowed
# ranges" and the operator's own address; AWS Backup's aws:SourceIp is never a sample but an address SET
# (policy/_addresses.py).
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
KeyStatus = Literal["known", "alternatives", "unknown", "present", "addresses"]
SOURCE_IP = "aws:sourceip"


@dataclass(frozen=True, slots=True)
class CallerContext:
    """A caller's request context: what each condition key is known to be, keys lowercased.

    - ``known``: a value, or None for a key known to be absent;
    - ``alternatives``: every value (or None) a key may take; a condition must come out the same for all of them;
    - ``present``: keys every request carries with a value bucketwarden cannot know (aws:TokenIssueTime): Null on
      them is known, anything else is unknown; ``samples`` gives each a plausible value for concrete requests;
    - ``addresses``: aws:SourceIp is some address of this set, judged over the whole set (never a sample);
    - ``role_path_unknown``: aws:PrincipalArn's path is a guess (offline, no --role-arn);
    - every other key is unknown. A service-specific S3 key is also known ABSENT for an action that does not
      support it (policy/_s3_keys.py), whatever the caller.
    """

    known: Mapping[str, Values]
    alternatives: Mapping[str, tuple[Values, ...]] = field(default_factory=dict)
    present: frozenset[str] = frozenset()
    samples: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    addresses: AddressSet | None = None
    role_path_unknown: bool = False
    _base: dict[str, tuple[str, ...]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        out = {k: v for k, v in self.known.items() if v is not None}
        for key, options in self.alternatives.items():
            if options[0] is not None:
                out[key] = options[0]
        out.update(self.samples)
        if self.addresses is not None and (first := self.addresses.first()) is not None:
            out[SOURCE_IP] = (first,)
        object.__setattr__(self, "_base", out)  # computed once: every judgement starts from it

    def base(self) -> Mapping[str, tuple[str, ...]]:
        """A concrete context: known keys, the first alternative of each other key, a sample of each present key
        and the first address of the address set (do not modify)."""
        return self._base

    def status(self, key: str, action: str | None = None) -> KeyStatus:
        if action is not None and absent_for_action(action, key):
            return "known"  # absent for this action: never in base() either
        if key in self.known:
            return "known"
        if key in self.alternatives:
            return "alternatives"
        if key in self.present:
            return "present"
        if key == SOURCE_IP and self.addresses is not None:
            return "addresses"
        return "unknown"


Promise = Literal["backup", "restore", "operator"]


@dataclass(frozen=True, slots=True)
class Caller:
    """One kind of caller: who (for messages), what it does, what its requests carry, and the promise it stands
    for (an AWS Backup role's backups and its restores are separate promises, judged and reported apart)."""

    kind: Literal["role", "operator", "user"]
    who: str
    actions: tuple[ModelledAction, ...]
    context: CallerContext
    promise: Promise = "backup"
    # What the verifier learnt about this caller, per compiled statement: a caller is built once per spec (and
    # clock step), statements are compiled once per meaning, so a resync judges each pair once. Bounded.
    memo: dict[tuple[int, str], tuple[object, object]] = field(
        default_factory=dict, compare=False, hash=False, repr=False
    )

    def __getstate__(self) -> dict[str, object]:
        # Pickled without its memo: the memo holds compiled statements (closures), and a result crosses from a
        # reconcile process to the operator's (k8s/_processes.py) with the callers its verification judged.
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "memo"}

    def __setstate__(self, state: dict[str, object]) -> None:
        for name, value in state.items():
            object.__setattr__(self, name, value)
        object.__setattr__(self, "memo", {})


@dataclass(frozen=True, slots=True)
class StatedFacts:
    """What the user told bucketwarden in spec.verificationContext, as condition keys (lowercased)."""

    keys: tuple[tuple[str, tuple[str, ...]], ...] = ()  # for every caller in the bucket's account
    role_keys: tuple[tuple[str, tuple[str, ...]], ...] = ()  # for the exempt roles' sessions only


@dataclass(frozen=True, slots=True)
class RequestScene:
    """What every modelled session request of one verification shares, whoever makes it: the bucket's account and
    region, what the user stated about them, and the clock."""

    resource_account: str
    region: str | None
    facts: StatedFacts
    now: float | None = None


def now_values(now: float | None = None) -> dict[str, Values]:
    """aws:CurrentTime and aws:EpochTime: present in every request (IAM global condition keys)."""
    when = datetime.fromtimestamp(now, UTC) if now is not None else datetime.now(UTC)
    return {
        "aws:currenttime": (when.strftime("%Y-%m-%dT%H:%M:%SZ"),),
        "aws:epochtime": (str(int(when.timestamp())),),
    }


def _token_issue_time(now: float | None) -> dict[str, tuple[str, ...]]:
    # aws:TokenIssueTime is present for temporary credentials (fact 26); when the session began is not known.
    # The sample (an hour before now) only fills concrete requests; conditions on its value are Unknown.
    when = datetime.fromtimestamp((now if now is not None else datetime.now(UTC).timestamp()) - 3600, UTC)
    return {"aws:tokenissuetime": (when.strftime("%Y-%m-%dT%H:%M:%SZ"),)}


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


def _in_account(resource_account: str) -> dict[str, Values]:
    # The bucket's account, as both the global key and S3's own name it.
    return {"aws:resourceaccount": (resource_account,), "s3:resourceaccount": (resource_account,)}


def _in_scene(known: dict[str, Values], scene: RequestScene, facts: Sequence[tuple[str, tuple[str, ...]]]) -> None:
    """The requested region (the bucket's, when known) and the stated facts, over what ``known`` already says."""
    if scene.region:
        known["aws:requestedregion"] = (scene.region,)
    _with_facts(known, facts)


# AWS Backup's S3 session name: "AWSBackup-<role name>" is what CloudTrail shows for backup jobs (AWS-SEMANTICS
# fact 6); AWS does not document it. The verifier therefore also tries a session of another name, so a verdict that
# hangs on the session name is Unknown, never a guess.
BACKUP_SESSION_PREFIX = "AWSBackup-"
OTHER_SESSION_NAME = "bucketwarden-any-other-session"


def backup_session(
    *,
    role_arn: str,
    account: str,
    role_id: str,
    role_name: str,
    scene: RequestScene,
    addresses: AddressSet,
    role_path_known: bool = True,
) -> CallerContext:
    """An AWS Backup job's S3 request, made with the exempt role's session (AWS-SEMANTICS facts 1, 4, 5, 6, 25, 26)."""
    known: dict[str, Values] = {
        **_signed_https(),
        **now_values(scene.now),
        "aws:principalaccount": (account,),
        "aws:principaltype": ("AssumedRole",),
        # AWS Backup acts through its service role: both are false for its requests (fact 5).
        "aws:principalisawsservice": ("false",),
        "aws:viaawsservice": ("false",),
        # A role session is temporary credentials without MFA: the key is present and false (fact 26).
        "aws:multifactorauthpresent": ("false",),
        **_in_account(scene.resource_account),
        **{k.lower(): None for k in _ABSENT_FOR_SESSIONS},
    }
    _in_scene(known, scene, (*scene.facts.keys, *scene.facts.role_keys))
    # aws:PrincipalArn is the ROLE's ARN, path included (fact 4); the session ARN, which Principal elements may
    # name, is derived from it and the session name in aws:userid (policy/_evaluate.py, caller_arn).
    known["aws:principalarn"] = (role_arn,)
    alternatives: dict[str, tuple[Values, ...]] = {
        **_tls_alternatives(),
        "aws:userid": ((f"{role_id}:{BACKUP_SESSION_PREFIX}{role_name}",), (f"{role_id}:{OTHER_SESSION_NAME}",)),
    }
    return CallerContext(
        known,
        alternatives,
        present=frozenset({"aws:tokenissuetime"}),
        samples=_token_issue_time(scene.now),
        addresses=addresses,
        role_path_unknown=not role_path_known,
    )


def operator_session(
    *,
    principal_arn: str,
    arn: str,
    account: str,
    user_id: str,
    assumed_role: bool,
    scene: RequestScene,
    source_ips: Sequence[str],
    addresses: AddressSet | None = None,
) -> CallerContext:
    """The operator's own boto3 calls, from wherever its cluster runs (an address outside the allowed ranges)."""
    known: dict[str, Values] = {
        **_signed_https(),
        **now_values(scene.now),
        "aws:userid": (user_id,),
        "aws:principalarn": (principal_arn,),
        "bucketwarden:callerarn": (arn,),
        "aws:principalaccount": (account,),
        "aws:principaltype": ("AssumedRole" if assumed_role else "User",),
        "aws:principalisawsservice": ("false",),
        "aws:viaawsservice": ("false",),
        # Present (false) for temporary credentials, absent for an IAM user's long-term keys.
        "aws:multifactorauthpresent": ("false",) if assumed_role else None,
        **({} if assumed_role else {"aws:tokenissuetime": None}),
        **_in_account(scene.resource_account),
        **{k.lower(): None for k in _ABSENT_FOR_SESSIONS if not (k == "aws:username" and not assumed_role)},
    }
    _in_scene(known, scene, scene.facts.keys)
    # Where the operator runs is not known: any public address outside the allowed ranges (inside them it is let in
    # anyway), as a set; the sample addresses stand in only when that set is empty (an allow-everything list).
    alternatives: dict[str, tuple[Values, ...]] = _tls_alternatives()
    if addresses is None or addresses.empty:
        alternatives["aws:sourceip"] = tuple((a,) for a in source_ips)
        addresses = None
    present = frozenset({"aws:tokenissuetime"}) if assumed_role else frozenset()
    samples = _token_issue_time(scene.now) if assumed_role else {}
    return CallerContext(known, alternatives, present=present, samples=samples, addresses=addresses)


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
        **_in_account(resource_account),
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
