"""Findings about a spec and a policy that evaluation alone would not explain: ranges that can never match,
allow lists that lock clients out, and documents S3 would refuse or we would silently change."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from bucketwarden.policy._cidr import analyse_cidrs
from bucketwarden.policy._document import MAX_POLICY_BYTES, POLICY_VERSION, PolicyDocument
from bucketwarden.spec import Finding, ProtectedBucketSpec

PRIVATE_SOURCE_IP = "PrivateSourceIp"
ALLOWS_ALL_ADDRESSES = "AllowsAllAddresses"
IPV4_ONLY = "Ipv4Only"
HOST_BITS_NORMALISED = "HostBitsNormalised"
RANGES_COLLAPSED = "RangesCollapsed"
OPERATOR_NOT_EXEMPT = "OperatorNotExempt"
DUPLICATE_SIDS = "DuplicateSids"
VERSION_UPGRADED = "VersionUpgraded"  # no longer reported: a 2008-10-17 document is kept (see VERSION_KEPT)
VERSION_KEPT = "LegacyVersionKept"
POLICY_TOO_LARGE = "PolicyTooLarge"
OWNED_SID_FOREIGN_CONTENT = "OwnedSidForeignContent"


def _some(items: list[str], shown: int = 4) -> str:
    more = f" and {len(items) - shown} more" if len(items) > shown else ""
    return ", ".join(items[:shown]) + more


def lint_spec(spec: ProtectedBucketSpec) -> list[Finding]:
    """What is wrong or surprising in the spec's allow lists and lockout settings."""
    report = analyse_cidrs(spec.allowed_source_ips)
    findings = [
        Finding(
            severity="Error",
            code=PRIVATE_SOURCE_IP,
            message=(
                f"{cidr} is a private range: aws:SourceIp never carries private addresses (requests from a VPC "
                "arrive through a VPC endpoint and carry aws:SourceVpce instead): use allowedVpcEndpoints or "
                "allowedVpcs"
            ),
        )
        for cidr in dict.fromkeys(report.non_public)
    ]
    findings += [
        Finding(
            severity="Error",
            code=ALLOWS_ALL_ADDRESSES,
            message=(
                f"the allowed sources (allowedSourceIps and the SourceAllowLists of allowedSourcesFrom, together: "
                f"{_some([n for n in report.texts if (':' in n) == (family == 'IPv6')])}) cover every public "
                f"{family} address{' (2000::/3)' if family == 'IPv6' else ''}: a restriction that allows everyone "
                "restricts nothing, so nothing is written; list only the ranges your clients use"
            ),
        )
        for family in report.all_public
    ]
    if report.has_ipv4 and not report.has_ipv6:
        findings.append(
            Finding(
                severity="Warning",
                code=IPV4_ONLY,
                message=(
                    "allowedSourceIps has IPv4 ranges but no IPv6 range: dual-stack clients arriving over IPv6 "
                    "(S3 dual-stack endpoints) will be denied; add your IPv6 prefixes"
                ),
            )
        )
    findings += [
        Finding(
            severity="Info",
            code=HOST_BITS_NORMALISED,
            message=f"{written} normalised to {normalised} (host bits set)",
        )
        for written, normalised in report.host_bits
    ]
    if report.collapsed:
        findings.append(
            Finding(
                severity="Info",
                code=RANGES_COLLAPSED,
                message=(
                    f"overlapping or duplicate ranges collapsed: {', '.join(dict.fromkeys(report.collapsed))}; "
                    f"the statement lists {', '.join(report.texts)}"
                ),
            )
        )
    if not spec.exempt_operator:
        findings.append(
            Finding(
                severity="Warning",
                code=OPERATOR_NOT_EXEMPT,
                message=(
                    "exemptOperator is false: when the operator runs outside the allowed ranges it may lock itself "
                    "out of the bucket policy (s3:* includes s3:GetBucketPolicy and s3:PutBucketPolicy); "
                    "to recover, the bucket owner's root user can delete the bucket policy"
                ),
            )
        )
    return findings


def lint_policy(
    existing: PolicyDocument | None, final: PolicyDocument | None, owned_sids: Iterable[str]
) -> list[Finding]:
    """What is wrong or surprising in the existing document and in the one we would write."""
    owned = set(owned_sids)
    findings: list[Finding] = []
    if existing is not None:
        findings += _duplicate_sids(existing, owned)
        if final is not None and existing.version != POLICY_VERSION:
            was = f'"Version": "{existing.version}"' if existing.version else "no Version (which means 2008-10-17)"
            findings.append(
                Finding(
                    severity="Info",
                    code=VERSION_KEPT,
                    message=(
                        f'the existing policy has {was}; it is written back as "Version": "2008-10-17", not '
                        f'upgraded to "{POLICY_VERSION}": that would turn ${{...}} text in foreign statements into '
                        "policy variables and change what they mean; bucketwarden's statement needs no variables"
                    ),
                )
            )
        findings += _replaced_owned(existing, final, owned)
    if final is not None and (size := final.size_bytes) > MAX_POLICY_BYTES:
        findings.append(
            Finding(
                severity="Error",
                code=POLICY_TOO_LARGE,
                message=(
                    f"the policy would be {size} bytes, over S3's limit of {MAX_POLICY_BYTES} bytes "
                    f"by {size - MAX_POLICY_BYTES}: shorten the allow lists (collapse ranges) or the foreign statements"
                ),
            )
        )
    return findings


def _duplicate_sids(existing: PolicyDocument, owned: set[str]) -> list[Finding]:
    counts = Counter(existing.sids)
    findings = []
    for sid in existing.duplicate_sids():
        if sid in owned:
            what = "it is ours: all of them will be collapsed into our one statement"
        else:
            what = "it is not ours: they are kept as they are, and bucketwarden never adds another"
        findings.append(
            Finding(
                severity="Warning",
                code=DUPLICATE_SIDS,
                message=f"the existing policy has {counts[sid]} statements with Sid {sid!r}; {what}",
                sid=sid,
            )
        )
    return findings


def _replaced_owned(existing: PolicyDocument, final: PolicyDocument | None, owned: set[str]) -> list[Finding]:
    if final is None:  # the whole policy goes: there is no statement of ours to compare with
        return []
    ours = [s for s in final.statements if s.sid in owned]
    return [
        Finding(
            severity="Info",
            code=OWNED_SID_FOREIGN_CONTENT,
            message=(
                f"the existing statement {stmt.sid!r} carries a Sid this resource owns but differs from "
                "bucketwarden's statement: it will be replaced"
            ),
            sid=stmt.sid,
        )
        for stmt in existing.statements
        if stmt.sid is not None and stmt.sid in owned and stmt not in ours
    ]


def has_errors(findings: Iterable[Finding]) -> bool:
    return any(f.severity == "Error" for f in findings)
