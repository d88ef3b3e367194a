"""File mode as a user runs it against moto: a ProtectedBucket manifest, the CLI as a process, and a world with
AWS Backup's default service role in it."""

from __future__ import annotations

import subprocess
import sys
from typing import Any

import boto3

from bucketwarden_testkit import MotoServer, scrubbed_environ
from tests.aws._harness import AdminClients
from tests.aws._world import MotoWorld

ROLE = "AWSBackupDefaultServiceRole"


def manifest(name: str, bucket: str, **spec: Any) -> dict[str, Any]:
    """A ProtectedBucket in team-a exempting AWS Backup's role; ``spec`` adds or replaces fields."""
    return {
        "apiVersion": "bucketwarden.io/v1alpha1",
        "kind": "ProtectedBucket",
        "metadata": {"name": name, "namespace": "team-a"},
        "spec": {"bucketName": bucket, "allowedSourceIps": ["192.0.2.0/24"], "exemptRoles": [{"name": ROLE}], **spec},
    }


def run_cli(moto: MotoServer, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bucketwarden", *args],
        env=scrubbed_environ(moto.env()),
        input=stdin,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def backup_world(moto: MotoServer, boto_session: boto3.session.Session, admin: AdminClients) -> MotoWorld:
    world = MotoWorld(moto, boto_session, admin)
    world.create_role(ROLE, path="/service-role/")
    return world
