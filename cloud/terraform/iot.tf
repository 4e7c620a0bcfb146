# IoT Core: gateway things, a thing group per plant's production line, a thing-scoped policy and the topic rules.

resource "aws_iot_thing_type" "gateway" {
  name = "${var.project_name}-gateway"

  properties {
    description           = "plantwatch gateway (Greengrass core device) on a production line"
    searchable_attributes = ["plant", "line"]
  }
}

resource "aws_iot_thing_group" "plant" {
  name = "${var.project_name}-plant"

  properties {
    description = "Every plantwatch gateway"
  }
}

# A thing group per plant's line: two plants that both have a line-1 get two groups, so one plant's model is
# never deployed to the other's gateways. Names are <project>-line-<plant>-<line> (the retraining role may deploy
# to <project>-line-*, not to the parent group of every gateway); keys are "<plant>/<line>".
locals {
  plant_lines = {
    for pair in setproduct(var.plants, var.production_lines) : "${pair[0]}/${pair[1]}" => {
      plant = pair[0]
      line  = pair[1]
      group = "${var.project_name}-line-${pair[0]}-${pair[1]}"
    }
  }
}

resource "aws_iot_thing_group" "line" {
  for_each          = local.plant_lines
  name              = each.value.group
  parent_group_name = aws_iot_thing_group.plant.name

  properties {
    description = "Gateways of production line ${each.value.line} of plant ${each.value.plant}"

    attribute_payload {
      attributes = { plant = each.value.plant, line = each.value.line }
    }
  }

  lifecycle {
    precondition {
      condition     = length(each.value.group) <= 128
      error_message = "Thing group ${each.value.group} is longer than IoT's 128 characters: shorten project_name, the plant or the line name."
    }
    precondition { # the line's model is named <plant>.<line>, and every batch it scores carries that name
      condition     = length("${each.value.plant}.${each.value.line}") <= 64
      error_message = "Model name ${each.value.plant}.${each.value.line} would be longer than the 64 characters a batch may carry (the cloud would refuse every batch it scored): shorten the plant or the line name."
    }
    precondition { # fails for the colliding groups only, naming the pairs
      condition     = length([for key, v in local.plant_lines : key if v.group == each.value.group]) == 1
      error_message = "Plant/line pairs ${join(" and ", [for key, v in local.plant_lines : key if v.group == each.value.group])} make the same thing group name ${each.value.group} (<project>-line-<plant>-<line>): rename one."
    }
  }
}

locals {
  thing   = "$${iot:Connection.Thing.ThingName}"
  iot_arn = "arn:${local.partition}:iot:${var.aws_region}:${local.account_id}"
}

# Each gateway connects as its thing name and may only use its own topics (MQTT client id == thing name).
data "aws_iam_policy_document" "gateway_iot" {
  # checkov:skip=CKV_AWS_356: Only the Greengrass core-device calls use "*": ResolveComponentCandidates and friends have no resource-level permissions; every MQTT action is scoped to the thing name.
  statement {
    sid       = "ConnectAsOwnThing"
    actions   = ["iot:Connect"]
    resources = ["${local.iot_arn}:client/${local.thing}"]

    condition {
      test     = "Bool"
      variable = "iot:Connection.Thing.IsAttached"
      values   = ["true"]
    }
  }

  statement {
    sid     = "PublishOwnTopics"
    actions = ["iot:Publish"]
    resources = [
      "${local.iot_arn}:topic/${local.gateway_topic_root}/${local.thing}/batches",
      "${local.iot_arn}:topic/${local.gateway_topic_root}/${local.thing}/alerts",
      "${local.iot_arn}:topic/${local.gateway_topic_root}/${local.thing}/summaries",
      # Original devices publish raw readings under their own thing name (== sensor id).
      "${local.iot_arn}:topic/manufacturing/sensors/${local.thing}/data",
      "${local.iot_arn}:topic/$aws/things/${local.thing}/*",
    ]
  }

  statement {
    sid     = "SubscribeOwnTopics"
    actions = ["iot:Subscribe"]
    resources = [
      "${local.iot_arn}:topicfilter/${local.gateway_topic_root}/${local.thing}/*",
      "${local.iot_arn}:topicfilter/$aws/things/${local.thing}/*",
    ]
  }

  statement {
    sid     = "ReceiveOwnTopics"
    actions = ["iot:Receive"]
    resources = [
      "${local.iot_arn}:topic/${local.gateway_topic_root}/${local.thing}/*",
      "${local.iot_arn}:topic/$aws/things/${local.thing}/*",
    ]
  }

  statement {
    sid       = "GreengrassTokenExchange"
    actions   = ["iot:AssumeRoleWithCertificate"]
    resources = [aws_iot_role_alias.token_exchange.arn]
  }

  statement {
    sid = "GreengrassCoreDevice"
    actions = [
      "greengrass:GetComponentVersionArtifact",
      "greengrass:ResolveComponentCandidates",
      "greengrass:GetDeploymentConfiguration",
      "greengrass:ListThingGroupsForCoreDevice",
    ]
    resources = ["*"] # Greengrass data-plane calls from core devices do not support resource-level permissions.
  }
}

