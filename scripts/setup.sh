#!/usr/bin/env bash
# Set up everything hpcbox and its test suite need on a fresh Debian/Ubuntu machine:
# the system packages listed below (each with what it is for), then a virtual
# environment in .venv holding exactly the Python packages of uv.lock, hpcbox itself
# installed from this checkout (editable) with every extra.
#
# Needs root (or sudo) only for apt-get. Safe to run again: every step is idempotent.
# Raw apt and pip output goes to build/setup.log (its path is printed on failure);
# `--verbose` (or HPCBOX_VERBOSE=1) shows it on the terminal as well.
set -euo pipefail
cd "$(dirname "$0")/.."

VERBOSE="${HPCBOX_VERBOSE:-0}"
for arg in "$@"; do
    case "$arg" in
        -v | --verbose) VERBOSE=1 ;;
        *) echo "usage: $0 [--verbose]" >&2; exit 2 ;;
    esac
done

mkdir -p build
LOG="$PWD/build/setup.log"
: >"$LOG"
started=$SECONDS
# Runs "$@" with its output in the log (and on the terminal with --verbose); on
# failure, shows the log's tail and where the whole of it is.
step() {
    local what="$1"
    shift
    echo "==> $what"
    local rc=0
    if [ "$VERBOSE" = 1 ]; then
        "$@" 2>&1 | tee -a "$LOG" || rc=${PIPESTATUS[0]}
    else
        "$@" >>"$LOG" 2>&1 || rc=$?
    fi
    if [ "$rc" -ne 0 ]; then
        tail -n 20 "$LOG" >&2
        echo "setup: '$what' failed (exit $rc); the whole output is in $LOG" >&2
        exit "$rc"
    fi
}

APT_PACKAGES=(
    # python3, python3-venv: the interpreter .venv is made from (3.11 on Debian 12).
    python3 python3-venv ca-certificates
    # bubblewrap, uidmap: the sandboxes of local jobs and of the judge.
    bubblewrap uidmap
    # procps, psmisc, iproute2: ps/pkill/fuser/ip, used by the tests and the doctor.
    procps psmisc iproute2
    # gcc, libc6-dev: the judge's C and C++ languages and the sandbox supervisor.
    gcc g++ libc6-dev
    # podman, runc: cluster containers (crun fails on cgroup-v1/hybrid hosts).
    podman runc
    # catatonit: the init Podman runs as a container's PID 1 (--init); a Recommends
    # of podman that --no-install-recommends leaves out.
    catatonit
    # netavark, aardvark-dns: Podman's network backend with DNS, so cluster nodes
    # resolve each other by name (CNI's bridge has none); Recommends too.
    netavark aardvark-dns
    # iptables: netavark sets up bridge networks with it; without it every container
    # on a network fails with "netavark: No such file or directory".
    iptables
    # debootstrap: the offline Debian base image (no registry is needed).
    debootstrap
    # openssh-client: `hpcbox cluster ssh` and SSH targets; openssh-server: a real
    # sshd for the SSH transport's tests.
    openssh-client openssh-server
    # openmpi-bin, libopenmpi-dev: the host-side baseline of the cluster benchmark.
    openmpi-bin libopenmpi-dev
    # postgresql: the store's tests on PostgreSQL; redis-server: the Celery broker of
    # the judge queue's tests.
    postgresql postgresql-client redis-server
    # chromium: the headless browser Playwright drives in the JupyterHub tests.
    chromium
)

need_apt=()
for pkg in "${APT_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need_apt+=("$pkg")
done
if ((${#need_apt[@]})); then
    SUDO=""
    [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    step "updating the package lists (apt-get update)" $SUDO apt-get update
    step "installing system packages: ${need_apt[*]}" \
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${need_apt[@]}"
fi

# The Python packages: exactly uv.lock (uv sync --frozen never re-resolves). uv is
# itself one of the locked packages, bootstrapped with pip at the lock's version.
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
    step "creating .venv" "$PYTHON" -m venv .venv
fi
UV_VERSION="$(.venv/bin/python -c '
import tomllib
lock = tomllib.load(open("uv.lock", "rb"))
print(next(p["version"] for p in lock["package"] if p["name"] == "uv"))')"
if [ "$(.venv/bin/uv --version 2>/dev/null | cut -d" " -f2)" != "$UV_VERSION" ]; then
    step "bootstrapping uv $UV_VERSION" .venv/bin/python -m pip install --disable-pip-version-check "uv==$UV_VERSION"
fi
# UV_SYSTEM_CERTS: trust the system's certificate store (as pip does), so installs also
# work behind a TLS-intercepting proxy whose CA only the system trusts.
# UV_PYTHON_DOWNLOADS=never: use .venv's interpreter, never fetch one.
step "installing hpcbox and the locked Python packages into .venv (uv sync --frozen)" \
    env UV_SYSTEM_CERTS=1 UV_PYTHON_DOWNLOADS=never VIRTUAL_ENV="$PWD/.venv" \
    .venv/bin/uv sync --frozen --all-extras --python .venv/bin/python
echo "==> ready in $((SECONDS - started)) s: $(.venv/bin/hpcbox --version)"
