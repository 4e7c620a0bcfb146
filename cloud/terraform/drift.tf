# Drift: the gateways' score summaries per line in DynamoDB, written by the stream processor (which also asks the
# retrain Lambda to retrain a drifted line), read by the analytics API (GET /v1/models). Layout: adapters/dynamo_drift.py.

locals {
  drift_table_name = "${var.project_name}-drift"
  # By name, so this file does not depend on how retrain.tf packages the function.
  retrain_function_arn = "arn:${local.partition}:lambda:${var.aws_region}:${local.account_id}:function:${local.retrain_name}"
}

resource "aws_dynamodb_table" "drift" {
  name                        = local.drift_table_name
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "pk"
  range_key                   = "sk"
  deletion_protection_enabled = true

  attribute {
    name = "pk"
    type = "S"
  }

  attribute {
    name = "sk"
    type = "S"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  # Items carry expires_at (epoch seconds): summaries are evidence for months, not forever.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
}
