"""The drift queue's event parsing and verdicts, on real CloudTrail-via-EventBridge event JSON."""

from __future__ import annotations

import asyncio
import copy
import json
from pathlib import Path
from typing import Any

import pytest

from bucketwarden.aws import PolicyEvent, QueueMessage, parse_policy_event
from bucketwarden.aws._drift_queue import queue_region
from bucketwarden.k8s._drift import DriftPoller, judge
from bucketwarden.principals import CallerIdentity

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "cloudtrail"
ALICE = CallerIdentity(
    account="123456789012",
    arn="arn:aws:sts::123456789012:assumed-role/Admin/alice",
    user_id="AROAEXAMPLEADMIN12345:alice",
)
OPERATOR = CallerIdentity(
    account="123456789012",
    arn="arn:aws:sts::123456789012:assumed-role/bucketwarden/botocore-session-1",
    user_id="AROAEXAMPLEOPERATOR1:botocore-session-1",
)


def event(name: str, **detail: Any) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text(encoding="utf-8"))
    doc["detail"].update(detail)
    return doc


def edited(doc: dict[str, Any], path: tuple[str, ...], value: Any) -> str:
    doc = copy.deepcopy(doc)
    target = doc
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return json.dumps(doc)


PUT = event("put-bucket-policy.json")
DELETE = event("delete-bucket-policy.json")


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (json.dumps(PUT), ("PutBucketPolicy", "example-bucket", "AROAEXAMPLEADMIN12345:alice")),
        (json.dumps(DELETE), ("DeleteBucketPolicy", "example-bucket", "AIDAEXAMPLEUSER123456")),
    ],
    ids=["put-by-role-session", "delete-by-iam-user"],
)
def test_parse_policy_event_reads_cloudtrail_via_eventbridge(body: str, expected: tuple[str, str, str]) -> None:
    parsed = parse_policy_event(body)
    assert parsed is not None
    assert (parsed.event_name, parsed.bucket, parsed.principal_id) == expected
    assert parsed.event_id


@pytest.mark.parametrize(
    "body",
    [
        "not json",
        "[]",
        edited(PUT, ("detail-type",), "Object Created"),
        edited(PUT, ("detail", "eventName"), "PutBucketTagging"),
        edited(PUT, ("detail", "errorCode"), "AccessDenied"),
        edited(PUT, ("detail", "requestParameters"), None),
        edited(PUT, ("detail", "requestParameters", "bucketName"), ""),
    ],
    ids=["not-json", "not-an-object", "other-detail-type", "other-api", "refused-call", "no-parameters", "no-bucket"],
)
def test_parse_policy_event_ignores_what_is_not_a_policy_write(body: str) -> None:
    assert parse_policy_event(body) is None


@pytest.mark.parametrize(
    ("event_", "claimed", "me", "verdict"),
    [
        (None, True, OPERATOR, "not-a-policy-event"),
        (parse_policy_event(json.dumps(PUT)), True, ALICE, "own-write"),
        (parse_policy_event(edited(PUT, ("detail", "userIdentity", "principalId"), "other")), True, ALICE, "own-write"),
        (parse_policy_event(json.dumps(PUT)), True, OPERATOR, "reconciled"),
        (parse_policy_event(json.dumps(PUT)), True, None, "reconciled"),
        (parse_policy_event(json.dumps(PUT)), False, OPERATOR, "unmanaged"),
    ],
    ids=["not-an-event", "own-session", "own-arn", "foreign", "identity-unknown", "no-protectedbucket"],
)
def test_judge_reconciles_only_foreign_writes_to_managed_buckets(
    event_: PolicyEvent | None, claimed: bool, me: CallerIdentity | None, verdict: str
) -> None:
    assert judge(event_, claimant=lambda _: ("ns", "pb") if claimed else None, me=me) == verdict


class FakeQueue:
    url = "https://sqs.eu-west-1.amazonaws.com/123456789012/bucketwarden-drift"

    def __init__(self) -> None:
        self.deleted: list[str] = []

    def delete(self, message: QueueMessage) -> None:
        self.deleted.append(message.receipt_handle)


def test_drift_poller_nudges_once_per_foreign_event_and_deletes_every_message() -> None:
    queue = FakeQueue()
    nudged: list[tuple[str, str, str]] = []

    async def nudge(namespace: str, name: str, event_id: str) -> None:
        nudged.append((namespace, name, event_id))

    poller = DriftPoller(
        queue,  # type: ignore[arg-type]
        claimant=lambda bucket: ("team-a", "logs") if bucket == "example-bucket" else None,
        whoami=lambda: OPERATOR,
        nudge=nudge,
    )
    own = edited(PUT, ("detail", "userIdentity", "arn"), OPERATOR.arn)
    other = edited(PUT, ("detail", "requestParameters", "bucketName"), "someone-elses")
    messages = [QueueMessage(str(i), body) for i, body in enumerate([json.dumps(PUT), own, other, "junk"])]
    verdicts = asyncio.run(poller.handle(messages))
    assert verdicts == ["reconciled", "own-write", "unmanaged", "not-a-policy-event"]
    assert nudged == [("team-a", "logs", PUT["detail"]["eventID"])]
    assert queue.deleted == ["0", "1", "2", "3"]


@pytest.mark.parametrize(
    ("url", "region"),
    [
        ("https://sqs.eu-west-1.amazonaws.com/123456789012/q", "eu-west-1"),
        ("http://127.0.0.1:5000/123456789012/q", None),
    ],
    ids=["aws", "emulator"],
)
def test_queue_region_from_url(url: str, region: str | None) -> None:
    assert queue_region(url) == region
