# SNS: gateway alerts for the operations team, CloudWatch alarms for the platform team; both KMS-encrypted.

resource "aws_sns_topic" "alerts" {
  name              = "${var.project_name}-alerts"
  kms_master_key_id = aws_kms_key.this.arn
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.project_name}-alarms"
  kms_master_key_id = aws_kms_key.this.arn
}

locals {
  alert_subscriptions = merge(
    { for a in var.alert_email_addresses : "email:${a}" => { protocol = "email", endpoint = a } },
    { for n in var.alert_sms_numbers : "sms:${n}" => { protocol = "sms", endpoint = n } },
    { for u in var.alert_https_endpoints : "https:${u}" => { protocol = "https", endpoint = u } },
  )
}

resource "aws_sns_topic_subscription" "alerts" {
  for_each  = local.alert_subscriptions
  topic_arn = aws_sns_topic.alerts.arn
  protocol  = each.value.protocol
  endpoint  = each.value.endpoint
}

resource "aws_sns_topic_subscription" "alarms" {
  for_each  = toset(var.alarm_email_addresses)
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = each.key
}
