{{- define "handover-receiver.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "handover-receiver.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else if contains .Chart.Name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name .Chart.Name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}

{{- define "handover-receiver.selectorLabels" -}}
app.kubernetes.io/name: {{ include "handover-receiver.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "handover-receiver.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "handover-receiver.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{- define "handover-receiver.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "handover-receiver.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Settings that would split or lose state fail the render with a clear message. */}}
{{- define "handover-receiver.validate" -}}
{{- $memory := eq .Values.store.type "memory" }}
{{- if and $memory (gt (int .Values.replicaCount) 1) }}
{{- fail "replicaCount > 1 needs store.type=redis: with the in-memory store each pod would hold part of the conversations' state, and ends would be missed or sent twice" }}
{{- end }}
{{- if and $memory .Values.autoscaling.enabled }}
{{- fail "autoscaling.enabled needs store.type=redis: with the in-memory store each pod would hold part of the conversations' state" }}
{{- end }}
{{- if and (eq .Values.store.type "redis") (not .Values.store.redis.existingSecret) }}
{{- fail "store.type=redis needs store.redis.existingSecret: the secret holding the Redis URL" }}
{{- end }}
{{- if and .Values.forwarding.enabled (not .Values.forwarding.cognigyUrl) }}
{{- fail "forwarding.enabled needs forwarding.cognigyUrl" }}
{{- end }}
{{- if le (int .Values.terminationGracePeriodSeconds) (add (int .Values.config.shutdownGraceSecs) (div (add (int .Values.config.requestTimeoutMs) 999) 1000)) }}
{{- fail "terminationGracePeriodSeconds must be longer than config.shutdownGraceSecs plus config.requestTimeoutMs, or the shutdown is cut short" }}
{{- end }}
{{- end }}
