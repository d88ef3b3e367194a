"""A simulated AWS Backup job for S3: the backup role's session reads the bucket from AWS's own network.

It assumes the role through moto's STS with AWS Backup's session name (``AWSBackup-<role>``), then performs
the reads an S3 backup makes, from the front's ``aws`` network. Like a backup job it ends ``COMPLETED``, or
``FAILED`` at the first Access Denied, naming the action, the object key and the deciding statement.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from botocore.exceptions import ClientError

from ._front import DENIED_SID_HEADER

if TYPE_CHECKING:
    from ._enforced import EnforcedMoto

JobState = Literal["COMPLETED", "FAILED"]
_ACTION_IN_MESSAGE = re.compile(r"perform: (s3:[A-Za-z]+)")
# Bucket-level reads first, as AWS Backup checks the bucket before it lists and copies versions.
BUCKET_READS: tuple[tuple[str, str], ...] = (
    ("get_bucket_versioning", "s3:GetBucketVersioning"),
    ("get_bucket_location", "s3:GetBucketLocation"),
    ("get_bucket_tagging", "s3:GetBucketTagging"),
    ("get_bucket_notification_configuration", "s3:GetBucketNotification"),
    ("get_bucket_acl", "s3:GetBucketAcl"),
)
TOLERATED = frozenset({"NoSuchTagSet", "NoSuchTagSetError"})


@dataclass(frozen=True, slots=True)
class BackupJobResult:
    """A backup job's status: the state, how many object versions were read, and why it failed."""

    state: JobState
    role_arn: str
    user_id: str | None = None
    versions_read: int = 0
    action: str | None = None
    key: str | None = None
    sid: str | None = None
    message: str | None = None

    @property
    def completed(self) -> bool:
        return self.state == "COMPLETED"

    def describe(self) -> str:
        if self.completed:
            return f"COMPLETED ({self.versions_read} object versions read)"
        where = f" on {self.key}" if self.key else ""
        sid = f" (Sid {self.sid})" if self.sid else ""
        return f"FAILED: Access Denied: {self.action or '?'}{where}{sid}" if self.action else f"FAILED: {self.message}"


class _Denied(Exception):
    def __init__(self, action: str, key: str | None, sid: str | None, message: str) -> None:
        super().__init__(message)
        self.action, self.key, self.sid, self.message = action, key, sid, message


def _call(client: Any, method: str, action: str, key: str | None = None, **kwargs: Any) -> Any:
    try:
        return getattr(client, method)(**kwargs)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        code = error.get("Code")
        if code in TOLERATED:
            return None
        if code == "AccessDenied":
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            message = str(error.get("Message", ""))
            found = _ACTION_IN_MESSAGE.search(message)
            raise _Denied(found.group(1) if found else action, key, headers.get(DENIED_SID_HEADER), message) from exc
        raise


class BackupJob:
    """One on-demand S3 backup of ``bucket`` by ``role_arn``'s session, from ``network``.

    `prepare` assumes the role and builds the clients, as AWS Backup does when the job starts; `run` makes the
    reads. A test can prepare first, so the reads follow a policy change within milliseconds.
    """

    def __init__(self, moto: EnforcedMoto, bucket: str, role_arn: str, *, network: str = "aws") -> None:
        self.moto, self.bucket, self.role_arn, self.network = moto, bucket, role_arn, network
        self._s3: Any = None
        self.user_id: str | None = None
        self._failure: str | None = None

    def prepare(self) -> BackupJob:
        role_name = self.role_arn.rsplit("/", 1)[-1]
        try:
            session, self.user_id = self.moto.assume_role(self.role_arn, f"AWSBackup-{role_name}")
        except ClientError as exc:
            self._failure = f"could not assume the backup role: {exc}"
            return self
        self._s3 = self.moto.client_on(self.network, "s3", session)
        return self

    def run(self) -> BackupJobResult:
        if self._s3 is None and self._failure is None:
            self.prepare()
        if self._failure is not None:
            return BackupJobResult("FAILED", self.role_arn, message=self._failure)
        return _read_bucket(self._s3, self.bucket, self.role_arn, self.user_id)


def run_backup_job(moto: EnforcedMoto, bucket: str, role_arn: str, *, network: str = "aws") -> BackupJobResult:
    """One on-demand S3 backup of ``bucket`` by ``role_arn``'s session, from ``network``."""
    return BackupJob(moto, bucket, role_arn, network=network).run()


def _read_bucket(s3: Any, bucket: str, role_arn: str, user_id: str | None) -> BackupJobResult:
    read = 0
    try:
        for method, action in BUCKET_READS:
            answer = _call(s3, method, action, Bucket=bucket)
            if method == "get_bucket_versioning" and (answer or {}).get("Status") != "Enabled":
                message = f"bucket {bucket} does not have versioning enabled; AWS Backup for S3 requires it"
                return BackupJobResult("FAILED", role_arn, user_id, message=message)
        for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
            # The paginator's pages are fetched here: a Deny surfaces as a ClientError from the iteration.
            for version in page.get("Versions", []):
                key, version_id = version["Key"], version["VersionId"]
                versioned = _v(bucket, key, version_id)  # with VersionId: the ...Version actions
                _call(s3, "get_object_tagging", "s3:GetObjectVersionTagging", key, **versioned)
                _call(s3, "get_object_acl", "s3:GetObjectVersionAcl", key, **versioned)
                body = _call(s3, "get_object", "s3:GetObjectVersion", key, **versioned)
                if body is not None:
                    body["Body"].read()
                read += 1
    except _Denied as denied:
        return BackupJobResult("FAILED", role_arn, user_id, read, denied.action, denied.key, denied.sid, denied.message)
    except ClientError as exc:
        error = exc.response.get("Error", {})
        if error.get("Code") == "AccessDenied":
            headers = exc.response.get("ResponseMetadata", {}).get("HTTPHeaders", {})
            return BackupJobResult(
                "FAILED",
                role_arn,
                user_id,
                read,
                "s3:ListBucketVersions",
                None,
                headers.get(DENIED_SID_HEADER),
                str(error.get("Message", "")),
            )
        raise
    return BackupJobResult("COMPLETED", role_arn, user_id, read)


def _v(bucket: str, key: str, version_id: str) -> dict[str, str]:
    return {"Bucket": bucket, "Key": key, "VersionId": version_id}
