"""examples/drift-events: the CloudFormation template and the Terraform module that feed the drift queue.

Both are checked offline: cfn-lint (pinned) on the template, and the template's and module's event patterns
against the events the operator parses. ``terraform validate`` runs when the terraform binary and the
hashicorp/aws provider (a filesystem mirror, or a cached init) are present; CI without them skips it.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml

from bucketwarden.aws import parse_policy_event
from bucketwarden.aws._drift_queue import POLICY_EVENTS
from tests.chart.chartkit import REPO_ROOT

EXAMPLES = REPO_ROOT / "examples" / "drift-events"
TEMPLATE = EXAMPLES / "cloudformation.yaml"
MODULE = EXAMPLES / "terraform"
FIXTURES = REPO_ROOT / "tests" / "fixtures" / "cloudtrail"
# Where a machine image may keep the hashicorp/aws provider for offline use; BUCKETWARDEN_TF_MIRROR overrides.
MIRRORS = [os.environ.get("BUCKETWARDEN_TF_MIRROR", ""), "/opt/tf-plugins", str(Path.home() / ".terraform.d/plugins")]


class _CfnLoader(yaml.SafeLoader):
    """YAML with CloudFormation's short tags (!Ref, !GetAtt) read as plain values."""


_CfnLoader.add_multi_constructor("!", lambda loader, suffix, node: loader.construct_scalar(node))


def template() -> dict[str, Any]:
    loaded: dict[str, Any] = yaml.load(TEMPLATE.read_text(encoding="utf-8"), Loader=_CfnLoader)
    return loaded


def matches(pattern: dict[str, Any], event: dict[str, Any]) -> bool:
    """EventBridge matching, for the subset the rule uses: every key's value is one of the listed values."""
    for key, wanted in pattern.items():
        if isinstance(wanted, dict):
            if not isinstance(event.get(key), dict) or not matches(wanted, event[key]):
                return False
        elif event.get(key) not in wanted:
            return False
    return True


def fixture_events() -> list[dict[str, Any]]:
    return [json.loads(p.read_text(encoding="utf-8")) for p in sorted(FIXTURES.glob("*.json"))]


def test_drift_events_template_passes_cfn_lint() -> None:
    result = subprocess.run(
        [str(Path(sys.executable).with_name("cfn-lint")), str(TEMPLATE)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_drift_events_template_rule_matches_what_the_operator_parses() -> None:
    resources = template()["Resources"]
    pattern = resources["DriftRule"]["Properties"]["EventPattern"]
    assert set(pattern["detail"]["eventName"]) == POLICY_EVENTS
    events = fixture_events()
    assert {e["detail"]["eventName"] for e in events} == POLICY_EVENTS
    for event in events:
        assert matches(pattern, event)
        assert parse_policy_event(json.dumps(event)) is not None
    other = {**events[0], "detail": {**events[0]["detail"], "eventName": "PutBucketTagging"}}
    assert not matches(pattern, other)


def test_drift_events_template_lets_only_the_rule_send() -> None:
    resources = template()["Resources"]
    [statement] = resources["DriftQueuePolicy"]["Properties"]["PolicyDocument"]["Statement"]
    assert statement["Principal"] == {"Service": "events.amazonaws.com"}
    assert statement["Action"] == "sqs:SendMessage"
    assert statement["Condition"] == {"ArnEquals": {"aws:SourceArn": "DriftRule.Arn"}}


def test_drift_events_queue_name_fits_the_operator_iam_policy() -> None:
    policy = json.loads((REPO_ROOT / "docs" / "iam-policy.json").read_text(encoding="utf-8"))
    [statement] = [s for s in policy["Statement"] if s.get("Sid") == "ReadDriftQueue"]
    prefix = statement["Resource"].rsplit(":", 1)[1].rstrip("*")
    assert template()["Parameters"]["QueueName"]["Default"].startswith(prefix)
    variables = (MODULE / "variables.tf").read_text(encoding="utf-8")
    default = re.search(r'variable "queue_name" \{.*?default\s*=\s*"([^"]+)"', variables, re.S)
    assert default is not None and default.group(1).startswith(prefix)


def test_drift_events_terraform_pattern_equals_the_template() -> None:
    main = (MODULE / "main.tf").read_text(encoding="utf-8")
    names = re.search(r"eventName\s*=\s*\[([^\]]*)\]", main)
    assert names is not None
    assert {n.strip().strip('"') for n in names.group(1).split(",")} == POLICY_EVENTS
    assert '"AWS API Call via CloudTrail"' in main and '"aws.s3"' in main


def _mirror() -> str | None:
    for path in MIRRORS:
        if path and (Path(path) / "registry.terraform.io" / "hashicorp" / "aws").is_dir():
            return path
    return None


@pytest.mark.skipif(shutil.which("terraform") is None, reason="terraform is not installed (CI)")
def test_drift_events_terraform_module_validates(tmp_path: Path) -> None:
    mirror = _mirror()
    if mirror is None:
        pytest.skip("no offline copy of the hashicorp/aws provider")
    config = tmp_path / "terraformrc"
    config.write_text(f'provider_installation {{\n  filesystem_mirror {{\n    path = "{mirror}"\n  }}\n}}\n')
    work = tmp_path / "module"
    shutil.copytree(MODULE, work)
    env = {**os.environ, "TF_CLI_CONFIG_FILE": str(config), "TF_IN_AUTOMATION": "1", "CHECKPOINT_DISABLE": "1"}
    for args in (["init", "-backend=false", "-input=false", "-no-color"], ["validate", "-no-color"]):
        result = subprocess.run(["terraform", *args], cwd=work, env=env, capture_output=True, text=True, check=False)
        assert result.returncode == 0, result.stdout + result.stderr
    fmt = subprocess.run(["terraform", "fmt", "-check", "-recursive", str(MODULE)], capture_output=True, text=True)
    assert fmt.returncode == 0, fmt.stdout
