{{/*
What every SLURM node pod (controller and workers) mounts; called with
(dict "root" $ "sacctmgr" BOOL) — the controller registers the associations, as hpcbox's Kubernetes
renderer does: the start-up script, slurm.conf, the secrets (owner-only; the
script installs each with the owner its daemon wants), the users, the hostfile and
the homes. The script reads them under HPCBOX_MOUNTS=/run/hpcbox.
*/}}
{{- define "hpcbox-slurm.nodeVolumes" -}}
{{- $v := .root.Values -}}
- name: setup
  configMap:
    name: node-setup
    defaultMode: 0555
- name: slurm-config
  configMap:
    name: slurm-config
- name: secrets
  projected:
    defaultMode: 0400
    sources:
      - secret:
          name: munge-key
      - secret:
          name: ssh-host-keys
          items:
            - key: ssh_host_ecdsa_key
              path: ssh/ssh_host_ecdsa_key
            {{- range $file, $_ := $v.ssh.hostKeys }}
            - key: {{ $file }}
              path: ssh/{{ $file }}
            {{- end }}
      - secret:
          name: admin-key
          items:
            - key: authorized_keys
              path: admin_authorized_keys
      - secret:
          name: users-shadow
- name: users
  configMap:
    name: users
    items:
      - key: passwd
        path: passwd
      - key: group
        path: group
      {{- range $v.users }}
      - key: authorized_keys.{{ .name }}
        path: authorized_keys/{{ .name }}
      {{- end }}
      {{- if and $v.accounting .sacctmgr }}
      - key: sacctmgr
        path: sacctmgr
      {{- end }}
- name: mpi
  configMap:
    name: mpi-hostfile
- name: sshd-config
  configMap:
    name: sshd-config
- name: home
  persistentVolumeClaim:
    claimName: home
{{- end -}}

{{- define "hpcbox-slurm.nodeMounts" -}}
- name: setup
  mountPath: /run/hpcbox/setup
  readOnly: true
# Directory mounts (not subPath), so that ConfigMap updates arrive.
- name: slurm-config
  mountPath: /etc/slurm
  readOnly: true
- name: secrets
  mountPath: /run/hpcbox/secrets
  readOnly: true
- name: users
  mountPath: /run/hpcbox/users
  readOnly: true
- name: mpi
  mountPath: /run/hpcbox/mpi
  readOnly: true
- name: sshd-config
  mountPath: /etc/ssh/sshd_config.d/hpcbox-helm.conf
  subPath: hpcbox-helm.conf
  readOnly: true
- name: home
  mountPath: /home
{{- end -}}

{{/* A rollout when what pods read only at start changes (users, keys, slurm.conf
for slurmctld): a checksum of the rendered inputs in the pod template. */}}
{{- define "hpcbox-slurm.configChecksum" -}}
{{- $inputs := list (include "hpcbox-slurm.slurmConf" .) (include "hpcbox-slurm.passwd" .) (include "hpcbox-slurm.group" .) (toJson .Values.users) (toJson .Values.ssh.hostKeys) .Values.adminPublicKey -}}
{{- $inputs | toJson | sha256sum -}}
{{- end -}}
