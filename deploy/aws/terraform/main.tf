data "aws_caller_identity" "current" {}

data "aws_secretsmanager_secret_version" "api_key" {
  count     = var.api_key_secret_arn == null ? 0 : 1
  secret_id = var.api_key_secret_arn
}

locals {
  api_key = var.api_key_secret_arn == null ? var.api_key : data.aws_secretsmanager_secret_version.api_key[0].secret_string

  open_messaging_pattern = {
    source = [{ prefix = "aws.partner/genesys.com" }]
    "detail-type" = [
      "v2.detail.events.conversation.{id}.user.start",
      "v2.detail.events.conversation.{id}.user.end",
      "v2.detail.events.conversation.{id}.acw",
      "v2.detail.events.conversation.{id}.customer.end",
    ]
    detail = {
      eventBody = {
        mediaType   = ["MESSAGE"]
        messageType = ["OPEN"]
      }
    }
  }
  everything_pattern = {
    source = [{ prefix = "aws.partner/genesys.com" }]
  }
}

# The partner event bus carries the name of the partner event source.
resource "aws_cloudwatch_event_bus" "genesys" {
  name              = var.partner_event_source_name
  event_source_name = var.partner_event_source_name
}

resource "aws_cloudwatch_event_connection" "handover" {
  name               = "${var.name_prefix}-connection"
  description        = "API key sent verbatim in the Authorization header."
  authorization_type = "API_KEY"
  auth_parameters {
    api_key {
      key   = "Authorization"
      value = local.api_key
    }
  }
  lifecycle {
    precondition {
      condition     = local.api_key != null && local.api_key != ""
      error_message = "Give api_key_secret_arn or api_key."
    }
  }
}

resource "aws_cloudwatch_event_api_destination" "handover" {
  name                             = "${var.name_prefix}-api-destination"
  connection_arn                   = aws_cloudwatch_event_connection.handover.arn
  invocation_endpoint              = var.receiver_url
  http_method                      = "POST"
  invocation_rate_limit_per_second = var.invocation_rate_limit_per_second
}

resource "aws_sqs_queue" "dead_letters" {
  name                      = "${var.name_prefix}-dlq"
  message_retention_seconds = 1209600
  sqs_managed_sse_enabled   = true
}

resource "aws_sqs_queue_policy" "dead_letters" {
  queue_url = aws_sqs_queue.dead_letters.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "RuleDeadLetters"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sqs:SendMessage"
      Resource  = aws_sqs_queue.dead_letters.arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.handover.arn } }
    }]
  })
}

# Allowed to call this one API destination, nothing else.
resource "aws_iam_role" "invoke" {
  name = "${var.name_prefix}-invoke"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sts:AssumeRole"
      Condition = { StringEquals = { "aws:SourceAccount" = data.aws_caller_identity.current.account_id } }
    }]
  })
}

resource "aws_iam_role_policy" "invoke" {
  name = "invoke-handover-api-destination"
  role = aws_iam_role.invoke.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Effect   = "Allow"
      Action   = "events:InvokeApiDestination"
      Resource = aws_cloudwatch_event_api_destination.handover.arn
    }]
  })
}

resource "aws_cloudwatch_event_rule" "handover" {
  name           = "${var.name_prefix}-rule"
  description    = "Genesys conversation events to handover-receiver."
  event_bus_name = aws_cloudwatch_event_bus.genesys.name
  event_pattern  = jsonencode(var.rule_scope == "open-messaging" ? local.open_messaging_pattern : local.everything_pattern)
}

resource "aws_cloudwatch_event_target" "handover" {
  rule           = aws_cloudwatch_event_rule.handover.name
  event_bus_name = aws_cloudwatch_event_bus.genesys.name
  target_id      = "handover-receiver"
  arn            = aws_cloudwatch_event_api_destination.handover.arn
  role_arn       = aws_iam_role.invoke.arn
  retry_policy {
    maximum_event_age_in_seconds = 86400
    maximum_retry_attempts       = 185
  }
  dead_letter_config {
    arn = aws_sqs_queue.dead_letters.arn
  }
}

resource "aws_sns_topic" "alarms" {
  name              = "${var.name_prefix}-alarms"
  kms_master_key_id = "alias/aws/sns"
}

resource "aws_sns_topic_subscription" "alarm_email" {
  count     = var.alarm_email == null ? 0 : 1
  topic_arn = aws_sns_topic.alarms.arn
  protocol  = "email"
  endpoint  = var.alarm_email
}

# EventBridge sends connection state events to the default bus; this rule matches those of our
# connection, so that its TriggeredRules metric can raise an alarm (e.g. on de-authorization).
resource "aws_cloudwatch_event_rule" "connection_state" {
  name        = "${var.name_prefix}-connection-state"
  description = "State changes of the handover connection (de-authorized after a 401 or 407)."
  event_pattern = jsonencode({
    source        = ["aws.events"]
    "detail-type" = [{ prefix = "Connection" }]
    resources     = [aws_cloudwatch_event_connection.handover.arn]
  })
}

resource "aws_cloudwatch_event_target" "connection_state" {
  rule      = aws_cloudwatch_event_rule.connection_state.name
  target_id = "alarm-topic"
  arn       = aws_sns_topic.alarms.arn
}

resource "aws_sns_topic_policy" "alarms" {
  arn = aws_sns_topic.alarms.arn
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = [{
      Sid       = "ConnectionStateEvents"
      Effect    = "Allow"
      Principal = { Service = "events.amazonaws.com" }
      Action    = "sns:Publish"
      Resource  = aws_sns_topic.alarms.arn
      Condition = { ArnEquals = { "aws:SourceArn" = aws_cloudwatch_event_rule.connection_state.arn } }
    }]
  })
}

resource "aws_cloudwatch_metric_alarm" "failed_invocations" {
  alarm_name          = "${var.name_prefix}-failed-invocations"
  alarm_description   = "EventBridge could not deliver events to handover-receiver (after retries, or refused with 4xx)."
  namespace           = "AWS/Events"
  metric_name         = "FailedInvocations"
  dimensions          = { RuleName = aws_cloudwatch_event_rule.handover.name }
  statistic           = "Sum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "dead_letters" {
  alarm_name          = "${var.name_prefix}-dead-letters"
  alarm_description   = "Events wait in the dead-letter queue; replay them with `handover-receiver replay`."
  namespace           = "AWS/SQS"
  metric_name         = "ApproximateNumberOfMessagesVisible"
  dimensions          = { QueueName = aws_sqs_queue.dead_letters.name }
  statistic           = "Maximum"
  period              = 300
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}

resource "aws_cloudwatch_metric_alarm" "connection_state" {
  alarm_name          = "${var.name_prefix}-connection-state"
  alarm_description   = "The connection changed state; if it is no longer AUTHORIZED, nothing is delivered until it is re-authorized."
  namespace           = "AWS/Events"
  metric_name         = "TriggeredRules"
  dimensions          = { RuleName = aws_cloudwatch_event_rule.connection_state.name }
  statistic           = "Sum"
  period              = 60
  evaluation_periods  = 1
  threshold           = 0
  comparison_operator = "GreaterThanThreshold"
  treat_missing_data  = "notBreaching"
  alarm_actions       = [aws_sns_topic.alarms.arn]
}
