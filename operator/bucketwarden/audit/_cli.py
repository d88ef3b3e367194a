"""``bucketwarden audit``: its flags and its run, kept out of cli.py so the shared parser gains only a few lines."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import IO

from bucketwarden._flags import add_repeatable
from bucketwarden.audit._emit import ManifestWriter
from bucketwarden.audit._model import AuditSummary, BucketAudit
from bucketwarden.audit._report import write_html, write_json, write_table
from bucketwarden.audit._scan import (
    DEFAULT_CONCURRENCY,
    AuditScope,
    AuditUsageError,
    audit_buckets,
    audit_context,
)
from bucketwarden.aws import AwsGateway, AwsSettings
from bucketwarden.exitcodes import ExitCode
from bucketwarden.principals import RoleAssumption
from bucketwarden.spec import DEFAULT_STATEMENT_SID, ManagementPolicy

# The CLI's one exit-code table: a bucket that blocks AWS Backup is a failed check.
EXIT_CLEAR, EXIT_BLOCKING = ExitCode.OK, ExitCode.FAILED


# A table of flags, parallel to cli.py's add_fact_flags (which audit takes too): declarations, not shared logic.
def add_arguments(p: argparse.ArgumentParser) -> None:
    add_repeatable(p, "--bucket", metavar="GLOB", help="bucket name glob (repeatable)")
    add_repeatable(p, "--tag", metavar="KEY=VALUE", help="bucket tag filter (repeatable)")
    add_repeatable(p, "--region", metavar="REGION", help="only buckets in it (repeatable)")
    p.add_argument("--assume-role-arn", metavar="ARN", help="audit through this role (another account)")
    add_repeatable(
        p,
        "--backup-role",
        metavar="NAME|ARN",
        help="AWS Backup role to check (repeatable; default AWSBackupDefaultServiceRole when it exists)",
    )
    p.add_argument("--operator-role", metavar="NAME|ARN", help="the operator's role (default: whoever runs the audit)")
    p.add_argument("--statement-sid", default=DEFAULT_STATEMENT_SID, help="bucketwarden's Sid (default %(default)s)")
    p.add_argument("--output", choices=("table", "json", "html"), default="table")
    p.add_argument("--emit-manifests", metavar="DIR", help="write a ProtectedBucket per bucket that needs one")
    p.add_argument("--enforce", action="store_true", help="emit managementPolicy Enforce instead of Observe")
    p.add_argument("--namespace", metavar="NS", help="namespace of the emitted manifests")
    p.add_argument("--concurrency", type=int, default=DEFAULT_CONCURRENCY, help="buckets read at once")
    p.add_argument("--fail-on-unknown", action="store_true", help="exit 1 also when a bucket's verdict is Unknown")
    p.add_argument("--prove", action="store_true", help="also run the symbolic prover (z3, the 'prove' extra)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None, help="default: on a terminal")


def _tags(pairs: Iterable[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise AuditUsageError(f"--tag {pair!r}: expected KEY=VALUE, e.g. team=payments")
        out[key] = value
    return out


class _StderrProgress:
    def __init__(self, err: IO[str]) -> None:
        self._err = err

    def __call__(self, done: int, audit: BucketAudit) -> None:
        self._err.write(f"\raudited {done} buckets ({audit.bucket[:40]})\033[K")
        self._err.flush()

    def clear(self) -> None:
        self._err.write("\r\033[K")
        self._err.flush()


def exit_code(summary: AuditSummary, *, fail_on_unknown: bool = False) -> int:
    """0: no bucket blocks AWS Backup; 1: at least one does (or is Unknown, with --fail-on-unknown)."""
    if summary.blocking or (fail_on_unknown and summary.unknown):
        return EXIT_BLOCKING
    return EXIT_CLEAR


def run_audit(
    args: argparse.Namespace,
    *,
    gateway: AwsGateway | None = None,
    out: IO[str] | None = None,
    err: IO[str] | None = None,
) -> int:
    out = out or sys.stdout
    err = err or sys.stderr
    if gateway is None:
        gateway = AwsGateway(AwsSettings(max_pool_connections=max(32, 2 * args.concurrency)))
    scope = AuditScope(
        names=tuple(args.bucket),
        tags=_tags(args.tag),
        regions=tuple(args.region),
        assume_role=RoleAssumption.of(args.assume_role_arn),
    )
    ctx = audit_context(
        gateway,
        backup_roles=args.backup_role,
        operator_role=args.operator_role,
        statement_sid=args.statement_sid,
        assume_role=RoleAssumption.of(args.assume_role_arn),
        aws_ranges=getattr(args, "aws_ranges", ()),
        prove=getattr(args, "prove", False),
    )
    for missing in ctx.missing_roles:
        err.write(f"bucketwarden audit: warning: backup role {missing} does not exist\n")
    audits: Iterable[BucketAudit] = audit_buckets(gateway, ctx, scope, concurrency=args.concurrency)
    writer = None
    if args.emit_manifests:
        writer = ManifestWriter(
            Path(args.emit_manifests),
            management_policy=ManagementPolicy.ENFORCE if args.enforce else ManagementPolicy.OBSERVE,
            namespace=args.namespace,
            statement_sid=args.statement_sid,
        )
        audits = writer.tap(audits)
    show_progress = args.progress if args.progress is not None else err.isatty()
    progress = _StderrProgress(err) if show_progress else None
    writers = {"table": write_table, "json": write_json, "html": write_html}
    try:
        summary = writers[args.output](audits, out, progress=progress)
    finally:
        if progress is not None:
            progress.clear()
    if writer is not None:
        path = writer.close()
        err.write(f"bucketwarden audit: wrote {len(writer.written)} manifests and {path}\n")
        for bucket, why in writer.skipped:
            err.write(f"bucketwarden audit: warning: no manifest for {bucket}: {why}\n")
    if args.output != "table":
        err.write(summary.line() + "\n")
    return exit_code(summary, fail_on_unknown=args.fail_on_unknown)
