"""The operator image, built by `make image-test` and run for real: every command, the user, the read-only root,
what it leaves out, its size, and the operator itself against the emulated Kubernetes API and the enforcing AWS."""

from __future__ import annotations

import argparse
import json
import secrets
import socket
import tomllib
import urllib.request
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest
import yaml

from bucketwarden.cli import build_parser
from bucketwarden_testkit import PROTECTED_BUCKETS, TENANT_POLICIES, EnforcedMoto, KubeEmulator, wait_until
from tests.image.imagekit import MIB, REPO_ROOT, Engine, container_flags, find_deployment, image_under_test

# One line, as the Chromium and Terraform tests skip: no engine here (docker without a daemon, no podman), or no image.
if isinstance(_found := image_under_test(), str):
    pytest.skip(_found, allow_module_level=True)

VERSION = str(tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]["version"])
OUR_SID = "BucketWardenIpRestriction"
OFFICE_CIDRS = ["192.0.2.0/24", "203.0.113.0/24"]
# What the issue allows the image to add on top of its base.
MAX_ADDED_MIB = 100
# Importable in the dev venv, never in the image: emulators, their web stack, the kubernetes client (only the kit
# uses it), the test kit, the tests and the build tools.
LEFT_OUT = ("moto", "kmock", "flask", "werkzeug", "kubernetes", "bucketwarden_testkit", "tests", "pip", "setuptools")
KUBECONFIG_IN_CONTAINER = "/etc/bucketwarden/kubeconfig"
DEADLINE = 90.0
CRONJOB = REPO_ROOT / "examples" / "audit-cronjob" / "cronjob.yaml"


def subcommands() -> list[str]:
    (action,) = (a for a in build_parser()._actions if isinstance(a, argparse._SubParsersAction))
    return sorted(action.choices)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        pytest.param(["--version"], f"bucketwarden {VERSION}", id="version"),
        pytest.param(["--help"], "usage: bucketwarden", id="help"),
        *(pytest.param([name, "--help"], f"usage: bucketwarden {name}", id=f"{name}-help") for name in subcommands()),
    ],
)
def test_image_answers_every_command(engine: Engine, image: str, args: list[str], expected: str) -> None:
    result = engine.run(image, *args)
    assert result.returncode == 0, result.stderr[-3000:]
    assert expected in result.stdout


def test_image_crd_command_prints_the_repository_crd(engine: Engine, image: str) -> None:
    result = engine.run(image, "crd")
    assert result.returncode == 0, result.stderr[-3000:]
    assert yaml.safe_load(result.stdout) == yaml.safe_load(
        (REPO_ROOT / "crds" / "bucketwarden.io_protectedbuckets.yaml").read_text()
    )


def test_image_demo_names_the_test_kit_it_leaves_out(engine: Engine, image: str) -> None:
    """The demo runs on the emulators, which the image does not hold: it says so in one line, exit 69."""
    result = engine.run(image, "demo")
    assert result.returncode == 69, result.stderr[-3000:]
    assert len(result.stderr.strip().splitlines()) == 1
    assert "test kit" in result.stderr


@pytest.mark.parametrize("option", ["-u", "-g"])
def test_image_runs_as_uid_and_gid_65532(engine: Engine, image: str, option: str) -> None:
    result = engine.run(image, option, entrypoint="id")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "65532"


PROBE_WRITES = """
import errno, sys
for path in sys.argv[1:]:
    try:
        open(path, "w").close()
        print(path, "written")
    except OSError as exc:
        print(path, errno.errorcode[exc.errno])
"""


@pytest.mark.parametrize(
    ("read_only", "expected"),
    [
        pytest.param(True, {"/probe": "EROFS", "/opt/venv/probe": "EROFS", "/tmp/probe": "written"}, id="read-only"),
        # Even on a writable root, the non-root user cannot change the installed code.
        pytest.param(False, {"/probe": "EACCES", "/opt/venv/probe": "EACCES", "/tmp/probe": "written"}, id="writable"),
    ],
)
def test_image_root_filesystem_is_read_only(
    engine: Engine, image: str, read_only: bool, expected: dict[str, str]
) -> None:
    args = ["-c", PROBE_WRITES, *expected]
    if read_only:
        result = engine.run(image, *args, entrypoint="python")
    else:
        result = engine("run", "--rm", *engine.run_flags(), "--entrypoint", "python", image, *args, check=False)
    assert result.returncode == 0, result.stderr
    assert dict(line.split(" ", 1) for line in result.stdout.splitlines()) == expected


