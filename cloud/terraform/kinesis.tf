# The sensor data stream (original name), encrypted with the platform's customer-managed key.

resource "aws_kinesis_stream" "this" {
  name             = local.stream_name
  shard_count      = var.kinesis_stream_mode == "PROVISIONED" ? var.kinesis_shard_count : null
  retention_period = var.kinesis_retention_hours
  encryption_type  = "KMS"
  kms_key_id       = aws_kms_key.this.arn

  shard_level_metrics = ["IncomingBytes", "IncomingRecords", "IteratorAgeMilliseconds", "WriteProvisionedThroughputExceeded"]

  stream_mode_details {
    stream_mode = var.kinesis_stream_mode
  }
}
