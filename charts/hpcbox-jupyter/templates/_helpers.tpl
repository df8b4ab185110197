{{/*
Names. One release per namespace: objects have the fixed names hpcbox's Kubernetes
renderer gives a jupyter cluster (hub, hub-http, engines, home, users...): the
engines reach the ipyparallel controller at the hub's hostname, `hub`.
*/}}

{{- define "hpcbox-jupyter.cluster" -}}
{{- $name := .Values.name | default .Release.Name -}}
{{- if not (regexMatch "^[a-z][a-z0-9-]{0,30}[a-z0-9]$|^[a-z]$" $name) -}}
{{- fail (printf "the cluster name %q must be 1-32 lowercase letters, digits and '-', starting with a letter and not ending with '-': set values.name" $name) -}}
{{- end -}}
{{- $name -}}
{{- end -}}

{{- define "hpcbox-jupyter.selector" -}}
app.kubernetes.io/name: hpcbox
app.kubernetes.io/instance: {{ .root.Release.Name | quote }}
app.kubernetes.io/component: {{ .component }}
{{- end -}}

{{- define "hpcbox-jupyter.labels" -}}
{{ include "hpcbox-jupyter.selector" . }}
app.kubernetes.io/part-of: hpcbox-jupyter
app.kubernetes.io/version: {{ .root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .root.Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .root.Chart.Name .root.Chart.Version | quote }}
hpcbox.io/cluster: {{ include "hpcbox-jupyter.cluster" .root | quote }}
{{- end -}}

{{- define "hpcbox-jupyter.meta" -}}
name: {{ .name }}
namespace: {{ .root.Release.Namespace }}
labels:
  {{- include "hpcbox-jupyter.labels" . | nindent 2 }}
{{- end -}}

{{- define "hpcbox-jupyter.image" -}}
{{- $o := .Values.images.jupyter -}}
{{- $repo := $o.repository | default (printf "%s/jupyter" .Values.image.prefix) -}}
{{- $tag := $o.tag | default .Values.image.tag | default .Chart.AppVersion -}}
{{- printf "%s:%s" $repo $tag -}}
{{- end -}}

{{- define "hpcbox-jupyter.checkUsers" -}}
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

{{- define "hpcbox-jupyter.placement" -}}
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

{{- define "hpcbox-jupyter.storageClass" -}}
{{- with .Values.storage.storageClass }}
storageClassName: {{ . | quote }}
{{- end }}
{{- end -}}

{{- define "hpcbox-jupyter.passwd" -}}
{{- range .Values.users -}}
{{ .name }}:x:{{ int .uid }}:{{ int (.gid | default .uid) }}::/home/{{ .name }}:/bin/bash
{{ end -}}
{{- end -}}

{{- define "hpcbox-jupyter.group" -}}
{{- $order := list -}}
{{- $names := dict -}}
{{- range .Values.users -}}
{{- $gid := toString (int (.gid | default .uid)) -}}
{{- if not (hasKey $names $gid) -}}
{{- $_ := set $names $gid .name -}}
{{- $order = append $order $gid -}}
{{- end -}}
{{- end -}}
{{- range .Values.users -}}
{{- $uid := toString (int .uid) -}}
{{- if hasKey $names $uid -}}{{- $_ := set $names $uid .name -}}{{- end -}}
{{- end -}}
{{- range $order -}}
{{ index $names . }}:x:{{ . }}:
{{ end -}}
{{- end -}}

{{- define "hpcbox-jupyter.shadow" -}}
{{- range .Values.users -}}
{{ .name }}:{{ .password_hash | default "*" }}::0:99999:7:::
{{ end -}}
{{- end -}}

{{/* jupyterhub_config.py: the text hpcbox.clusters.render.jupyter renders for the
equivalent spec (tested byte for byte). Names are checked by the schema
([a-z_][a-z0-9_-]*), so quoting them is a safe Python literal. */}}
{{- define "hpcbox-jupyter.hubConfig" -}}
{{- $names := list -}}
{{- range .Values.users -}}{{- $names = append $names (printf "'%s'" .name) -}}{{- end -}}
# jupyterhub_config.py for hpcbox cluster '{{ include "hpcbox-jupyter.cluster" . }}'.
# Rendered by hpcbox at every `hpcbox cluster up`: edits here are overwritten.
c = get_config()  # noqa: F821 - provided by JupyterHub when it loads this file

c.JupyterHub.bind_url = "http://:8000"
# The hub's own API stays inside the node; only the proxy is published.
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.db_url = "sqlite:////srv/jupyterhub/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = "/srv/jupyterhub/jupyterhub_cookie_secret"
c.ConfigurableHTTPProxy.pid_file = "/srv/jupyterhub/jupyterhub-proxy.pid"

# Log in with the password whose hash the cluster spec holds (PAM reads /etc/shadow).
c.JupyterHub.authenticator_class = "pam"
# pam_loginuid and friends cannot open sessions inside a container.
c.PAMAuthenticator.open_sessions = False
c.Authenticator.allowed_users = set([{{ $names | sortAlpha | join ", " }}])

# One JupyterLab per user, on this node, as that user, in the shared home.
c.JupyterHub.spawner_class = "localprocess"
c.Spawner.cmd = ['/usr/local/bin/hpcbox-singleuser']
c.Spawner.default_url = "/lab"
c.Spawner.notebook_dir = "~"
c.Spawner.start_timeout = 120
c.Spawner.http_timeout = 120
{{ end -}}

{{/* Engine pods' resources: given limits, else cpu = workers.cpus, memory = workers.memory. */}}
{{- define "hpcbox-jupyter.engineResources" -}}
{{- $r := deepCopy (.Values.resources.engines | default dict) -}}
{{- $limits := $r.limits | default dict -}}
{{- if not (hasKey $limits "cpu") -}}{{- $_ := set $limits "cpu" (toString (int .Values.workers.cpus)) -}}{{- end -}}
{{- if not (hasKey $limits "memory") -}}{{- $_ := set $limits "memory" (printf "%dMi" (int .Values.workers.memory)) -}}{{- end -}}
{{- $_ := set $r "limits" $limits -}}
{{- toYaml $r -}}
{{- end -}}

{{/* The node script for a role, with what every jupyter pod mounts. */}}
{{- define "hpcbox-jupyter.node" -}}
image: {{ include "hpcbox-jupyter.image" .root | quote }}
imagePullPolicy: {{ .root.Values.image.pullPolicy }}
command: ["/usr/bin/tini", "--", "/bin/bash", "/run/hpcbox/setup/hpcbox-node", {{ .role | quote }}]
env:
  - name: HPCBOX_CLUSTER
    value: {{ include "hpcbox-jupyter.cluster" .root | quote }}
  - name: HPCBOX_ROLE
    value: {{ .role | quote }}
  - name: HPCBOX_MOUNTS
    value: /run/hpcbox
{{- end -}}

{{- define "hpcbox-jupyter.mounts" -}}
- name: setup
  mountPath: /run/hpcbox/setup
  readOnly: true
- name: accounts
  mountPath: /run/hpcbox/accounts
  readOnly: true
- name: home
  mountPath: /home
{{- end -}}

{{- define "hpcbox-jupyter.volumes" -}}
- name: setup
  configMap:
    name: node-setup
    defaultMode: 0555
- name: accounts
  projected:
    # Owner-only: the script (root) merges them into /etc.
    defaultMode: 0400
    sources:
      - configMap:
          name: users
      - secret:
          name: users-shadow
- name: home
  persistentVolumeClaim:
    claimName: home
{{- end -}}