def test_image_leaves_out_emulators_tests_and_build_tools(engine: Engine, image: str) -> None:
    left_out = list(LEFT_OUT)
    present = ["bucketwarden", "boto3", "kopf", "pydantic"]  # the probe can see what is there
    probe = (
        "import importlib.util, json, sys\n"
        "def found(name):\n"
        "    try:\n"
        "        return importlib.util.find_spec(name) is not None\n"
        "    except ModuleNotFoundError:\n"
        "        return False\n"
        "print(json.dumps({name: found(name) for name in sys.argv[1:]}))\n"
    )
    result = engine.run(image, "-c", probe, *left_out, *present, entrypoint="python")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout) == {**dict.fromkeys(left_out, False), **dict.fromkeys(present, True)}


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        pytest.param("org.opencontainers.image.version", VERSION, id="version"),
        pytest.param("org.opencontainers.image.title", "bucketwarden", id="title"),
    ],
)
def test_image_labels_come_from_the_build(engine: Engine, image: str, label: str, expected: str) -> None:
    assert engine.label(image, label) == expected


def test_image_revision_label_is_a_commit(engine: Engine, image: str) -> None:
    revision = engine.label(image, "org.opencontainers.image.revision").removesuffix("-dirty")
    assert len(revision) == 40
    assert set(revision) <= set("0123456789abcdef")


def test_image_adds_at_most_100_mib_to_its_base(engine: Engine, image: str, capsys: pytest.CaptureFixture[str]) -> None:
    base = engine.label(image, "org.opencontainers.image.base.name")
    total, base_size = engine.size(image), engine.size(base)
    venv = engine.run(image, "-sm", "/opt/venv", entrypoint="du").stdout.split()[0]
    with capsys.disabled():
        print(
            f"\n{image}: {total / MIB:.1f} MiB, {(total - base_size) / MIB:.1f} MiB on top of its base {base}"
            f" ({base_size / MIB:.1f} MiB); the venv is {venv} MiB"
        )
    assert (total - base_size) / MIB <= MAX_ADDED_MIB


# --- the operator, run from the image --------------------------------------------------------------------------


def render_chart(helm: Path, image: str, values: Mapping[str, Any], tmp_path: Path) -> list[dict[str, Any]]:
    """`helm template` of the chart with ``values``, on the image under test."""
    repository, _, tag = image.rpartition(":")
    values_file = tmp_path / "values.yaml"
    values_file.write_text(yaml.safe_dump({**values, "image": {"repository": repository, "tag": tag}}))
    engine_free = Engine((str(helm),))
    out = engine_free("template", "bucketwarden", str(REPO_ROOT / "charts" / "bucketwarden"), "-f", str(values_file))
    return [doc for doc in yaml.safe_load_all(out.stdout) if doc]


def policy_statements(aws: EnforcedMoto, bucket: str) -> dict[str, dict[str, Any]]:
    """The bucket's statements by Sid; none when it has no policy."""
    s3 = aws.client("s3")
    try:
        text = s3.get_bucket_policy(Bucket=bucket)["Policy"]
    except s3.exceptions.ClientError as exc:
        if exc.response["Error"]["Code"] == "NoSuchBucketPolicy":
            return {}
        raise
    return {statement.get("Sid", ""): statement for statement in json.loads(text)["Statement"]}


def foreign_statement(bucket: str) -> dict[str, Any]:
    return {
        "Sid": "ForeignReadOnly",
        "Effect": "Allow",
        "Principal": {"AWS": "arn:aws:iam::444455556666:root"},
        "Action": "s3:GetObject",
        "Resource": f"arn:aws:s3:::{bucket}/*",
    }


