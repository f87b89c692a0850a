{{/* Names, labels and secrets of the lomas-client chart. */}}

{{- define "lomas-client.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lomas-client.fullname" -}}
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

{{- define "lomas-client.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "lomas-client.selectorLabels" -}}
app.kubernetes.io/name: {{ include "lomas-client.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: jupyterlab
{{- end }}

{{- define "lomas-client.labels" -}}
helm.sh/chart: {{ include "lomas-client.chart" . }}
{{ include "lomas-client.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: lomas
{{- end }}

{{- define "lomas-client.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{- define "lomas-client.secretName" -}}
{{- include "lomas-client.fullname" . }}
{{- end }}

{{/* The JupyterLab token: from values, else the installed Secret's (kept on upgrade), else random. */}}
{{- define "lomas-client.jupyterToken" -}}
{{- if .Values.jupyter.token }}
{{- .Values.jupyter.token }}
{{- else }}
{{- $secret := lookup "v1" "Secret" .Release.Namespace (include "lomas-client.secretName" .) | default dict }}
{{- $kept := dig "data" "jupyter-token" "" $secret }}
{{- if $kept }}{{ b64dec $kept }}{{ else }}{{ randAlphaNum 48 }}{{ end }}
{{- end }}
{{- end }}

{{- define "lomas-client.lomasToken.enabled" -}}
{{- if or .Values.lomas.token .Values.lomas.existingSecret }}true{{ end }}
{{- end }}
