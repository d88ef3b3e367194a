variable "queue_name" {
  description = "The queue's name. The operator's IAM policy (ReadDriftQueue) expects the prefix bucketwarden-drift. One queue serves every shard."
  type        = string
  default     = "bucketwarden-drift"

  validation {
    condition     = can(regex("^[A-Za-z0-9_-]{1,80}$", var.queue_name))
    error_message = "An SQS queue name is 1 to 80 letters, digits, hyphens or underscores."
  }
}

variable "message_retention_seconds" {
  description = "How long an unhandled event is kept; the resync catches anything older."
  type        = number
  default     = 3600
}

variable "tags" {
  description = "Tags for the queue and the rule."
  type        = map(string)
  default     = {}
}
