#!/bin/bash
# hpcbox-node ROLE — start one cluster node's daemons, on every runtime hpcbox renders
# to. Roles: controller, worker, slurmdbd, mariadb (SLURM); hub, engines (JupyterHub
# and ipyparallel). The role's main daemon runs in the foreground as the container's
# main process, so that its log is the container's (the pod's) log and the container
# stops when it dies.
#
# Inputs. On Podman and Docker, hpcbox copies every file the node needs (munge key,
# slurm.conf, accounts, host keys, hostfile) into its place before the container
# starts, and HPCBOX_MOUNTS is unset. On Kubernetes they arrive as read-only,
# root-owned mounts under HPCBOX_MOUNTS (/run/hpcbox: secrets/, users/, mpi/,
# accounts/), which munged, sshd and slurmdbd refuse: install_mounted puts each
# where Podman would have, with the owner and mode its daemon insists on, and the
# rest is the same. Kubernetes only, as no host-side step does it there: the hub
# makes the users' homes, the controller installs their keys and (with accounting)
# registers their SLURM associations, and MariaDB creates slurmdbd's database from
# MARIADB_* variables.
#
# A constant: no spec value is ever interpolated into it. It reads names and keys
# from the files and the environment, all validated when hpcbox rendered them (user
# names are [a-z_][a-z0-9_-]*; the database password needs no quoting in SQL).
set -euo pipefail
role="${1:?usage: hpcbox-node controller|worker|slurmdbd|mariadb|hub|engines}"
mounts="${HPCBOX_MOUNTS:-}"

log() { printf 'hpcbox-node[%s]: %s\n' "$role" "$*" >&2; }

# Kubernetes: each mounted input to where it is on Podman and Docker.
install_mounted() {
    [ -n "$mounts" ] || return 0
    local secrets="$mounts/secrets" file src mode key
    install -d -m 0755 /etc/hpcbox/accounts
    # The accounts: users/ and secrets/shadow on SLURM pods, accounts/ on jupyter pods.
    for file in passwd group shadow; do
        mode=0644
        [ "$file" = shadow ] && mode=0600
        for src in "$mounts/users/$file" "$secrets/$file" "$mounts/accounts/$file"; do
            if [ -f "$src" ]; then
                install -m "$mode" "$src" "/etc/hpcbox/accounts/$file"
                break
            fi
        done
    done
    if [ -f "$secrets/munge.key" ]; then
        install -d -o munge -g munge -m 0700 /etc/munge
        install -o munge -g munge -m 0400 "$secrets/munge.key" /etc/munge/munge.key
    fi
    for key in "$secrets"/ssh/*; do
        [ -f "$key" ] || continue
        case "$key" in *.pub) mode=0644 ;; *) mode=0600 ;; esac
        install -m "$mode" "$key" "/etc/ssh/${key##*/}"
    done
    if [ -f "$secrets/admin_authorized_keys" ]; then
        install -d -m 0700 /root/.ssh
        install -m 0600 "$secrets/admin_authorized_keys" /root/.ssh/authorized_keys
    fi
    if [ -f "$secrets/slurmdbd.conf" ]; then
        install -m 0600 "$secrets/slurmdbd.conf" /etc/slurm/slurmdbd.conf
    fi
    if [ -d "$mounts/mpi" ]; then
        install -d -m 0755 /etc/hpcbox
        # A link, so that an updated ConfigMap reaches running nodes.
        ln -sfn "$mounts/mpi/hostfile" /etc/hpcbox/hostfile
    fi
}

# Append the cluster's accounts to this node's files, skipping names already there,
# so that every node has the same users with the same uid/gid.
merge_accounts() {
    local file add line name
    for file in group passwd shadow; do
        add="/etc/hpcbox/accounts/$file"
        [ -f "$add" ] || continue
        while IFS= read -r line; do
            [ -n "$line" ] || continue
            name="${line%%:*}"
            grep -q "^${name}:" "/etc/$file" || printf '%s\n' "$line" >> "/etc/$file"
        done < "$add"
    done
}

# Kubernetes: homes are shared, and each user's is made once, private to them.
make_homes() {
    [ -n "$mounts" ] || return 0
    local name uid gid home
    while IFS=: read -r name _ uid gid _ home _; do
        [ -d "$home" ] || install -d -o "$uid" -g "$gid" -m 0700 "$home"
    done < /etc/hpcbox/accounts/passwd
}

