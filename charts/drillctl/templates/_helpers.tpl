{{/* Names and labels shared by every template. */}}

{{- define "drillctl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" }}
{{- end }}

{{- define "drillctl.fullname" -}}
{{- if .Values.fullnameOverride }}
{{- .Values.fullnameOverride | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- $name := default .Chart.Name .Values.nameOverride }}
{{- if contains $name .Release.Name }}
{{- .Release.Name | trunc 52 | trimSuffix "-" }}
{{- else }}
{{- printf "%s-%s" .Release.Name $name | trunc 52 | trimSuffix "-" }}
{{- end }}
{{- end }}
{{- end }}

{{- define "drillctl.labels" -}}
app.kubernetes.io/name: {{ include "drillctl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" }}
{{- end }}

{{- define "drillctl.serviceAccountName" -}}
{{- if .Values.serviceAccount.create }}
{{- default (include "drillctl.fullname" .) .Values.serviceAccount.name }}
{{- else }}
{{- default "default" .Values.serviceAccount.name }}
{{- end }}
{{- end }}

{{/* Namespaces whose pods and workloads drills may touch. */}}
{{- define "drillctl.targetNamespaces" -}}
{{- $namespaces := .Values.rbac.targetNamespaces | default (list .Release.Namespace) }}
{{- toJson $namespaces }}
{{- end }}

{{- define "drillctl.image" -}}
{{- printf "%s:%s" .Values.image.repository (default .Chart.AppVersion .Values.image.tag) }}
{{- end }}

{{/* Whether any ConfigMap source (game days, drills, runbooks) exists. */}}
{{- define "drillctl.hasConfig" -}}
{{- $inline := false }}
{{- range .Values.gamedays }}{{ if .gameday }}{{ $inline = true }}{{ end }}{{ end }}
{{- if or $inline .Values.drills .Values.runbooks }}true{{ end }}
{{- end }}
