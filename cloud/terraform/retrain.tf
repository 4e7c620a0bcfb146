# Retraining: weekly (by default) job that reads the archive of each plant in var.plants, writes the line models and
# deploys them to the lines' thing groups; the stream processor also invokes it for one drifted plant's line.

resource "aws_sqs_queue" "retrain_failures" {
  name                      = "${var.project_name}-retrain-failures"
  kms_master_key_id         = aws_kms_key.this.arn
  message_retention_seconds = 1209600
}

data "aws_iam_policy_document" "retrain" {
  statement {
    sid       = "ReadArchive"
    actions   = ["s3:GetObject"]
    resources = ["${module.archive_bucket.arn}/*"]
  }

  statement {
    sid       = "ListArchiveAndRegistry"
    actions   = ["s3:ListBucket"]
    resources = [module.archive_bucket.arn, module.artifacts_bucket.arn]
  }

  statement {
    sid     = "WriteModels"
    actions = ["s3:PutObject", "s3:GetObject"]
    resources = [
      "${module.artifacts_bucket.arn}/models/*",
      "${module.artifacts_bucket.arn}/greengrass/artifacts/*",
    ]
  }

  statement {
    sid       = "ReportWhatARunCouldNotRetrain" # no archived data, a line without a thing group (adapters/aws_retrain.py)
    actions   = ["sqs:SendMessage"]
    resources = [aws_sqs_queue.retrain_failures.arn]
  }

  statement {
    sid       = "UsePlatformKey"
    actions   = ["kms:Decrypt", "kms:GenerateDataKey"]
    resources = [aws_kms_key.this.arn]
  }

  statement {
    sid = "PublishModelComponent" # versions of com.plantwatch.Model only (adapters/greengrass_publisher.py)
    # ListComponentVersions finds the next 1.0.N; GetComponent and DescribeComponent read a version's recipe and
    # state to reuse it on a retry.
    actions = [
      "greengrass:CreateComponentVersion",
      "greengrass:ListComponentVersions",
      "greengrass:GetComponent",
      "greengrass:DescribeComponent",
    ]
    resources = [
      "arn:${local.partition}:greengrass:${var.aws_region}:${local.account_id}:components:com.plantwatch.Model",
      "arn:${local.partition}:greengrass:${var.aws_region}:${local.account_id}:components:com.plantwatch.Model:versions:*",
    ]
  }

  statement {
    sid       = "DeployToLines"
    actions   = ["greengrass:CreateDeployment", "greengrass:ListDeployments"]
    resources = ["*"] # neither has resource-level permissions; the IoT side of a deployment is scoped below.
  }

  statement {
    sid       = "ReadLineDeployments"
    actions   = ["greengrass:GetDeployment"]
    resources = ["arn:${local.partition}:greengrass:${var.aws_region}:${local.account_id}:deployments:*"]
  }

  statement {
    sid = "ReadDeploymentOutcomes"
    # How a line's latest deployment went: its IoT job's failed executions, the group's things (a gateway that
    # left the group is not counted), and each failed execution's details (DescribeJobExecution is on the thing).
    actions = ["iot:ListJobExecutionsForJob", "iot:ListThingsInThingGroup", "iot:DescribeJobExecution"]
    resources = [
      "${local.iot_arn}:job/*",
      "${local.iot_arn}:thinggroup/${var.project_name}-line-*",
      "${local.iot_arn}:thing/*",
    ]
  }

  statement {
    sid     = "DeploymentTargets"
    actions = ["iot:DescribeThingGroup", "iot:CreateJob", "iot:UpdateJob", "iot:DescribeJob", "iot:CancelJob"]
    # every line group, by name: one ARN per plant and line would outgrow IAM's 10,240 characters of inline policy
    resources = ["${local.iot_arn}:thinggroup/${var.project_name}-line-*", "${local.iot_arn}:job/*"]
  }

  statement {
    sid = "OneLinePerInvocation" # a scheduled run invokes this function once per plant and line (aws_retrain.py)
    # by name, not module.retrain.arn: this document is an input of that module
    actions   = ["lambda:InvokeFunction"]
    resources = [local.retrain_function_arn]
  }

  statement {
    sid       = "DeploymentShadows"
    actions   = ["iot:GetThingShadow", "iot:UpdateThingShadow", "iot:DeleteThingShadow", "iot:DescribeThing"]
    resources = ["${local.iot_arn}:thing/*"]
  }
}

module "retrain" {
  source = "./modules/lambda_function"

  function_name   = local.retrain_name
  description     = "Retrains the line models from the archive and deploys them to the gateways"
  package_type    = "Image" # too large for a zip (docs/cloud.md): cloud/lambdas/retrain/Dockerfile
  image_uri       = local.retrain_image_uri
  architecture    = var.lambda_architecture
  memory_mb       = 2048
  timeout_seconds = 900
  # One invocation at a time: two runs of one line at once could deploy a stale champion over a newer one, and
  # every line's model is a version of the one shared com.plantwatch.Model component (docs/models.md).
  reserved_concurrency   = 1
  kms_key_arn            = aws_kms_key.this.arn
  log_retention_days     = var.log_retention_days
  dead_letter_target_arn = aws_sqs_queue.retrain_failures.arn
  policy_json            = data.aws_iam_policy_document.retrain.json

  environment = {
    PLANTWATCH_ARCHIVE_BUCKET           = module.archive_bucket.id
    PLANTWATCH_ARCHIVE_PREFIX           = "batches/"
    PLANTWATCH_REGISTRY_BUCKET          = module.artifacts_bucket.id
    PLANTWATCH_REGISTRY_PREFIX          = "models/registry"
    PLANTWATCH_ARTIFACT_BUCKET          = module.artifacts_bucket.id
    PLANTWATCH_THING_GROUP_ARN_TEMPLATE = "${local.iot_arn}:thinggroup/${var.project_name}-line-{plant}-{line}"
    # Every plant in PLANTWATCH_PLANTS has a thing group per line here (aws_iot_thing_group.line); readings of
    # any other line or plant are refused before training.
    PLANTWATCH_LINES = join(",", var.production_lines)
    # The plants the schedule retrains, one after the other; a drift event names its own plant and line.
    PLANTWATCH_PLANTS = join(",", var.plants)
    # What one line's read keeps at most: a line busier than that is sampled in whole blocks of time.
    PLANTWATCH_MAX_READINGS_PER_LINE = var.retrain_max_readings_per_line
    # What a run could not retrain (no archived data, a line without a thing group) is queued here, replayable.
    PLANTWATCH_FAILURE_QUEUE_URL = aws_sqs_queue.retrain_failures.url
    POWERTOOLS_SERVICE_NAME      = "retrain"
  }
}

resource "aws_cloudwatch_event_rule" "retrain" {
  name                = local.retrain_name
  description         = "Schedule of model retraining"
  schedule_expression = var.retrain_schedule_expression
}

resource "aws_cloudwatch_event_target" "retrain" {
  rule = aws_cloudwatch_event_rule.retrain.name
  arn  = module.retrain.arn

  retry_policy {
    maximum_retry_attempts       = 2
    maximum_event_age_in_seconds = 3600
  }
}

resource "aws_lambda_permission" "retrain_schedule" {
  statement_id  = "AllowEventBridgeSchedule"
  action        = "lambda:InvokeFunction"
  function_name = module.retrain.function_name
  principal     = "events.amazonaws.com"
  source_arn    = aws_cloudwatch_event_rule.retrain.arn
}
