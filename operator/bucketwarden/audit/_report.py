"""Audit output: a streamed table, streamed JSON, and one self-contained HTML file with an inline SVG chart."""

from __future__ import annotations

import contextlib
import html
import json
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import IO, Protocol

from bucketwarden.audit._model import STATUS_ORDER, AuditSummary, BucketAudit, Status

STATUS_COLOURS: dict[Status, str] = {
    Status.BLOCKS_BACKUP: "#c62828",
    Status.UNKNOWN: "#757575",
    Status.NOT_READY: "#ef6c00",
    Status.READY: "#2e7d32",
}
STATUS_LABELS: dict[Status, str] = {
    Status.BLOCKS_BACKUP: "Blocks AWS Backup",
    Status.UNKNOWN: "Unknown",
    Status.NOT_READY: "Not ready",
    Status.READY: "Ready",
}


class Progress(Protocol):
    """Shows how far the audit is (on stderr); ``clear()`` erases it before a table row reaches the same terminal."""

    def __call__(self, done: int, audit: BucketAudit) -> None: ...

    def clear(self) -> None: ...


def _tap(audits: Iterable[BucketAudit], summary: AuditSummary, progress: Progress | None) -> Iterator[BucketAudit]:
    for audit in audits:
        summary.add(audit)
        yield audit
        if progress is not None:  # after the row is out, so the progress line is the terminal's last line
            progress(summary.total, audit)


# Backup and restore are different promises (different managed policies): a column each.
_COLUMNS = (
    ("BUCKET", 40),
    ("REGION", 14),
    ("STATUS", 13),
    ("BACKUP", 8),
    ("RESTORE", 8),
    ("OPERATOR", 9),
    ("VERSIONING", 11),
)


def _table_row(cells: Iterable[str]) -> str:
    parts = [c.ljust(w) for c, (_, w) in zip(cells, _COLUMNS, strict=False)]
    return "  ".join(parts)


def write_table(audits: Iterable[BucketAudit], out: IO[str], *, progress: Progress | None = None) -> AuditSummary:
    """One row per bucket as it is classified (fixed widths, so nothing is held back), then the summary."""
    summary = AuditSummary()
    out.write(_table_row(name for name, _ in _COLUMNS) + "  BUCKETWARDEN  FINDINGS\n")
    for a in _tap(audits, summary, progress):
        if progress is not None:
            progress.clear()
        cells = (
            a.bucket,
            a.region or "?",
            a.status.value,
            a.backup.value,
            a.restore.value,
            a.operator.value,
            a.versioning or "Off",
        )
        out.write(f"{_table_row(cells)}  {a.bucketwarden_statement.ljust(12)}  {','.join(a.codes) or '-'}\n")
        out.flush()
    if progress is not None:
        progress.clear()
    out.write(summary.line() + "\n")
    return summary


def write_json(audits: Iterable[BucketAudit], out: IO[str], *, progress: Progress | None = None) -> AuditSummary:
    """``{"buckets": [...], "summary": {...}}``, written bucket by bucket."""
    summary = AuditSummary()
    out.write('{"buckets": [')
    for i, a in enumerate(_tap(audits, summary, progress)):
        out.write(("," if i else "") + "\n  " + json.dumps(a.to_json(), sort_keys=True))
    out.write("\n],\n" + '"summary": ' + json.dumps(summary.to_json(), sort_keys=True) + "}\n")
    return summary


# --- HTML --------------------------------------------------------------------------------------------------------

_CSS = """
body{font:14px/1.4 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:24px;color:#212121}
h1{font-size:22px;margin:0 0 4px}
.sub{color:#616161;margin:0 0 16px}
.summary{display:flex;gap:32px;align-items:center;margin:8px 0 24px}
.counts{display:flex;gap:12px}
.count{border-radius:6px;padding:10px 14px;color:#fff;min-width:110px}
.count b{display:block;font-size:26px}
table{border-collapse:collapse;width:100%}
th,td{border-bottom:1px solid #e0e0e0;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#fafafa;position:sticky;top:0}
td.s,td.n{font-weight:600;white-space:nowrap}td.n{font-weight:400}
.f{margin:0;padding-left:16px}
.f li{margin:2px 0;font-size:12px}
.sev-Error{color:#c62828}.sev-Warning{color:#ef6c00}.sev-Info{color:#616161}
code{font-size:12px;background:#f5f5f5;padding:1px 3px;border-radius:3px}
"""


