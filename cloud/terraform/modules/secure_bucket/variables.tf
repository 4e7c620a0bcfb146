variable "name" {
  type        = string
  description = "Bucket name (globally unique, 3-63 characters)."

  validation {
    condition     = can(regex("^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$", var.name))
    error_message = "name must be a valid S3 bucket name."
  }
}

variable "kms_key_arn" {
  type        = string
  description = "Customer-managed KMS key for default encryption; null for SSE-S3 (only for access-log buckets, which S3 requires)."
  default     = null
}

variable "access_logging" {
  type        = bool
  description = "Send server access logs to access_log_bucket; false only for the access-log bucket itself (known at plan time, unlike the bucket's id)."
  default     = true
}

variable "access_log_bucket" {
  type        = string
  description = "Bucket that receives this bucket's server access logs; required when access_logging is true."
  default     = null
}

variable "object_lock_retention_days" {
  type        = number
  description = "Default Object Lock COMPLIANCE retention in days; null for no Object Lock."
  default     = null

  validation {
    condition     = var.object_lock_retention_days == null ? true : var.object_lock_retention_days >= 1
    error_message = "object_lock_retention_days must be at least 1."
  }
}

variable "glacier_transition_days" {
  type        = number
  description = "Days after which current objects move to Glacier Flexible Retrieval; null to keep them in Standard."
  default     = null

  validation {
    condition     = var.glacier_transition_days == null ? true : var.glacier_transition_days >= 30
    error_message = "glacier_transition_days must be at least 30."
  }
}

variable "expiration_days" {
  type        = number
  description = "Days after which current objects expire; null to keep them."
  default     = null

  validation {
    condition     = var.expiration_days == null ? true : var.expiration_days >= 1
    error_message = "expiration_days must be at least 1."
  }
}

variable "noncurrent_expiration_days" {
  type        = number
  description = "Days after which noncurrent versions expire."
  default     = 90

  validation {
    condition     = var.noncurrent_expiration_days >= 1
    error_message = "noncurrent_expiration_days must be at least 1."
  }
}

variable "extra_policy_statements" {
  type        = any
  description = "IAM policy statements (objects in JSON policy form) added to the TLS-only bucket policy."
  default     = []
}
