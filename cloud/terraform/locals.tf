data "aws_caller_identity" "current" {}

data "aws_partition" "current" {}

data "aws_region" "current" {}

locals {
  account_id = data.aws_caller_identity.current.account_id
  partition  = data.aws_partition.current.partition
  region     = data.aws_region.current.name

  # Short prefix for names with tight length limits (S3 buckets: 63 characters).
  short_name = trimsuffix(substr(var.project_name, 0, 24), "-")

  # The original design's names: its verification commands keep working.
  stream_name              = "${var.project_name}-sensor-data-stream"
  stream_processor_name    = "${var.project_name}-anomaly-detection"
  timestream_database_name = "${replace(var.project_name, "-", "_")}_sensor_database"
  timestream_table_name    = "sensor_readings"

  analytics_api_name = "${var.project_name}-analytics-api"
  retrain_name       = "${var.project_name}-retrain"

  # Gateway topics (src/plantwatch/contract/topics.py) and the original raw topic.
  gateway_topic_root   = "plantwatch/gateways"
  batch_topic_filter   = "plantwatch/gateways/+/batches"
  alert_topic_filter   = "plantwatch/gateways/+/alerts"
  summary_topic_filter = "plantwatch/gateways/+/summaries"
  legacy_topic_filter  = "manufacturing/sensors/+/data"

  # Where `build_lambdas.py` writes one zip per function (build/lambda/<function>.zip by default).
  lambda_package_dir = coalesce(var.lambda_package_dir, "${path.root}/../../build/lambda")

  # Powertools metric namespace: the stream processor's quarantine metric lives here.
  metrics_namespace = "Plantwatch"

  tags = merge(var.tags, {
    Project     = var.project_name
    Environment = var.environment
    ManagedBy   = "terraform"
  })
}