# Kubernetes: homes are shared, and the controller installs every user's keys once.
install_user_keys() {
    [ -n "$mounts" ] || return 0
    local keys name home group
    for keys in "$mounts/users/authorized_keys"/*; do
        [ -f "$keys" ] || continue
        name="${keys##*/}"
        home="$(getent passwd "$name" | cut -d: -f6)"
        group="$(id -g "$name")"
        [ -d "$home" ] || install -d -o "$name" -g "$group" -m 0700 "$home"
        install -d -o "$name" -g "$group" -m 0700 "$home/.ssh"
        cat "$keys" "$mounts/secrets/admin_authorized_keys" > "$home/.ssh/authorized_keys"
        chown "$name:$group" "$home/.ssh/authorized_keys"
        chmod 0600 "$home/.ssh/authorized_keys"
    done
}

# Kubernetes, with accounting: once slurmctld and slurmdbd answer, add the users'
# associations (one sacctmgr command a line; "already exists" is fine).
register_associations() {
    [ -n "$mounts" ] || return 0
    local file="$mounts/users/sacctmgr" argv
    [ -s "$file" ] || return 0
    (
        for _ in $(seq 120); do
            scontrol ping >/dev/null 2>&1 && sacctmgr -n list cluster >/dev/null 2>&1 && break
            sleep 5
        done
        while read -r -a argv; do
            [ "${#argv[@]}" -gt 0 ] && { "${argv[@]}" >/dev/null 2>&1 || true; }
        done < "$file"
        log "SLURM associations registered"
    ) &
}

# Kubernetes starts every pod at once, and slurmctld with accounting exits at once
# ("fatal: You are running with a database but for some reason we have no TRES from
# it") when slurmdbd does not answer yet and there is no state file: wait for it.
# (On Podman and Docker hpcbox starts slurmdbd first.)
wait_for_slurmdbd() {
    [ -n "$mounts" ] || return 0
    local conf=/etc/slurm/slurm.conf host port
    grep -qx 'AccountingStorageType=accounting_storage/slurmdbd' "$conf" || return 0
    host="$(sed -n 's/^AccountingStorageHost=//p' "$conf")"
    port="$(sed -n 's/^AccountingStoragePort=//p' "$conf")"
    log "waiting for slurmdbd at ${host:-slurmdbd}:${port:-6819}"
    for _ in $(seq 300); do
        if (exec 3<>"/dev/tcp/${host:-slurmdbd}/${port:-6819}") 2>/dev/null; then
            return 0
        fi
        sleep 1
    done
    log "slurmdbd does not answer after 300 s: starting slurmctld anyway"
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
    if [ -f /etc/ssh/ssh_host_ed25519_key ]; then
        chmod 0600 /etc/ssh/ssh_host_ed25519_key
    fi
    /usr/sbin/sshd -E /var/log/sshd.log
}

# JupyterHub beside slurmctld (hpcbox/jupyter image): configuration rendered by
# hpcbox, state local.
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

install_mounted

case "$role" in
    hub)
        merge_accounts
        make_homes
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
        install_user_keys
        [ "${HPCBOX_JUPYTERHUB:-}" = 1 ] && start_jupyterhub
        install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
        register_associations
        wait_for_slurmdbd
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
        # A fresh volume (a Kubernetes claim, say) may be root's.
        chown mysql:mysql /var/lib/mysql
        if [ ! -d /var/lib/mysql/mysql ]; then
            log "initialising the database directory"
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
        fi
        args=(--user=mysql --datadir=/var/lib/mysql --bind-address=0.0.0.0 --skip-name-resolve)
        # Kubernetes: slurmdbd's database and user from the environment, at every
        # start, so that a changed password takes effect. (On Podman and Docker
        # hpcbox creates them through the mariadb client once the server answers.)
        if [ -n "${MARIADB_PASSWORD:-}" ]; then
            init=/run/mysqld/hpcbox-init.sql
            (
                umask 077
                cat > "$init" <<SQL
CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE:?}\`;
CREATE USER IF NOT EXISTS '${MARIADB_USER:?}'@'%' IDENTIFIED BY '${MARIADB_PASSWORD}';
ALTER USER '${MARIADB_USER}'@'%' IDENTIFIED BY '${MARIADB_PASSWORD}';
GRANT ALL ON \`${MARIADB_DATABASE}\`.* TO '${MARIADB_USER}'@'%';
FLUSH PRIVILEGES;
SQL
            )
            chown mysql:mysql "$init"
            args+=(--init-file="$init")
        fi
        log "starting mariadb"
        exec /usr/sbin/mariadbd "${args[@]}"
        ;;
    *)
        log "unknown role"
        exit 2
        ;;
esac
