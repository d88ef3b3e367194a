# bucketwarden event-driven drift: CloudTrail management events for PutBucketPolicy and DeleteBucketPolicy,
# an EventBridge rule, and the SQS queue the operator long-polls (BUCKETWARDEN_DRIFT_QUEUE_URL).
# Needs a CloudTrail trail that logs management (write) events in this region.

resource "aws_sqs_queue" "drift" {
  name                       = var.queue_name
  message_retention_seconds  = var.message_retention_seconds
  receive_wait_time_seconds  = 20
  visibility_timeout_seconds = 30
  sqs_managed_sse_enabled    = true
  tags                       = var.tags
}

resource "aws_cloudwatch_event_rule" "drift" {
  name        = var.queue_name
  description = "Bucket policy writes, for bucketwarden's drift queue"
  event_pattern = jsonencode({
    source      = ["aws.s3"]
    detail-type = ["AWS API Call via CloudTrail"]
    detail = {
      eventSource = ["s3.amazonaws.com"]
      eventName   = ["PutBucketPolicy", "DeleteBucketPolicy"]
    }
  })
  tags = var.tags
}

resource "aws_cloudwatch_event_target" "drift" {
  rule      = aws_cloudwatch_event_rule.drift.name
  target_id = "bucketwarden-drift-queue"
  arn       = aws_sqs_queue.drift.arn
}

data "aws_iam_policy_document" "drift_queue" {
  statement {
    sid       = "AllowThisRuleOnly"
    effect    = "Allow"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.drift.arn]

    principals {
      type        = "Service"
      identifiers = ["events.amazonaws.com"]
    }

    condition {
      test     = "ArnEquals"
      variable = "aws:SourceArn"
      values   = [aws_cloudwatch_event_rule.drift.arn]
    }
  }
}

resource "aws_sqs_queue_policy" "drift" {
  queue_url = aws_sqs_queue.drift.id
  policy    = data.aws_iam_policy_document.drift_queue.json
}
