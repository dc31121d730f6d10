variable "partner_event_source_name" {
  description = "The Genesys partner event source (aws.partner/genesys.com/cloud/<genesys-org-id>/<suffix>)."
  type        = string
  validation {
    condition     = can(regex("^aws\\.partner/genesys\\.com(\\.test)?/.+/.+$", var.partner_event_source_name))
    error_message = "Expected aws.partner/genesys.com/... (or aws.partner/genesys.com.test/...)."
  }
}

variable "receiver_url" {
  description = "The receiver's public URL, ending in /handover/genesysCloudOM."
  type        = string
  validation {
    condition     = can(regex("^https://.+/handover/genesysCloudOM$", var.receiver_url))
    error_message = "Expected https://<host>/handover/genesysCloudOM."
  }
}

variable "api_key_secret_arn" {
  description = "Secrets Manager secret whose value is the API key (preferred); null to pass api_key instead."
  type        = string
  default     = null
}

variable "api_key" {
  description = "The API key, when no api_key_secret_arn is given (generate it with `handover-receiver gen-key`)."
  type        = string
  default     = null
  sensitive   = true
}

variable "invocation_rate_limit_per_second" {
  description = "Highest rate at which EventBridge calls the receiver; more is delayed, not dropped."
  type        = number
  default     = 300
}

variable "rule_scope" {
  description = "open-messaging: the four conversation topics of Open Messaging chats; everything: every event of the bus."
  type        = string
  default     = "open-messaging"
  validation {
    condition     = contains(["open-messaging", "everything"], var.rule_scope)
    error_message = "rule_scope is open-messaging or everything."
  }
}

variable "alarm_email" {
  description = "Optional e-mail address subscribed to the alarms."
  type        = string
  default     = null
}

variable "name_prefix" {
  description = "Prefix of the resources' names."
  type        = string
  default     = "service-handover"
}
