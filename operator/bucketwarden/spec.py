"""The ProtectedBucket API contract: pydantic models of spec and status, and the CRD's names.

Field names are the camelCase names users write in YAML; Python code uses the snake_case attributes.
Validation here mirrors the CRD's OpenAPI schema and CEL rules, so the CLI and the operator reject the
same specs that admission rejects on a real API server.
"""

from __future__ import annotations

import ipaddress
import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    GetCoreSchemaHandler,
    GetJsonSchemaHandler,
    StrictBool,
    model_validator,
)
from pydantic.alias_generators import to_camel
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema, core_schema

GROUP = "bucketwarden.io"
VERSION = "v1alpha1"
API_VERSION = f"{GROUP}/{VERSION}"
KIND = "ProtectedBucket"
PLURAL = "protectedbuckets"
SINGULAR = "protectedbucket"
SHORT_NAMES = ("pb",)
CATEGORIES = ("bucketwarden",)

# SourceAllowList: a cluster-scoped, shared list of allowed sources that ProtectedBuckets reference by name.
ALLOW_LIST_KIND = "SourceAllowList"
ALLOW_LIST_PLURAL = "sourceallowlists"
ALLOW_LIST_SINGULAR = "sourceallowlist"
ALLOW_LIST_SHORT_NAMES = ("sal",)
MAX_ALLOW_LIST_REFS = 20
MAX_DESCRIPTION_LENGTH = 1024
MAX_OWNER_LENGTH = 256
MAX_OBJECT_NAME_LENGTH = 253

DEFAULT_STATEMENT_SID = "BucketWardenIpRestriction"
# Every statement bucketwarden writes has a Sid with this prefix: the prefix marks a bucketwarden statement in
# any policy, and a tenant can never name (and so replace or delete) the security team's DenyInsecureTransport.
RESERVED_SID_PREFIX = "BucketWarden"
SID_PREFIX_MESSAGE = f"statementSid must start with {RESERVED_SID_PREFIX!r} (e.g. {DEFAULT_STATEMENT_SID})"

# TenantPolicy: a cluster-scoped grant, written by cluster admins, of which buckets, roles and allow lists the
# ProtectedBuckets of which namespaces may use. No grant, no AWS call.
TENANT_POLICY_KIND = "TenantPolicy"
TENANT_POLICY_PLURAL = "tenantpolicies"
TENANT_POLICY_SINGULAR = "tenantpolicy"
TENANT_POLICY_SHORT_NAMES = ("tp",)
MAX_GRANTS = 100
MAX_GLOB_LENGTH = 253

# Bounds keep CEL rule costs inside a real API server's budget (see shared TOOLING notes).
MAX_CIDRS = 100
MAX_CIDR_LENGTH = 64
MAX_VPCS = 50
MAX_ROLES = 20
MAX_SIDS = 20
MAX_NAME_LENGTH = 64
MAX_ARN_LENGTH = 2048

# These regexes are also the CRD's `pattern`s, checked by the API server's Go (RE2) regexps. So they use
# explicit ASCII classes, never \w or \d (Unicode-aware in Python, ASCII-only in Go), and are always
# applied with fullmatch (Python's `$` also matches before a trailing newline, Go's does not).
BUCKET_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
ROLE_NAME_RE = re.compile(r"^[A-Za-z0-9_+=,.@-]{1,64}$")
ROLE_ARN_RE = re.compile(
    r"^arn:aws(-cn|-us-gov)?:iam::[0-9]{12}:role/([A-Za-z0-9_+=,.@/-]*/)?[A-Za-z0-9_+=,.@-]{1,64}$"
)
ACCOUNT_ID_RE = re.compile(r"^[0-9]{12}$")
VPCE_RE = re.compile(r"^vpce-[0-9a-f]{8,17}$")
VPC_RE = re.compile(r"^vpc-[0-9a-f]{8,17}$")
SID_RE = re.compile(r"^[A-Za-z0-9]{1,64}$")
ADOPT_SID_RE = re.compile(r"^[^\"\\]{1,128}$")
REGION_RE = re.compile(r"^[a-z]{2}(-gov|-iso[a-z]?)?-[a-z]+-[0-9]{1,2}$")
IPV4_ADDRESS_RE = re.compile(r"^[0-9]{1,3}([.][0-9]{1,3}){3}$")
CIDR_PREFIX_LENGTH_RE = re.compile(r"0|[1-9][0-9]{0,2}")
# A Kubernetes object name (RFC 1123 subdomain): what a SourceAllowList may be called.
OBJECT_NAME_RE = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
RESERVED_BUCKET_PREFIXES = ("xn--", "sthree-", "amzn-s3-demo-")
RESERVED_BUCKET_SUFFIXES = ("-s3alias", "--ol-s3", "--x-s3")


