"""Fixtures for the reliability suite: moto, the fault proxy, the Kubernetes emulator, and the figures it reports.

Figures (fault rates survived, statements lost, GET-to-PUT window, ...) are collected with the ``figures``
fixture and printed at the end of the run; docs/reliability.md quotes them.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bucketwarden_testkit import KubeEmulator, MotoServer, grant_namespaces, load_crds, moto_for_tests
from tests.shared import REPO_ROOT

CRD_FILES = sorted((REPO_ROOT / "crds").glob("*.yaml"))
FIGURES_FILE_VARIABLE = "BUCKETWARDEN_RELIABILITY_FIGURES"

_FIGURES: dict[str, Any] = {}


@pytest.fixture(scope="session")
def figures() -> dict[str, Any]:
    """Named measurements; printed in the terminal summary (and written to $BUCKETWARDEN_RELIABILITY_FIGURES)."""
    return _FIGURES


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not _FIGURES:
        return
    terminalreporter.section("bucketwarden reliability figures")
    for name in sorted(_FIGURES):
        terminalreporter.write_line(f"{name}: {_FIGURES[name]}")
    target = os.environ.get(FIGURES_FILE_VARIABLE)
    if target:
        Path(target).write_text(json.dumps(_FIGURES, indent=2, sort_keys=True) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def moto() -> Iterator[MotoServer]:
    """moto behind the enforcing S3 front (BUCKETWARDEN_S3_FRONT=0: bare moto): ``endpoint_url`` is the cluster's
    NAT network, so a bucket policy that locks out the operator or the backup role fails the test, as on AWS;
    ``client()`` is the test's own unenforced view."""
    with moto_for_tests() as server:
        yield server


@pytest.fixture(scope="session")
def kube() -> Iterator[KubeEmulator]:
    """The emulated Kubernetes API with the product's CRD applied (it has no schema validation or CEL)."""
    with KubeEmulator(resources=()) as emulator, emulator.client() as client:
        for crd in load_crds(CRD_FILES):
            client.apply_crd(crd)
        # The suite's own namespaces (bw-*) are granted every bucket; the tenancy tests use team-* namespaces,
        # which only their own TenantPolicies grant.
        grant_namespaces(client, "reliability-suite", namespaces=["bw-*"], assumeRoleArns=["arn:aws:iam::*:role/*"])
        yield emulator
