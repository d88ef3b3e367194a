"""What an audit learns about one bucket, and the verdicts it reports; plain data, no I/O."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from bucketwarden.spec import Finding


class Verdict(StrEnum):
    """Three-valued: Unknown when the policy could not be read or judged, never a guess."""

    PASS = "Pass"
    FAIL = "Fail"
    UNKNOWN = "Unknown"


class Status(StrEnum):
    """One word per bucket for the summary and the chart, worst first."""

    BLOCKS_BACKUP = "BlocksBackup"  # a statement denies an AWS Backup role
    UNKNOWN = "Unknown"  # could not tell
    NOT_READY = "NotReady"  # not blocked, but AWS Backup would still fail or be at risk (e.g. versioning off)
    READY = "Ready"


STATUS_ORDER: tuple[Status, ...] = (Status.BLOCKS_BACKUP, Status.UNKNOWN, Status.NOT_READY, Status.READY)

# Finding codes. They are API: the JSON output and the expected-table fixtures match on them.
DENIES_BACKUP_ROLE = "DeniesBackupRole"
DENIES_RESTORE = "DeniesRestore"
BACKUP_INCONCLUSIVE = "BackupInconclusive"
IP_RESTRICTION_WITHOUT_EXEMPTION = "IpRestrictionWithoutExemption"
BUCKETWARDEN_STATEMENT_MISSING = "BucketWardenStatementMissing"
BUCKETWARDEN_STATEMENT_STALE = "BucketWardenStatementStale"
VERSIONING_NOT_ENABLED = "VersioningNotEnabled"
VERSIONING_UNREADABLE = "VersioningUnreadable"
OPERATOR_LOCKED_OUT = "OperatorLockedOut"
POLICY_UNREADABLE = "PolicyUnreadable"
POLICY_UNJUDGEABLE = "PolicyNotJudgeable"
NO_BACKUP_ROLE = "NoBackupRole"
NOT_SUPERSEDABLE = "IpRestrictionNotSupersedable"


# Named codes, then a frozen record: the shape of k8s/_events.py's reasons and Event, parallel declarations with
# nothing in common to share.
@dataclass(frozen=True, slots=True)
class IpRestriction:
    """A hand-written IP Deny found in a bucket policy: what bucketwarden would take over."""

    sid: str | None
    label: str
    source_ips: tuple[str, ...]
    vpc_endpoints: tuple[str, ...] = ()
    vpcs: tuple[str, ...] = ()
    has_exemption: bool = False  # it carries some principal exemption (aws:userid / aws:PrincipalArn)
    supersedable: bool = False  # bucketwarden's statement can replace it without loosening anything


@dataclass(frozen=True, slots=True)
class BucketAudit:
    """The result for one bucket. Holds no policy document, so a stream of them stays small."""

    bucket: str
    region: str | None
    backup: Verdict
    operator: Verdict
    versioning: str | None  # "Enabled", "Suspended", None (never enabled), or "Unknown"
    has_policy: bool | None  # None: could not be read
    bucketwarden_statement: str  # "current", "stale", "absent" or "unknown"
    restriction: IpRestriction | None = None
    findings: tuple[Finding, ...] = ()
    counterexample: str | None = None
    backup_roles: tuple[str, ...] = ()  # role names checked
    # Restores into the bucket (AWSBackupServiceRolePolicyForS3Restore): a promise apart from backups.
    restore: Verdict = Verdict.UNKNOWN
    prover: str | None = None  # audit --prove: "proved", "counterexample: ..." or why it could not run

    @property
    def status(self) -> Status:
        if self.backup is Verdict.FAIL:
            return Status.BLOCKS_BACKUP
        if self.backup is Verdict.UNKNOWN:
            return Status.UNKNOWN
        if self.versioning != "Enabled" or Verdict.FAIL in (self.operator, self.restore):
            return Status.NOT_READY
        return Status.READY

    @property
    def codes(self) -> tuple[str, ...]:
        return tuple(sorted({f.code for f in self.findings}))

    @property
    def needs_protection(self) -> bool:
        """A hand-written IP restriction exists that bucketwarden should manage (its own, if current, is done)."""
        return self.restriction is not None and self.bucketwarden_statement != "current"

    def to_json(self) -> dict[str, Any]:
        r = self.restriction
        return {
            "bucket": self.bucket,
            "region": self.region,
            "status": self.status.value,
            "backup": self.backup.value,
            "restore": self.restore.value,
            "operator": self.operator.value,
            **({"prover": self.prover} if self.prover is not None else {}),
            "versioning": self.versioning,
            "hasPolicy": self.has_policy,
            "bucketwardenStatement": self.bucketwarden_statement,
            "backupRoles": list(self.backup_roles),
            "counterexample": self.counterexample,
            "ipRestriction": None
            if r is None
            else {
                "sid": r.sid,
                "label": r.label,
                "sourceIps": list(r.source_ips),
                "vpcEndpoints": list(r.vpc_endpoints),
                "vpcs": list(r.vpcs),
                "hasExemption": r.has_exemption,
                "supersedable": r.supersedable,
            },
            "findings": [f.to_k8s() for f in self.findings],
        }


@dataclass(slots=True)
class AuditSummary:
    """Counts only: what the summary line, the chart and the exit code need."""

    total: int = 0
    by_status: Counter[str] = field(default_factory=Counter)
    by_code: Counter[str] = field(default_factory=Counter)

    def add(self, audit: BucketAudit) -> None:
        self.total += 1
        self.by_status[audit.status.value] += 1
        self.by_code.update(audit.codes)

    @property
    def blocking(self) -> int:
        return self.by_status[Status.BLOCKS_BACKUP.value]

    @property
    def unknown(self) -> int:
        return self.by_status[Status.UNKNOWN.value]

    def line(self) -> str:
        parts = [f"{self.by_status[s.value]} {s.value}" for s in STATUS_ORDER]
        return f"{self.total} buckets: " + ", ".join(parts)

    def to_json(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "byStatus": {s.value: self.by_status[s.value] for s in STATUS_ORDER},
            "byFinding": dict(sorted(self.by_code.items())),
        }
