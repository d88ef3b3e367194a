"""Regenerate docs/audit-report.png: audit the seeded 50-bucket account on moto, render the HTML in Chromium.

Run: ``.venv/bin/python tools/audit_screenshot.py`` (needs ``apt-get install chromium``).
"""

from __future__ import annotations

import io
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "operator")]

from bucketwarden.audit import DEFAULT_BACKUP_ROLE, run_audit  # noqa: E402
from bucketwarden.aws import AwsGateway, AwsSettings  # noqa: E402
from bucketwarden.cli import build_parser  # noqa: E402
from bucketwarden_testkit import MotoServer  # noqa: E402
from tests.aws._audit_seed import Ids, seed_bucket  # noqa: E402

TRUST = (
    '{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Principal":{"Service":"backup.amazonaws.com"},'
    '"Action":"sts:AssumeRole"}]}'
)
OUT = ROOT / "docs" / "audit-report.png"


def main() -> int:
    chromium = shutil.which("chromium")
    if chromium is None:
        print("chromium is not installed (apt-get install chromium)", file=sys.stderr)
        return 1
    rows = yaml.safe_load((ROOT / "tests/aws/fixtures/audit_account.yaml").read_text(encoding="utf-8"))["buckets"]
    with MotoServer() as moto, tempfile.TemporaryDirectory() as tmp:
        s3, iam, sts = moto.client("s3"), moto.client("iam"), moto.client("sts")
        role = iam.create_role(RoleName=DEFAULT_BACKUP_ROLE, Path="/service-role/", AssumeRolePolicyDocument=TRUST)
        ids = Ids(role["Role"]["RoleId"], role["Role"]["Arn"], sts.get_caller_identity()["UserId"])
        for row in rows:
            seed_bucket(s3, row["bucket"], row["seed"], row["versioning"], ids)
        gateway = AwsGateway(AwsSettings(region=moto.region, endpoint_url=moto.endpoint_url), session=moto.session())
        page = Path(tmp) / "audit.html"
        with page.open("w", encoding="utf-8") as out:
            run_audit(
                build_parser().parse_args(["audit", "--output", "html"]), gateway=gateway, out=out, err=io.StringIO()
            )
        flags = ["--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--window-size=1400,900"]
        subprocess.run([chromium, *flags, f"--screenshot={OUT}", page.as_uri()], check=True, capture_output=True)
    print(f"wrote {OUT}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
