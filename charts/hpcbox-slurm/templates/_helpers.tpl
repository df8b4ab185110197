{{/*
Names. One release per namespace: objects have the fixed names hpcbox's own
Kubernetes renderer gives them (controller, worker, login, mariadb, slurmdbd...),
because the daemons check their hostnames (SlurmctldHost, DbdHost) and find each
other by them. Helm refuses to install a second release over the first's objects.
*/}}

{{/* SLURM's ClusterName: values.name, else the release name. */}}
{{- define "hpcbox-slurm.cluster" -}}
{{- $name := .Values.name | default .Release.Name -}}
{{- if not (regexMatch "^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$" $name) -}}
{{- fail (printf "the cluster name %q must be 1-32 lowercase letters, digits and '-', starting with a letter and not ending with '-': set values.name" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "hpcbox-slurm.selector" -}}
app.kubernetes.io/name: hpcbox
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hpcbox-slurm.labels" -}}
{{ include "hpcbox-slurm.selector" . }}
app.kubernetes.io/part-of: hpcbox-slurm
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | quote }}
hpcbox.io/cluster: {{ include "hpcbox-slurm.cluster" .root | quote }}
{{- end -}}

{{/* metadata for a namespaced object: (dict "root" $ "name" N "component" C) */}}
{{- define "hpcbox-slurm.meta" -}}
name: {{ .name }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "hpcbox-slurm.labels" . | nindent 2 }}
{{- end -}}

{{/* An image: (dict "root" $ "key" "slurmWorker" "role" "slurm-worker") */}}
{{- define "hpcbox-slurm.image" -}}
{{- $o := index .root.Values.images .key -}}
{{- $repo := $o.repository | default (printf "%s/%s" .root.Values.image.prefix .role) -}}
{{- $tag := $o.tag | default .root.Values.image.tag | default .root.Chart.AppVersion -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{/* Users' uids and gids, checked for uniqueness (the schema checks each user). */}}
{{- define "hpcbox-slurm.checkUsers" -}}
{{- $names := dict -}}
{{- $uids := dict -}}
{{- range .Values.users -}}
{{- if hasKey $names .name -}}{{- fail (printf "users: the name %q is given twice" .name) -}}{{- end -}}
{{- $_ := set $names .name true -}}
{{- $uid := toString (int .uid) -}}
{{- if hasKey $uids $uid -}}{{- fail (printf "users: the uid %s is given twice" $uid) -}}{{- end -}}
{{- $_ := set $uids $uid true -}}
{{- end -}}
{{- end -}}

{{/* The effective partitions as in hpcbox's ClusterSpec: `batch` when none is given,
else the one marked default, else the first made the default. A JSON list. */}}
{{- define "hpcbox-slurm.partitions" -}}
{{- $parts := .Values.partitions -}}
{{- if not $parts -}}
{{- $parts = list (dict "name" "batch" "default" true) -}}
{{- end -}}
{{- $seen := dict -}}
{{- $defaults := 0 -}}
{{- range $parts -}}
{{- if hasKey $seen .name -}}{{- fail (printf "partitions: the name %q is given twice" .name) -}}{{- end -}}
{{- $_ := set $seen .name true -}}
{{- if .default -}}{{- $defaults = add1 $defaults -}}{{- end -}}
{{- end -}}
{{- if gt $defaults 1 -}}{{- fail "partitions: at most one can be the default" -}}{{- end -}}
{{- $out := list -}}
{{- range $i, $p := $parts -}}
{{- $d := or $p.default (and (eq $defaults 0) (eq $i 0)) -}}
{{- $out = append $out (dict "name" $p.name "default" $d "max_time_minutes" (index $p "max_time_minutes")) -}}
{{- end -}}
{{- toJson $out -}}
{{- end -}}

{{/* SLURM time limit from minutes: [D-]HH:MM:00, or INFINITE. */}}
{{- define "hpcbox-slurm.maxTime" -}}
{{- if . -}}
{{- $m := int64 . -}}
{{- $days := div $m 1440 -}}
{{- $rest := mod $m 1440 -}}
{{- $clock := printf "%02d:%02d:00" (div $rest 60) (mod $rest 60) -}}
{{- if gt $days 0 -}}{{ printf "%d-%s" $days $clock }}{{- else -}}{{ $clock }}{{- end -}}
{{- else -}}INFINITE{{- end -}}
{{- end -}}

{{/* The worker resources: given limits, else cpu = workers.cpus and memory =
workers.memory + 256Mi (room for munged, sshd and slurmd above RealMemory). */}}
{{- define "hpcbox-slurm.workerResources" -}}
{{- $r := deepCopy (.Values.resources.worker | default dict) -}}
{{- $limits := $r.limits | default dict -}}
{{- if not (hasKey $limits "cpu") -}}{{- $_ := set $limits "cpu" (toString (int .Values.workers.cpus)) -}}{{- end -}}
{{- if not (hasKey $limits "memory") -}}{{- $_ := set $limits "memory" (printf "%dMi" (add (int .Values.workers.memory) 256)) -}}{{- end -}}
{{- $_ := set $r "limits" $limits -}}
{{- toYaml $r -}}
{{- end -}}

{{/* Pod placement, for every pod. */}}
{{- define "hpcbox-slurm.placement" -}}
{{- with .Values.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with .Values.affinity }}
affinity:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* The node start-up script, as every node container runs it. tini (in the base
image) as PID 1 forwards SIGTERM and reaps the script's helpers. */}}
{{- define "hpcbox-slurm.nodeCommand" -}}
command: ["/usr/bin/tini", "--", "/bin/bash", "/run/hpcbox/setup/hpcbox-node", {{ .role | quote }}]
env:
  - name: HPCBOX_CLUSTER
    value: {{ include "hpcbox-slurm.cluster" .root | quote }}
  - name: HPCBOX_ROLE
    value: {{ .role | quote }}
  - name: HPCBOX_MOUNTS
    value: /run/hpcbox
{{- end -}}

{{/* The PVC spec bits for a storage class. */}}
{{- define "hpcbox-slurm.storageClass" -}}
{{- with .Values.storage.storageClass }}
storageClassName: {{ . | quote }}
{{- end }}
{{- end -}}
