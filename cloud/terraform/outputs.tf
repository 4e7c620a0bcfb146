output "sensor_data_stream_name" {
  description = "Kinesis stream that IoT rules write gateway batches and raw readings to."
  value       = aws_kinesis_stream.this.name
}

output "stream_processor_function_name" {
  description = "The stream processor Lambda (original name <project>-anomaly-detection)."
  value       = module.stream_processor.function_name
}

output "timestream_database_name" {
  description = "Timestream database of the readings."
  value       = aws_timestreamwrite_database.this.database_name
}

output "timestream_table_name" {
  description = "Timestream table of the readings."
  value       = aws_timestreamwrite_table.this.table_name
}

output "analytics_api_url" {
  description = "Base URL of the analytics API; GET <url>/analytics with a Cognito token."
  value       = aws_apigatewayv2_stage.this.invoke_url
}

output "cognito_user_pool_id" {
  description = "Cognito user pool of dashboard users."
  value       = aws_cognito_user_pool.this.id
}

output "cognito_client_id" {
  description = "Cognito app client of the dashboard (the JWT audience)."
  value       = aws_cognito_user_pool_client.dashboard.id
}

output "cognito_domain" {
  description = "Hosted UI domain prefix for the dashboard's sign-in."
  value       = aws_cognito_user_pool_domain.this.domain
}

output "archive_bucket" {
  description = "Compliance archive bucket (Object Lock COMPLIANCE)."
  value       = module.archive_bucket.id
}

output "artifacts_bucket" {
  description = "Bucket for models and Greengrass component artifacts."
  value       = module.artifacts_bucket.id
}

output "gdk_publish_bucket" {
  description = "Value for gdk-config.json component.<name>.publish.bucket (gdk appends -<region>-<account>)."
  value       = "${local.short_name}-artifacts"
}

output "gateway_thing_type" {
  description = "IoT thing type of gateways."
  value       = aws_iot_thing_type.gateway.name
}

output "line_thing_groups" {
  description = "IoT thing group per plant's production line, keyed \"<plant>/<line>\" (deployment targets)."
  value       = { for key, g in aws_iot_thing_group.line : key => g.name }
}

output "line_thing_group_arns" {
  description = "ARNs of the line thing groups, keyed \"<plant>/<line>\" (targets of greengrassv2 CreateDeployment)."
  value       = { for key, g in aws_iot_thing_group.line : key => g.arn }
}

output "gateway_iot_policy" {
  description = "IoT policy to attach to each gateway certificate."
  value       = aws_iot_policy.gateway.name
}

output "greengrass_role_alias" {
  description = "Token exchange role alias for the Greengrass nucleus (--tes-role-alias-name)."
  value       = aws_iot_role_alias.token_exchange.alias
}

output "alerts_topic_arn" {
  description = "SNS topic of gateway alerts."
  value       = aws_sns_topic.alerts.arn
}

output "alarms_topic_arn" {
  description = "SNS topic of CloudWatch alarms."
  value       = aws_sns_topic.alarms.arn
}

output "dashboard_name" {
  description = "CloudWatch dashboard of the platform."
  value       = aws_cloudwatch_dashboard.this.dashboard_name
}

output "kms_key_arn" {
  description = "Customer-managed key that encrypts the platform's data."
  value       = aws_kms_key.this.arn
}

output "alerts_table_name" {
  description = "DynamoDB table of alerts (written by the stream processor, read and acknowledged by the API)."
  value       = aws_dynamodb_table.alerts.name
}

output "alert_audit_table_name" {
  description = "DynamoDB table of the per-plant hash-chained audit log of acknowledgements."
  value       = aws_dynamodb_table.alert_audit.name
}

output "lambda_image_repositories" {
  description = "ECR repository URL per Image function (cloud/lambdas/<function>): docker push <url>:<lambda_image_tag>."
  value       = { for function, repository in aws_ecr_repository.lambda : function => repository.repository_url }
}
