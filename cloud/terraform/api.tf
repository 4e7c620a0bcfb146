# The analytics HTTP API: Cognito JWT authorizer, throttling, access logs, and the analytics Lambda (FastAPI via Mangum).

resource "aws_cognito_user_pool" "this" {
  name                     = "${var.project_name}-users"
  user_pool_tier           = "PLUS" # threat protection (advanced security) needs the Plus tier
  mfa_configuration        = "OPTIONAL"
  deletion_protection      = "ACTIVE"
  auto_verified_attributes = ["email"]
  username_attributes      = ["email"]

  admin_create_user_config {
    allow_admin_create_user_only = true # Operators are invited; no self sign-up.
  }

  password_policy {
    minimum_length    = 14
    require_lowercase = true
    require_uppercase = true
    require_numbers   = true
    require_symbols   = true
  }

  software_token_mfa_configuration {
    enabled = true
  }

  user_pool_add_ons {
    advanced_security_mode = "ENFORCED"
  }

  # A user's scope in the analytics API (src/plantwatch/api/auth.py: custom:plants, custom:lines): plant and line
  # names separated by commas. Only administrators set them (admin-update-user-attributes, docs/deploy.md): the
  # dashboard client may read them, not write them. Custom attributes can be added later but never removed or
  # renamed.
  schema {
    name                     = "plants"
    attribute_data_type      = "String"
    mutable                  = true
    required                 = false
    developer_only_attribute = false

    string_attribute_constraints {
      min_length = 1
      max_length = 2048
    }
  }

  schema {
    name                     = "lines"
    attribute_data_type      = "String"
    mutable                  = true
    required                 = false
    developer_only_attribute = false

    string_attribute_constraints {
      min_length = 1
      max_length = 2048
    }
  }
}

resource "aws_cognito_user_pool_domain" "this" {
  domain       = "${local.short_name}-${local.account_id}"
  user_pool_id = aws_cognito_user_pool.this.id
}

resource "aws_cognito_user_pool_client" "dashboard" {
  name                                 = "${var.project_name}-dashboard"
  user_pool_id                         = aws_cognito_user_pool.this.id
  generate_secret                      = false
  allowed_oauth_flows_user_pool_client = true
  allowed_oauth_flows                  = ["code"]
  allowed_oauth_scopes                 = ["openid", "email"]
  callback_urls                        = var.api_callback_urls
  supported_identity_providers         = ["COGNITO"]
  explicit_auth_flows                  = ["ALLOW_USER_SRP_AUTH", "ALLOW_REFRESH_TOKEN_AUTH"]
  prevent_user_existence_errors        = "ENABLED"
  enable_token_revocation              = true
  access_token_validity                = 1
  id_token_validity                    = 1
  refresh_token_validity               = 30
  # Cognito puts into the ID token what the client may read: custom attributes only when listed here.
  read_attributes = ["email", "email_verified", "name", "custom:plants", "custom:lines"]
  # Never the custom attributes (a user could grant themselves any plant with UpdateUserAttributes), nor email,
  # the sign-in name. Left unset, Cognito would let the client write every standard attribute.
  write_attributes = ["name"]

  token_validity_units {
    access_token  = "hours"
    id_token      = "hours"
    refresh_token = "days"
  }
}

data "aws_iam_policy_document" "analytics_api" {
  statement {
    sid       = "QueryReadings"
    actions   = ["timestream:Select"]
    resources = [aws_timestreamwrite_table.this.arn]
  }

  statement {
    sid       = "TimestreamQueryEndpoints"
    actions   = ["timestream:DescribeEndpoints"]
    resources = ["*"] # DescribeEndpoints has no resource-level permissions.
  }

  statement {
    sid       = "ReadAndAcknowledgeAlerts"
    actions   = ["dynamodb:GetItem", "dynamodb:Query", "dynamodb:UpdateItem"]
    resources = [aws_dynamodb_table.alerts.arn, "${aws_dynamodb_table.alerts.arn}/index/by_raised"]
  }

  statement {
    sid       = "AppendToAuditLog" # PutItem conditional on a free seq; no UpdateItem or DeleteItem on the log
    actions   = ["dynamodb:PutItem", "dynamodb:Query"]
    resources = [aws_dynamodb_table.alert_audit.arn]
  }

  statement {
    sid       = "ReadDriftFigures"
    actions   = ["dynamodb:Query", "dynamodb:GetItem"]
    resources = [aws_dynamodb_table.drift.arn]
  }

  statement {
    sid       = "DecryptReadings"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
  }
}

