# --- The original design's variables -------------------------------------------------------------

variable "aws_region" {
  type        = string
  description = "AWS region to deploy into, e.g. us-east-1 (Timestream LiveAnalytics must be available there)."
  default     = "us-east-1"

  validation {
    condition     = can(regex("^[a-z]{2}(-gov)?-[a-z]+-[0-9]$", var.aws_region))
    error_message = "aws_region must look like us-east-1."
  }
}

variable "environment" {
  type        = string
  description = "Deployment environment; also the HTTP API stage name (the original URL is .../prod/analytics)."
  default     = "prod"

  validation {
    condition     = contains(["dev", "staging", "prod"], var.environment)
    error_message = "environment must be one of dev, staging, prod."
  }
}

variable "project_name" {
  type        = string
  description = "Prefix of every resource name (lower case, digits and hyphens; at most 46 characters so the function name fits Lambda's 64)."
  default     = "smart-manufacturing-iot-analytics-platform"

  validation {
    condition     = can(regex("^[a-z][a-z0-9-]{1,44}[a-z0-9]$", var.project_name))
    error_message = "project_name must be 3-46 characters of a-z, 0-9 and '-', starting with a letter and not ending with '-'."
  }
}

variable "vpc_cidr" {
  type        = string
  description = "CIDR block of the VPC that holds the stream processor's private subnets (a /16 to /24)."
  default     = "10.0.0.0/16"

  validation {
    condition     = can(cidrhost(var.vpc_cidr, 0)) && tonumber(split("/", var.vpc_cidr)[1]) >= 16 && tonumber(split("/", var.vpc_cidr)[1]) <= 24
    error_message = "vpc_cidr must be a valid IPv4 CIDR between /16 and /24."
  }
}

variable "kinesis_shard_count" {
  type        = number
  description = "Shards of the sensor data stream in PROVISIONED mode (each takes 1 MB/s or 1,000 records/s in). Ignored in ON_DEMAND mode."
  default     = 2

  validation {
    condition     = var.kinesis_shard_count >= 1 && var.kinesis_shard_count <= 500 && floor(var.kinesis_shard_count) == var.kinesis_shard_count
    error_message = "kinesis_shard_count must be a whole number from 1 to 500."
  }
}

variable "availability_zone_suffixes" {
  type        = list(string)
  description = "Availability zones (suffixes of aws_region) of the private subnets; two for resilience."
  default     = ["a", "b"]

  validation {
    condition     = length(var.availability_zone_suffixes) >= 1 && length(var.availability_zone_suffixes) <= 6 && alltrue([for s in var.availability_zone_suffixes : can(regex("^[a-z]$", s))])
    error_message = "availability_zone_suffixes must be 1-6 single letters such as a and b."
  }
}

# --- Stream ----------------------------------------------------------------------------------------

variable "kinesis_stream_mode" {
  type        = string
  description = "PROVISIONED (pay per shard-hour, uses kinesis_shard_count) or ON_DEMAND (scales by itself, pay per GB)."
  default     = "PROVISIONED"

  validation {
    condition     = contains(["PROVISIONED", "ON_DEMAND"], var.kinesis_stream_mode)
    error_message = "kinesis_stream_mode must be PROVISIONED or ON_DEMAND."
  }
}

variable "kinesis_retention_hours" {
  type        = number
  description = "How long the stream keeps records (24-8760 hours); longer gives more time to recover from a stalled consumer."
  default     = 48

  validation {
    condition     = var.kinesis_retention_hours >= 24 && var.kinesis_retention_hours <= 8760
    error_message = "kinesis_retention_hours must be from 24 to 8760."
  }
}

# --- Stream processor -----------------------------------------------------------------------------

variable "stream_processor_reserved_concurrency" {
  type        = number
  description = "Reserved concurrency of the stream processor (at least shards x parallelization factor to never throttle)."
  default     = 10

  validation {
    condition     = var.stream_processor_reserved_concurrency >= 1
    error_message = "stream_processor_reserved_concurrency must be at least 1."
  }
}

variable "stream_processor_memory_mb" {
  type        = number
  description = "Memory of the stream processor in MB (CPU scales with it)."
  default     = 512

  validation {
    condition     = var.stream_processor_memory_mb >= 128 && var.stream_processor_memory_mb <= 10240
    error_message = "stream_processor_memory_mb must be from 128 to 10240."
  }
}

variable "stream_batch_size" {
  type        = number
  description = "Kinesis records per stream processor invocation (each record is a gateway batch of up to 500 readings)."
  default     = 100

  validation {
    condition     = var.stream_batch_size >= 1 && var.stream_batch_size <= 10000
    error_message = "stream_batch_size must be from 1 to 10000."
  }
}

