"""The readiness checks are on by default in the operator and file mode, and one setting switches them off."""

from __future__ import annotations

import pytest

from bucketwarden.aws import InMemoryAws
from bucketwarden.filemode import readiness_of
from bucketwarden.k8s import Metrics, OperatorSettings, default_reconciler


@pytest.mark.parametrize(("enabled", "expected"), [(None, True), ("true", True), ("false", False)], ids=str)
def test_operator_readiness_checks_follow_the_setting(
    monkeypatch: pytest.MonkeyPatch, enabled: str | None, expected: bool
) -> None:
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    if enabled is not None:
        monkeypatch.setenv("BUCKETWARDEN_BACKUP_READINESS_CHECKS", enabled)
    settings = OperatorSettings()
    assert settings.backup_readiness_checks is expected
    assert default_reconciler(settings, Metrics()).readiness_checks is expected


def test_file_mode_readiness_needs_the_real_gateway_and_the_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    from bucketwarden.aws import AwsGateway, AwsSettings

    gateway = AwsGateway(AwsSettings(region="us-east-1", endpoint_url="http://127.0.0.1:9"))
    assert readiness_of(gateway) is gateway.readiness
    assert readiness_of(InMemoryAws()) is None  # the in-memory double has no readiness reads
    monkeypatch.setenv("BUCKETWARDEN_BACKUP_READINESS_CHECKS", "false")
    assert readiness_of(gateway) is None
