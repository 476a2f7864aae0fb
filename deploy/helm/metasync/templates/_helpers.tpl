{{/*
Names and labels shared by every template of the MetaSync chart.
*/}}

{{/* The chart name, or nameOverride. */}}
{{- define "metasync.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/*
The full name of the release's resources: fullnameOverride, else RELEASE-metasync (or RELEASE when
it already contains the chart name), cut to the 63 characters a DNS label allows.
*/}}
{{- define "metasync.fullname" -}}
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

{{/* chart label value: name-version. */}}
{{- define "metasync.chart" -}}
{{- printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end }}

{{/* Labels of every resource. */}}
{{- define "metasync.labels" -}}
helm.sh/chart: {{ include "metasync.chart" . }}
{{ include "metasync.selectorLabels" . }}
app.kubernetes.io/version: {{ .Values.image.tag | default .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
{{- end }}

{{/* Labels that select the release's pods (never change them in an upgrade: selectors are immutable). */}}
{{- define "metasync.selectorLabels" -}}
app.kubernetes.io/name: {{ include "metasync.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end }}

{{/* The ServiceAccount the pods run as. */}}
{{- define "metasync.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "metasync.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* The Secret the container's environment comes from: the chart's, or secret.existingSecret. Empty: none. */}}
{{- define "metasync.secretName" -}}
{{- if .Values.secret.create }}
{{- include "metasync.fullname" . }}
{{- else }}
{{- .Values.secret.existingSecret }}
{{- end }}
{{- end }}
