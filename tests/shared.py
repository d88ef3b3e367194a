"""What many test modules share: where the repository is, our statement's Sid, how long e2e waits, small helpers."""

from __future__ import annotations

import json
import math
import secrets
import socket
import threading
import urllib.request
from pathlib import Path
from typing import Self

REPO_ROOT = Path(__file__).resolve().parents[1]
GOLDEN = REPO_ROOT / "tests" / "golden"

# Written out, not imported from bucketwarden.spec: the Sid users see in their policies is a contract, so a renamed
# default must fail the tests.
OUR_SID = "BucketWardenIpRestriction"

# AWS Backup may assume the role: the trust policy of the backup roles tests create in moto.
TRUST_POLICY = json.dumps(
    {
        "Version": "2012-10-17",
        "Statement": [
            {"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}
        ],
    }
)

# How long an e2e test waits for the operator to converge: generous, because the CI machine's two cores are shared.
# Modules that wait for more (a process to start, two writers to settle) scale it and say why.
DEADLINE = 30.0


def unique(prefix: str) -> str:
    """A name no other test (nor an earlier run against the same cluster) has used."""
    return f"{prefix}-{secrets.token_hex(3)}"


def positive(value: object) -> bool:
    """A benchmark figure: a finite number above zero (a bool is not a number here)."""
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def fetch(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as response:
        return str(response.read().decode())


class BackgroundLoop:
    """Calls ``tick`` every ``interval`` seconds in a daemon thread, from entering the with-block to leaving it: how
    the e2e tests play another writer beside the operator."""

    interval = 0.2

    def __init__(self, name: str) -> None:
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    def tick(self) -> None:
        raise NotImplementedError

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.tick()