def is_ready(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions", []))


def allowed_cidrs(statement: Mapping[str, Any]) -> set[str]:
    cidrs = statement["Condition"]["NotIpAddress"]["aws:SourceIp"]
    return {cidrs} if isinstance(cidrs, str) else set(cidrs)


class OperatorContainer:
    """The operator running detached from the image; its logs outlive it for the assertions and failure reports."""

    def __init__(self, engine: Engine, image: str, flags: list[str], name: str) -> None:
        self.engine, self.name = engine, name
        engine("run", "--detach", "--name", name, *engine.run_flags(), "--network", "host", *flags, image)

    def logs(self) -> str:
        result = self.engine("logs", self.name, check=False)
        return result.stdout + result.stderr

    def stop(self) -> int:
        """SIGTERM, as the kubelet does; the exit code."""
        self.engine("stop", "--time", "30", self.name, timeout=60)
        return int(self.engine("inspect", "--format", "{{.State.ExitCode}}", self.name).stdout.strip())

    def remove(self) -> None:
        self.engine("rm", "--force", self.name, check=False)


@pytest.fixture
def operator_from_image(
    engine: Engine, image: str, helm: Path, aws: EnforcedMoto, kube: KubeEmulator, tmp_path: Path
) -> Iterator[tuple[OperatorContainer, int]]:
    """The image's default command with the chart's Deployment environment; the in-cluster service account is
    stood in for by a kubeconfig of the emulator. Yields the container and its liveness port."""
    metrics_port, health_port = free_port(), free_port()
    credentials = {k: v for k, v in aws.env().items() if k.startswith("AWS_") and "REGION" not in k}
    credentials.pop("AWS_ENDPOINT_URL")
    values = {
        "aws": {"region": aws.region, "endpointUrl": aws.endpoint_url},
        "metrics": {"enabled": True, "port": metrics_port},
        "health": {"port": health_port},
        "operator": {"resyncIntervalSeconds": 3},
        "extraEnv": [{"name": name, "value": value} for name, value in sorted(credentials.items())],
    }
    deployment = find_deployment(render_chart(helm, image, values, tmp_path))
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["image"] == image

    kubeconfig = kube.write_kubeconfig(tmp_path / "kubeconfig")
    kubeconfig.chmod(0o644)  # read by UID 65532
    name = f"bucketwarden-image-test-{secrets.token_hex(3)}"
    flags = [
        *container_flags(deployment, pod_name=name),
        "--volume",
        f"{kubeconfig}:{KUBECONFIG_IN_CONTAINER}:ro",
        "--env",
        f"KUBECONFIG={KUBECONFIG_IN_CONTAINER}",
    ]
    running = OperatorContainer(engine, container["image"], flags, name)
    try:
        yield running, health_port
    finally:
        running.remove()


def test_image_runs_the_operator_with_the_charts_environment(
    operator_from_image: tuple[OperatorContainer, int],
    engine: Engine,
    image: str,
    aws: EnforcedMoto,
    kube: KubeEmulator,
) -> None:
    container, health_port = operator_from_image
    bucket, role, namespace = (f"{prefix}-{secrets.token_hex(3)}" for prefix in ("bw-image", "backup", "image"))
    s3, iam = aws.client("s3"), aws.client("iam")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_policy(
        Bucket=bucket, Policy=json.dumps({"Version": "2012-10-17", "Statement": [foreign_statement(bucket)]})
    )
    backup = {"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}
    trust = json.dumps({"Version": "2012-10-17", "Statement": [backup]})
    role_id = iam.create_role(RoleName=role, Path="/service-role/", AssumeRolePolicyDocument=trust)["Role"]["RoleId"]
    try:
        # The cluster admin's grant, printed by the image's `grant` command, as `... | kubectl apply -f -` would.
        granted = engine.run(image, "grant", "--namespace", namespace, "--bucket", bucket)
        assert granted.returncode == 0, granted.stderr[-3000:]
        grant = yaml.safe_load(granted.stdout)
        assert grant["kind"] == TENANT_POLICIES.kind
        with kube.client() as client:
            client.create_object(TENANT_POLICIES, {"metadata": grant["metadata"], "spec": grant["spec"]})
            client.create_namespace(namespace)
            spec = {"bucketName": bucket, "allowedSourceIps": OFFICE_CIDRS, "exemptRoles": [{"name": role}]}
            client.create_object(PROTECTED_BUCKETS, {"metadata": {"name": "pb"}, "spec": spec}, namespace=namespace)

            # Ready: our Deny is in the policy, beside the foreign statement, with the backup role exempt.
            obj = client.wait_for_status(PROTECTED_BUCKETS, "pb", is_ready, namespace=namespace, timeout=DEADLINE)
            assert obj["status"]["observedGeneration"] == obj["metadata"]["generation"]
            statements = policy_statements(aws, bucket)
            assert set(statements) == {OUR_SID, "ForeignReadOnly"}
            assert allowed_cidrs(statements[OUR_SID]) == set(OFFICE_CIDRS)
            assert role_id in json.dumps(statements[OUR_SID])
            assert urllib.request.urlopen(f"http://127.0.0.1:{health_port}/healthz", timeout=5).status == 200

            # Drift: someone opens our Deny to the world; the operator puts it back at its next resync.
            tampered = {**statements[OUR_SID]}
            tampered["Condition"] = {"NotIpAddress": {"aws:SourceIp": "0.0.0.0/0"}}
            policy = {"Version": "2012-10-17", "Statement": [tampered, statements["ForeignReadOnly"]]}
            s3.put_bucket_policy(Bucket=bucket, Policy=json.dumps(policy))
            client.wait_for_status(
                PROTECTED_BUCKETS,
                "pb",
                lambda s: s.get("driftCorrections", 0) >= 1,
                namespace=namespace,
                timeout=DEADLINE,
            )
            repaired = wait_until(
                lambda: (found := policy_statements(aws, bucket)).get(OUR_SID) == statements[OUR_SID] and found,
                timeout=DEADLINE,
                what="the Deny restored",
            )
            assert repaired["ForeignReadOnly"] == statements["ForeignReadOnly"]

            # Deletion: the finalizer removes our statement and keeps the foreign one.
            assert client.delete_object(PROTECTED_BUCKETS, "pb", namespace=namespace)
            client.wait_until_gone(PROTECTED_BUCKETS, "pb", namespace=namespace, timeout=DEADLINE)
            assert set(policy_statements(aws, bucket)) == {"ForeignReadOnly"}
        assert container.stop() == 0
    except BaseException:
        print(container.logs()[-6000:])
        raise
    logs = container.logs()
    assert "Traceback" not in logs, logs[-6000:]
    assert aws.env()["AWS_SECRET_ACCESS_KEY"] not in logs


def test_image_runs_the_audit_cronjob_example(engine: Engine, image: str, aws: EnforcedMoto) -> None:
    """The example CronJob's container (command and args), run from the image against the enforcing AWS."""
    (cronjob,) = (doc for doc in yaml.safe_load_all(CRONJOB.read_text()) if doc["kind"] == "CronJob")
    (container,) = cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"]
    assert container["image"].rpartition(":")[0] == image.rpartition(":")[0]
    assert "command" not in container
    bucket = f"bw-audit-{secrets.token_hex(3)}"
    aws.client("s3").create_bucket(Bucket=bucket)
    env = [f"{name}={value}" for name, value in aws.env().items()]
    flags = ["--network", "host", *(flag for pair in env for flag in ("--env", pair))]
    result = engine.run(image, *container["args"], flags=flags)
    assert result.returncode in (0, 1), result.stderr[-3000:]  # 1: some bucket breaks AWS Backup
    report = json.loads(result.stdout)
    assert bucket in json.dumps(report)


def test_image_bootstraps_a_bucket_from_a_mounted_manifest(
    engine: Engine, image: str, aws: EnforcedMoto, tmp_path: Path
) -> None:
    """`bootstrap`, as from a pod: the manifest mounted read-only, AWS from the environment, run from the office
    network (the README: by someone the policy allows; our Deny does not exempt the runner)."""
    bucket, role = f"bw-bootstrap-{secrets.token_hex(3)}", f"backup-{secrets.token_hex(3)}"
    aws.client("s3").create_bucket(Bucket=bucket)
    backup = {"Effect": "Allow", "Principal": {"Service": "backup.amazonaws.com"}, "Action": "sts:AssumeRole"}
    trust = json.dumps({"Version": "2012-10-17", "Statement": [backup]})
    aws.client("iam").create_role(RoleName=role, Path="/service-role/", AssumeRolePolicyDocument=trust)
    operator_role = aws.create_operator_role(f"bucketwarden-{secrets.token_hex(3)}")
    manifest = tmp_path / "pb.yaml"
    spec = {"bucketName": bucket, "allowedSourceIps": OFFICE_CIDRS, "exemptRoles": [{"name": role}]}
    body = {"apiVersion": "bucketwarden.io/v1alpha1", "kind": "ProtectedBucket", "metadata": {"name": "pb"}}
    manifest.write_text(yaml.safe_dump({**body, "spec": spec}))
    manifest.chmod(0o644)  # read by UID 65532
    office = {**aws.env(), "AWS_ENDPOINT_URL": aws.endpoint("office")}
    env = [f"{name}={value}" for name, value in office.items()]
    flags = ["--network", "host", "--volume", f"{manifest}:/work/pb.yaml:ro"]
    flags += [flag for pair in env for flag in ("--env", pair)]
    result = engine.run(image, "bootstrap", "-f", "/work/pb.yaml", "--operator-role", operator_role, flags=flags)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    statements = policy_statements(aws, bucket)
    assert set(statements) == {OUR_SID}
    assert allowed_cidrs(statements[OUR_SID]) == set(OFFICE_CIDRS)
