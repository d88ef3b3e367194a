"""The HTML audit report in a real headless browser (Chromium): the page shows the counts, the chart is drawn.

Skipped where Chromium is not installed (``apt-get install chromium``). Where it is, the page is rendered from
the hand-made 50-bucket table, and both the rendered DOM and the pixels of a screenshot are checked.
"""

from __future__ import annotations

import html.parser
import shutil
import struct
import subprocess
import zlib
from collections import Counter
from pathlib import Path

import pytest
import yaml

from bucketwarden.audit import STATUS_ORDER, AuditContext, BucketAudit, BucketFacts, classify, write_html
from bucketwarden.audit._report import STATUS_COLOURS
from bucketwarden.principals import CallerIdentity, ResolvedRole
from tests.aws._audit_seed import Ids, policy_for

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
FIXTURE = Path(__file__).resolve().parents[1] / "aws" / "fixtures" / "audit_account.yaml"
ROLE = ResolvedRole(
    "AWSBackupDefaultServiceRole",
    "AWSBackupDefaultServiceRole",
    "arn:aws:iam::123456789012:role/service-role/AWSBackupDefaultServiceRole",
    "AROAEXAMPLEBACKUP0001",
)
OPERATOR = CallerIdentity(
    "123456789012", "arn:aws:sts::123456789012:assumed-role/bucketwarden/bucketwarden", "AKIAEXAMPLEOPERATOR1"
)

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (apt-get install chromium)")


def fixture_audits() -> tuple[list[BucketAudit], dict[str, int]]:
    doc = yaml.safe_load(FIXTURE.read_text(encoding="utf-8"))
    ids = Ids(ROLE.role_id or "", ROLE.arn, OPERATOR.user_id)
    ctx = AuditContext((ROLE,), OPERATOR)
    audits = [
        classify(BucketFacts(r["bucket"], "eu-west-1", policy_for(r["seed"], r["bucket"], ids), r["versioning"]), ctx)
        for r in doc["buckets"]
    ]
    return audits, doc["summary"]


def chromium(*args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,1000"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120, check=True)


class CountsParser(html.parser.HTMLParser):
    """The number shown in each summary box (``<div class="count" data-status=...><b>N</b>``) and the rows."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: dict[str, int] = {}
        self.rows: Counter[str] = Counter()
        self._box: str | None = None
        self._in_b = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "div" and a.get("class") == "count":
            self._box = a.get("data-status")
        elif tag == "b" and self._box:
            self._in_b = True
        elif tag == "tr" and a.get("data-status"):
            self.rows[str(a["data-status"])] += 1

    def handle_data(self, data: str) -> None:
        if self._in_b and self._box:
            self.counts[self._box] = int(data)
            self._in_b, self._box = False, None


def png_pixels(data: bytes) -> tuple[int, int, list[tuple[int, int, int]]]:
    """Decode an 8-bit RGB/RGBA PNG (what Chromium writes) into RGB pixels: enough to check colours."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width, height, channels = 8, b"", 0, 0, 0
    while pos < len(data):
        (length,) = struct.unpack(">I", data[pos : pos + 4])
        kind, body = data[pos + 4 : pos + 8], data[pos + 8 : pos + 8 + length]
        if kind == b"IHDR":
            width, height, depth, colour = struct.unpack(">IIBB", body[:10])
            assert depth == 8 and colour in (2, 6)
            channels = 3 if colour == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + length
    raw, stride, rows = zlib.decompress(idat), width * channels, []
    previous = bytearray(stride)
    for y in range(height):
        filter_type, line = raw[y * (stride + 1)], bytearray(raw[y * (stride + 1) + 1 : (y + 1) * (stride + 1)])
        for i in range(stride):
            left = line[i - channels] if i >= channels else 0
            up, up_left = previous[i], previous[i - channels] if i >= channels else 0
            if filter_type == 1:
                line[i] = (line[i] + left) & 0xFF
            elif filter_type == 2:
                line[i] = (line[i] + up) & 0xFF
            elif filter_type == 3:
                line[i] = (line[i] + (left + up) // 2) & 0xFF
            elif filter_type == 4:
                p = left + up - up_left
                pa, pb, pc = abs(p - left), abs(p - up), abs(p - up_left)
                line[i] = (line[i] + (left if pa <= pb and pa <= pc else up if pb <= pc else up_left)) & 0xFF
        rows.append(bytes(line))
        previous = line
    pixels = [tuple(r[x * channels : x * channels + 3]) for r in rows for x in range(width)]
    return width, height, pixels  # type: ignore[return-value]


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def test_audit_html_in_chromium_shows_the_counts_of_the_seeded_account(tmp_path: Path) -> None:
    audits, expected = fixture_audits()
    page = tmp_path / "audit.html"
    with page.open("w", encoding="utf-8") as out:
        write_html(iter(audits), out)

    dom = chromium("--dump-dom", page.as_uri()).stdout
    parser = CountsParser()
    parser.feed(dom)
    assert parser.counts == expected  # what the browser shows, per status
    assert dict(parser.rows) == expected  # and one row per bucket
    assert f"{sum(expected.values())} buckets audited, {expected['BlocksBackup']} block AWS Backup" in dom

    shot = tmp_path / "audit.png"
    chromium(f"--screenshot={shot}", page.as_uri())
    width, height, pixels = png_pixels(shot.read_bytes())
    assert (width, height) == (1400, 1000)
    colours = Counter(pixels)
    for status in STATUS_ORDER:
        # Each status's bar and box are drawn in its colour, bigger bars with more pixels.
        assert colours[hex_rgb(STATUS_COLOURS[status])] > 1000, status
    red, grey = (colours[hex_rgb(STATUS_COLOURS[s])] for s in STATUS_ORDER[:2])
    assert red > grey  # 21 buckets against 5: the chart is proportional, not decoration
