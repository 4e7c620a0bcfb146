variable "function_name" {
  type        = string
  description = "Lambda function name (also the IAM role and log group name)."

  validation {
    condition     = can(regex("^[a-zA-Z0-9_-]{1,64}$", var.function_name))
    error_message = "function_name must be 1-64 characters of letters, digits, '-' and '_'."
  }
}

variable "description" {
  type        = string
  description = "What the function does."
}

variable "package_type" {
  type        = string
  description = "Zip (package_file, built by cloud/build_lambdas.py) or Image (image_uri, built from cloud/lambdas/<function>/Dockerfile)."
  default     = "Zip"

  validation {
    condition     = contains(["Zip", "Image"], var.package_type)
    error_message = "package_type must be Zip or Image."
  }
}

variable "package_file" {
  type        = string
  description = "Path of the zip built by cloud/build_lambdas.py (Zip functions only)."
  default     = null
}

variable "image_uri" {
  type        = string
  description = "ECR image of an Image function: <account>.dkr.ecr.<region>.amazonaws.com/<repository>:<tag> or @sha256:<digest>."
  default     = null

  validation {
    condition     = var.image_uri == null || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$", var.image_uri))
    error_message = "image_uri must be an ECR image URI with a tag or a sha256 digest."
  }
}

variable "handler" {
  type        = string
  description = "Handler as module.function inside the zip, e.g. app.handler (an image names its handler in its CMD)."
  default     = "app.handler"
}

variable "runtime" {
  type        = string
  description = "Lambda Python runtime of a Zip function (an image brings its own)."
  default     = "python3.12"

  validation {
    condition     = can(regex("^python3\\.(1[1-9])$", var.runtime))
    error_message = "runtime must be python3.11 or newer (plantwatch needs Python 3.11+)."
  }
}

variable "architecture" {
  type        = string
  description = "arm64 or x86_64; must match the wheels in the package."
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.architecture)
    error_message = "architecture must be arm64 or x86_64."
  }
}

variable "memory_mb" {
  type        = number
  description = "Memory in MB."
  default     = 256

  validation {
    condition     = var.memory_mb >= 128 && var.memory_mb <= 10240
    error_message = "memory_mb must be from 128 to 10240."
  }
}

variable "timeout_seconds" {
  type        = number
  description = "Timeout in seconds."
  default     = 30

  validation {
    condition     = var.timeout_seconds >= 1 && var.timeout_seconds <= 900
    error_message = "timeout_seconds must be from 1 to 900."
  }
}

variable "reserved_concurrency" {
  type        = number
  description = "Reserved concurrent executions (a ceiling that also protects the rest of the account)."

  validation {
    condition     = var.reserved_concurrency >= 1
    error_message = "reserved_concurrency must be at least 1 (0 would stop the function)."
  }
}

variable "environment" {
  type        = map(string)
  description = "Environment variables the function reads."
  default     = {}
}

variable "policy_json" {
  type        = string
  description = "IAM policy (JSON) with exactly the calls the function's code makes."
}

variable "kms_key_arn" {
  type        = string
  description = "KMS key for environment variables and the log group."
}

variable "log_retention_days" {
  type        = number
  description = "Log group retention in days."

  validation {
    condition     = var.log_retention_days >= 365
    error_message = "log_retention_days must be at least 365."
  }
}

variable "subnet_ids" {
  type        = list(string)
  description = "Private subnets to run in; empty for no VPC."
  default     = []
}

variable "security_group_ids" {
  type        = list(string)
  description = "Security groups when in a VPC."
  default     = []
}

variable "dead_letter_target_arn" {
  type        = string
  description = "SQS queue for failed asynchronous invocations; null for synchronously invoked functions."
  default     = null
}
