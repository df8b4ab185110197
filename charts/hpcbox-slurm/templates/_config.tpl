{{/*
SLURM's configuration files, the same text hpcbox.clusters.render.slurm renders for
the equivalent ClusterSpec (tests/unit/charts compare them byte for byte). Workers
are dynamic nodes: they register with `slurmd -Z` and join NodeSet `dyn`, so
slurm.conf names no worker and does not change when workers come and go.
*/}}

{{- define "hpcbox-slurm.header" -}}
# Rendered by hpcbox for cluster '{{ include "hpcbox-slurm.cluster" . }}'; hpcbox rewrites this file, do not edit.
{{- end -}}

{{- define "hpcbox-slurm.realMemory" -}}
{{- max 1 (int .Values.workers.memory) -}}
{{- end -}}

{{- define "hpcbox-slurm.slurmdConf" -}}
CPUs={{ int .Values.workers.cpus }} RealMemory={{ include "hpcbox-slurm.realMemory" . }} Feature=dyn
{{- end -}}

{{- define "hpcbox-slurm.slurmConf" -}}
{{- $mem := int (include "hpcbox-slurm.realMemory" .) -}}
{{ include "hpcbox-slurm.header" . }}

ClusterName={{ include "hpcbox-slurm.cluster" . }}
SlurmctldHost=controller
SlurmUser=slurm
AuthType=auth/munge
SlurmctldPort=6817
SlurmdPort=6818
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info

# Dynamic nodes: workers register with `slurmd -Z` and join NodeSet dyn by feature.
# TreeWidth=65533 turns off fan-out through slurmds, which dynamic nodes do not support.
# The controller learns each node's address when it registers, so no
# cloud_reg_addrs; cloud_dns must stay unset (it disables the alias list).
MaxNodeCount={{ max 64 (int .Values.workers.count) }}
TreeWidth=65533
# A recreated worker keeps its name but may get a new address.
CommunicationParameters=NoAddrCache
# A node that was DOWN (container restarted) rejoins when it registers.
ReturnToService=2
# Notice a vanished worker container within a minute, not five.
SlurmdTimeout=60

# Node containers get no cgroup tree of their own to manage, so processes
# are tracked through /proc and tasks are neither bound nor confined by
# SLURM; each worker container's CPU and memory limits are the hard bounds.
# (proctrack/cgroup and task/cgroup need a writable, delegated cgroup tree,
# which neither Podman nor Kubernetes gives a container by default.)
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# The submitting shell's limits (a container's, often lower) are not
# copied into jobs; tasks get the worker's limits.
PropagateResourceLimits=NONE

SchedulerType=sched/backfill
# Schedule a batch job as soon as it is submitted: by default slurmctld may
# hold batch submissions up to 3 s (batch_sched_delay) to batch them, which a
# teaching cluster with a handful of users never needs.
# The backfill pass (every second here, 30 s by default) also catches any job
# the event-driven pass left pending.
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0,bf_interval=1
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# Jobs that give no --mem get a per-CPU share of a worker instead of the
# whole node, so small jobs can share workers.
DefMemPerCPU={{ max 1 (div $mem (int .Values.workers.cpus)) }}
# Refuse at submission a job that no partition limit allows, instead of
# leaving it pending forever.
EnforcePartLimits=ALL
MpiDefault={{ ternary "pmix" "pmi2" (eq .Values.mpi "openmpi") }}
# Keep finished jobs visible to scontrol for an hour (the only record
# when accounting is off).
MinJobAge=3600

JobCompType=jobcomp/none
{{- if .Values.accounting }}
AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=slurmdbd
AccountingStoragePort=6819
{{- else }}
# Accounting is off: no slurmdbd, so sacct cannot answer.
{{- end }}
JobAcctGatherType=jobacct_gather/linux
JobAcctGatherFrequency=30

NodeSet=dyn Feature=dyn
{{- range (include "hpcbox-slurm.partitions" . | fromJsonArray) }}
PartitionName={{ .name }} Nodes=dyn Default={{ ternary "YES" "NO" .default }} MaxTime={{ include "hpcbox-slurm.maxTime" .max_time_minutes }} State=UP
{{- end }}
{{ end -}}

{{- define "hpcbox-slurm.cgroupConf" -}}
{{ include "hpcbox-slurm.header" . }}
CgroupPlugin=autodetect
# Containers run no systemd; do not ask it over D-Bus for a scope.
IgnoreSystemd=yes
# Never try to mount cgroup controllers (needs privileges a container lacks).
CgroupAutomount=no
ConstrainCores=no
ConstrainRAMSpace=no
ConstrainSwapSpace=no
ConstrainDevices=no
{{ end -}}

{{/* slurmdbd.conf, with the database password: only ever in a Secret. */}}
{{- define "hpcbox-slurm.slurmdbdConf" -}}
{{ include "hpcbox-slurm.header" .root }}
AuthType=auth/munge
DbdHost=slurmdbd
DbdPort=6819
SlurmUser=slurm
PidFile=/run/slurmdbd.pid
LogFile=/var/log/slurm/slurmdbd.log
DebugLevel=info
StorageType=accounting_storage/mysql
StorageHost=mariadb
StoragePort=3306
StorageUser=slurm
StoragePass={{ .password }}
StorageLoc=slurm_acct_db
{{ end -}}

{{/* MPI hostfile: every worker pod by its DNS name through the headless Service, with
workers.cpus slots; OpenMPI's `host slots=N` or MPICH's `host:N`. */}}
{{- define "hpcbox-slurm.hostfile" -}}
{{- $cpus := int .Values.workers.cpus -}}
{{- range $i := until (int .Values.workers.count) -}}
{{- if eq $.Values.mpi "openmpi" -}}
worker-{{ $i }}.worker slots={{ $cpus }}
{{ else -}}
worker-{{ $i }}.worker:{{ $cpus }}
{{ end -}}
{{- end -}}
{{- end -}}

{{/* /etc/passwd lines. */}}
{{- define "hpcbox-slurm.passwd" -}}
{{- range .Values.users -}}
{{ .name }}:x:{{ int .uid }}:{{ int (.gid | default .uid) }}::/home/{{ .name }}:/bin/bash
{{ end -}}
{{- end -}}

{{/* /etc/group lines: one group per distinct gid, named after the user whose uid it
is, else after the first user with it as primary group (as hpcbox's accounts.py). */}}
{{- define "hpcbox-slurm.group" -}}
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

{{/* One sacctmgr command a line (the node script splits on spaces: every word is a
checked name or a constant). */}}
{{- define "hpcbox-slurm.sacctmgr" -}}
{{- $c := include "hpcbox-slurm.cluster" . -}}
sacctmgr -i add cluster {{ $c }}
sacctmgr -i add account hpcbox Cluster={{ $c }} Description=hpcbox Organization=hpcbox
{{ range .Values.users -}}
sacctmgr -i add user {{ .name }} Account=hpcbox Cluster={{ $c }}
{{ end -}}
{{- end -}}
