# Greengrass: the token exchange role that core devices assume (through the IoT role alias) for AWS calls.

data "aws_iam_policy_document" "token_exchange_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["credentials.iot.amazonaws.com"]
    }
  }
}

resource "aws_iam_role" "token_exchange" {
  name               = "${var.project_name}-gg-token-exchange" # IAM role names: at most 64 characters
  assume_role_policy = data.aws_iam_policy_document.token_exchange_assume.json
}

data "aws_iam_policy_document" "token_exchange" {
  statement {
    sid       = "DownloadComponentArtifactsAndModels"
    actions   = ["s3:GetObject"]
    resources = ["${module.artifacts_bucket.arn}/*"]
  }

  statement {
    sid       = "DecryptArtifacts"
    actions   = ["kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
  }

  statement {
    sid       = "GreengrassLogManager"
    actions   = ["logs:CreateLogGroup", "logs:CreateLogStream", "logs:PutLogEvents", "logs:DescribeLogStreams"]
    resources = ["arn:${local.partition}:logs:${var.aws_region}:${local.account_id}:log-group:/aws/greengrass/*"]
  }
}

resource "aws_iam_role_policy" "token_exchange" {
  name   = "token-exchange"
  role   = aws_iam_role.token_exchange.id
  policy = data.aws_iam_policy_document.token_exchange.json
}

resource "aws_iot_role_alias" "token_exchange" {
  alias               = "${var.project_name}-token-exchange"
  role_arn            = aws_iam_role.token_exchange.arn
  credential_duration = 3600
}
