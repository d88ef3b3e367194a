"""`render --format terraform-json` through real Terraform: the aws_iam_policy_document it renders is our policy.

Terraform and the hashicorp/aws provider come from the machine image (a local filesystem mirror); the test is
skipped where either is absent. No AWS call is made: aws_iam_policy_document is computed by the provider.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from bucketwarden.cli import main
from bucketwarden.formats import terraform_name
from bucketwarden.policy import PolicyDocument
from tests.shared import GOLDEN

MIRROR = Path(os.environ.get("BUCKETWARDEN_TF_PROVIDER_MIRROR", "/opt/tf-plugins"))
ARGS = [
    "-f",
    str(GOLDEN / "seed-spec.yaml"),
    "--existing-policy",
    str(GOLDEN / "seed-original-policy.json"),
    "--role-id",
    "AWSBackupDefaultServiceRole=AROASAMPLESAMPLESAMPL",
    "--operator-user-id",
    "AROAOPERATOROPERATOR1:bucketwarden",
]

pytestmark = [
    pytest.mark.timeout(300),
    pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not on the PATH"),
    pytest.mark.skipif(not (MIRROR / "registry.terraform.io" / "hashicorp" / "aws").is_dir(), reason="no aws mirror"),
]


def _render(capsys: pytest.CaptureFixture[str], fmt: str) -> str:
    assert main(["render", *ARGS, "--format", fmt]) == 0
    return capsys.readouterr().out


def test_terraform_renders_the_same_policy_from_our_data_source(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "bucketwarden.tf.json").write_text(_render(capsys, "terraform-json"))
    expected = PolicyDocument.parse(_render(capsys, "policy"))
    name = terraform_name("awsbackup-test-001")
    main_tf = {
        "terraform": {"required_providers": {"aws": {"source": "hashicorp/aws"}}},
        "provider": {
            "aws": {
                "region": "us-east-1",
                "access_key": "test",
                "secret_key": "test",
                "skip_credentials_validation": True,
                "skip_requesting_account_id": True,
                "skip_metadata_api_check": True,
            }
        },
        "output": {"policy": {"value": f"${{data.aws_iam_policy_document.{name}.json}}"}},
    }
    (tmp_path / "main.tf.json").write_text(json.dumps(main_tf))
    (tmp_path / "cli.tfrc").write_text(f'provider_installation {{\n  filesystem_mirror {{ path = "{MIRROR}" }}\n}}\n')
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(tmp_path / "cli.tfrc"), "TF_IN_AUTOMATION": "1"}
    env.pop("AWS_ENDPOINT_URL", None)

    def terraform(*argv: str) -> str:
        done = subprocess.run(
            ["terraform", *argv], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=240, check=False
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    terraform("init", "-input=false", "-no-color")
    terraform("validate", "-no-color")
    terraform("apply", "-auto-approve", "-input=false", "-no-color")
    rendered = PolicyDocument.parse(terraform("output", "-raw", "policy"))
    assert rendered.same_meaning(expected), rendered.to_json(pretty=True)