variable "stream_batching_window_seconds" {
  type        = number
  description = "How long Lambda gathers records before invoking (0-300 s); longer means fewer invocations and archive objects."
  default     = 5

  validation {
    condition     = var.stream_batching_window_seconds >= 0 && var.stream_batching_window_seconds <= 300
    error_message = "stream_batching_window_seconds must be from 0 to 300."
  }
}

variable "stream_parallelization_factor" {
  type        = number
  description = "Concurrent batches per shard (1-10); order is kept per partition key (per gateway topic)."
  default     = 1

  validation {
    condition     = var.stream_parallelization_factor >= 1 && var.stream_parallelization_factor <= 10
    error_message = "stream_parallelization_factor must be from 1 to 10."
  }
}

variable "stream_max_retry_attempts" {
  type        = number
  description = "Retries of a failing batch before its records go to the on-failure queue (bounded: -1, forever, is not allowed)."
  default     = 5

  validation {
    condition     = var.stream_max_retry_attempts >= 0 && var.stream_max_retry_attempts <= 10000
    error_message = "stream_max_retry_attempts must be from 0 to 10000."
  }
}

variable "stream_max_record_age_seconds" {
  type        = number
  description = "Records older than this skip processing and go to the on-failure queue (60-604800 s; bounded)."
  default     = 3600

  validation {
    condition     = var.stream_max_record_age_seconds >= 60 && var.stream_max_record_age_seconds <= 604800
    error_message = "stream_max_record_age_seconds must be from 60 to 604800."
  }
}

# --- Timestream ------------------------------------------------------------------------------------

variable "timestream_memory_retention_hours" {
  type        = number
  description = "Hours a reading stays in Timestream's memory store (fast writes and queries, the costliest storage), 1-8766."
  default     = 6

  validation {
    condition     = var.timestream_memory_retention_hours >= 1 && var.timestream_memory_retention_hours <= 8766
    error_message = "timestream_memory_retention_hours must be from 1 to 8766."
  }
}

variable "timestream_magnetic_retention_days" {
  type        = number
  description = "Days a reading stays in Timestream's magnetic store, 1-73000."
  default     = 365

  validation {
    condition     = var.timestream_magnetic_retention_days >= 1 && var.timestream_magnetic_retention_days <= 73000
    error_message = "timestream_magnetic_retention_days must be from 1 to 73000."
  }
}

variable "timestream_endpoint_cell" {
  type        = string
  description = "Timestream cell of this account (from `aws timestream-write describe-endpoints`, e.g. cell1) for the ingest VPC endpoint."
  default     = "cell1"

  validation {
    condition     = can(regex("^cell[0-9]+$", var.timestream_endpoint_cell))
    error_message = "timestream_endpoint_cell must look like cell1."
  }
}

# --- Compliance archive and models ----------------------------------------------------------------

variable "archive_retention_days" {
  type        = number
  description = "Object Lock COMPLIANCE retention of archived batches in days: nobody, root included, can delete them sooner."
  default     = 2555

  validation {
    condition     = var.archive_retention_days >= 1 && var.archive_retention_days <= 36500
    error_message = "archive_retention_days must be from 1 to 36500."
  }
}

variable "archive_glacier_transition_days" {
  type        = number
  description = "Days after which archived objects move to S3 Glacier Flexible Retrieval."
  default     = 90

  validation {
    condition     = var.archive_glacier_transition_days >= 30
    error_message = "archive_glacier_transition_days must be at least 30."
  }
}

variable "log_retention_days" {
  type        = number
  description = "Retention of CloudWatch log groups and S3 access logs in days (at least one year for audits)."
  default     = 365

  validation {
    condition     = contains([365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653], var.log_retention_days)
    error_message = "log_retention_days must be a CloudWatch retention value of at least 365 (365, 400, 545, 731, 1096, 1827, 2192, 2557, 2922, 3288, 3653)."
  }
}

# --- IoT and Greengrass ---------------------------------------------------------------------------

