"""The audit's table and HTML report restore apart from backup (two managed policies, two promises)."""

from __future__ import annotations

import io

from bucketwarden.audit._model import BucketAudit, Verdict
from bucketwarden.audit._report import write_html, write_table

RESTORE_ONLY = BucketAudit(
    bucket="team-a-data",
    region="eu-west-1",
    backup=Verdict.PASS,
    operator=Verdict.PASS,
    versioning="Enabled",
    has_policy=True,
    bucketwarden_statement="current",
    restore=Verdict.FAIL,
)


def test_audit_table_has_a_restore_column_beside_backup() -> None:
    out = io.StringIO()
    write_table([RESTORE_ONLY], out)
    header, row = out.getvalue().splitlines()[:2]
    names = header.split()
    cells = row.split()
    assert names[3:5] == ["BACKUP", "RESTORE"]
    assert cells[3:5] == [Verdict.PASS.value, Verdict.FAIL.value]


def test_audit_html_has_a_restore_column_beside_backup() -> None:
    out = io.StringIO()
    write_html([RESTORE_ONLY], out)
    html = out.getvalue()
    assert "<th>AWS Backup</th><th>Restore</th>" in html
    assert f"<td>{Verdict.PASS.value}</td><td>{Verdict.FAIL.value}</td>" in html
