{{/* Names and labels shared by every template. */}}
{{- define "gsl.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* The prefix of object names: fullnameOverride, else <release>-<name> (the release name
alone where it contains the name). */}}
{{- define "gsl.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- $name := include "gsl.name" . -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "gsl.labels" -}}
app.kubernetes.io/name: {{ include "gsl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version }}
{{- end -}}

{{- define "gsl.selectorLabels" -}}
app.kubernetes.io/name: {{ include "gsl.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: operator
{{- end -}}

{{- define "gsl.serviceAccountName" -}}
{{- .Values.serviceAccount.name | default (printf "%s-operator" (include "gsl.fullname" .)) -}}
{{- end -}}

{{/* The pod-level settings of the operator's and the test pod: pull secrets, security. */}}
{{- define "gsl.podSecurity" -}}
{{- with .Values.imagePullSecrets }}
imagePullSecrets:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.podSecurityContext }}
securityContext:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{- define "gsl.image" -}}
{{- printf "%s:%s" .Values.image.repository (.Values.image.tag | default .Chart.AppVersion) -}}
{{- end -}}

{{/* The namespaces the operator watches: the list, or the release namespace. */}}
{{- define "gsl.watchNamespaces" -}}
{{- if .Values.operator.watchNamespaces -}}
{{- join "," .Values.operator.watchNamespaces -}}
{{- else -}}
{{- .Release.Namespace -}}
{{- end -}}
{{- end -}}

{{/* The operator's rules: kopf's, then the application's. */}}
{{- define "gsl.operatorRules" -}}
# Framework (kopf): watch experiments, keep its notes and finalizer on them, post Events.
- apiGroups: [gsl.dev]
  resources: [gslexperiments]
  verbs: [get, list, watch, patch]
- apiGroups: [gsl.dev]
  resources: [gslexperiments/status]
  verbs: [get, patch]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
# Application: one Job per task, owned by its experiment (blockOwnerDeletion needs update
# on the owner's finalizers); a failed or deleted experiment's running Jobs are deleted.
- apiGroups: [batch]
  resources: [jobs]
  verbs: [create, list, delete]
# A failed Job's pods: how they ended (OOMKilled, say), for the experiment's status message.
- apiGroups: [""]
  resources: [pods]
  verbs: [list]
- apiGroups: [gsl.dev]
  resources: [gslexperiments/finalizers]
  verbs: [update]
{{- end -}}
