"""What many test modules share: where the repository is, our statement's Sid, how long e2e waits, small helpers."""

from __future__ import annotations

import json
import math
import secrets
import socket
import threading
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any, Self

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


def fleet_entries(registry: object, namespace: str, name: str, **spec: object) -> dict[tuple[str, str], object]:
    """What ``registry``'s one ProtectedBucket index handler files for one object (k8s/_fleet_index.py), called as
    kopf calls it, outside any operator: the resync queue's ticker is not started."""
    import asyncio
    from types import SimpleNamespace

    from bucketwarden.k8s._fleet_index import FLEET_INDEX

    handlers: Any = registry._indexing.get_all_handlers()  # type: ignore[attr-defined]
    [handler] = [h for h in handlers if h.id == FLEET_INDEX]
    meta = {"namespace": namespace, "name": name, "uid": f"uid-{name}", "generation": 1, "creationTimestamp": "t"}
    body = {"metadata": meta, "spec": {"bucketName": f"b-{name}", "allowedSourceIps": ["10.0.0.0/8"], **spec}}
    runtime = SimpleNamespace(ticker=None)
    kwargs = {
        "body": body,
        "meta": meta,
        "spec": body["spec"],
        "status": {},
        "namespace": namespace,
        "name": name,
        "memo": SimpleNamespace(runtime=runtime),
        "resource": None,
    }
    return dict(asyncio.run(handler.fn(**kwargs)) or {})


class LookupOnly(Mapping[Any, Any]):
    """A mapping that answers lookups and fails on any walk (iteration, len, truthiness): for code that must
    only look up in an index of the whole fleet."""

    def __init__(self, items: Mapping[Any, Any]) -> None:
        self._items = dict(items)

    def __getitem__(self, key: Any) -> Any:
        return self._items[key]

    def __contains__(self, key: object) -> bool:
        return key in self._items

    def __iter__(self) -> Iterator[Any]:
        raise AssertionError("walked the whole index")

    def __len__(self) -> int:
        raise AssertionError("walked the whole index")
