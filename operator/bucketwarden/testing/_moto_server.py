"""The moto server that `MotoServer` runs in a child process; it imports only moto and the standard library.

Run as a script: `python _moto_server.py --port-file F [--parent-pid P]`.
"""

from __future__ import annotations

import argparse
import os
import time


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port-file", required=True)
    parser.add_argument("--parent-pid", type=int, default=None)
    parser.add_argument(
        "--no-bucket-policy-checks",
        action="store_true",
        help="switch off moto's partial bucket-policy checks on object calls (an enforcing front decides instead)",
    )
    args = parser.parse_args(argv)
    if args.no_bucket_policy_checks:
        _switch_off_bucket_policy_checks()

    from moto.server import ThreadedMotoServer

    server = ThreadedMotoServer(ip_address=args.host, port=0, verbose=False)
    server.start()
    _, port = server.get_host_and_port()
    with open(args.port_file + ".tmp", "w", encoding="utf-8") as file:
        file.write(f"{port}\n")
    os.replace(args.port_file + ".tmp", args.port_file)

    # Serve until killed: the parent stops it with SIGTERM. An orphan (the parent was killed) exits by itself.
    while args.parent_pid is None or os.getppid() == args.parent_pid:
        time.sleep(1.0)


def _switch_off_bucket_policy_checks() -> None:
    """moto answers a bare 403 to object calls its own evaluator denies, which knows StringEquals only; in front
    of `S3Front` that would deny what AWS allows, so every bucket reports "no opinion"."""
    from moto.iam.access_control import PermissionResult
    from moto.s3.models import FakeBucket

    def neutral(self: object, action: str, resource: str) -> PermissionResult:
        return PermissionResult.NEUTRAL

    FakeBucket.get_permission = neutral  # type: ignore[method-assign]


if __name__ == "__main__":
    main()