variable "production_lines" {
  type        = list(string)
  description = "Production lines of each plant in `plants`; each plant's line becomes an IoT thing group (<project>-line-<plant>-<line>) that its gateways join and deployments target. Plants may name their lines alike."
  default     = ["line-1"]

  validation {
    condition     = length(var.production_lines) > 0 && length(distinct(var.production_lines)) == length(var.production_lines) && alltrue([for l in var.production_lines : can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", l))])
    error_message = "production_lines must be a non-empty list of distinct names of 1-64 characters from A-Z, a-z, 0-9, '_' and '-', starting with a letter or digit (the names gateways put in readings; thing group names can't hold '.')."
  }
}

# --- HTTP API -------------------------------------------------------------------------------------

variable "api_throttling_rate_limit" {
  type        = number
  description = "Steady-state requests per second the analytics API accepts."
  default     = 50

  validation {
    condition     = var.api_throttling_rate_limit > 0
    error_message = "api_throttling_rate_limit must be positive."
  }
}

variable "api_throttling_burst_limit" {
  type        = number
  description = "Burst of requests the analytics API accepts."
  default     = 100

  validation {
    condition     = var.api_throttling_burst_limit > 0
    error_message = "api_throttling_burst_limit must be positive."
  }
}

variable "api_callback_urls" {
  type        = list(string)
  description = "OAuth callback URLs of the dashboard's Cognito app client."
  default     = ["http://localhost:8000/callback"]

  validation {
    condition     = alltrue([for u in var.api_callback_urls : can(regex("^https?://", u))])
    error_message = "api_callback_urls must be http(s) URLs."
  }
}

# --- Retraining -----------------------------------------------------------------------------------

variable "retrain_schedule_expression" {
  type        = string
  description = "EventBridge schedule of the retraining job, e.g. rate(7 days) or cron(0 3 ? * SUN *)."
  default     = "rate(7 days)"

  validation {
    condition     = can(regex("^(rate|cron)\\(.+\\)$", var.retrain_schedule_expression))
    error_message = "retrain_schedule_expression must be rate(...) or cron(...)."
  }
}

variable "retrain_max_readings_per_line" {
  type        = number
  description = "Archived readings one line's retraining keeps at most; a busier line-week is sampled in whole 15-minute blocks. 8,000,000 (a week of 12 sensors at 1 Hz is 7.3 M) comes to about 1 GiB of the function's 2 GB (docs/benchmarks.md)."
  default     = 8000000

  validation {
    condition     = var.retrain_max_readings_per_line >= 1000000 && var.retrain_max_readings_per_line <= 12000000 && floor(var.retrain_max_readings_per_line) == var.retrain_max_readings_per_line
    error_message = "retrain_max_readings_per_line must be a whole number from 1000000 (a 15-minute block of a 100-sensor line at 10 Hz is 900,000) to 12000000 (about 1.2 GiB by the measured rate: leave room under the function's 2 GB)."
  }
}

# --- Notifications --------------------------------------------------------------------------------

variable "alert_retention_days" {
  type        = number
  description = "Days a cleared alert stays in the alerts table after it cleared (DynamoDB TTL); 0 keeps alerts for ever. A plant's alerts may hold 10 GB (the table has a local index): set this for plants with many alerts."
  default     = 0

  validation {
    condition     = var.alert_retention_days >= 0 && floor(var.alert_retention_days) == var.alert_retention_days
    error_message = "alert_retention_days must be a whole number of days, 0 or more."
  }
}

variable "alert_email_addresses" {
  type        = list(string)
  description = "E-mail addresses of the operations team that receive gateway alerts (each must confirm)."
  default     = []

  validation {
    condition     = alltrue([for a in var.alert_email_addresses : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", a))])
    error_message = "alert_email_addresses must be e-mail addresses."
  }
}

variable "alert_sms_numbers" {
  type        = list(string)
  description = "Phone numbers in E.164 form (+4915112345678) that receive gateway alerts by SMS."
  default     = []

  validation {
    condition     = alltrue([for n in var.alert_sms_numbers : can(regex("^\\+[1-9][0-9]{6,14}$", n))])
    error_message = "alert_sms_numbers must be E.164 numbers like +4915112345678."
  }
}

variable "alert_https_endpoints" {
  type        = list(string)
  description = "HTTPS endpoints (chat webhooks, paging services) that receive gateway alerts."
  default     = []

  validation {
    condition     = alltrue([for u in var.alert_https_endpoints : startswith(u, "https://")])
    error_message = "alert_https_endpoints must start with https://."
  }
}

variable "alarm_email_addresses" {
  type        = list(string)
  description = "E-mail addresses of the platform team that receive CloudWatch alarms."
  default     = []

  validation {
    condition     = alltrue([for a in var.alarm_email_addresses : can(regex("^[^@\\s]+@[^@\\s]+\\.[^@\\s]+$", a))])
    error_message = "alarm_email_addresses must be e-mail addresses."
  }
}

# --- Backup ---------------------------------------------------------------------------------------

variable "backup_schedule_expression" {
  type        = string
  description = "AWS Backup cron schedule of the Timestream table backup (UTC)."
  default     = "cron(0 2 * * ? *)"

  validation {
    condition     = can(regex("^cron\\(.+\\)$", var.backup_schedule_expression))
    error_message = "backup_schedule_expression must be cron(...)."
  }
}

variable "backup_retention_days" {
  type        = number
  description = "Days AWS Backup keeps each Timestream backup."
  default     = 35

  validation {
    condition     = var.backup_retention_days >= 1
    error_message = "backup_retention_days must be at least 1."
  }
}

# --- Packaging ------------------------------------------------------------------------------------

variable "lambda_package_dir" {
  type        = string
  description = "Directory holding <function>.zip of the Zip functions from cloud/build_lambdas.py; null means build/lambda at the repository root."
  default     = null
}

variable "lambda_architecture" {
  type        = string
  description = "CPU architecture of the Lambdas; must match the wheels build_lambdas.py bundled (--arch) and the images' docker build --platform."
  default     = "arm64"

  validation {
    condition     = contains(["arm64", "x86_64"], var.lambda_architecture)
    error_message = "lambda_architecture must be arm64 or x86_64."
  }
}

variable "lambda_image_tag" {
  type        = string
  description = "Tag of the images pushed to this deployment's ECR repositories for the Image functions (retrain, stream processor), e.g. the git commit; the repositories' tags are immutable, so never 'latest'. null until the first push."
  default     = null

  validation {
    condition     = var.lambda_image_tag == null || (can(regex("^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$", var.lambda_image_tag)) && var.lambda_image_tag != "latest")
    error_message = "lambda_image_tag must be a Docker tag (letters, digits, '_', '.', '-'; at most 128) other than 'latest'."
  }
}

variable "retrain_image_uri" {
  type        = string
  description = "Full ECR image URI of the retraining function (tag or @sha256 digest), overriding <its repository>:<lambda_image_tag>."
  default     = null

  validation {
    condition     = var.retrain_image_uri == null || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$", var.retrain_image_uri))
    error_message = "retrain_image_uri must be an ECR image URI with a tag or a sha256 digest."
  }
}

variable "stream_processor_image_uri" {
  type        = string
  description = "Full ECR image URI of the stream processor (tag or @sha256 digest), overriding <its repository>:<lambda_image_tag>."
  default     = null

  validation {
    condition     = var.stream_processor_image_uri == null || can(regex("^[0-9]{12}\\.dkr\\.ecr\\.[a-z0-9-]+\\.amazonaws\\.com(\\.cn)?/[a-z0-9][a-z0-9._/-]*(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}|@sha256:[0-9a-f]{64})$", var.stream_processor_image_uri))
    error_message = "stream_processor_image_uri must be an ECR image URI with a tag or a sha256 digest."
  }
}

variable "ecr_images_to_keep" {
  type        = number
  description = "Images each Lambda ECR repository keeps (older ones expire; keep enough to roll back)."
  default     = 20

  validation {
    condition     = var.ecr_images_to_keep >= 2 && floor(var.ecr_images_to_keep) == var.ecr_images_to_keep
    error_message = "ecr_images_to_keep must be a whole number of at least 2 (the running image and one to roll back to)."
  }
}

variable "ecr_untagged_expiry_days" {
  type        = number
  description = "Days after which untagged images (failed or superseded pushes) expire from the Lambda ECR repositories."
  default     = 7

  validation {
    condition     = var.ecr_untagged_expiry_days >= 1 && floor(var.ecr_untagged_expiry_days) == var.ecr_untagged_expiry_days
    error_message = "ecr_untagged_expiry_days must be a whole number of at least 1."
  }
}

variable "tags" {
  type        = map(string)
  description = "Extra tags for every resource."
  default     = {}
}

# --- Retraining ------------------------------------------------------------------------------------

variable "plants" {
  type        = list(string)
  description = "Plants: each the `plant` its gateways are configured with (and their thing attribute). Each gets a thing group per line in production_lines, and the scheduled retraining covers them one after the other; a drift event retrains its own plant's line."
  default     = ["plant-1"]

  validation {
    condition     = length(var.plants) > 0 && length(distinct(var.plants)) == length(var.plants) && alltrue([for p in var.plants : can(regex("^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$", p))])
    error_message = "plants must be a non-empty list of distinct names of 1-64 characters from A-Z, a-z, 0-9, '_' and '-', starting with a letter or digit (thing group names can't hold '.')."
  }
}
