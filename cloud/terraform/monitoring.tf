# CloudWatch alarms (to the alarms topic) and the operations dashboard.

locals {
  functions = {
    stream_processor = module.stream_processor.function_name
    analytics_api    = module.analytics_api.function_name
    retrain          = module.retrain.function_name
  }
  failure_queues = {
    stream_failures  = aws_sqs_queue.stream_failures.name
    retrain_failures = aws_sqs_queue.retrain_failures.name
  }
}

resource "aws_cloudwatch_metric_alarm" "iterator_age" {
  alarm_name          = "${var.project_name}-stream-iterator-age"
  alarm_description   = "The stream processor is falling behind the sensor data stream (oldest unread record over 5 minutes)."
  namespace           = "AWS/Kinesis"
  metric_name         = "GetRecords.IteratorAgeMilliseconds"
  dimensions          = { StreamName = aws_kinesis_stream.this.name }
  statistic           = "Maximum"
  period              = 60
  evaluation_periods  = 5
  threshold           = 300000
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
  ok_actions          = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "dlq_depth" {
  for_each            = local.failure_queues
  alarm_name          = "${var.project_name}-${replace(each.key, "_", "-")}-depth"
  alarm_description   = "Records or events gave up on are waiting in ${each.value}: inspect and replay."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = each.value }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

locals {
  # one alarm per function and Lambda metric, with what to do about it
  lambda_metric_advice = {
    Errors             = "reported errors."
    Throttles          = "was throttled: raise its reserved concurrency."
    AsyncEventsDropped = "dropped events that waited past their age in its queue (they are on the retrain failure queue): a run has more lines than it can retrain in 6 hours; split the plants across schedules, then replay them."
  }
  # The retraining job is throttled by design: a scheduled run's per-line events wait in its queue for its one
  # instance (reserved concurrency 1), so a throttle is no fault there; an event dropped from that queue is.
  lambda_function_metrics = {
    stream_processor = ["Errors", "Throttles"]
    analytics_api    = ["Errors", "Throttles"]
    retrain          = ["Errors", "AsyncEventsDropped"]
  }
  lambda_alarms = merge([
    for key, metrics in local.lambda_function_metrics : {
      for metric in metrics : "${key}-${lower(metric)}" => { function = local.functions[key], metric = metric }
    }
  ]...)
}

resource "aws_cloudwatch_metric_alarm" "lambda" {
  for_each            = local.lambda_alarms
  alarm_name          = "${each.value.function}-${lower(each.value.metric)}"
  alarm_description   = "${each.value.function} ${local.lambda_metric_advice[each.value.metric]}"
  namespace           = "AWS/Lambda"
  metric_name         = each.value.metric
  dimensions          = { FunctionName = each.value.function }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

# Emitted by the stream processor through Powertools metrics (namespace and service from its environment).
resource "aws_cloudwatch_metric_alarm" "quarantined" {
  alarm_name          = "${var.project_name}-quarantined-records"
  alarm_description   = "The stream processor quarantined readings or batches: a gateway sends bad data."
  namespace           = local.metrics_namespace
  metric_name         = "Quarantined"
  dimensions          = { service = "stream-processor" }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_dashboard" "this" {
  dashboard_name = var.project_name
  dashboard_body = jsonencode({
    widgets = [
      {
        type = "metric", x = 0, y = 0, width = 12, height = 6
        properties = {
          title  = "Sensor data stream: records and bytes in"
          region = var.aws_region
          stat   = "Sum"
          period = 60
          metrics = [
            ["AWS/Kinesis", "IncomingRecords", "StreamName", aws_kinesis_stream.this.name],
            ["AWS/Kinesis", "IncomingBytes", "StreamName", aws_kinesis_stream.this.name, { yAxis = "right" }],
          ]
        }
      },
      {
        type = "metric", x = 12, y = 0, width = 12, height = 6
        properties = {
          title  = "Stream processor iterator age (ms)"
          region = var.aws_region
          stat   = "Maximum"
          period = 60
          metrics = [
            ["AWS/Kinesis", "GetRecords.IteratorAgeMilliseconds", "StreamName", aws_kinesis_stream.this.name],
            ["AWS/Lambda", "IteratorAge", "FunctionName", module.stream_processor.function_name],
          ]
        }
      },
      {
        type = "metric", x = 0, y = 6, width = 12, height = 6
        properties = {
          title   = "Lambda errors and throttles"
          region  = var.aws_region
          stat    = "Sum"
          period  = 300
          metrics = concat([for f in values(local.functions) : ["AWS/Lambda", "Errors", "FunctionName", f]], [for f in values(local.functions) : ["AWS/Lambda", "Throttles", "FunctionName", f]])
        }
      },
      {
        type = "metric", x = 12, y = 6, width = 12, height = 6
        properties = {
          title  = "Timestream ingestion (WriteRecords calls, latency ms) and quarantined records"
          region = var.aws_region
          period = 60
          metrics = [
            ["AWS/Timestream", "SuccessfulRequestLatency", "Operation", "WriteRecords", "DatabaseName", aws_timestreamwrite_database.this.database_name, "TableName", aws_timestreamwrite_table.this.table_name, { stat = "SampleCount", label = "WriteRecords calls" }],
            ["AWS/Timestream", "SuccessfulRequestLatency", "Operation", "WriteRecords", "DatabaseName", aws_timestreamwrite_database.this.database_name, "TableName", aws_timestreamwrite_table.this.table_name, { stat = "Average", yAxis = "right", label = "latency" }],
            [local.metrics_namespace, "Quarantined", "service", "stream-processor", { stat = "Sum" }],
          ]
        }
      },
    ]
  })
}
