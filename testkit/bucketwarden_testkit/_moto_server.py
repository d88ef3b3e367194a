"""The moto server that `MotoServer` runs in a child process; it imports only moto and the standard library.

Run as a script: `python _moto_server.py --port-file F [--parent-pid P]`. moto's WSGI application is served by
`KeepAliveWSGIServer`, not moto's werkzeug-based `ThreadedMotoServer`, which closes the connection after every
response where AWS keeps it open.
"""

from __future__ import annotations

import argparse
import os
import threading
import time
from email.message import Message
from typing import Any

if __package__:
    from ._keepalive_wsgi import KeepAliveWSGIServer
else:  # run as a script, as MotoServer does: the sibling module is on sys.path, the package is not imported
    from _keepalive_wsgi import KeepAliveWSGIServer  # type: ignore[import-not-found,no-redef]


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

    from moto.moto_server.werkzeug_app import DomainDispatcherApplication, create_backend_app

    app = DomainDispatcherApplication(create_backend_app)  # what ThreadedMotoServer serves
    server = KeepAliveWSGIServer((args.host, 0), app, environ_hook=_keep_underscored_metadata_names)
    threading.Thread(target=server.serve_forever, name="moto-server", daemon=True).start()
    port = server.server_address[1]
    with open(args.port_file + ".tmp", "w", encoding="utf-8") as file:
        file.write(f"{port}\n")
    os.replace(args.port_file + ".tmp", args.port_file)

    # Serve until killed: the parent stops it with SIGTERM. An orphan (the parent was killed) exits by itself.
    while args.parent_pid is None or os.getppid() == args.parent_pid:
        time.sleep(1.0)


def _keep_underscored_metadata_names(environ: dict[str, Any], headers: Message) -> None:
    """What moto's own request handler (`MotoRequestHandler.make_environ`) adds to the environ.

    S3 metadata names may contain underscores (``x-amz-meta-my_key``), which the environ drops; moto reads them
    back, spelled as sent, from the entries written here, and never lets one stand in for a dashed header.
    """
    from moto.core.request import (
        PRESERVED_HEADER_NAMES_ENVIRON_KEY,
        environ_key_for_header,
        should_preserve_original_header_name,
    )

    dashed_keys = {environ_key_for_header(name) for name in headers if "_" not in name}
    names: dict[str, str] = {}
    values: dict[str, list[str]] = {}
    for name, value in headers.items():
        if not should_preserve_original_header_name(name):
            continue
        key = environ_key_for_header(name)
        if key in dashed_keys:
            continue
        names.setdefault(key, name)
        values.setdefault(key, []).append(value.replace("\r\n", ""))
    for key, key_values in values.items():
        environ[key] = ",".join(key_values)
    environ[PRESERVED_HEADER_NAMES_ENVIRON_KEY] = names


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
