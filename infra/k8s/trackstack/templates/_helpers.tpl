{{/* Chart name, overridable. */}}
{{- define "trackstack.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Release-qualified name, at most 63 characters (room is left for the role suffixes by trunc below). */}}
{{- define "trackstack.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 63 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{/* Name of a per-role object: fullname-role. Call with (dict "root" $ "role" "api"). */}}
{{- define "trackstack.roleName" -}}
{{- printf "%s-%s" (include "trackstack.fullname" .root | trunc 52 | trimSuffix "-") .role }}
{{- end }}

{{- define "trackstack.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "trackstack.selectorLabels" -}}
app.kubernetes.io/name: {{ include "trackstack.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{- define "trackstack.labels" -}}
helm.sh/chart: {{ include "trackstack.chart" . }}
{{ include "trackstack.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: trackstack
{{- end }}

{{- define "trackstack.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret holding storage URIs and S3 credentials, for the Deployments. */}}
{{- define "trackstack.secretName" -}}
{{- if .Values.storageSecret.existingSecret }}
{{- .Values.storageSecret.existingSecret }}
{{- else }}
{{- printf "%s-storage" (include "trackstack.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The same, for the migrate hook Job. A pre-install hook runs before the release's own objects exist, so when the
chart creates the Secret it also creates a hook copy for the Job; an existingSecret is there already.
*/}}
{{- define "trackstack.migrateSecretName" -}}
{{- if .Values.storageSecret.existingSecret }}
{{- .Values.storageSecret.existingSecret }}
{{- else }}
{{- printf "%s-migrate" (include "trackstack.fullname" .) }}
{{- end }}
{{- end }}

{{/*
The server's TOML configuration (docs/configuration.md). Numbers go through int64 because Helm reads values as
float64, and TOML would otherwise get `30.0` where the server wants an integer; strings go through toJson, whose
escapes are valid TOML basic strings.
*/}}
{{- define "trackstack.configToml" -}}
{{- $c := .Values.config -}}
# Rendered by the Trackstack Helm chart from .Values.config; see docs/configuration.md.
# storage.metadata, storage.series and the S3 credentials come from the Secret as environment variables.
version = 1
data_dir = "/data"

[server]
bind = {{ printf "0.0.0.0:%d" (int64 .Values.containerPort) | toJson }}
shutdown_grace_secs = {{ int64 $c.server.shutdown_grace_secs }}

[storage]
blobs = {{ required "config.storage.blobs is required: s3://BUCKET/PREFIX (the bucket must exist)" $c.storage.blobs | toJson }}

[storage.postgres]
max_connections = {{ int64 $c.storage.postgres.max_connections }}

[storage.clickhouse]
{{- with $c.storage.clickhouse.cluster }}
cluster = {{ . | toJson }}
{{- end }}
replicated = {{ $c.storage.clickhouse.replicated }}
async_insert = {{ $c.storage.clickhouse.async_insert }}

[storage.s3]
{{- with $c.storage.s3.endpoint }}
endpoint = {{ . | toJson }}
{{- end }}
region = {{ $c.storage.s3.region | toJson }}
path_style = {{ $c.storage.s3.path_style }}
allow_http = {{ $c.storage.s3.allow_http }}

[limits]
max_json_body_bytes = {{ int64 $c.limits.max_json_body_bytes }}
max_blob_bytes = {{ int64 $c.limits.max_blob_bytes }}
max_keys_per_run = {{ int64 $c.limits.max_keys_per_run }}
max_points_per_batch = {{ int64 $c.limits.max_points_per_batch }}
max_key_bytes = {{ int64 $c.limits.max_key_bytes }}

[processor]
interval_secs = {{ int64 $c.processor.interval_secs }}
crash_after_secs = {{ int64 $c.processor.crash_after_secs }}

[log]
format = {{ $c.log.format | toJson }}
level = {{ $c.log.level | toJson }}

[telemetry]
{{- if $c.telemetry.otlp_endpoint }}
otlp_endpoint = {{ $c.telemetry.otlp_endpoint | toJson }}
{{- end }}
service_name = {{ $c.telemetry.service_name | toJson }}
{{- end }}

{{/* Environment of every Trackstack container. Call with (dict "root" $ "secret" NAME). */}}
{{- define "trackstack.env" -}}
{{- $keys := .root.Values.storageSecret.keys -}}
- name: TRACKSTACK_STORAGE__METADATA
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $keys.metadata }}
- name: TRACKSTACK_STORAGE__SERIES
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $keys.series }}
- name: TRACKSTACK_STORAGE__S3__ACCESS_KEY_ID
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $keys.s3AccessKeyId }}
      optional: true
- name: TRACKSTACK_STORAGE__S3__SECRET_ACCESS_KEY
  valueFrom:
    secretKeyRef:
      name: {{ .secret }}
      key: {{ $keys.s3SecretAccessKey }}
      optional: true
{{- with .root.Values.extraEnv }}
{{ toYaml . }}
{{- end }}
{{- end }}

{{/* stringData of the chart-managed storage Secret. */}}
{{- define "trackstack.secretData" -}}
{{- $keys := .Values.storageSecret.keys -}}
{{- $v := .Values.storageSecret.create -}}
{{ $keys.metadata }}: {{ required "storageSecret.create.metadata (a postgres:// URI) is required when storageSecret.existingSecret is empty" $v.metadata | quote }}
{{ $keys.series }}: {{ required "storageSecret.create.series (a clickhouse:// URI) is required when storageSecret.existingSecret is empty" $v.series | quote }}
{{- with $v.s3AccessKeyId }}
{{ $keys.s3AccessKeyId }}: {{ . | quote }}
{{- end }}
{{- with $v.s3SecretAccessKey }}
{{ $keys.s3SecretAccessKey }}: {{ . | quote }}
{{- end }}
{{- end }}
