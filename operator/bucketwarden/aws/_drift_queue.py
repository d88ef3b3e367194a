"""Event-driven drift: CloudTrail's PutBucketPolicy/DeleteBucketPolicy events, delivered by EventBridge to SQS.

``parse_policy_event`` reads one SQS message body (the EventBridge event, "AWS API Call via CloudTrail") into a
:class:`PolicyEvent`, or None for anything else. ``DriftQueue`` long-polls and deletes messages through the shared,
counted clients: sqs:ReceiveMessage, sqs:DeleteMessage and sqs:GetQueueAttributes (once, at start-up,
to fail early on a wrong URL or a missing permission).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from bucketwarden.aws._errors import map_client_error
from bucketwarden.aws._session import ClientFactory
from bucketwarden.principals import CallerIdentity

POLICY_EVENTS = frozenset({"PutBucketPolicy", "DeleteBucketPolicy"})
CLOUDTRAIL_DETAIL_TYPE = "AWS API Call via CloudTrail"
MAX_MESSAGES = 10  # SQS's largest batch


@dataclass(frozen=True, slots=True)
class PolicyEvent:
    """A bucket policy write someone made, as CloudTrail recorded it."""

    event_id: str
    event_name: str
    bucket: str
    principal_id: str | None  # userIdentity.principalId: "AROA...:session" for a role session
    principal_arn: str | None  # userIdentity.arn
    event_time: str | None = None

    def made_by(self, identity: CallerIdentity) -> bool:
        """Whether ``identity`` (the operator's own session) made this write."""
        if self.principal_id is not None and self.principal_id == identity.user_id:
            return True
        return self.principal_arn is not None and self.principal_arn == identity.arn


def parse_policy_event(body: str) -> PolicyEvent | None:
    """The policy write in an SQS message body, or None if it is not one (or the call failed)."""
    try:
        event: Any = json.loads(body)
    except ValueError:
        return None
    if not isinstance(event, dict):
        return None
    detail = event.get("detail")
    if event.get("detail-type") != CLOUDTRAIL_DETAIL_TYPE or not isinstance(detail, dict):
        return None
    name = detail.get("eventName")
    params = detail.get("requestParameters")
    if name not in POLICY_EVENTS or not isinstance(params, dict) or detail.get("errorCode"):
        return None  # a refused write changed nothing
    bucket = params.get("bucketName")
    if not isinstance(bucket, str) or not bucket:
        return None
    identity = detail.get("userIdentity")
    who: dict[str, Any] = identity if isinstance(identity, dict) else {}
    return PolicyEvent(
        event_id=str(detail.get("eventID") or event.get("id") or ""),
        event_name=str(name),
        bucket=bucket,
        principal_id=_text(who.get("principalId")),
        principal_arn=_text(who.get("arn")),
        event_time=_text(detail.get("eventTime")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


def queue_region(url: str) -> str | None:
    """The region in an SQS queue URL (https://sqs.REGION.amazonaws.com/ACCOUNT/NAME), if it names one."""
    host = urlsplit(url).hostname or ""
    parts = host.split(".")
    return parts[1] if len(parts) >= 4 and parts[0] == "sqs" else None


@dataclass(frozen=True, slots=True)
class QueueMessage:
    receipt_handle: str
    body: str


class DriftQueue:
    """One SQS queue of policy events, long-polled by the operator."""

    def __init__(self, factory: ClientFactory, url: str, *, wait_seconds: int = 20) -> None:
        self._factory = factory
        self.url = url
        self.wait_seconds = wait_seconds
        self._region = queue_region(url)

    def check(self) -> int:
        """GetQueueAttributes: the approximate backlog; raises an AwsError for a wrong URL or no permission."""
        try:
            response = self._factory.sqs(self._region).get_queue_attributes(
                QueueUrl=self.url, AttributeNames=["ApproximateNumberOfMessages"]
            )
        except Exception as exc:
            raise map_client_error(exc, api="GetQueueAttributes") from exc
        return int(response.get("Attributes", {}).get("ApproximateNumberOfMessages", "0"))

    def receive(self) -> list[QueueMessage]:
        """Wait up to ``wait_seconds`` for up to 10 messages (SQS long polling)."""
        try:
            response = self._factory.sqs(self._region).receive_message(
                QueueUrl=self.url, MaxNumberOfMessages=MAX_MESSAGES, WaitTimeSeconds=self.wait_seconds
            )
        except Exception as exc:
            raise map_client_error(exc, api="ReceiveMessage") from exc
        return [QueueMessage(m["ReceiptHandle"], m.get("Body", "")) for m in response.get("Messages", [])]

    def delete(self, message: QueueMessage) -> None:
        """Delete a handled message (sqs:DeleteMessage). One that fails to delete comes back, which is harmless."""
        try:
            self._factory.sqs(self._region).delete_message(QueueUrl=self.url, ReceiptHandle=message.receipt_handle)
        except Exception as exc:
            raise map_client_error(exc, api="DeleteMessage") from exc
