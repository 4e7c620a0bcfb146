# Timestream LiveAnalytics (original names). Closed to new AWS customers since 20 June 2025: docs/deploy.md says
# what to do on an account without it.

resource "aws_timestreamwrite_database" "this" {
  database_name = local.timestream_database_name
  kms_key_id    = aws_kms_key.this.arn
}

resource "aws_timestreamwrite_table" "this" {
  database_name = aws_timestreamwrite_database.this.database_name
  table_name    = local.timestream_table_name

  retention_properties {
    memory_store_retention_period_in_hours  = var.timestream_memory_retention_hours
    magnetic_store_retention_period_in_days = var.timestream_magnetic_retention_days
  }

  # Late readings from a gateway that was offline longer than the memory-store retention still land.
  magnetic_store_write_properties {
    enable_magnetic_store_writes = true

    magnetic_store_rejected_data_location {
      s3_configuration {
        bucket_name       = module.errors_bucket.id
        object_key_prefix = "timestream-rejected/"
        encryption_option = "SSE_KMS"
        kms_key_id        = aws_kms_key.this.arn
      }
    }
  }
}
