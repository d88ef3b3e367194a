"""One exit-code table for every command: usage errors (64) never look like "changes pending" (2) or a failure (1)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from bucketwarden.cli import DEMO_INSTALL, main
from bucketwarden.exitcodes import ExitCode, exit_code_help
from tests.shared import GOLDEN

SPEC = str(GOLDEN / "seed-spec.yaml")


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(["plan"], id="missing-required-option"),
        pytest.param(["plan", "-f", SPEC, "--no-such-flag"], id="unknown-option"),
        pytest.param(["apply", "-f", SPEC, "--output", "xml"], id="bad-choice"),
        pytest.param(["no-such-command"], id="unknown-command"),
        pytest.param([], id="no-command"),
    ],
)
def test_cli_argparse_usage_errors_exit_64_not_2(capsys: pytest.CaptureFixture[str], argv: list[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main(argv)
    assert exited.value.code == ExitCode.USAGE.value == 64
    err = capsys.readouterr().err
    assert "usage: bucketwarden" in err and "error:" in err


def test_exit_codes_are_distinct_and_documented_in_help(capsys: pytest.CaptureFixture[str]) -> None:
    values = [code.value for code in ExitCode]
    assert len(values) == len(set(values))
    assert ExitCode["VERIFICATION_FAILED"] is ExitCode.FAILED  # an alias, for the commands that only verify
    assert len({ExitCode.USAGE, ExitCode.FAILED, ExitCode.CHANGES_PENDING}) == 3
    with pytest.raises(SystemExit) as exited:
        main(["--help"])
    assert exited.value.code == 0
    assert exit_code_help() in capsys.readouterr().out


# Modules a plain `pip install bucketwarden` lacks: the test kit and what it brings.
BLOCK_EXTRAS = textwrap.dedent(
    """
    import os
    import sys

    class BlockExtras:
        blocked = set(os.environ.get("BLOCKED", "bucketwarden_testkit moto flask flask_cors kmock").split())

        def find_spec(self, name, path=None, target=None):
            if name.partition(".")[0] in self.blocked:
                raise ModuleNotFoundError(f"No module named {name!r}", name=name)
            return None

    sys.meta_path.insert(0, BlockExtras())
    from bucketwarden.cli import main

    sys.exit(main(sys.argv[1:]))
    """
)


@pytest.mark.parametrize(
    ("argv", "missing"),
    [
        pytest.param(["demo"], "bucketwarden_testkit, moto, flask, flask_cors, kmock", id="demo"),
        pytest.param(
            ["demo", "--no-kubernetes"], "bucketwarden_testkit, moto, flask, flask_cors", id="demo-no-kubernetes"
        ),
    ],
)
def test_cli_demo_without_the_extras_prints_one_line_not_a_traceback(argv: list[str], missing: str) -> None:
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_EXTRAS, *argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == ExitCode.UNAVAILABLE
    assert result.stdout == ""
    assert result.stderr.splitlines() == [f"bucketwarden demo: needs the test kit (missing: {missing}): {DEMO_INSTALL}"]


def test_cli_demo_without_only_the_kit_exits_69_naming_it() -> None:
    """moto and kmock installed (as in the dev venv) are not enough: the demo world lives in the kit."""
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_EXTRAS, "demo"],
        env={**os.environ, "BLOCKED": "bucketwarden_testkit"},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == ExitCode.UNAVAILABLE.value == 69
    assert result.stderr.splitlines() == [
        f"bucketwarden demo: needs the test kit (missing: bucketwarden_testkit): {DEMO_INSTALL}"
    ]


def test_cli_other_commands_work_without_the_extras() -> None:
    """plan/render need none of the demo extra: the blocker above does not break them."""
    argv = ["render", "-f", SPEC, "--role-id", "AWSBackupDefaultServiceRole=AROASAMPLESAMPLESAMPL"]
    result = subprocess.run(
        [sys.executable, "-c", BLOCK_EXTRAS, *argv], capture_output=True, text=True, timeout=120, check=False
    )
    assert result.returncode == ExitCode.OK, result.stderr
    assert '"Sid": "BucketWardenIpRestriction"' in result.stdout
