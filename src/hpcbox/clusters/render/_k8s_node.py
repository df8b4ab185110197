"""The start-up script of a node pod on Kubernetes, and where its inputs are mounted.

On Podman and Docker hpcbox copies files into a container before it starts; on
Kubernetes, Secrets and ConfigMaps arrive as read-only, root-owned mounts,
which munged, sshd and slurmdbd refuse. This script (shipped in a ConfigMap,
so the images need nothing Kubernetes-specific) installs each mounted file
where its daemon looks, with the owner and mode it insists on, then runs the
role's main daemon in the foreground so that its log is the pod's log.

The script is a constant: no spec value is ever interpolated into it. It reads
names and keys from the mounted files and environment, all validated when
rendered (user names are ``[a-z_][a-z0-9_-]*``; the database password is
restricted to characters that need no quoting in SQL).
"""

from __future__ import annotations

__all__ = [
    "MPI_DIR",
    "NODE_SCRIPT",
    "SECRETS_DIR",
    "SETUP_DIR",
    "USERS_DIR",
]

SETUP_DIR = "/run/hpcbox/setup"
SECRETS_DIR = "/run/hpcbox/secrets"
USERS_DIR = "/run/hpcbox/users"
MPI_DIR = "/run/hpcbox/mpi"

NODE_SCRIPT = r"""#!/bin/bash
# hpcbox-node ROLE (Kubernetes): install the mounted configuration, then run the
# role's main daemon in the foreground. Rendered by hpcbox.
set -euo pipefail
role="${1:?usage: hpcbox-node controller|worker|slurmdbd|mariadb}"
secrets=/run/hpcbox/secrets
users=/run/hpcbox/users

log() { printf 'hpcbox-node[%s]: %s\n' "$role" "$*" >&2; }

# Same users with the same uid/gid on every node; names already present win.
merge_accounts() {
    local file src line name
    install -d -m 0755 /etc/hpcbox/accounts
    for file in group passwd shadow; do
        src="$users/$file"
        [ "$file" = shadow ] && src="$secrets/shadow"
        [ -f "$src" ] || continue
        while IFS= read -r line; do
            [ -n "$line" ] || continue
            name="${line%%:*}"
            grep -q "^${name}:" "/etc/$file" || printf '%s\n' "$line" >> "/etc/$file"
        done < "$src"
    done
}

start_munge() {
    install -d -o munge -g munge -m 0700 /etc/munge /run/munge /var/lib/munge /var/log/munge
    install -o munge -g munge -m 0400 "$secrets/munge.key" /etc/munge/munge.key
    runuser -u munge -- /usr/sbin/munged
}

start_sshd() {
    local key mode
    install -d -m 0755 /run/sshd
    for key in "$secrets"/ssh/*; do
        [ -f "$key" ] || continue
        case "$key" in *.pub) mode=0644 ;; *) mode=0600 ;; esac
        install -m "$mode" "$key" "/etc/ssh/${key##*/}"
    done
    install -d -m 0700 /root/.ssh
    install -m 0600 "$secrets/admin_authorized_keys" /root/.ssh/authorized_keys
    /usr/sbin/sshd -E /var/log/sshd.log
}

link_hostfile() {
    install -d -m 0755 /etc/hpcbox
    # A link, so that an updated ConfigMap reaches running nodes.
    ln -sfn /run/hpcbox/mpi/hostfile /etc/hpcbox/hostfile
}

# Homes are shared: the controller installs every user's keys once.
install_user_keys() {
    local keys name home group
    for keys in "$users"/authorized_keys/*; do
        [ -f "$keys" ] || continue
        name="${keys##*/}"
        home="$(getent passwd "$name" | cut -d: -f6)"
        group="$(id -g "$name")"
        [ -d "$home" ] || install -d -o "$name" -g "$group" -m 0700 "$home"
        install -d -o "$name" -g "$group" -m 0700 "$home/.ssh"
        cat "$keys" "$secrets/admin_authorized_keys" > "$home/.ssh/authorized_keys"
        chown "$name:$group" "$home/.ssh/authorized_keys"
        chmod 0600 "$home/.ssh/authorized_keys"
    done
}

# With accounting: once slurmctld and slurmdbd answer, add the users'
# associations (one sacctmgr command a line; "already exists" is fine).
register_associations() {
    local file="$users/sacctmgr" argv
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

case "$role" in
    controller)
        merge_accounts
        start_munge
        start_sshd
        link_hostfile
        install_user_keys
        install -d -o slurm -g slurm /var/spool/slurmctld /var/log/slurm
        register_associations
        log "starting slurmctld"
        exec /usr/sbin/slurmctld -D -i
        ;;
    worker)
        merge_accounts
        start_munge
        start_sshd
        link_hostfile
        install -d /var/spool/slurmd /var/log/slurm
        log "starting slurmd (dynamic node: ${HPCBOX_SLURMD_CONF:-})"
        exec /usr/sbin/slurmd -D -Z --conf "${HPCBOX_SLURMD_CONF:?}"
        ;;
    slurmdbd)
        start_munge
        install -o slurm -g slurm -m 0600 "$secrets/slurmdbd.conf" /etc/slurm/slurmdbd.conf
        install -d -o slurm -g slurm /var/log/slurm /run/slurmdbd
        log "starting slurmdbd"
        exec /usr/sbin/slurmdbd -D
        ;;
    mariadb)
        install -d -o mysql -g mysql /run/mysqld
        chown mysql:mysql /var/lib/mysql
        if [ ! -d /var/lib/mysql/mysql ]; then
            log "initialising the database directory"
            mariadb-install-db --user=mysql --datadir=/var/lib/mysql --skip-test-db >/dev/null
        fi
        # Run at every start, so a changed password takes effect.
        init=/run/mysqld/hpcbox-init.sql
        (
            umask 077
            cat > "$init" <<SQL
CREATE DATABASE IF NOT EXISTS \`${MARIADB_DATABASE:?}\`;
CREATE USER IF NOT EXISTS '${MARIADB_USER:?}'@'%' IDENTIFIED BY '${MARIADB_PASSWORD:?}';
ALTER USER '${MARIADB_USER}'@'%' IDENTIFIED BY '${MARIADB_PASSWORD}';
GRANT ALL ON \`${MARIADB_DATABASE}\`.* TO '${MARIADB_USER}'@'%';
FLUSH PRIVILEGES;
SQL
        )
        chown mysql:mysql "$init"
        log "starting mariadb"
        exec /usr/sbin/mariadbd --user=mysql --datadir=/var/lib/mysql \
            --bind-address=0.0.0.0 --skip-name-resolve --init-file="$init"
        ;;
    *)
        log "unknown role"
        exit 2
        ;;
esac
"""
