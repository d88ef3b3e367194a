"""The exit codes of every ``bucketwarden`` command: one table, used by the code, ``--help`` and the README."""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """What a ``bucketwarden`` process's exit status means, the same for every command."""

    OK = 0
    FAILED = 1
    CHANGES_PENDING = 2
    USAGE = 64  # sysexits.h EX_USAGE; argparse's own default (2) would read as "changes pending"
    UNAVAILABLE = 69  # sysexits.h EX_UNAVAILABLE
    INTERRUPTED = 130  # 128 + SIGINT, as shells report Ctrl-C

    # An alias for the commands whose only failure is a policy that does not verify (render, verify).
    VERIFICATION_FAILED = 1

    @property
    def meaning(self) -> str:
        return MEANINGS[self]


MEANINGS: dict[ExitCode, str] = {
    ExitCode.OK: "success: nothing to change, every bucket Ready, the policy verifies",
    ExitCode.FAILED: (
        "a check failed: verification failed, a write was refused (Blocked) or failed, or a bucket is not Ready "
        "(also `ExitCode.VERIFICATION_FAILED`)"
    ),
    ExitCode.CHANGES_PENDING: "`plan` only: the checks pass and `apply` would change a bucket policy",
    ExitCode.USAGE: (
        "the command cannot run as given: a bad option or flag value, or an input file that is missing or invalid"
    ),
    ExitCode.UNAVAILABLE: "a component the command needs is not installed (`demo` without the test kit, `testkit/`)",
    ExitCode.INTERRUPTED: "interrupted (Ctrl-C)",
}


def exit_code_table() -> str:
    """The table as Markdown, as the README shows it (a test compares the two)."""
    lines = ["| exit | name | meaning |", "|---|---|---|"]
    lines += [f"| {code.value} | `{code.name}` | {code.meaning} |" for code in ExitCode]
    return "\n".join(lines)


def exit_code_help() -> str:
    """The table as plain text, for ``bucketwarden --help``."""
    return "exit codes:\n" + "\n".join(f"  {code.value:<4} {code.name:<16} {code.meaning}" for code in ExitCode)
