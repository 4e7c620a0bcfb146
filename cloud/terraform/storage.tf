# S3: the compliance archive (Object Lock COMPLIANCE), artifacts (models and Greengrass components),
# errors (failed IoT rule messages, Timestream rejected records) and the access-log bucket they all log to.

locals {
  bucket_suffix = "${local.account_id}-${var.aws_region}"
}

module "access_logs_bucket" {
  source = "./modules/secure_bucket"

  name = "${local.short_name}-logs-${local.bucket_suffix}" # 63 characters at most: 24 + 6 + 12 + 1 + 14 (ap-southeast-2)
  # S3 server access logging delivers only to buckets with SSE-S3 default encryption, not SSE-KMS.
  kms_key_arn             = null
  access_logging          = false
  glacier_transition_days = 90
  expiration_days         = var.log_retention_days

  extra_policy_statements = [{
    Sid       = "S3ServerAccessLogsDelivery"
    Effect    = "Allow"
    Principal = { Service = "logging.s3.amazonaws.com" }
    Action    = "s3:PutObject"
    Resource  = "arn:${local.partition}:s3:::${local.short_name}-logs-${local.bucket_suffix}/*"
    Condition = { StringEquals = { "aws:SourceAccount" = local.account_id } }
  }]
}

module "archive_bucket" {
  source = "./modules/secure_bucket"

  name                       = "${local.short_name}-archive-${local.bucket_suffix}"
  kms_key_arn                = aws_kms_key.this.arn
  access_log_bucket          = module.access_logs_bucket.id
  object_lock_retention_days = var.archive_retention_days
  glacier_transition_days    = var.archive_glacier_transition_days
  noncurrent_expiration_days = var.archive_retention_days
}

# gdk publishes components to "<publish.bucket>-<region>-<account>": this is that bucket for
# publish.bucket = "<short name>-artifacts"; retraining writes models here too.
module "artifacts_bucket" {
  source = "./modules/secure_bucket"

  name              = "${local.short_name}-artifacts-${var.aws_region}-${local.account_id}"
  kms_key_arn       = aws_kms_key.this.arn
  access_log_bucket = module.access_logs_bucket.id
}

module "errors_bucket" {
  source = "./modules/secure_bucket"

  name              = "${local.short_name}-errors-${local.bucket_suffix}"
  kms_key_arn       = aws_kms_key.this.arn
  access_log_bucket = module.access_logs_bucket.id
  expiration_days   = 90
}
