{{- define "hpcbox-operator.name" -}}hpcbox-operator{{- end -}}

{{- define "hpcbox-operator.selector" -}}
app.kubernetes.io/name: hpcbox-operator
app.kubernetes.io/instance: {{ .Release.Name | quote }}
{{- end -}}

{{- define "hpcbox-operator.labels" -}}
{{ include "hpcbox-operator.selector" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | quote }}
{{- end -}}

{{/* The namespaces whose SlurmJobs it watches: a JSON list (empty with allNamespaces). */}}
{{- define "hpcbox-operator.namespaces" -}}
{{- if .Values.watch.allNamespaces -}}
{{- if .Values.watch.namespaces -}}{{- fail "watch: give namespaces or allNamespaces, not both" -}}{{- end -}}
[]
{{- else -}}
{{- .Values.watch.namespaces | default (list .Release.Namespace) | toJson -}}
{{- end -}}
{{- end -}}

{{/* The verbs the operator uses, and nothing else (least privilege). */}}
{{- define "hpcbox-operator.rules" -}}
# kopf watches SlurmJobs and patches them (its finalizer and annotations).
- apiGroups: [hpcbox.io]
  resources: [slurmjobs]
  verbs: [get, list, watch, patch]
# The one poller writes the status subresource.
- apiGroups: [hpcbox.io]
  resources: [slurmjobs/status]
  verbs: [get, patch]
# Credentials and scripts are read by name, never listed or watched.
- apiGroups: [""]
  resources: [secrets, configmaps]
  verbs: [get]
# The log Pods that print finished jobs' output.
- apiGroups: [""]
  resources: [pods]
  verbs: [get, create, delete]
- apiGroups: [""]
  resources: [events]
  verbs: [create]
{{- end -}}
