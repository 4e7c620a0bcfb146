# The stream processor (original name: <project>-anomaly-detection): Kinesis -> validate/quarantine -> archive + Timestream.

resource "aws_sqs_queue" "stream_failures" {
  name                      = "${var.project_name}-stream-failures"
  kms_master_key_id         = aws_kms_key.this.arn
  message_retention_seconds = 1209600 # 14 days, the SQS maximum: time to inspect and replay.
}

data "aws_iam_policy_document" "stream_processor" {
  statement {
    sid = "ReadSensorStream"
    actions = [
      "kinesis:DescribeStream", "kinesis:DescribeStreamSummary", "kinesis:GetRecords",
      "kinesis:GetShardIterator", "kinesis:ListShards",
    ]
    resources = [aws_kinesis_stream.this.arn]
  }

  statement {
    sid       = "OnFailureDestination"
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.stream_failures.arn]
  }

  statement {
    sid       = "WriteReadings"
    actions   = ["timestream:WriteRecords"]
    resources = [aws_timestreamwrite_table.this.arn]
  }

  statement {
    sid       = "TimestreamEndpointDiscovery"
    actions   = ["timestream:DescribeEndpoints"]
    resources = ["*"] # DescribeEndpoints has no resource-level permissions.
  }

  statement {
    sid       = "ArchiveAndQuarantineObjects"
    actions   = ["s3:PutObject", "s3:GetObject"]
    resources = ["${module.archive_bucket.arn}/*"]
  }

  statement {
    sid       = "ListArchive"
    actions   = ["s3:ListBucket"]
    resources = [module.archive_bucket.arn]
  }

  statement {
    sid       = "GatewayPlants" # a gateway's plant is its thing attribute "plant" (services/gateway_binding.py)
    actions   = ["iot:DescribeThing"]
    resources = ["${local.iot_arn}:thing/*"]
  }

  statement {
    sid       = "StoreAlerts"
    actions   = ["dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.alerts.arn]
  }

  statement {
    sid       = "DriftSummaries"
    actions   = ["dynamodb:PutItem", "dynamodb:Query", "dynamodb:GetItem"]
    resources = [aws_dynamodb_table.drift.arn]
  }

  statement {
    sid       = "AskRetrainingOfADriftedLine"
    actions   = ["lambda:InvokeFunction"]
    resources = [local.retrain_function_arn]
  }

  statement {
    sid       = "UsePlatformKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }
}

module "stream_processor" {
  source = "./modules/lambda_function"

  function_name        = local.stream_processor_name
  description          = "Validates gateway batches and raw readings, archives them and writes Timestream"
  package_type         = "Image" # too large for a zip (docs/cloud.md): cloud/lambdas/stream_processor/Dockerfile
  image_uri            = local.stream_processor_image_uri
  architecture         = var.lambda_architecture
  memory_mb            = var.stream_processor_memory_mb
  timeout_seconds      = 60
  reserved_concurrency = var.stream_processor_reserved_concurrency
  kms_key_arn          = aws_kms_key.this.arn
  log_retention_days   = var.log_retention_days
  subnet_ids           = aws_subnet.private[*].id
  security_group_ids   = [aws_security_group.stream_processor.id]
  policy_json          = data.aws_iam_policy_document.stream_processor.json

  environment = {
    PLANTWATCH_SINK     = "timestream"
    TIMESTREAM_DATABASE = aws_timestreamwrite_database.this.database_name
    TIMESTREAM_TABLE    = aws_timestreamwrite_table.this.table_name
    # The table's own retention settings (timestream.tf): the sink quarantines what the table would refuse.
    TIMESTREAM_MEMORY_RETENTION_HOURS  = var.timestream_memory_retention_hours
    TIMESTREAM_MAGNETIC_RETENTION_DAYS = var.timestream_magnetic_retention_days
    TIMESTREAM_MAGNETIC_WRITES         = aws_timestreamwrite_table.this.magnetic_store_write_properties[0].enable_magnetic_store_writes
    PLANTWATCH_ARCHIVE_URL             = "s3://${module.archive_bucket.id}/batches/"
    PLANTWATCH_ALERTS_TABLE            = aws_dynamodb_table.alerts.name
    PLANTWATCH_ALERT_RETENTION_DAYS    = var.alert_retention_days
    PLANTWATCH_GATEWAY_REGISTRY        = "iot"
    PLANTWATCH_IOT_ENDPOINT_URL        = "https://${aws_vpc_endpoint.iot_api.dns_entry[0].dns_name}"
    PLANTWATCH_DRIFT_TABLE             = aws_dynamodb_table.drift.name
    PLANTWATCH_RETRAIN_FUNCTION        = local.retrain_name
    POWERTOOLS_SERVICE_NAME            = "stream-processor"
    POWERTOOLS_METRICS_NAMESPACE       = local.metrics_namespace
  }
}

resource "aws_lambda_event_source_mapping" "stream_processor" {
  event_source_arn                   = aws_kinesis_stream.this.arn
  function_name                      = module.stream_processor.arn
  starting_position                  = "TRIM_HORIZON"
  batch_size                         = var.stream_batch_size
  maximum_batching_window_in_seconds = var.stream_batching_window_seconds
  parallelization_factor             = var.stream_parallelization_factor
  function_response_types            = ["ReportBatchItemFailures"]
  bisect_batch_on_function_error     = true
  maximum_retry_attempts             = var.stream_max_retry_attempts
  maximum_record_age_in_seconds      = var.stream_max_record_age_seconds

  destination_config {
    on_failure {
      destination_arn = aws_sqs_queue.stream_failures.arn
    }
  }
}
