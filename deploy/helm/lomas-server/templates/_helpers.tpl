{{/* Names, labels, secrets and the rendered server configuration of the lomas-server chart. */}}

{{- define "lomas-server.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* "<release>-<chart>" truncated to 63 characters, or the release name when it holds the chart name. */}}
{{- define "lomas-server.fullname" -}}
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

{{- define "lomas-server.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lomas-server.mongodb.fullname" -}}
{{- printf "%s-mongodb" (include "lomas-server.fullname" . | trunc 55 | trimSuffix "-") }}
{{- end }}

{{- define "lomas-server.commonLabels" -}}
helm.sh/chart: {{ include "lomas-server.chart" . }}
app.kubernetes.io/name: {{ include "lomas-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lomas
{{- end }}

{{- define "lomas-server.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lomas-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: server
{{- end }}

{{- define "lomas-server.labels" -}}
{{ include "lomas-server.commonLabels" . }}
app.kubernetes.io/component: server
{{- end }}

{{- define "lomas-server.mongodb.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lomas-server.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: mongodb
{{- end }}

{{- define "lomas-server.mongodb.labels" -}}
{{ include "lomas-server.commonLabels" . }}
app.kubernetes.io/component: mongodb
{{- end }}

{{- define "lomas-server.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "lomas-server.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{- define "lomas-server.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* The Secret created by the chart (admin token, external MongoDB URI, S3 credentials). */}}
{{- define "lomas-server.secretName" -}}
{{- include "lomas-server.fullname" . }}
{{- end }}

{{- define "lomas-server.s3.enabled" -}}
{{- with .Values.s3.credentials }}
{{- if or .existingSecret .accessKeyId }}true{{ end }}
{{- end }}
{{- end }}

{{/* Whether the chart's own Secret has anything to hold. */}}
{{- define "lomas-server.secret.needed" -}}
{{- if and .Values.bootstrapAdmin.enabled (not .Values.bootstrapAdmin.existingSecret) }}true{{ end }}
{{- if and .Values.externalMongodb.enabled (not .Values.externalMongodb.existingSecret) }}true{{ end }}
{{- if and (include "lomas-server.s3.enabled" .) (not .Values.s3.credentials.existingSecret) }}true{{ end }}
{{- end }}

{{/* A value of an already installed Secret (kept across upgrades), else "". */}}
{{- define "lomas-server.existingValue" -}}
{{- $secret := lookup "v1" "Secret" .context.Release.Namespace .name }}
{{- $encoded := dig "data" .key "" ($secret | default dict) }}
{{- if $encoded }}{{ b64dec $encoded }}{{ end }}
{{- end }}

{{- define "lomas-server.adminToken" -}}
{{- if .Values.bootstrapAdmin.token }}
{{- .Values.bootstrapAdmin.token }}
{{- else }}
{{- $kept := include "lomas-server.existingValue" (dict "context" . "name" (include "lomas-server.secretName" .) "key" "admin-token") }}
{{- $kept | default (printf "lomas_%s" (randAlphaNum 43)) }}
{{- end }}
{{- end }}

{{- define "lomas-server.mongodb.password" -}}
{{- if .Values.mongodb.auth.rootPassword }}
{{- .Values.mongodb.auth.rootPassword }}
{{- else }}
{{- $kept := include "lomas-server.existingValue" (dict "context" . "name" (include "lomas-server.mongodb.fullname" .) "key" "mongodb-root-password") }}
{{- $kept | default (randAlphaNum 32) }}
{{- end }}
{{- end }}

{{/* secretKeyRef of the bootstrap admin token. */}}
{{- define "lomas-server.adminToken.secretKeyRef" -}}
{{- if .Values.bootstrapAdmin.existingSecret }}
name: {{ .Values.bootstrapAdmin.existingSecret }}
key: {{ .Values.bootstrapAdmin.existingSecretKey }}
{{- else }}
name: {{ include "lomas-server.secretName" . }}
key: admin-token
{{- end }}
{{- end }}

{{/* Environment variables giving the server (and the init step) the budget store and S3 secrets. */}}
{{- define "lomas-server.storeEnv" -}}
{{- if .Values.mongodb.enabled }}
- name: LOMAS_MONGODB_USER
  value: {{ .Values.mongodb.auth.rootUser | quote }}
- name: LOMAS_MONGODB_PASSWORD
  valueFrom:
    secretKeyRef:
      {{- if .Values.mongodb.auth.existingSecret }}
      name: {{ .Values.mongodb.auth.existingSecret }}
      key: {{ .Values.mongodb.auth.existingSecretKey }}
      {{- else }}
      name: {{ include "lomas-server.mongodb.fullname" . }}
      key: mongodb-root-password
      {{- end }}
- name: LOMAS_MONGO_URI
  value: {{ printf "mongodb://$(LOMAS_MONGODB_USER):$(LOMAS_MONGODB_PASSWORD)@%s:%d/?authSource=admin" (include "lomas-server.mongodb.fullname" .) (int .Values.mongodb.port) | quote }}
{{- else if .Values.externalMongodb.enabled }}
- name: LOMAS_MONGO_URI
  valueFrom:
    secretKeyRef:
      {{- if .Values.externalMongodb.existingSecret }}
      name: {{ .Values.externalMongodb.existingSecret }}
      key: {{ .Values.externalMongodb.existingSecretKey }}
      {{- else }}
      name: {{ include "lomas-server.secretName" . }}
      key: mongodb-uri
      {{- end }}
{{- end }}
{{- if include "lomas-server.s3.enabled" . }}
- name: LOMAS_S3_CREDENTIALS
  valueFrom:
    secretKeyRef:
      {{- if .Values.s3.credentials.existingSecret }}
      name: {{ .Values.s3.credentials.existingSecret }}
      key: {{ .Values.s3.credentials.existingSecretKey }}
      {{- else }}
      name: {{ include "lomas-server.secretName" . }}
      key: s3-credentials
      {{- end }}
{{- end }}
{{- range .Values.extraSecretEnv }}
- name: {{ .name }}
  valueFrom:
    secretKeyRef:
      name: {{ .secretName }}
      key: {{ .key }}
{{- end }}
{{- end }}

{{/*
The server configuration: .Values.config unchanged, plus the store and secret references of what
the chart manages. Secrets are referenced by environment variable, never inlined.
*/}}
{{- define "lomas-server.config" -}}
{{- if and .Values.mongodb.enabled .Values.externalMongodb.enabled }}
{{- fail "mongodb.enabled and externalMongodb.enabled exclude each other: choose one" }}
{{- end }}
{{- $cfg := deepCopy (.Values.config | default dict) }}
{{- $secrets := get $cfg "secrets" | default dict }}
{{- if or .Values.mongodb.enabled .Values.externalMongodb.enabled }}
{{- $store := get $cfg "store" | default dict }}
{{- $options := get $store "options" | default dict }}
{{- $_ := unset $options "uri" }}
{{- $_ := set $options "uri_secret" "mongo_uri" }}
{{- $_ := set $store "name" "mongodb" }}
{{- $_ := set $store "options" $options }}
{{- $_ := set $cfg "store" $store }}
{{- $_ := set $secrets "mongo_uri" (dict "env" "LOMAS_MONGO_URI") }}
{{- end }}
{{- if include "lomas-server.s3.enabled" . }}
{{- $adapters := get $cfg "adapters" | default dict }}
{{- $s3cfg := get $adapters "s3" | default dict }}
{{- /* Scoped: only the s3 adapter may use the credentials, with its endpoint and these buckets. */}}
{{- $buckets := .Values.s3.credentials.buckets | default (get $s3cfg "allowed_buckets") }}
{{- if not $buckets }}
{{- fail "s3.credentials.buckets (or config.adapters.s3.allowed_buckets) must list the buckets the S3 credentials may be used with" }}
{{- end }}
{{- $endpoint := get $s3cfg "endpoint_url" | default "aws" }}
{{- $_ := set $secrets "s3_credentials" (dict "env" "LOMAS_S3_CREDENTIALS" "adapters" (list "s3") "endpoints" (list $endpoint) "buckets" $buckets) }}
{{- if hasKey $adapters "s3" }}
{{- $s3 := get $adapters "s3" | default dict }}
{{- if not (get $s3 "default_credentials") }}
{{- $_ := set $s3 "default_credentials" "s3_credentials" }}
{{- end }}
{{- $_ := set $adapters "s3" $s3 }}
{{- end }}
{{- end }}
{{- $_ := set $cfg "secrets" $secrets }}
{{- with .Values.sso }}
{{- if .enabled }}
{{- if not .issuer }}
{{- fail "sso.enabled needs sso.issuer (the provider's issuer URL, as in the tokens' iss claim)" }}
{{- end }}
{{- if not .audience }}
{{- fail "sso.enabled needs sso.audience (the audiences accepted in the tokens' aud claim)" }}
{{- end }}
{{- if and .adminClaim (not .adminValue) }}
{{- fail "sso.adminClaim needs sso.adminValue (the value that grants the admin role)" }}
{{- end }}
{{- $oidc := dict "issuer" .issuer "audience" .audience "user_claim" .userClaim "create_users" .createUsers "algorithms" .algorithms "clock_skew_seconds" .clockSkewSeconds }}
{{- if .adminClaim }}
{{- $_ := set $oidc "admin_claim" .adminClaim }}
{{- $_ := set $oidc "admin_value" .adminValue }}
{{- end }}
{{- if .caBundle }}
{{- $_ := set $oidc "ca_bundle" .caBundle }}
{{- end }}
{{- /* Tried in this order (oidc claims JWTs only, token the lomas tokens). */}}
{{- $auth := dict "oidc" $oidc }}
{{- if .keepTokens }}
{{- $_ := set $auth "token" dict }}
{{- end }}
{{- $_ := set $cfg "authenticators" $auth }}
{{- end }}
{{- end }}
{{- /* Metrics on their own port (values: metrics), so that the Service's API port and the
ingress never serve them. */}}
{{- $obs := get $cfg "observability" | default dict }}
{{- $metrics := get $obs "metrics" | default dict }}
{{- $_ := set $metrics "enabled" .Values.metrics.enabled }}
{{- if .Values.metrics.enabled }}
{{- $_ := set $metrics "port" (int .Values.metrics.port) }}
{{- $_ := set $metrics "host" "0.0.0.0" }}
{{- end }}
{{- $_ := set $obs "metrics" $metrics }}
{{- $_ := set $cfg "observability" $obs }}
{{- toYaml $cfg }}
{{- end }}

{{- define "lomas-server.serverPort" -}}
{{- dig "server" "port" 8000 (.Values.config | default dict) | int }}
{{- end }}
