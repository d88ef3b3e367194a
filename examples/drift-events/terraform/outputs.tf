output "queue_url" {
  description = "BUCKETWARDEN_DRIFT_QUEUE_URL (Helm value driftQueue.url)"
  value       = aws_sqs_queue.drift.id
}

output "queue_arn" {
  description = "The Resource of the ReadDriftQueue statement in the operator's IAM policy"
  value       = aws_sqs_queue.drift.arn
}
