#!/usr/bin/env bash
# The clean-room check: does a fresh Debian 12 machine run the README's first command
# with no step by hand? A privileged container from a bare `debootstrap --variant=minbase
# bookworm` image (nothing else in it) gets a copy of this checkout and runs
# scripts/cleanroom-inside.sh:
#   1. bash scripts/demo.sh, twice: scripts/setup.sh from scratch, `hpcbox judge setup`,
#      the node images, `hpcbox doctor --strict`, a two-worker SLURM cluster on Podman
#      (nested), MPI on it; the second run shows that it can be run again;
#   2. no third-party warning on a command; the test suite collects;
#   3. the judge as root with the default state directory (a C and a Bash program).
# It fails when an install step is missing; its output is in build/cleanroom/.
#
# Usage: bash scripts/cleanroom.sh [--ref GIT-REF] [--preinstall 'PKG...']
#   --ref: test that commit (git archive) instead of the working tree; the checks
#     (scripts/cleanroom-inside.sh) are always this checkout's.
#   --preinstall: apt-get install these first, by hand (to find the next missing step
#     after a known one; a run with it proves nothing about a fresh machine).
# Needs root, podman and debootstrap on the host (scripts/setup.sh installs them).
# The base image is cached in the host's Podman storage as hpcbox-cleanroom:bookworm;
# HPCBOX_CLEANROOM_REBUILD=1 makes it again. Nothing else is kept between runs.
set -euo pipefail
cd "$(dirname "$0")/.."

REF=""
PREINSTALL=""
while (($#)); do
    case "$1" in
        --ref) REF="$2"; shift 2 ;;
        --preinstall) PREINSTALL="$2"; shift 2 ;;
        *) echo "usage: $0 [--ref GIT-REF] [--preinstall 'PKG...']" >&2; exit 2 ;;
    esac
done

OUT="$PWD/build/cleanroom"
mkdir -p "$OUT"
WORK="$(mktemp -d /var/tmp/hpcbox-cleanroom.XXXXXX)"
NAME="hpcbox-cleanroom-$$"
IMAGE="hpcbox-cleanroom:bookworm"
# The host's Podman with runc and container ulimits it may hold (see ENVIRONMENT
# notes in docs/clusters.md); a file of our own, the system's is left alone.
CONF="$WORK/containers.conf"
cat >"$CONF" <<'EOF'
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=4096:4096"]
[engine]
runtime = "runc"
EOF
export CONTAINERS_CONF="$CONF"
cleanup() {
    podman rm -f "$NAME" >/dev/null 2>&1 || true
    # The nested storage holds files owned by the clean room's uids: remove as root.
    rm -rf "$WORK"
}
trap cleanup EXIT

started=$SECONDS
if [ "${HPCBOX_CLEANROOM_REBUILD:-0}" = 1 ] || ! podman image exists "$IMAGE"; then
    echo "==> bootstrapping a bare Debian bookworm (debootstrap --variant=minbase)"
    debootstrap --variant=minbase bookworm "$WORK/rootfs" http://deb.debian.org/debian \
        >"$OUT/debootstrap.log" 2>&1 || {
        tail -n 20 "$OUT/debootstrap.log" >&2
        echo "cleanroom: debootstrap failed; see $OUT/debootstrap.log" >&2
        exit 1
    }
    tar -C "$WORK/rootfs" -c . | podman import - "$IMAGE" >/dev/null
    rm -rf "$WORK/rootfs"
fi

echo "==> copying the checkout${REF:+ at $REF} into the clean room"
mkdir -p "$WORK/src" "$WORK/storage"
if [ -n "$REF" ]; then
    git archive "$REF" | tar -C "$WORK/src" -x
else
    # Tracked files and untracked ones git does not ignore: never .venv or build/.
    git ls-files -z --cached --others --exclude-standard |
        tar --null -T - -c 2>/dev/null | tar -C "$WORK/src" -x
fi


echo "==> running scripts/demo.sh in the clean room (output: $OUT/run.log)"
# --privileged and a storage volume: Podman nested in Podman (overlay on the host's
# disk, not on the container's own overlay). --network host: apt reaches Debian's
# mirror as the host does. The one thing of the host's given to the clean room is
# the machine's CA bundle, where a fresh machine of this kind has it: a site CA in
# /usr/local/share/ca-certificates, which Debian's ca-certificates adds to the system
# store when setup.sh installs it (TLS is intercepted here; on a machine without a
# proxy this changes nothing). Nothing of the host's set-up by hand is shared.
HOST_CA=()
if [ -r /etc/ssl/certs/ca-certificates.crt ]; then
    HOST_CA=(-v /etc/ssl/certs/ca-certificates.crt:/usr/local/share/ca-certificates/site-ca.crt:ro)
fi
rc=0
podman run --name "$NAME" --privileged --network host \
    --cgroupns host \
    -v "$WORK/src:/src" -v "$PWD/scripts/cleanroom-inside.sh:/run.sh:ro" \
    -v "$WORK/storage:/var/lib/containers" "${HOST_CA[@]}" \
    -e CI="${CI:-}" -e LANG=C.UTF-8 -e PREINSTALL="$PREINSTALL" \
    "$IMAGE" bash /run.sh >"$OUT/run.log" 2>&1 || rc=$?
if [ "$rc" -ne 0 ]; then
    tail -n 40 "$OUT/run.log" >&2
    grep '^==> \[cleanroom\]' "$OUT/run.log" >&2 || true
    echo "cleanroom: FAILED (exit $rc) after $((SECONDS - started)) s; the whole output is in $OUT/run.log" >&2
    exit "$rc"
fi
grep '^==> \[cleanroom\]' "$OUT/run.log" || true
echo "==> cleanroom: passed in $((SECONDS - started)) s"
