# Alerts in the cloud: the gateways' alert topic also flows into the sensor stream (iot.tf), the stream processor
# stores each alert event in DynamoDB, and the analytics API lists and acknowledges them there, appending every
# acknowledgement to a per-plant hash-chained audit log. Keys match src/plantwatch/adapters/dynamo_alerts.py.

resource "aws_dynamodb_table" "alerts" {
  name                        = "${var.project_name}-alerts"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "plant"
  range_key                   = "alert_id"
  deletion_protection_enabled = true

  attribute {
    name = "plant"
    type = "S"
  }

  attribute {
    name = "alert_id"
    type = "S"
  }

  attribute {
    name = "order_key"
    type = "S"
  }

  # A plant's alerts newest raised first, read with strong consistency (an acknowledgement shows at once).
  local_secondary_index {
    name            = "by_raised"
    range_key       = "order_key"
    projection_type = "ALL"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }

  # Always on: only cleared alerts get expires_at (epoch seconds), and only when alert_retention_days > 0.
  ttl {
    attribute_name = "expires_at"
    enabled        = true
  }
}

# Append-only: one hash chain per plant, each entry put only if its seq is free. No role of ours may update or
# delete an entry; PITR keeps 35 days of history to compare against if someone with admin rights does.
resource "aws_dynamodb_table" "alert_audit" {
  name                        = "${var.project_name}-alert-audit"
  billing_mode                = "PAY_PER_REQUEST"
  hash_key                    = "plant"
  range_key                   = "seq"
  deletion_protection_enabled = true

  attribute {
    name = "plant"
    type = "S"
  }

  attribute {
    name = "seq"
    type = "N"
  }

  point_in_time_recovery {
    enabled = true
  }

  server_side_encryption {
    enabled     = true
    kms_key_arn = aws_kms_key.this.arn
  }
}

# The stream processor runs in private subnets: DynamoDB through a gateway endpoint, like S3.
resource "aws_vpc_endpoint" "dynamodb" {
  vpc_id            = aws_vpc.this.id
  service_name      = "com.amazonaws.${var.aws_region}.dynamodb"
  vpc_endpoint_type = "Gateway"
  route_table_ids   = [aws_route_table.private.id]
}
