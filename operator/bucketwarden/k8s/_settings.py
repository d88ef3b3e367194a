"""Operator settings from the environment (prefix BUCKETWARDEN_). AWS settings come from the AWS_* variables."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


class OperatorSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="BUCKETWARDEN_", extra="ignore", frozen=True)

    namespaces: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Namespaces to watch, comma-separated; empty watches all."
    )
    resync_interval_seconds: float = Field(default=60.0, gt=0, description="How often each bucket is re-checked.")
    resync_jitter_seconds: float | None = Field(
        default=None, ge=0, description="Random initial delay spreading the timers; default: 10% of the interval."
    )
    role_cache_ttl_seconds: float = Field(default=300.0, ge=0, description="How long a resolved RoleId is reused.")
    max_concurrent_reconciles: int = Field(default=16, ge=1, le=512, description="Reconciles running at once.")
    reconcile_processes: int = Field(
        default=0,
        ge=0,
        le=64,
        description="Child processes that run the S3 reconciles, so they do not share the event loop's core "
        "(k8s/_processes.py); 0 runs them in the operator's process.",
    )
    metrics_port: int = Field(default=8080, ge=0, le=65535, description="Prometheus /metrics port; 0 disables.")
    health_port: int = Field(default=8081, ge=0, le=65535, description="Liveness /healthz port; 0 disables.")
    log_format: Literal["json", "text"] = "json"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"
    peering: bool = Field(default=False, description="kopf peering for HA (several replicas, one active).")
    peering_name: str = "bucketwarden"
    priority: int | None = Field(
        default=None,
        description="kopf peering priority of this replica. Unset: random, because replicas of one Deployment "
        "share their env and kopf pauses every operator that sees a peer of the same priority.",
    )
    status_refresh_seconds: float = Field(
        default=600.0,
        ge=0,
        description="lastSyncTime is rewritten at most this often when nothing else changed, so status does not "
        "churn (Argo CD re-reconciles an Application whenever a resource it tracks changes).",
    )
    backup_readiness_checks: bool = Field(
        default=True,
        description="AWS Backup readiness checks on every reconcile (versioning, exempt roles' trust and S3 "
        "permissions), as Warnings; false for least-privilege installs without s3:GetBucketVersioning and "
        "iam:ListAttachedRolePolicies / ListRolePolicies / GetRolePolicy.",
    )
    backup_readiness_ttl_seconds: float = Field(
        default=600.0, ge=0, description="How long a readiness fact (versioning, role permissions) is reused."
    )
    allow_list_status_seconds: float = Field(
        default=30.0, gt=0, description="How often each SourceAllowList's usedBy/inSync status is recounted."
    )
    ack_coexistence: bool = Field(
        default=False,
        description="Watch ACK S3 Buckets (s3.services.k8s.aws): detect them and allow policyWriter: ACK. Needs "
        "list, watch and patch on buckets.s3.services.k8s.aws.",
    )

    drift_queue_url: str | None = Field(
        default=None,
        description="SQS queue of CloudTrail PutBucketPolicy/DeleteBucketPolicy events (via EventBridge) to "
        "long-poll: a drifted bucket is reconciled within seconds. Unset: drift is found by the resync only.",
    )
    drift_queue_wait_seconds: int = Field(
        default=20, ge=1, le=20, description="SQS long-poll wait per ReceiveMessage call (at most 20)."
    )

    leader_election: bool = Field(
        default=False,
        description="Lease-based leader election (coordination.k8s.io/v1) for HA: one replica runs the operator, "
        "the others wait for the Lease. Replaces peering; the new leader starts cheaply from the recorded status.",
    )
    leader_election_name: str = Field(default="bucketwarden", description="The Lease's name.")
    leader_election_namespace: str | None = Field(
        default=None, description="The Lease's namespace; default: the pod's own (POD_NAMESPACE, service account)."
    )
    leader_election_lease_seconds: float = Field(default=15.0, gt=0, description="How long a Lease holds unrenewed.")
    leader_election_renew_deadline_seconds: float = Field(
        default=10.0, gt=0, description="A leader that cannot renew for this long stops and exits."
    )
    leader_election_retry_seconds: float = Field(default=2.0, gt=0, description="Renew and standby poll interval.")

    shard_count: int = Field(
        default=1, ge=1, le=256, description="Shards the ProtectedBuckets are split into (one process each)."
    )
    shard_index: int = Field(default=0, ge=0, description="The shard this process owns: 0 .. shard_count - 1.")

    @model_validator(mode="after")
    def _shard_in_range(self) -> OperatorSettings:
        if self.shard_index >= self.shard_count:
            raise ValueError(f"shard_index {self.shard_index} must be below shard_count {self.shard_count}")
        if self.leader_election and self.peering:
            raise ValueError("leader_election and peering are two ways to HA: choose one (leader election scales)")
        return self

    @field_validator("namespaces", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        if isinstance(value, str):
            return [n.strip() for n in value.split(",") if n.strip()]
        return value

    @property
    def jitter_seconds(self) -> float:
        if self.resync_jitter_seconds is not None:
            return self.resync_jitter_seconds
        return self.resync_interval_seconds * 0.1