def _chart(summary: AuditSummary) -> str:
    """A horizontal bar chart of buckets by status, as inline SVG (no script, no external asset)."""
    width, bar_h, gap, label_w = 520, 26, 10, 150
    biggest = max([summary.by_status[s.value] for s in STATUS_ORDER] + [1])
    rows = []
    for i, status in enumerate(STATUS_ORDER):
        n = summary.by_status[status.value]
        y = i * (bar_h + gap)
        w = 0 if n == 0 else max(2, round((width - label_w - 60) * n / biggest))
        rows.append(
            f'<text x="0" y="{y + 18}" font-size="14">{STATUS_LABELS[status]}</text>'
            f'<rect x="{label_w}" y="{y}" width="{w}" height="{bar_h}" rx="3" fill="{STATUS_COLOURS[status]}">'
            f"<title>{STATUS_LABELS[status]}: {n}</title></rect>"
            f'<text x="{label_w + w + 8}" y="{y + 18}" font-size="14" font-weight="600" '
            f'data-status="{status.value}">{n}</text>'
        )
    height = len(STATUS_ORDER) * (bar_h + gap)
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" role="img" aria-label="buckets by status" '
        f'width="{width}" height="{height}" viewBox="0 0 {width} {height}">' + "".join(rows) + "</svg>"
    )


def _html_row(a: BucketAudit) -> str:
    e = html.escape
    findings = "".join(
        f'<li class="sev-{e(f.severity)}"><code>{e(f.code)}</code> {e(f.message)}</li>' for f in a.findings
    )
    example = f"<br><small>counterexample: {e(a.counterexample)}</small>" if a.counterexample else ""
    return (
        f'<tr data-status="{a.status.value}"><td class="n">{e(a.bucket)}</td><td class="n">{e(a.region or "?")}</td>'
        f'<td class="s" style="color:{STATUS_COLOURS[a.status]}">{STATUS_LABELS[a.status]}</td>'
        f"<td>{a.backup.value}</td><td>{a.restore.value}</td><td>{a.operator.value}</td>"
        f"<td>{e(a.versioning or 'Off')}</td>"
        f"<td>{e(a.bucketwarden_statement)}</td>"
        f'<td><ul class="f">{findings}</ul>{example}</td></tr>\n'
    )


def write_html(
    audits: Iterable[BucketAudit],
    out: IO[str],
    *,
    title: str = "bucketwarden audit",
    progress: Progress | None = None,
    generated: datetime | None = None,
) -> AuditSummary:
    """One self-contained page (inline CSS and SVG, no script, no external asset), worst buckets first.

    Rows are spooled to one temporary file per status while they stream in, because the chart at the top needs the
    final counts and the rows are grouped by status; memory holds one row at a time.
    """
    summary = AuditSummary()
    when = (generated or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    with contextlib.ExitStack() as stack:
        spools = {s: stack.enter_context(tempfile.TemporaryFile("w+", encoding="utf-8")) for s in STATUS_ORDER}
        for a in _tap(audits, summary, progress):
            spools[a.status].write(_html_row(a))
        counts = "".join(
            f'<div class="count" style="background:{STATUS_COLOURS[s]}" data-status="{s.value}">'
            f"<b>{summary.by_status[s.value]}</b>{STATUS_LABELS[s]}</div>"
            for s in STATUS_ORDER
        )
        line = (
            f"{summary.total} buckets audited, {summary.blocking} block AWS Backup, {summary.unknown} unknown "
            f"&middot; generated {when}"
        )
        out.write(
            '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            f"<h1>{html.escape(title)}</h1>"
            f'<p class="sub" id="summary-line">{line}</p>\n'
            f'<div class="summary">{_chart(summary)}<div class="counts">{counts}</div></div>\n'
            "<table><thead><tr><th>Bucket</th><th>Region</th><th>Status</th><th>AWS Backup</th><th>Restore</th>"
            "<th>Operator</th><th>Versioning</th><th>bucketwarden</th><th>Findings</th></tr></thead><tbody>\n"
        )
        for status in STATUS_ORDER:
            spools[status].seek(0)
            shutil.copyfileobj(spools[status], out)
        out.write("</tbody></table>\n</body></html>\n")
    return summary
