"""bucketwarden's operator as a separate process, whose AWS port can stop dead at a chosen point.

    python tests/reliability/crash_operator.py --server URL --namespace NS --aws-endpoint URL \
        --markers DIR [--freeze BUCKET=before-put] [--freeze BUCKET=after-put] ...

For each ``--freeze``, the first PUT to that bucket stops at ``before-put`` (after our GET, before our PUT) or
``after-put`` (after the PUT, before kopf patches status): it creates ``DIR/BUCKET`` and blocks that worker
forever. The test then kills the process with SIGKILL, which is what a node failure or an OOM kill looks like.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(ROOT / "operator")]

import kopf  # noqa: E402

from bucketwarden.aws import AwsGateway, AwsSettings  # noqa: E402
from bucketwarden.k8s import Metrics, OperatorSettings, build_registry  # noqa: E402
from bucketwarden.principals import BucketTarget  # noqa: E402
from bucketwarden.reconciler import Reconciler  # noqa: E402


class FreezingGateway(AwsGateway):
    """The real gateway, except that the first PUT freezes the process before or after it happens."""

    def __init__(self, freeze: dict[str, str], markers: Path, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.freeze = freeze
        self.markers = markers

    def put(self, target: BucketTarget, policy_text: str) -> None:
        bucket = target.bucket
        point = self.freeze.get(bucket)
        if point == "before-put":
            self._freeze(bucket, point)
        super().put(target, policy_text)
        if point == "after-put":
            self._freeze(bucket, point)

    def _freeze(self, bucket: str, point: str) -> None:
        (self.markers / bucket).write_text(point, encoding="utf-8")
        while True:  # until SIGKILL
            time.sleep(3600)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--server", required=True)
    parser.add_argument("--namespace", required=True)
    parser.add_argument("--aws-endpoint", required=True)
    parser.add_argument("--region", default="us-east-1")
    parser.add_argument("--freeze", action="append", default=[], metavar="BUCKET=before-put|after-put")
    parser.add_argument("--markers", type=Path, required=True)
    args = parser.parse_args(argv)
    freeze = dict(item.split("=", 1) for item in args.freeze)
    assert set(freeze.values()) <= {"before-put", "after-put"}, freeze
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    logging.getLogger("botocore").setLevel(logging.WARNING)

    settings = OperatorSettings(
        resync_interval_seconds=1.0, resync_jitter_seconds=0.2, metrics_port=0, health_port=0, log_format="text"
    )

    def factory(operator_settings: OperatorSettings, metrics: Metrics) -> Reconciler:
        aws = FreezingGateway(
            freeze,
            args.markers,
            settings=AwsSettings(endpoint_url=args.aws_endpoint, region=args.region, max_attempts=2),
            ttl_seconds=operator_settings.role_cache_ttl_seconds,
        )
        return Reconciler(aws)

    registry = build_registry(settings, factory)

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return kopf.ConnectionInfo(server=args.server, insecure=True)

    kopf_settings = kopf.OperatorSettings()
    kopf_settings.networking.error_backoffs = (0.2, 0.4, 0.8)
    kopf_settings.watching.reconnect_backoff = 0.2
    asyncio.run(kopf.operator(registry=registry, settings=kopf_settings, namespaces=[args.namespace], standalone=True))


if __name__ == "__main__":
    main()
