output "event_bus_name" {
  value = aws_cloudwatch_event_bus.genesys.name
}

output "connection_arn" {
  value = aws_cloudwatch_event_connection.handover.arn
}

output "api_destination_arn" {
  value = aws_cloudwatch_event_api_destination.handover.arn
}

output "dead_letter_queue_url" {
  description = "Replay its messages with `handover-receiver replay`."
  value       = aws_sqs_queue.dead_letters.id
}

output "alarm_topic_arn" {
  value = aws_sns_topic.alarms.arn
}