SLASH_ZERO_MESSAGE = "a /0 range allows every address and restricts nothing: list the ranges you mean"
AT_LEAST_ONE_SOURCE = "give at least one of allowedSourceIps, allowedVpcEndpoints, allowedVpcs and allowedSourcesFrom"
ACK_NEEDS_BUCKET_REF = "policyWriter: ACK needs bucketRef: {name: <the ACK Bucket>}"
AT_LEAST_ONE_LIST_SOURCE = "give at least one of cidrs, vpcEndpoints and vpcs"


def validate_bucket_name(name: str) -> str:
    """S3 general purpose bucket naming rules."""
    if not BUCKET_NAME_RE.fullmatch(name):
        raise ValueError(
            f"bucketName {name!r} is not a valid S3 bucket name: 3-63 characters of lowercase letters, "
            "digits, dots and hyphens, starting and ending with a letter or digit"
        )
    if ".." in name or ".-" in name or "-." in name:
        raise ValueError(f"bucketName {name!r} must not contain '..', '.-' or '-.'")
    if IPV4_ADDRESS_RE.fullmatch(name):
        raise ValueError(f"bucketName {name!r} must not be formatted as an IP address")
    if name.startswith(RESERVED_BUCKET_PREFIXES) or name.endswith(RESERVED_BUCKET_SUFFIXES):
        raise ValueError(f"bucketName {name!r} uses a prefix or suffix that S3 reserves")
    return name


def validate_cidr(value: str) -> str:
    """An IPv4/IPv6 CIDR or bare address. Host bits are allowed here; lint reports and normalises them.

    Accepts what the CRD's `isCIDR(self) || isIP(self)` accepts (Go's net/netip, as Kubernetes uses it), which
    is stricter than Python's ipaddress: no netmask forms (/255.255.255.0), no leading zeros in the prefix
    length, no IPv6 zones (%eth0), no IPv4-mapped IPv6 addresses (::ffff:192.0.2.1).
    """
    if len(value) > MAX_CIDR_LENGTH:
        raise ValueError(f"{value[:20]!r}... is longer than {MAX_CIDR_LENGTH} characters")
    address, slash, prefix_length = value.partition("/")
    try:
        ip = ipaddress.ip_address(address)
        if "%" in address or (slash and not CIDR_PREFIX_LENGTH_RE.fullmatch(prefix_length)):
            raise ValueError
        if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
            raise ValueError
        ipaddress.ip_network(value, strict=False)
    except ValueError:
        raise ValueError(
            f"{value!r} is not an IPv4 or IPv6 CIDR (e.g. 192.0.2.0/24, 2001:db8::/32) or address"
        ) from None
    if value.endswith("/0"):
        raise ValueError(SLASH_ZERO_MESSAGE)
    return value