resource "aws_iot_policy" "gateway" {
  name   = "${var.project_name}-gateway"
  policy = data.aws_iam_policy_document.gateway_iot.json
}

# --- Topic rules -------------------------------------------------------------------------------------

data "aws_iam_policy_document" "iot_rules_assume" {
  statement {
    actions = ["sts:AssumeRole"]

    principals {
      type        = "Service"
      identifiers = ["iot.amazonaws.com"]
    }

    condition {
      test     = "StringEquals"
      variable = "aws:SourceAccount"
      values   = [local.account_id]
    }
  }
}

resource "aws_iam_role" "iot_rules" {
  name               = "${var.project_name}-iot-rules"
  assume_role_policy = data.aws_iam_policy_document.iot_rules_assume.json
}

data "aws_iam_policy_document" "iot_rules" {
  statement {
    sid       = "PutIntoSensorStream"
    actions   = ["kinesis:PutRecord"]
    resources = [aws_kinesis_stream.this.arn]
  }

  statement {
    sid       = "PublishAlerts"
    actions   = ["sns:Publish"]
    resources = [aws_sns_topic.alerts.arn]
  }

  statement {
    sid       = "KeepFailedMessages"
    actions   = ["s3:PutObject"]
    resources = ["${module.errors_bucket.arn}/iot-rule-errors/*"]
  }

  statement {
    sid       = "EncryptWithPlatformKey"
    actions   = ["kms:GenerateDataKey", "kms:Decrypt"]
    resources = [aws_kms_key.this.arn]
  }
}

resource "aws_iam_role_policy" "iot_rules" {
  name   = "iot-rules"
  role   = aws_iam_role.iot_rules.id
  policy = data.aws_iam_policy_document.iot_rules.json
}

locals {
  # Binary (gzip) gateway batches and JSON raw readings both enter the stream unchanged: SELECT * passes a
  # binary payload through as is. The partition key is the full topic, so the stream processor learns the
  # gateway (or legacy sensor) from it and each gateway's batches stay in order on one shard.
  stream_rules = {
    gateway_batches = {
      description = "Gateway scored batches (gzip columnar JSON) into the sensor data stream"
      sql         = "SELECT * FROM '${local.batch_topic_filter}'"
    }
    gateway_summaries = {
      description = "Gateway score summaries per window (JSON, drift input) into the sensor data stream"
      sql         = "SELECT * FROM '${local.summary_topic_filter}'"
    }
    legacy_raw_readings = {
      description = "Original raw sensor readings into the sensor data stream"
      sql         = "SELECT * FROM '${local.legacy_topic_filter}'"
    }
    # Alert events (JSON) too: the stream processor stores them for the API (alerts.tf); SNS still gets them below.
    alert_events = {
      description = "Gateway alert events into the sensor data stream, for the alert store"
      sql         = "SELECT * FROM '${local.alert_topic_filter}'"
    }
  }
}

resource "aws_iot_topic_rule" "stream" {
  for_each    = local.stream_rules
  name        = "${replace(var.project_name, "-", "_")}_${each.key}"
  description = each.value.description
  enabled     = true
  sql         = each.value.sql
  sql_version = "2016-03-23"

  kinesis {
    stream_name   = aws_kinesis_stream.this.name
    role_arn      = aws_iam_role.iot_rules.arn
    partition_key = "$${topic()}"
  }

  error_action {
    s3 {
      bucket_name = module.errors_bucket.id
      key         = "iot-rule-errors/${each.key}/$${timestamp()}-$${newuuid()}"
      role_arn    = aws_iam_role.iot_rules.arn
    }
  }
}

resource "aws_iot_topic_rule" "alerts" {
  name        = "${replace(var.project_name, "-", "_")}_gateway_alerts"
  description = "Gateway alerts to the operations team's SNS topic"
  enabled     = true
  sql         = "SELECT * FROM '${local.alert_topic_filter}'"
  sql_version = "2016-03-23"

  sns {
    target_arn     = aws_sns_topic.alerts.arn
    role_arn       = aws_iam_role.iot_rules.arn
    message_format = "RAW"
  }

  error_action {
    s3 {
      bucket_name = module.errors_bucket.id
      key         = "iot-rule-errors/gateway_alerts/$${timestamp()}-$${newuuid()}"
      role_arn    = aws_iam_role.iot_rules.arn
    }
  }
}
