"""``bucketwarden audit``: which buckets would make AWS Backup fail, and why; and manifests to onboard them.

``_classify`` is pure (facts in, findings out); ``_scan`` reads AWS, read-only; ``_report`` and ``_emit`` write.
"""

from bucketwarden.audit._classify import (
    AuditContext,
    BucketFacts,
    classify,
    ip_restrictions,
    is_supersedable,
    verification_spec,
)
from bucketwarden.audit._cli import add_arguments, exit_code, run_audit
from bucketwarden.audit._emit import KUSTOMIZATION, ManifestWriter, manifest_for
from bucketwarden.audit._model import (
    STATUS_ORDER,
    AuditSummary,
    BucketAudit,
    IpRestriction,
    Status,
    Verdict,
)
from bucketwarden.audit._report import write_html, write_json, write_table
from bucketwarden.audit._scan import (
    DEFAULT_BACKUP_ROLE,
    AuditScope,
    AuditUsageError,
    audit_buckets,
    audit_context,
    read_facts,
    resolve_backup_roles,
    resolve_operator,
)
from bucketwarden.audit._verdict import verdict_for

__all__ = [
    "DEFAULT_BACKUP_ROLE",
    "KUSTOMIZATION",
    "STATUS_ORDER",
    "AuditContext",
    "AuditScope",
    "AuditSummary",
    "AuditUsageError",
    "BucketAudit",
    "BucketFacts",
    "IpRestriction",
    "ManifestWriter",
    "Status",
    "Verdict",
    "add_arguments",
    "audit_buckets",
    "audit_context",
    "classify",
    "exit_code",
    "ip_restrictions",
    "is_supersedable",
    "manifest_for",
    "read_facts",
    "resolve_backup_roles",
    "resolve_operator",
    "run_audit",
    "verdict_for",
    "verification_spec",
    "write_html",
    "write_json",
    "write_table",
]