module "analytics_api" {
  source = "./modules/lambda_function"

  function_name        = local.analytics_api_name
  description          = "Analytics API (/analytics): FastAPI app served through Mangum, reads Timestream and alerts"
  package_file         = "${local.lambda_package_dir}/analytics_api.zip"
  handler              = "app.handler"
  architecture         = var.lambda_architecture
  memory_mb            = 512
  timeout_seconds      = 29 # API Gateway's integration timeout.
  reserved_concurrency = 20
  kms_key_arn          = aws_kms_key.this.arn
  log_retention_days   = var.log_retention_days
  policy_json          = data.aws_iam_policy_document.analytics_api.json

  environment = {
    TIMESTREAM_DATABASE     = aws_timestreamwrite_database.this.database_name
    TIMESTREAM_TABLE        = aws_timestreamwrite_table.this.table_name
    PLANTWATCH_ALERTS_TABLE = aws_dynamodb_table.alerts.name
    PLANTWATCH_AUDIT_TABLE  = aws_dynamodb_table.alert_audit.name
    PLANTWATCH_API_BASE     = "/${var.environment}"
    PLANTWATCH_DRIFT_TABLE  = aws_dynamodb_table.drift.name
    POWERTOOLS_SERVICE_NAME = "analytics-api"
  }
}

resource "aws_apigatewayv2_api" "this" {
  name          = "${var.project_name}-analytics"
  protocol_type = "HTTP"
  description   = "plantwatch analytics API"
}

resource "aws_apigatewayv2_authorizer" "jwt" {
  api_id           = aws_apigatewayv2_api.this.id
  authorizer_type  = "JWT"
  name             = "cognito"
  identity_sources = ["$request.header.Authorization"]

  jwt_configuration {
    audience = [aws_cognito_user_pool_client.dashboard.id]
    issuer   = "https://cognito-idp.${var.aws_region}.amazonaws.com/${aws_cognito_user_pool.this.id}"
  }
}

resource "aws_apigatewayv2_integration" "analytics" {
  api_id                 = aws_apigatewayv2_api.this.id
  integration_type       = "AWS_PROXY"
  integration_uri        = module.analytics_api.invoke_arn
  payload_format_version = "2.0"
  timeout_milliseconds   = 29000
}

resource "aws_apigatewayv2_route" "analytics" {
  # The FastAPI app's routes (src/plantwatch/api/app.py): reads, and the one write, acknowledging an alert.
  for_each           = toset(["GET /analytics", "GET /v1/{proxy+}", "POST /v1/alerts/{alert_id}/acknowledge"])
  api_id             = aws_apigatewayv2_api.this.id
  route_key          = each.key
  target             = "integrations/${aws_apigatewayv2_integration.analytics.id}"
  authorization_type = "JWT"
  authorizer_id      = aws_apigatewayv2_authorizer.jwt.id
}

resource "aws_cloudwatch_log_group" "api_access" {
  name              = "/aws/apigateway/${var.project_name}-analytics"
  retention_in_days = var.log_retention_days
  kms_key_id        = aws_kms_key.this.arn
}

resource "aws_apigatewayv2_stage" "this" {
  api_id      = aws_apigatewayv2_api.this.id
  name        = var.environment
  auto_deploy = true

  default_route_settings {
    throttling_rate_limit  = var.api_throttling_rate_limit
    throttling_burst_limit = var.api_throttling_burst_limit
  }

  access_log_settings {
    destination_arn = aws_cloudwatch_log_group.api_access.arn
    format = jsonencode({
      requestId      = "$context.requestId"
      ip             = "$context.identity.sourceIp"
      requestTime    = "$context.requestTime"
      routeKey       = "$context.routeKey"
      status         = "$context.status"
      responseLength = "$context.responseLength"
      latencyMs      = "$context.responseLatency"
      principal      = "$context.authorizer.claims.sub"
      error          = "$context.error.message"
    })
  }
}

resource "aws_lambda_permission" "api" {
  statement_id  = "AllowHttpApi"
  action        = "lambda:InvokeFunction"
  function_name = module.analytics_api.function_name
  principal     = "apigateway.amazonaws.com"
  source_arn    = "${aws_apigatewayv2_api.this.execution_arn}/${aws_apigatewayv2_stage.this.name}/*/*"
}
