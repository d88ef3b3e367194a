"""`bucketwarden demo`, the README's first command, must stay green: run it as a user would."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from bucketwarden.testing import scrubbed_environ


@pytest.mark.e2e
@pytest.mark.parametrize("flags", [pytest.param([], id="operator"), pytest.param(["--no-kubernetes"], id="reconciler")])
def test_demo_every_step_comes_out_as_expected(flags: list[str]) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "bucketwarden", "demo", *flags],
        env=scrubbed_environ({}),
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    match = re.search(r"^(\d+) of (\d+) checks passed", result.stdout, re.MULTILINE)
    assert match is not None and match.group(1) == match.group(2) and int(match.group(2)) >= 14
    assert "[FAILED]" not in result.stdout
    assert "DENIED (ExplicitDeny, Sid SourceIPRestriction001)" in result.stdout  # the outage is shown first
    assert "Traceback" not in result.stderr