class _Pattern:
    """Annotated metadata: the value must fully match `regex`, which the JSON schema (so the CRD) carries."""

    def __init__(self, regex: re.Pattern[str], what: str) -> None:
        self.regex = regex
        self.what = what

    def __get_pydantic_core_schema__(self, source: Any, handler: GetCoreSchemaHandler) -> CoreSchema:
        return core_schema.no_info_after_validator_function(self._check, handler(source))

    def __get_pydantic_json_schema__(self, schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        json_schema = handler(schema)
        json_schema["pattern"] = self.regex.pattern
        return json_schema

    def _check(self, value: str | None) -> str | None:
        # None is an optional field left unset (admission prunes an explicit null the same way).
        if value is not None and not self.regex.fullmatch(value):
            raise ValueError(f"{value!r} is not a valid {self.what}")
        return value


def _pattern(regex: re.Pattern[str], what: str) -> Any:
    return _Pattern(regex, what)


def _bounded_list(max_items: int, description: str) -> Any:
    """A list field that may be left out (then empty), with at most ``max_items`` items: every list in a CRD is
    bounded, for the API server's CEL cost estimate."""
    return Field(default_factory=list, max_length=max_items, description=description)


Cidr = Annotated[str, Field(max_length=MAX_CIDR_LENGTH), AfterValidator(validate_cidr)]
VpcEndpointId = Annotated[str, Field(max_length=MAX_NAME_LENGTH), _pattern(VPCE_RE, "VPC endpoint id (vpce-...)")]
VpcId = Annotated[str, Field(max_length=MAX_NAME_LENGTH), _pattern(VPC_RE, "VPC id (vpc-...)")]
AdoptSid = Annotated[str, Field(max_length=128), _pattern(ADOPT_SID_RE, "statement Sid")]


class _Model(BaseModel):
    model_config = ConfigDict(
        alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True, use_enum_values=False
    )

    @model_validator(mode="before")
    @classmethod
    def _drop_nulls(cls, data: Any) -> Any:
        # The API server prunes a null from every field not marked nullable before defaulting and validating
        # (so `allowedVpcs: null` means "unset"); the model does the same, to accept what admission accepts.
        if isinstance(data, dict):
            return {key: value for key, value in data.items() if value is not None}
        return data

    def to_k8s(self) -> dict[str, Any]:
        """The camelCase JSON form, without unset optional fields."""
        return self.model_dump(mode="json", by_alias=True, exclude_none=True)


# The spec's enums: four parallel StrEnum declarations (the duplicates tool pairs them), one per field.
class ExemptionKey(StrEnum):
    """How exempt roles are written into the Deny statement."""

    USER_ID = "userId"
    PRINCIPAL_ARN = "principalArn"


class ManagementPolicy(StrEnum):
    ENFORCE = "Enforce"
    OBSERVE = "Observe"


class DeletionPolicy(StrEnum):
    DELETE = "Delete"
    RETAIN = "Retain"


class PolicyWriter(StrEnum):
    """Who writes the bucket policy to S3: bucketwarden itself, or an ACK Bucket it merges our statement into."""

    DIRECT = "Direct"
    ACK = "ACK"


class BucketRef(_Model):
    """An ACK Bucket (s3.services.k8s.aws/v1alpha1) in the ProtectedBucket's namespace."""

    name: Annotated[str, _pattern(OBJECT_NAME_RE, "ACK Bucket name")] = Field(
        min_length=1, max_length=MAX_OBJECT_NAME_LENGTH, description="metadata.name of the ACK Bucket."
    )


class ExemptRole(_Model):
    """A role whose sessions bypass the IP restriction. Exactly one of name and arn."""

    name: Annotated[str | None, _pattern(ROLE_NAME_RE, "IAM role name")] = Field(
        default=None, max_length=MAX_NAME_LENGTH, description="Role name in the bucket's account."
    )
    arn: Annotated[str | None, _pattern(ROLE_ARN_RE, "IAM role ARN (arn:aws:iam::123456789012:role/...)")] = Field(
        default=None, max_length=MAX_ARN_LENGTH, description="Full role ARN, including its path."
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> ExemptRole:
        if (self.name is None) == (self.arn is None):
            raise ValueError("each exemptRoles item needs exactly one of 'name' and 'arn'")
        return self

    @property
    def ref(self) -> str:
        """The name or ARN as the user wrote it; the key resolved RoleIds are looked up by."""
        return self.arn if self.arn is not None else str(self.name)

    @property
    def role_name(self) -> str:
        """The bare role name (last path segment of an ARN)."""
        if self.arn is not None:
            return self.arn.rsplit("/", 1)[-1]
        return str(self.name)


ORG_ID_RE = re.compile(r"^o-[a-z0-9]{10,32}$")
ORG_PATH_RE = re.compile(r"^o-[a-z0-9]{10,32}/r-[0-9a-z]{4,32}/(ou-[0-9a-z]{4,32}-[a-z0-9]{8,32}/)*$")
TAG_KEY_RE = re.compile(r"^[A-Za-z0-9 _.:/=+@-]{1,128}$")
MAX_TAGS = 20


OrgPath = Annotated[str, Field(max_length=512), _pattern(ORG_PATH_RE, "organization path (o-.../r-.../ou-.../)")]


class PrincipalTag(_Model):
    """A tag on the exempt roles, as aws:PrincipalTag/<key> carries it."""

    key: Annotated[str, _pattern(TAG_KEY_RE, "tag key")] = Field(max_length=128)
    value: str = Field(max_length=256)


class VerificationContext(_Model):
    """Facts about the bucket's account and the exempt roles that bucketwarden cannot look up.

    A foreign Deny whose outcome hangs on one of these keys makes verification Inconclusive; stating the fact
    here turns it into Verified or VerificationFailed.
    """

    organization_id: Annotated[str | None, _pattern(ORG_ID_RE, "organization id (o-...)")] = Field(
        default=None, max_length=34, description="aws:PrincipalOrgID (and aws:ResourceOrgID) of the account."
    )
    organization_paths: list[OrgPath] = _bounded_list(
        10, "aws:PrincipalOrgPaths of the account, e.g. o-a1b2c3d4e5/r-ab12/ou-ab12-11111111/."
    )
    principal_tags: list[PrincipalTag] = _bounded_list(MAX_TAGS, "Tags of the exempt roles (aws:PrincipalTag/...).")
    aws_source_ranges: list[Cidr] = _bounded_list(
        MAX_CIDRS,
        "The AWS ranges AWS Backup's requests may come from (e.g. the S3 and AMAZON prefixes of the "
        "region in ip-ranges.json); narrows the public address space aws:SourceIp is judged over. Empty: any "
        "public address.",
    )


class AllowListRef(_Model):
    """A reference to a cluster-scoped SourceAllowList by name."""

    name: Annotated[str, _pattern(OBJECT_NAME_RE, "SourceAllowList name")] = Field(
        min_length=1, max_length=MAX_OBJECT_NAME_LENGTH, description="metadata.name of the SourceAllowList."
    )


class ProtectedBucketSpec(_Model):
    """What the owner of a bucket asks bucketwarden to keep true."""

    bucket_name: Annotated[str, AfterValidator(validate_bucket_name)] = Field(
        min_length=3,
        max_length=63,
        description="The S3 bucket. Immutable.",
        json_schema_extra={"pattern": BUCKET_NAME_RE.pattern},
    )
    region: Annotated[str | None, _pattern(REGION_RE, "AWS region (e.g. eu-west-1)")] = Field(
        default=None, max_length=32, description="The bucket's region; defaults to the operator's region."
    )
    allowed_source_ips: list[Cidr] = _bounded_list(
        MAX_CIDRS, "IPv4/IPv6 CIDRs (or bare addresses) allowed through aws:SourceIp."
    )
    allowed_vpc_endpoints: list[VpcEndpointId] = _bounded_list(
        MAX_VPCS, "VPC endpoints (vpce-...) whose traffic is allowed; it carries no aws:SourceIp."
    )
    allowed_vpcs: list[VpcId] = _bounded_list(MAX_VPCS, "VPCs (vpc-...) whose endpoint traffic is allowed.")
    exempt_roles: list[ExemptRole] = _bounded_list(
        MAX_ROLES, "Roles whose sessions bypass the restriction, e.g. AWSBackupDefaultServiceRole."
    )
    exemption_key: ExemptionKey = Field(
        default=ExemptionKey.USER_ID,
        description=(
            "userId writes StringNotLike aws:userId '<RoleId>:*' (fails closed when a role is recreated); "
            "principalArn writes ArnNotLike aws:PrincipalArn '<role arn>'."
        ),
    )
    exempt_operator: StrictBool = Field(
        default=True, description="Exempt the operator's own principal so it can never lock itself out."
    )
    acknowledge_lockout_risk: StrictBool = Field(
        default=False,
        description="Must be true to set exemptOperator to false: the operator may then lock itself out.",
    )
    statement_sid: Annotated[str, _pattern(SID_RE, "statement Sid (letters and digits)")] = Field(
        default=DEFAULT_STATEMENT_SID, max_length=MAX_NAME_LENGTH, description="Sid of the statement we own."
    )
    adopt_sids: list[AdoptSid] = _bounded_list(
        MAX_SIDS, "Existing statement Sids this resource takes over and replaces."
    )
    management_policy: ManagementPolicy = Field(
        default=ManagementPolicy.ENFORCE,
        description="Enforce writes; Observe only computes, verifies and reports.",
    )
    deletion_policy: DeletionPolicy = Field(
        default=DeletionPolicy.DELETE,
        description="Delete removes our statement when the resource goes; Retain leaves the policy as it is.",
    )
    expected_bucket_owner: Annotated[str | None, _pattern(ACCOUNT_ID_RE, "12-digit account id")] = Field(
        default=None, description="Account id sent as ExpectedBucketOwner on every S3 call."
    )
    assume_role_arn: Annotated[str | None, _pattern(ROLE_ARN_RE, "IAM role ARN")] = Field(
        default=None, max_length=MAX_ARN_LENGTH, description="Role to assume for this bucket (cross-account)."
    )
    verification_context: VerificationContext | None = Field(
        default=None,
        description="Facts verification cannot look up (organization, principal tags); see docs/verification.md.",
    )
    allowed_sources_from: list[AllowListRef] = _bounded_list(
        MAX_ALLOW_LIST_REFS,
        "SourceAllowLists whose CIDRs, VPC endpoints and VPCs are allowed too; the union is written.",
    )
    policy_writer: PolicyWriter = Field(
        default=PolicyWriter.DIRECT,
        description="Direct writes the bucket policy; ACK merges our statement into the ACK Bucket's spec.policy "
        "(bucketRef) and lets ACK write it.",
        json_schema_extra={"maxLength": 16},  # a CEL rule reads it: bounded for the cost estimate
    )
    bucket_ref: BucketRef | None = Field(default=None, description="The ACK Bucket, with policyWriter: ACK.")

    @model_validator(mode="after")
    def _cross_field_rules(self) -> ProtectedBucketSpec:
        if not (
            self.allowed_source_ips or self.allowed_vpc_endpoints or self.allowed_vpcs or self.allowed_sources_from
        ):
            raise ValueError(AT_LEAST_ONE_SOURCE)
        if not self.exempt_operator and not self.acknowledge_lockout_risk:
            raise ValueError(
                "exemptOperator: false can lock the operator out of the bucket policy; "
                "set acknowledgeLockoutRisk: true to confirm"
            )
        if not self.statement_sid.startswith(RESERVED_SID_PREFIX):
            raise ValueError(SID_PREFIX_MESSAGE)
        if self.statement_sid in self.adopt_sids:
            raise ValueError(f"adoptSids must not contain statementSid {self.statement_sid!r}")
        if len(set(self.adopt_sids)) != len(self.adopt_sids):
            raise ValueError("adoptSids contains duplicates")
        refs = [r.ref for r in self.exempt_roles]
        if len(set(refs)) != len(refs):
            raise ValueError("exemptRoles lists the same role twice")
        if self.policy_writer is PolicyWriter.ACK and self.bucket_ref is None:
            raise ValueError(ACK_NEEDS_BUCKET_REF)
        lists = [r.name for r in self.allowed_sources_from]
        if len(set(lists)) != len(lists):
            raise ValueError("allowedSourcesFrom names the same SourceAllowList twice")
        return self

    @property
    def owned_sids(self) -> tuple[str, ...]:
        """Every Sid this resource owns: its own, then the adopted ones."""
        return (self.statement_sid, *self.adopt_sids)


ConditionStatus = Literal["True", "False", "Unknown"]
Severity = Literal["Error", "Warning", "Info"]


class Condition(_Model):
    """A Kubernetes-style condition."""

    type: str
    status: ConditionStatus
    reason: str
    message: str = ""
    last_transition_time: str | None = None
    observed_generation: int | None = None


class Finding(_Model):
    """One lint or verification result."""

    severity: Severity
    code: str
    message: str
    sid: str | None = None


class ExemptPrincipal(_Model):
    """A resolved exemption as written into the policy."""

    kind: Literal["Role", "Operator"]
    name: str | None = None
    arn: str | None = None
    role_id: str | None = None
    pattern: str


class AdoptedStatement(_Model):
    """A statement adoptSids took over: its Sid and the hash of its meaning when it was replaced."""

    sid: str
    hash: str


class Contention(_Model):
    """Writer-fight bookkeeping, kept in status so a restarted operator keeps backing off (see contention.py)."""

    repairs: int = Field(default=0, description="Repairs in a row, each undone again within the window.")
    resyncs_since_repair: int = Field(default=0, description="Reconciles since our last repair.")
    skipped: int = Field(default=0, description="Reconciles left to skip before the next repair.")
    backoff: int = Field(default=0, description="Reconciles skipped after the last repair (doubles, capped).")


class ProtectedBucketStatus(_Model):
    """What the operator last observed and did."""

    model_config = ConfigDict(extra="ignore")

    observed_generation: int | None = None
    conditions: list[Condition] = Field(default_factory=list)
    exempt_principals: list[ExemptPrincipal] = Field(default_factory=list)
    exempt_count: int | None = None
    operator_principal: str | None = None
    policy_hash: str | None = None
    statement_hash: str | None = None
    last_sync_time: str | None = None
    drift_corrections: int = 0
    findings: list[Finding] = Field(default_factory=list)
    adopted_statements: list[AdoptedStatement] = Field(default_factory=list)
    # The statement this resource last wrote and found in force (Sid and hash). Cleanup and a loser's release
    # remove a statement only when this records it: a resource that never wrote deletes nothing.
    owned_statement: AdoptedStatement | None = None
    resolved_sources_hash: str | None = None
    contention: Contention | None = None


class ProtectedBucket(_Model):
    """A whole ProtectedBucket object as read from a manifest."""

    model_config = ConfigDict(extra="ignore")

    api_version: Literal["bucketwarden.io/v1alpha1"] = "bucketwarden.io/v1alpha1"
    kind: Literal["ProtectedBucket"] = "ProtectedBucket"
    metadata: dict[str, Any] = Field(default_factory=dict)
    spec: ProtectedBucketSpec
    status: ProtectedBucketStatus | None = None

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", ""))

    @property
    def namespace(self) -> str:
        return str(self.metadata.get("namespace", "default"))


class SourceAllowListSpec(_Model):
    """A shared list of allowed sources (cluster-scoped), referenced by ProtectedBuckets' allowedSourcesFrom."""

    cidrs: list[Cidr] = _bounded_list(MAX_CIDRS, "IPv4/IPv6 CIDRs (or bare addresses) allowed through aws:SourceIp.")
    vpc_endpoints: list[VpcEndpointId] = _bounded_list(MAX_VPCS, "VPC endpoints (vpce-...) whose traffic is allowed.")
    vpcs: list[VpcId] = _bounded_list(MAX_VPCS, "VPCs (vpc-...) whose endpoint traffic is allowed.")
    description: str | None = Field(
        default=None, max_length=MAX_DESCRIPTION_LENGTH, description="What these sources are (e.g. office egress)."
    )
    owner: str | None = Field(
        default=None, max_length=MAX_OWNER_LENGTH, description="Who to ask before changing the list (team, email)."
    )

    @model_validator(mode="after")
    def _not_empty(self) -> SourceAllowListSpec:
        if not (self.cidrs or self.vpc_endpoints or self.vpcs):
            raise ValueError(AT_LEAST_ONE_LIST_SOURCE)
        return self


class SourceAllowListStatus(_Model):
    """Who uses the list, and whether they have written its current content."""

    model_config = ConfigDict(extra="ignore")

    observed_generation: int | None = None
    sources_hash: str | None = Field(default=None, description="Hash of the list's current sources.")
    used_by: int = Field(default=0, description="ProtectedBuckets that reference this list.")
    in_sync: int = Field(default=0, description="Of those, how many are Synced with its current content.")
    users: dict[str, int] = Field(
        default_factory=dict,
        description=(
            "How many of them each namespace holds (at most 50 namespaces shown). Counts, not names: every "
            "namespace may read a list, and other tenants' resource names are not theirs to read."
        ),
    )


# --- TenantPolicy ---------------------------------------------------------------------------------------------

# Globs (fnmatch: * and ?) over Kubernetes names, bucket names, ARNs and SourceAllowList names. ASCII only, no
# brackets: a grant an admin reads must mean what it says, with no character classes to misread.
NAME_GLOB_RE = re.compile(r"^[a-z0-9*?]([-a-z0-9.*?]*[a-z0-9*?])?$")
ARN_GLOB_RE = re.compile(r"^arn:[A-Za-z0-9*?-]*:iam::[0-9*?]{1,12}:role/[A-Za-z0-9_+=,.@/*?-]+$")
EXTERNAL_ID_RE = re.compile(r"^[A-Za-z0-9+=,.@:/-]{2,}$")
LABEL_KEY_RE = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?([.][a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$"
)
LABEL_VALUE_RE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$")
AT_LEAST_ONE_NAMESPACE = "give at least one of namespaces and namespaceSelector"

NameGlob = Annotated[
    str, Field(max_length=MAX_GLOB_LENGTH), _pattern(NAME_GLOB_RE, "name glob (a-z, 0-9, -, ., * and ?)")
]
ArnGlob = Annotated[
    str, Field(max_length=MAX_ARN_LENGTH), _pattern(ARN_GLOB_RE, "role ARN glob (arn:aws:iam::123456789012:role/...)")
]
LabelKey = Annotated[str, Field(max_length=317), _pattern(LABEL_KEY_RE, "label key")]
LabelValue = Annotated[str, Field(max_length=63), _pattern(LABEL_VALUE_RE, "label value")]


class SelectorOperator(StrEnum):
    IN = "In"
    NOT_IN = "NotIn"
    EXISTS = "Exists"
    DOES_NOT_EXIST = "DoesNotExist"


class LabelRequirement(_Model):
    """One matchExpressions item of a Kubernetes label selector."""

    key: LabelKey
    operator: SelectorOperator
    values: list[LabelValue] = Field(default_factory=list, max_length=MAX_GRANTS)

    @model_validator(mode="after")
    def _values_fit_operator(self) -> LabelRequirement:
        needs_values = self.operator in (SelectorOperator.IN, SelectorOperator.NOT_IN)
        if needs_values != bool(self.values):
            raise ValueError("In and NotIn need values; Exists and DoesNotExist take none")
        return self


class LabelSelector(_Model):
    """A Kubernetes label selector over namespaces (matchLabels and matchExpressions are ANDed)."""

    match_labels: dict[str, LabelValue] = Field(default_factory=dict, max_length=MAX_GRANTS)
    match_expressions: list[LabelRequirement] = Field(default_factory=list, max_length=MAX_GRANTS)

    @model_validator(mode="after")
    def _label_keys(self) -> LabelSelector:
        # A map's keys have no pattern in a structural schema; the API server refuses a bad key when the
        # selector is used, the model refuses it here.
        bad = [k for k in self.match_labels if len(k) > 317 or not LABEL_KEY_RE.fullmatch(k)]
        if bad:
            raise ValueError(f"matchLabels key {bad[0]!r} is not a valid label key")
        return self

    def matches(self, labels: dict[str, str]) -> bool:
        if any(labels.get(k) != v for k, v in self.match_labels.items()):
            return False
        for req in self.match_expressions:
            present = req.key in labels
            if req.operator is SelectorOperator.IN and not (present and labels[req.key] in req.values):
                return False
            if req.operator is SelectorOperator.NOT_IN and present and labels[req.key] in req.values:
                return False
            if req.operator is SelectorOperator.EXISTS and not present:
                return False
            if req.operator is SelectorOperator.DOES_NOT_EXIST and present:
                return False
        return True


class ExternalIdGrant(_Model):
    """The sts:ExternalId sent when assuming the roles roleArn matches (their trust policy requires it)."""

    role_arn: ArnGlob = Field(description="Role ARN, or a glob over role ARNs, this ExternalId is sent for.")
    external_id: Annotated[str, _pattern(EXTERNAL_ID_RE, "ExternalId (2-1224 of A-Za-z0-9+=,.@:/-)")] = Field(
        max_length=1224, description="The ExternalId the role's trust policy requires (sts:ExternalId)."
    )


class TenantPolicySpec(_Model):
    """What the ProtectedBuckets of some namespaces may claim. Written by cluster admins only."""

    namespaces: list[NameGlob] = Field(
        default_factory=list,
        max_length=MAX_GRANTS,
        description='Namespaces granted, by name or glob (* and ?); "*" grants every namespace.',
    )
    namespace_selector: LabelSelector | None = Field(
        default=None, description="Namespaces granted by label, in addition to those named."
    )
    buckets: list[NameGlob] = Field(
        min_length=1, max_length=MAX_GRANTS, description="Bucket names (or globs) these namespaces may protect."
    )
    assume_role_arns: list[ArnGlob] = _bounded_list(
        MAX_GRANTS, "Role ARNs (or globs) these namespaces may name in assumeRoleArn. Default: none."
    )
    external_ids: list[ExternalIdGrant] = _bounded_list(MAX_GRANTS, "ExternalIds to send when assuming granted roles.")
    source_allow_lists: list[NameGlob] = Field(
        default_factory=lambda: ["*"],
        max_length=MAX_GRANTS,
        description="SourceAllowLists (names or globs) these namespaces may reference. Default: all.",
    )
    description: str | None = Field(default=None, max_length=MAX_DESCRIPTION_LENGTH, description="Why this grant.")

    @model_validator(mode="after")
    def _names_someone(self) -> TenantPolicySpec:
        if not self.namespaces and self.namespace_selector is None:
            raise ValueError(AT_LEAST_ONE_NAMESPACE)
        return self

    @property
    def grants_all_namespaces(self) -> bool:
        return "*" in self.namespaces or (
            self.namespace_selector is not None
            and not self.namespace_selector.match_labels
            and not self.namespace_selector.match_expressions
        )


class TenantPolicyStatus(_Model):
    """Which namespaces the grant matches now, and how many ProtectedBuckets rely on it."""

    model_config = ConfigDict(extra="ignore")

    observed_generation: int | None = None
    matched_namespaces: list[str] = Field(
        default_factory=list, description="Namespaces the grant matches (at most 50 shown)."
    )
    matched_namespace_count: int = Field(default=0, description="How many namespaces the grant matches.")
    protected_buckets: int = Field(default=0, description="ProtectedBuckets authorized by this grant.")
