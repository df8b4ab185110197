#!/bin/bash
# hpcbox-node ROLE — start one cluster node's daemons. The role's main daemon runs in
# the foreground as the container's main process, so its log is the container's log
# and the container stops when it dies. Everything it needs (munge key, slurm.conf,
# accounts, host keys) was put into the container by hpcbox before it started.
set -euo pipefail
role="${1:?usage: hpcbox-node controller|worker|slurmdbd|mariadb|hub|engines}"

log() { printf 'hpcbox-node[%s]: %s\n' "$role" "$*" >&2; }

# Append the cluster's accounts to this node's files, skipping names already there,
# so that every node has the same users with the same uid/gid.
merge_accounts() {
    local file add line name
    for file in group passwd shadow; do
        add="/etc/hpcbox/accounts/$file"
        [ -f "$add" ] || continue
        while IFS= read -r line; do
            name="${line%%:*}"
            grep -q "^${name}:" "/etc/$file" || printf '%s\n' "$line" >> "/etc/$file"
        done < "$add"
    done
}

start_munge() {
    # munged insists on a world-searchable socket directory, private state and logs.
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/lib/munge /var/log/munge
    chown munge:munge /etc/munge/munge.key
    chmod 0400 /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
}

start_sshd() {
    install -d -m 0755 /run/sshd
    chmod 0600 /etc/ssh/ssh_host_ed25519_key
    /usr/sbin/sshd -E /var/log/sshd.log
}

# JupyterHub (hpcbox/jupyter image): configuration rendered by hpcbox, state local.
start_jupyterhub() {
    install -d -m 0700 /srv/jupyterhub
    log "starting jupyterhub"
    (cd /srv/jupyterhub && exec jupyterhub -f /etc/jupyterhub/jupyterhub_config.py) \
        >>/var/log/jupyterhub.log 2>&1 &
}

# ipyparallel's connection files live on the shared home volume, in a folder only
# root can create (/home is root's) and only the ipyparallel account writes.
ipp_dir=/home/.hpcbox/ipyparallel
start_ipcontroller() {
    install -d -o root -g root -m 0755 /home/.hpcbox
    install -d -o ipyparallel -g ipyparallel -m 0755 "$ipp_dir"
    # Homes outlive the cluster: stale files from a previous controller would send
    # engines to ports nobody listens on. Removed as their owner (no link followed).
    runuser -u ipyparallel -- rm -f "$ipp_dir"/security/ipcontroller-client.json \
        "$ipp_dir"/security/ipcontroller-engine.json
    rm -f /var/log/ipcontroller.log
    log "starting ipcontroller"
    # Listens on every interface of the cluster network; clients and engines
    # reach it by the front end's hostname. Short heartbeats, so that engines of
    # removed workers leave the clients' view within seconds.
    (cd /var/lib/ipyparallel && exec runuser -u ipyparallel -- ipcontroller \
        --profile-dir="$ipp_dir" --ip=0.0.0.0 --location="$(hostname)" \
        --HeartMonitor.period=1000 --HeartMonitor.max_heartmonitor_misses=5 \
        --log-level=WARN) >>/var/log/ipcontroller.log 2>&1 &
    local client="$ipp_dir/security/ipcontroller-client.json"
    for _ in $(seq 600); do
        [ -s "$client" ] && break
        sleep 0.1
    done
    [ -s "$client" ] || { log "ipcontroller wrote no connection file"; exit 1; }
    # Every user may connect (the engines run as ipyparallel, never as them);
    # only engines read the engine file (0600; the folder is traverse-only).
    # Done as the owner: root would follow a link the owner planted.
    runuser -u ipyparallel -- chmod 0711 "$ipp_dir/security"
    runuser -u ipyparallel -- chmod 0644 "$client"
}

case "$role" in
    hub)
        merge_accounts
        start_ipcontroller
        log "starting jupyterhub"
        cd /srv/jupyterhub
        exec jupyterhub -f /etc/jupyterhub/jupyterhub_config.py
        ;;
    engines)
        merge_accounts
        engine_file="$ipp_dir/security/ipcontroller-engine.json"
        until [ -s "$engine_file" ]; do sleep 0.2; done
        count="${HPCBOX_ENGINES:-1}"
        log "starting $count ipengines"
        cd /var/lib/ipyparallel
        for _ in $(seq 2 "$count"); do
            runuser -u ipyparallel -- ipengine --file="$engine_file" --log-level=WARN &
        done
        exec runuser -u ipyparallel -- ipengine --file="$engine_file" --log-level=WARN
        ;;
    controller)
        merge_accounts
        start_munge
        start_sshd
        [ "${HPCBOX_JUPYTERHUB:-}" = 1 ] && start_jupyterhub
        install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
        log "starting slurmctld"
        exec /usr/sbin/slurmctld -D -i
        ;;
    worker)
        merge_accounts
        start_munge
        start_sshd
        install -d -o root -g root /var/spool/slurmd /var/log/slurm
        log "starting slurmd (dynamic node: ${HPCBOX_SLURMD_CONF:-})"
        exec /usr/sbin/slurmd -D -Z --conf "${HPCBOX_SLURMD_CONF:?}"
        ;;
    slurmdbd)
        start_munge
        chown slurm:slurm /etc/slurm/slurmdbd.conf
        chmod 0600 /etc/slurm/slurmdbd.conf
        install -d -o slurm -g slurm /var/log/slurm /run/slurmdbd
        log "starting slurmdbd"
        exec /usr/sbin/slurmdbd -D
        ;;
    mariadb)
        install -d -o mysql -g mysql /run/mysqld
        if [ ! -d /var/lib/mysql/mysql ]; then
            log "initialising the database directory"
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
        fi
        log "starting mariadb"
        exec /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
            --bind-address=0.0.0.0 --skip-name-resolve
        ;;
    *)
        log "unknown role"
        exit 2
        ;;
esac
