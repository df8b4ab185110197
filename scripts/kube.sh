#!/usr/bin/env bash
# A real single-node Kubernetes for hpcbox's tests and for users (issue 14).
#
#   bash scripts/kube.sh            start (or repair) the cluster; prints ONLY the path
#                                   of an admin kubeconfig on stdout
#   bash scripts/kube.sh build      build and cache every binary and image, start nothing
#   bash scripts/kube.sh status     what runs, what is healthy
#   bash scripts/kube.sh stop       stop everything, unmount, remove iptables chains and
#                                   the CNI bridge: the machine as it was
#   bash scripts/kube.sh load IMAGE...   copy images from Podman's store into the
#                                   cluster's containerd (e.g. hpcbox/operator:dev)
#
# Nothing is downloaded but Debian packages (apt-get) and Go modules (the Go module
# proxy): every binary is built from its Go module, every image is built locally and
# imported into the cluster's own containerd, so no registry is ever contacted.
# Progress goes to stderr. See docs/kubernetes.md.
#
# Environment:
#   HPCBOX_KUBE_CACHE  binaries and images, keyed by version
#                      (default ${XDG_CACHE_HOME:-$HOME/.cache}/hpcbox/kube)
#   HPCBOX_KUBE_STATE  PKI, configs, etcd data, containerd root, logs, pid files
#                      (default ${XDG_STATE_HOME:-$HOME/.local/state}/hpcbox/kube)
set -euo pipefail

# --- Versions ------------------------------------------------------------------------
# Kubernetes v1.34.4. Why this release: this machine's kernel runs cgroup v1 (hybrid)
# and PID 1 is not systemd. Kubelets from v1.35 on refuse to start on cgroup v1 unless
# KubeletConfiguration says failCgroupV1: false, and v1.36 drops support for
# containerd 1.x. v1.34 is the newest release served by the Go module proxy whose
# kubelet still runs on cgroup v1 by default and speaks CRI v1 to Debian 12's
# containerd 1.6; failCgroupV1: false is written into the kubelet's config anyway so
# that a bump to v1.35 keeps working. The staging modules (k8s.io/api, ...) are served
# at the matching v0.34.4 (checked with `go list -m -versions k8s.io/api`).
KUBE_VERSION=v1.34.4
KUBE_STAGING_VERSION=v0.34.4
# etcd: the release that kubernetes v1.34.4's go.mod requires (go.etcd.io/etcd/server/v3
# v3.6.4), so that it builds in the same `go build` as the Kubernetes binaries and
# shares their compiled dependencies (its own go.mod has replace directives, so a
# plain `go install ...@version` of it is refused).
ETCD_VERSION=v3.6.4
# Helm v4: another engineer's charts need it at $CACHE/bin/helm.
HELM_VERSION=v4.3.2
# CoreDNS: the oldest served v1.14 (it builds with Go 1.25+, this machine has 1.26).
COREDNS_VERSION=v1.14.3
# The volume provisioner: rancher's local-path-provisioner (hostPath volumes under
# the state dir, a default StorageClass). v0.0.30 is the version the proxy serves.
LOCAL_PATH_VERSION=v0.0.30
# The pause image's tag: the one kubernetes v1.34 expects (cmd/kubeadm constants).
PAUSE_TAG=3.10.1
BUSYBOX_TAG=1.36

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
TEMPLATES="$SCRIPT_DIR/kube"
CACHE="${HPCBOX_KUBE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hpcbox/kube}"
STATE="${HPCBOX_KUBE_STATE:-${XDG_STATE_HOME:-$HOME/.local/state}/hpcbox/kube}"
# Binaries: one folder per Kubernetes version (the etcd version is tied to it);
# helm in bin/ (its path is a contract with the charts), the rest keyed by version.
KBIN="$CACHE/kubernetes-$KUBE_VERSION/bin"
HELM="$CACHE/bin/helm"
HELM_STAMP="$CACHE/bin/.helm-$HELM_VERSION"
COREDNS="$CACHE/coredns-$COREDNS_VERSION/coredns"
LOCAL_PATH="$CACHE/local-path-provisioner-$LOCAL_PATH_VERSION/local-path-provisioner"
PAUSE_BIN="$CACHE/pause-$KUBE_VERSION/pause"
IMAGES_DIR="$CACHE/images"

export PATH="/usr/local/go/bin:/usr/local/sbin:/usr/sbin:/sbin:$PATH"

START=$SECONDS
log() { printf 'kube.sh [%3ds] %s\n' "$((SECONDS - START))" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# --- Debian packages -------------------------------------------------------------------
# Installs only the missing ones, quietly. Each is needed for a reason:
#   containerd                   the container runtime the kubelet talks to (CRI v1); 1.6
#                                in Debian 12, which kubelet v1.34 supports
#   runc                         the OCI runtime containerd's shim starts containers with
#   containernetworking-plugins  bridge, host-local, portmap, loopback: the pod network
#   iptables                     kube-proxy's service rules, CNI's masquerade and portmap
#   conntrack                    kube-proxy flushes stale UDP conntrack entries (DNS)
#   openssl                      generates the PKI (CA, certificates, service-account key)
#   busybox-static               the busybox:1.36 image (hpcbox's log pods) is built from it
#   gcc, libc6-dev               compile the pause image's static binary (pause.c)
#   podman                       builds the images from scripts/kube/*.Containerfile
#   iproute2                     `ip` to find the node IP and remove the CNI bridge
#   util-linux                   mount/umount, nsenter (the kubelet uses mount)
#   ca-certificates, git         the go command's module downloads
#   curl                         health checks of the API server and CoreDNS' readiness
# (socat and ethtool are not needed: containerd 1.6 forwards ports itself, and the
# bridge plugin does not call ethtool.)
PACKAGES=(containerd runc containernetworking-plugins iptables conntrack openssl
    busybox-static gcc libc6-dev podman iproute2 util-linux ca-certificates git curl)

ensure_packages() {
    local missing=() p
    for p in "${PACKAGES[@]}"; do
        if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed'; then
            missing+=("$p")
        fi
    done
    [ "${#missing[@]}" -eq 0 ] && return 0
    [ "$(id -u)" = 0 ] || die "missing Debian packages (${missing[*]}); run as root"
    log "apt-get install ${missing[*]} (output: $CACHE/apt.log)"
    mkdir -p "$CACHE"
    # policy-rc.d: Debian's containerd package must not start a system containerd.
    local prc=/usr/sbin/policy-rc.d created=0
    if [ ! -e "$prc" ]; then
        printf '#!/bin/sh\nexit 101\n' >"$prc" && chmod +x "$prc" && created=1
    fi
    if ! { DEBIAN_FRONTEND=noninteractive apt-get -q update &&
        DEBIAN_FRONTEND=noninteractive apt-get -q install -y --no-install-recommends \
            "${missing[@]}"; } >"$CACHE/apt.log" 2>&1; then
        [ "$created" = 1 ] && rm -f "$prc"
        tail -n 20 "$CACHE/apt.log" >&2
        die "apt-get failed (log: $CACHE/apt.log)"
    fi
    [ "$created" = 1 ] && rm -f "$prc"
    return 0
}

ensure_go() {
    command -v go >/dev/null || die "Go is needed (expected /usr/local/go/bin/go)"
}

# --- Building --------------------------------------------------------------------------
# Writes the go.mod of a build dir that requires k8s.io/kubernetes $KUBE_VERSION and
# replaces each staging module (required there at v0.0.0) with its served release, as
# projects that import k8s.io/kubernetes do.
write_kube_gomod() {
    local dir="$1" gomod mods m
    gomod="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
        sed -n 's/^\t"GoMod": "\(.*\)",$/\1/p')"
    [ -f "$gomod" ] || die "could not download k8s.io/kubernetes@$KUBE_VERSION"
    mods="$(sed -n 's#^\t\(k8s\.io/[a-z0-9-]*\) => \./staging/.*#\1#p' "$gomod")"
    [ -n "$mods" ] || die "no staging modules found in $gomod"
    {
        echo "module hpcbox.local/kubebuild"
        echo
        echo "go 1.24.0"
        echo
        echo "require ("
        echo "	k8s.io/kubernetes $KUBE_VERSION"
        echo "	go.etcd.io/etcd/server/v3 $ETCD_VERSION"
        echo ")"
        echo
        echo "replace ("
        for m in $mods; do
            echo "	$m => $m $KUBE_STAGING_VERSION"
        done
        echo ")"
    } >"$dir/go.mod"
}

build_kubernetes() {
    local want=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy
        kubectl etcd) b ok=1
    for b in "${want[@]}"; do [ -x "$KBIN/$b" ] || ok=0; done
    [ "$ok" = 1 ] && return 0
    ensure_go
    local dir="$CACHE/build/kubernetes-$KUBE_VERSION" t=$SECONDS
    mkdir -p "$dir" "$KBIN.tmp"
    write_kube_gomod "$dir"
    local major minor v="k8s.io/component-base/version" cv="k8s.io/client-go/pkg/version"
    major="${KUBE_VERSION#v}" && major="${major%%.*}"
    minor="${KUBE_VERSION#v*.}" && minor="${minor%%.*}"
    local date
    date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
    local ld="-s -w"
    local p
    for p in "$v" "$cv"; do
        ld+=" -X $p.gitVersion=$KUBE_VERSION -X $p.gitMajor=$major -X $p.gitMinor=$minor"
        ld+=" -X $p.gitTreeState=clean -X $p.buildDate=$date"
    done
    log "building kubernetes $KUBE_VERSION and etcd $ETCD_VERSION (one go build; a cold build takes long on 2 cores)"
    # One invocation, several packages, -o a dir: shared dependencies compile once.
    # CGO off: static binaries, as Kubernetes releases its server binaries.
    (cd "$dir" && CGO_ENABLED=0 GOFLAGS=-mod=mod nice -n 19 go build -trimpath \
        -ldflags "$ld" -o "$KBIN.tmp/" \
        k8s.io/kubernetes/cmd/kube-apiserver \
        k8s.io/kubernetes/cmd/kube-controller-manager \
        k8s.io/kubernetes/cmd/kube-scheduler \
        k8s.io/kubernetes/cmd/kubelet \
        k8s.io/kubernetes/cmd/kube-proxy \
        k8s.io/kubernetes/cmd/kubectl \
        go.etcd.io/etcd/server/v3) >&2
    # The etcd server's main package is the module's root (go.etcd.io/etcd/server/v3):
    # go names its binary "server" (older go: "v3").
    local n
    for n in server v3; do
        if [ -e "$KBIN.tmp/$n" ]; then mv "$KBIN.tmp/$n" "$KBIN.tmp/etcd"; fi
    done
    rm -rf "$KBIN" && mv "$KBIN.tmp" "$KBIN"
    log "kubernetes built in $((SECONDS - t)) s"
}

# go install of a module at a version into a dir; the binary is renamed to $2.
go_install() {
    local modver="$1" out="$2" name="$3"
    [ -x "$out" ] && return 0
    ensure_go
    local t=$SECONDS gobin
    gobin="$(dirname "$out")/.gobin"
    mkdir -p "$gobin"
    log "building $modver"
    CGO_ENABLED=0 GOBIN="$gobin" nice -n 19 go install -trimpath -ldflags "-s -w" \
        "$modver" >&2
    mv "$gobin/$name" "$out"
    rm -rf "$gobin"
    log "$modver built in $((SECONDS - t)) s"
}

build_helm() {
    [ -x "$HELM" ] && [ -e "$HELM_STAMP" ] && return 0
    ensure_go
    local t=$SECONDS
    mkdir -p "$CACHE/bin"
    log "building helm $HELM_VERSION"
    CGO_ENABLED=0 GOBIN="$CACHE/bin" nice -n 19 go install -trimpath -ldflags "-s -w" \
        "helm.sh/helm/v4/cmd/helm@$HELM_VERSION" >&2
    rm -f "$CACHE"/bin/.helm-* && touch "$HELM_STAMP"
    log "helm built in $((SECONDS - t)) s"
}

build_pause() {
    [ -x "$PAUSE_BIN" ] && return 0
    local src
    src="$(go mod download -json "k8s.io/kubernetes@$KUBE_VERSION" |
        sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')/build/pause/linux/pause.c"
    [ -f "$src" ] || die "pause.c not found at $src"
    mkdir -p "$(dirname "$PAUSE_BIN")"
    log "compiling pause.c (static)"
    gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_TAG-hpcbox" -o "$PAUSE_BIN.tmp" "$src"
    strip "$PAUSE_BIN.tmp"
    mv "$PAUSE_BIN.tmp" "$PAUSE_BIN"
}

build_binaries() {
    ensure_go
    build_pause
    build_kubernetes
    go_install "github.com/coredns/coredns@$COREDNS_VERSION" "$COREDNS" coredns
    go_install "github.com/rancher/local-path-provisioner@$LOCAL_PATH_VERSION" \
        "$LOCAL_PATH" local-path-provisioner
    build_helm
    # kubectl beside helm, for users' PATH and the tests.
    ln -sfn "$KBIN/kubectl" "$CACHE/bin/kubectl"
}

# --- The cluster's shape -------------------------------------------------------------
# Pod and service CIDRs that clash neither with Podman's 10.88.0.0/16 nor with the
# host's own networks (checked at start: see check_cidrs).
POD_CIDR=10.244.0.0/16
POD_SUBNET=10.244.0.0/24 # the single node's share (controller-manager allocates it too)
SERVICE_CIDR=10.96.0.0/16
API_SERVICE_IP=10.96.0.1
DNS_IP=10.96.0.10
BRIDGE=hpcboxk0
NODE_NAME=hpcbox-kube
API_PORT="${HPCBOX_KUBE_API_PORT:-6443}"
# etcd on loopback, off its usual ports so that it never meets another etcd.
ETCD_PORT=12379
ETCD_PEER_PORT=12380

PAUSE_IMAGE="registry.k8s.io/pause:$PAUSE_TAG"
COREDNS_IMAGE="localhost/hpcbox-kube/coredns:$COREDNS_VERSION"
LOCAL_PATH_IMAGE="localhost/hpcbox-kube/local-path-provisioner:$LOCAL_PATH_VERSION"
BUSYBOX_IMAGE="docker.io/library/busybox:$BUSYBOX_TAG"
IMAGES=("$PAUSE_IMAGE" "$COREDNS_IMAGE" "$LOCAL_PATH_IMAGE" "$BUSYBOX_IMAGE")

PKI="$STATE/pki"
RUN="$STATE/run"
LOGS="$STATE/logs"
ADMIN_KUBECONFIG="$STATE/admin.kubeconfig"
SOCK="$STATE/containerd/containerd.sock"
CNI_BIN=/usr/lib/cni
# The sysctls that the kubelet (setupKernelTunables) and kube-proxy (route_localnet)
# change: saved before the first start, restored by `stop`.
SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
    kernel.keys.root_maxkeys kernel.keys.root_maxbytes net.ipv4.conf.all.route_localnet
    net.bridge.bridge-nf-call-iptables net.ipv4.ip_forward)

# --- Images --------------------------------------------------------------------------
image_file() {
    local r="${1//\//_}"
    echo "$IMAGES_DIR/${r//:/_}.tar"
}

# podman build from a Containerfile in scripts/kube/, saved as a docker-archive in the
# cache; the image is removed from Podman's store again.
build_image() {
    local ref="$1" containerfile="$2" ctx="$3" out
    out="$(image_file "$ref")"
    [ -s "$out" ] && return 0
    mkdir -p "$IMAGES_DIR"
    log "building image $ref"
    podman build -q --network=none -t "$ref" -f "$containerfile" "$ctx" >/dev/null
    rm -f "$out.tmp"
    podman save -q --format docker-archive -o "$out.tmp" "$ref"
    podman rmi -f "$ref" >/dev/null
    mv "$out.tmp" "$out"
}

build_images() {
    local ctx
    ctx="$(mktemp -d)"
    # shellcheck disable=SC2064 # expand now: ctx is local
    trap "rm -rf '$ctx'" RETURN
    cp "$PAUSE_BIN" "$ctx/pause"
    build_image "$PAUSE_IMAGE" "$TEMPLATES/pause.Containerfile" "$ctx"
    cp "$COREDNS" "$ctx/coredns"
    build_image "$COREDNS_IMAGE" "$TEMPLATES/coredns.Containerfile" "$ctx"
    cp "$LOCAL_PATH" "$ctx/local-path-provisioner"
    build_image "$LOCAL_PATH_IMAGE" "$TEMPLATES/local-path-provisioner.Containerfile" "$ctx"
    if [ ! -s "$(image_file "$BUSYBOX_IMAGE")" ]; then
        local root="$ctx/rootfs" applet
        mkdir -p "$root/bin" "$root/tmp" "$root/etc"
        chmod 1777 "$root/tmp"
        cp /bin/busybox "$root/bin/busybox"
        for applet in $("$root/bin/busybox" --list); do
            [ "$applet" = busybox ] || ln -sf busybox "$root/bin/$applet"
        done
        printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n' \
            >"$root/etc/passwd"
        printf 'root:x:0:\nnobody:x:65534:\n' >"$root/etc/group"
        build_image "$BUSYBOX_IMAGE" "$TEMPLATES/busybox.Containerfile" "$ctx"
    fi
}

ctr_() { ctr --address "$SOCK" --namespace k8s.io "$@"; }

import_images() {
    local have ref
    have="$(ctr_ images ls -q)"
    for ref in "${IMAGES[@]}"; do
        if ! grep -qxF "$ref" <<<"$have"; then
            log "importing $ref into the cluster's containerd"
            ctr_ images import "$(image_file "$ref")" >/dev/null
        fi
    done
}

# --- PKI -----------------------------------------------------------------------------
# One CA per state dir; a certificate per component. $1 name, $2 CN, $3 O (may be
# empty), $4 extendedKeyUsage, $5 subjectAltName (may be empty).
issue_cert() {
    local name="$1" cn="$2" org="$3" usage="$4" san="${5:-}" subj
    subj="/CN=$cn"
    [ -n "$org" ] && subj="/O=$org$subj"
    openssl genrsa -out "$PKI/$name.key" 2048 2>/dev/null
    openssl req -new -key "$PKI/$name.key" -subj "$subj" -out "$PKI/$name.csr" 2>/dev/null
    {
        echo "basicConstraints=critical,CA:FALSE"
        echo "keyUsage=critical,digitalSignature,keyEncipherment"
        echo "extendedKeyUsage=$usage"
        [ -z "$san" ] || echo "subjectAltName=$san"
    } >"$PKI/$name.ext"
    openssl x509 -req -in "$PKI/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
        -CAcreateserial -CAserial "$PKI/ca.srl" -days 3650 -extfile "$PKI/$name.ext" \
        -out "$PKI/$name.crt" 2>/dev/null
    rm -f "$PKI/$name.csr" "$PKI/$name.ext"
}

make_kubeconfig() {
    local file="$1" user="$2" cert="$3" server="${4:-https://127.0.0.1:$API_PORT}"
    local k=("$KBIN/kubectl" config --kubeconfig="$file.tmp")
    rm -f "$file.tmp"
    "${k[@]}" set-cluster hpcbox-kube --server="$server" \
        --certificate-authority="$PKI/ca.crt" --embed-certs=true >/dev/null
    "${k[@]}" set-credentials "$user" --client-certificate="$PKI/$cert.crt" \
        --client-key="$PKI/$cert.key" --embed-certs=true >/dev/null
    "${k[@]}" set-context hpcbox-kube --cluster=hpcbox-kube --user="$user" >/dev/null
    "${k[@]}" use-context hpcbox-kube >/dev/null
    chmod 600 "$file.tmp"
    mv "$file.tmp" "$file"
}

ensure_pki() {
    mkdir -p "$PKI"
    chmod 700 "$PKI"
    if [ ! -s "$PKI/ca.crt" ]; then
        log "generating the PKI in $PKI"
        openssl genrsa -out "$PKI/ca.key" 2048 2>/dev/null
        openssl req -x509 -new -key "$PKI/ca.key" -subj "/CN=hpcbox-kube-ca" -days 3650 \
            -addext "keyUsage=critical,keyCertSign,cRLSign,digitalSignature" \
            -out "$PKI/ca.crt" 2>/dev/null
        openssl genrsa -out "$PKI/sa.key" 2048 2>/dev/null
        openssl rsa -in "$PKI/sa.key" -pubout -out "$PKI/sa.pub" 2>/dev/null
        issue_cert etcd-server etcd-server "" serverAuth \
            "DNS:localhost,IP:127.0.0.1"
        issue_cert apiserver-etcd-client kube-apiserver-etcd-client "" clientAuth
        issue_cert apiserver-kubelet-client kube-apiserver-kubelet-client \
            system:masters clientAuth
        issue_cert admin kubernetes-admin system:masters clientAuth
        issue_cert kubelet "system:node:$NODE_NAME" system:nodes clientAuth
        issue_cert controller-manager system:kube-controller-manager "" clientAuth
        issue_cert scheduler system:kube-scheduler "" clientAuth
        issue_cert kube-proxy system:kube-proxy "" clientAuth
        rm -f "$PKI/node-ip"
    fi
    # The serving certificates name the node's IP: issued again when it changes.
    if [ "$(cat "$PKI/node-ip" 2>/dev/null)" != "$NODE_IP" ]; then
        issue_cert apiserver kube-apiserver "" serverAuth \
            "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local,DNS:localhost,DNS:$NODE_NAME,IP:127.0.0.1,IP:$API_SERVICE_IP,IP:$NODE_IP"
        issue_cert kubelet-serving "system:node:$NODE_NAME" system:nodes serverAuth \
            "DNS:$NODE_NAME,DNS:localhost,IP:127.0.0.1,IP:$NODE_IP"
        echo "$NODE_IP" >"$PKI/node-ip"
    fi
    local c
    for c in admin kubelet controller-manager scheduler kube-proxy; do
        [ -s "$PKI/$c.conf" ] ||
            make_kubeconfig "$PKI/$c.conf" "$c" "$c"
    done
    [ -s "$ADMIN_KUBECONFIG" ] || make_kubeconfig "$ADMIN_KUBECONFIG" admin admin
}

# --- Configuration -------------------------------------------------------------------
# Replaces @KEY@ by its value in a template (literally: no sed, no eval).
render() {
    local src="$1" dst="$2" text kv
    shift 2
    text="$(<"$src")"
    for kv in "$@"; do
        text="${text//"@${kv%%=*}@"/"${kv#*=}"}"
    done
    printf '%s\n' "$text" >"$dst.tmp"
    mv "$dst.tmp" "$dst"
}

find_node_ip() {
    if [ -n "${HPCBOX_KUBE_NODE_IP:-}" ]; then
        NODE_IP="$HPCBOX_KUBE_NODE_IP"
        return
    fi
    # The address the host would use for outside traffic (a route lookup: nothing is
    # sent), else its first global IPv4 address.
    NODE_IP="$(ip -4 route get 192.0.2.254 2>/dev/null |
        sed -n 's/.* src \([0-9.]*\).*/\1/p' | head -n1)"
    if [ -z "$NODE_IP" ]; then
        NODE_IP="$(ip -4 -o addr show scope global 2>/dev/null |
            awk '{sub(/\/.*/, "", $4); print $4; exit}')"
    fi
    [ -n "$NODE_IP" ] || die "no IPv4 address for the node (set HPCBOX_KUBE_NODE_IP)"
}

ip2int() {
    local a b c d
    IFS=. read -r a b c d <<<"$1"
    echo $(((a << 24) | (b << 16) | (c << 8) | d))
}

# Do two CIDRs (or addresses) overlap?
overlaps() {
    local n1="${1%/*}" n2="${2%/*}" l1=32 l2=32 l mask
    [[ "$1" == */* ]] && l1="${1#*/}"
    [[ "$2" == */* ]] && l2="${2#*/}"
    l=$((l1 < l2 ? l1 : l2))
    mask=$(((0xffffffff << (32 - l)) & 0xffffffff))
    [ $(($(ip2int "$n1") & mask)) -eq $(($(ip2int "$n2") & mask)) ]
}

# The pod and service CIDRs must not overlap a route of the host (other than the
# default route and our own bridge): a clash would make pods or services unreachable.
check_cidrs() {
    local dst rest
    while read -r dst rest; do
        case "$dst" in default | *[!0-9./]*) continue ;; esac
        case " $rest " in *" dev $BRIDGE "*) continue ;; esac
        if overlaps "$dst" "$POD_CIDR" || overlaps "$dst" "$SERVICE_CIDR"; then
            die "the host's route '$dst $rest' overlaps the cluster's CIDRs ($POD_CIDR, $SERVICE_CIDR)"
        fi
    done < <(ip -4 route show table all 2>/dev/null | grep -v '^\(local\|broadcast\) ')
}

write_configs() {
    mkdir -p "$STATE/containerd" "$STATE/cni/net.d" "$STATE/cni/ipam" "$STATE/kubelet" \
        "$STATE/pod-logs" "$STATE/volumes" "$STATE/etcd" "$RUN" "$LOGS" "$STATE/addons"
    chmod 700 "$STATE/etcd"
    local resolv=/etc/resolv.conf
    render "$TEMPLATES/containerd.toml" "$STATE/containerd/config.toml" \
        "STATE=$STATE" "PAUSE_IMAGE=$PAUSE_IMAGE" "CNI_BIN=$CNI_BIN"
    render "$TEMPLATES/cni.conflist" "$STATE/cni/net.d/10-hpcbox-kube.conflist" \
        "STATE=$STATE" "POD_SUBNET=$POD_SUBNET"
    render "$TEMPLATES/kubelet-config.yaml" "$STATE/kubelet-config.yaml" \
        "PKI=$PKI" "STATE=$STATE" "DNS_IP=$DNS_IP" "RESOLV_CONF=$resolv" \
        "NODE_IP=$NODE_IP"
    render "$TEMPLATES/kube-proxy-config.yaml" "$STATE/kube-proxy-config.yaml" \
        "PKI=$PKI" "NODE_NAME=$NODE_NAME" "POD_CIDR=$POD_CIDR"
    render "$TEMPLATES/coredns.yaml" "$STATE/addons/coredns.yaml" \
        "DNS_IP=$DNS_IP" "COREDNS_IMAGE=$COREDNS_IMAGE"
    render "$TEMPLATES/local-path.yaml" "$STATE/addons/local-path.yaml" \
        "VOLUMES_DIR=$STATE/volumes" "LOCAL_PATH_IMAGE=$LOCAL_PATH_IMAGE" \
        "BUSYBOX_IMAGE=$BUSYBOX_IMAGE"
}

save_sysctls() {
    [ -s "$RUN/sysctl.saved" ] && return 0
    local k v
    for k in "${SYSCTLS[@]}"; do
        v="$(sysctl -n "$k" 2>/dev/null)" && printf '%s=%s\n' "$k" "$v"
    done >"$RUN/sysctl.saved.tmp"
    mv "$RUN/sysctl.saved.tmp" "$RUN/sysctl.saved"
}

restore_sysctls() {
    [ -s "$RUN/sysctl.saved" ] || return 0
    local kv
    while IFS= read -r kv; do
        sysctl -q -w "$kv" >/dev/null 2>&1 || true
    done <"$RUN/sysctl.saved"
    rm -f "$RUN/sysctl.saved"
}

# --- Processes -----------------------------------------------------------------------
COMPONENTS=(containerd etcd kube-apiserver kube-controller-manager kube-scheduler kubelet
    kube-proxy)

pid_of() {
    local pid
    pid="$(cat "$RUN/$1.pid" 2>/dev/null)" || return 1
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    # Ours only: every daemon's command line names the state dir.
    [ -r "/proc/$pid/cmdline" ] || return 1
    tr '\0' '\n' <"/proc/$pid/cmdline" | grep -qF "$STATE" || return 1
    echo "$pid"
}

is_running() { pid_of "$1" >/dev/null; }

fail_component() {
    local name="$1" why="$2" logf="$LOGS/$1.log"
    log "ERROR: $name $why"
    log "log: $logf"
    tail -n 15 "$logf" 2>/dev/null | cut -c1-400 >&2 || true
    exit 1
}

start_daemon() {
    local name="$1"
    shift
    log "starting $name"
    printf '==== %s starting: %s\n' "$(date -u +%FT%TZ)" "$*" >>"$LOGS/$name.log"
    # fd 9 (the lock) closed: a daemon must not hold kube.sh's lock.
    setsid "$@" </dev/null >>"$LOGS/$name.log" 2>&1 9>&- &
    echo "$!" >"$RUN/$name.pid"
}

# Stops daemons together (each takes a second or two to shut down gracefully):
# SIGTERM to all, SIGKILL to those still there after 15 s.
stop_daemon() {
    local name pid pids=() _
    for name in "$@"; do
        if pid="$(pid_of "$name")"; then
            kill -TERM "$pid" 2>/dev/null || true
            pids+=("$pid")
        fi
        rm -f "$RUN/$name.pid"
    done
    [ "${#pids[@]}" -gt 0 ] || return 0
    local alive
    for _ in $(seq 1 150); do
        alive=0
        for pid in "${pids[@]}"; do
            if kill -0 "$pid" 2>/dev/null; then alive=1; fi
        done
        [ "$alive" = 1 ] || return 0
        sleep 0.1
    done
    log "$* did not stop in 15 s: SIGKILL"
    kill -KILL "${pids[@]}" 2>/dev/null || true
    sleep 0.5
}

curl_() { curl -fsS --max-time 3 "$@"; }

healthy() {
    case "$1" in
    containerd)
        [ -S "$SOCK" ] &&
            ctr --address "$SOCK" --connect-timeout 2s version >/dev/null 2>&1
        ;;
    etcd)
        curl_ --cacert "$PKI/ca.crt" --cert "$PKI/apiserver-etcd-client.crt" \
            --key "$PKI/apiserver-etcd-client.key" \
            "https://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'
        ;;
    kube-apiserver)
        curl_ --cacert "$PKI/ca.crt" --cert "$PKI/admin.crt" --key "$PKI/admin.key" \
            "https://127.0.0.1:$API_PORT/readyz" >/dev/null 2>&1
        ;;
    kube-controller-manager) curl_ -k https://127.0.0.1:10257/healthz >/dev/null 2>&1 ;;
    kube-scheduler) curl_ -k https://127.0.0.1:10259/healthz >/dev/null 2>&1 ;;
    kubelet) curl_ http://127.0.0.1:10248/healthz >/dev/null 2>&1 ;;
    kube-proxy) curl_ http://127.0.0.1:10256/healthz >/dev/null 2>&1 ;;
    esac
}

wait_healthy() {
    local name="$1" timeout="$2" end=$((SECONDS + $2))
    until healthy "$name"; do
        is_running "$name" || fail_component "$name" "exited"
        [ "$SECONDS" -lt "$end" ] || fail_component "$name" "not healthy after $timeout s"
        sleep 0.5
    done
}

component_argv() {
    local k="$KBIN"
    case "$1" in
    containerd)
        ARGV=(/usr/bin/containerd --config "$STATE/containerd/config.toml")
        ;;
    etcd)
        ARGV=("$k/etcd" --name "$NODE_NAME" --data-dir "$STATE/etcd"
            --listen-client-urls "https://127.0.0.1:$ETCD_PORT"
            --advertise-client-urls "https://127.0.0.1:$ETCD_PORT"
            --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT"
            --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT"
            --initial-cluster "$NODE_NAME=http://127.0.0.1:$ETCD_PEER_PORT"
            --cert-file "$PKI/etcd-server.crt" --key-file "$PKI/etcd-server.key"
            --trusted-ca-file "$PKI/ca.crt" --client-cert-auth --log-level warn)
        ;;
    kube-apiserver)
        # shellcheck disable=SC2054 # the commas are in flag values
        ARGV=("$k/kube-apiserver" --advertise-address="$NODE_IP"
            --bind-address=0.0.0.0 --secure-port="$API_PORT"
            --etcd-servers="https://127.0.0.1:$ETCD_PORT" --etcd-cafile="$PKI/ca.crt"
            --etcd-certfile="$PKI/apiserver-etcd-client.crt"
            --etcd-keyfile="$PKI/apiserver-etcd-client.key"
            --client-ca-file="$PKI/ca.crt"
            --tls-cert-file="$PKI/apiserver.crt" --tls-private-key-file="$PKI/apiserver.key"
            --kubelet-client-certificate="$PKI/apiserver-kubelet-client.crt"
            --kubelet-client-key="$PKI/apiserver-kubelet-client.key"
            --kubelet-preferred-address-types=InternalIP,Hostname
            --service-account-issuer=https://kubernetes.default.svc.cluster.local
            --service-account-key-file="$PKI/sa.pub"
            --service-account-signing-key-file="$PKI/sa.key"
            --service-cluster-ip-range="$SERVICE_CIDR"
            --authorization-mode=Node,RBAC --enable-admission-plugins=NodeRestriction
            --allow-privileged=true --profiling=false --v=1)
        ;;
    kube-controller-manager)
        ARGV=("$k/kube-controller-manager" --kubeconfig="$PKI/controller-manager.conf"
            --authentication-kubeconfig="$PKI/controller-manager.conf"
            --authorization-kubeconfig="$PKI/controller-manager.conf"
            --bind-address=127.0.0.1 --leader-elect=false
            --use-service-account-credentials
            --service-account-private-key-file="$PKI/sa.key" --root-ca-file="$PKI/ca.crt"
            --cluster-signing-cert-file="$PKI/ca.crt"
            --cluster-signing-key-file="$PKI/ca.key"
            --allocate-node-cidrs --cluster-cidr="$POD_CIDR" --node-cidr-mask-size=24
            --service-cluster-ip-range="$SERVICE_CIDR" --profiling=false --v=1)
        ;;
    kube-scheduler)
        ARGV=("$k/kube-scheduler" --kubeconfig="$PKI/scheduler.conf"
            --authentication-kubeconfig="$PKI/scheduler.conf"
            --authorization-kubeconfig="$PKI/scheduler.conf"
            --bind-address=127.0.0.1 --leader-elect=false --profiling=false --v=1)
        ;;
    kubelet)
        ARGV=("$k/kubelet" --config="$STATE/kubelet-config.yaml"
            --kubeconfig="$PKI/kubelet.conf" --root-dir="$STATE/kubelet"
            --hostname-override="$NODE_NAME" --node-ip="$NODE_IP" --v=1)
        ;;
    kube-proxy)
        ARGV=("$k/kube-proxy" --config="$STATE/kube-proxy-config.yaml" --v=1)
        ;;
    esac
}

ensure_component() {
    local name="$1" timeout="${2:-60}"
    if is_running "$name"; then
        healthy "$name" && return 0
        # Running but not (yet) healthy: give it a moment, then restart it.
        local end=$((SECONDS + 10))
        while [ "$SECONDS" -lt "$end" ]; do
            healthy "$name" && return 0
            sleep 0.5
        done
        log "$name runs but is not healthy: restarting it"
        stop_daemon "$name"
    fi
    component_argv "$name"
    start_daemon "$name" "${ARGV[@]}"
    wait_healthy "$name" "$timeout"
}

kubectl_() { "$KBIN/kubectl" --kubeconfig="$ADMIN_KUBECONFIG" "$@"; }

apply_addons() {
    local sum
    sum="$(cat "$STATE/addons/coredns.yaml" "$STATE/addons/local-path.yaml" | sha256sum)"
    if [ "$(cat "$STATE/addons/applied" 2>/dev/null)" = "$sum" ] &&
        kubectl_ -n kube-system get deployment coredns >/dev/null 2>&1 &&
        kubectl_ -n local-path-storage get deployment local-path-provisioner \
            >/dev/null 2>&1; then
        return 0
    fi
    log "applying CoreDNS and the local-path provisioner"
    kubectl_ apply -f "$STATE/addons/coredns.yaml" -f "$STATE/addons/local-path.yaml" \
        >/dev/null
    echo "$sum" >"$STATE/addons/applied"
}

dns_answers() {
    busybox nslookup kubernetes.default.svc.cluster.local "$DNS_IP" 2>/dev/null |
        grep -q "Address:.*$API_SERVICE_IP"
}

wait_ready() {
    local end=$((SECONDS + 180))
    until kubectl_ get node "$NODE_NAME" -o \
        jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null |
        grep -qx True; do
        is_running kubelet || fail_component kubelet "exited"
        [ "$SECONDS" -lt "$end" ] || fail_component kubelet "node $NODE_NAME not Ready after 180 s"
        sleep 1
    done
    end=$((SECONDS + 240))
    until dns_answers; do
        if [ "$SECONDS" -ge "$end" ]; then
            log "ERROR: CoreDNS does not answer at $DNS_IP after 240 s"
            kubectl_ -n kube-system get pods -o wide >&2 || true
            kubectl_ -n kube-system logs deployment/coredns --tail=20 >&2 || true
            fail_component kubelet "(see the pods above)"
        fi
        sleep 1
    done
}

up() {
    ensure_packages
    build_binaries
    build_images
    mkdir -p "$STATE" "$RUN" "$LOGS"
    take_lock
    find_node_ip
    check_cidrs
    ensure_pki
    write_configs
    save_sysctls
    ensure_component containerd 30
    import_images
    ensure_component etcd 60
    ensure_component kube-apiserver 120
    ensure_component kube-controller-manager 60
    ensure_component kube-scheduler 60
    ensure_component kubelet 60
    ensure_component kube-proxy 60
    apply_addons
    wait_ready
    log "ready (node $NODE_NAME, API https://127.0.0.1:$API_PORT)"
    echo "$ADMIN_KUBECONFIG"
}

take_lock() {
    exec 9>"$STATE/lock"
    flock -w 300 9 || die "another kube.sh has held $STATE/lock for 5 minutes"
}

# --- Stop ----------------------------------------------------------------------------
# Removes the rules that the CNI plugins made for our network (their comments name
# it) and the chains only they used: a fallback, since a clean pod teardown by the
# kubelet removes them already.
cleanup_cni_iptables() {
    local table chain n chains=()
    for table in nat filter; do
        while read -r chain; do
            while n="$(iptables -w -t "$table" -L "$chain" -n --line-numbers 2>/dev/null |
                grep -F 'name: "hpcbox-kube"' | awk 'NR==1{print $1}')" && [ -n "$n" ]; do
                local target
                target="$(iptables -w -t "$table" -L "$chain" -n --line-numbers |
                    awk -v n="$n" '$1==n{print $2}')"
                case "$target" in CNI-*) chains+=("$table:$target") ;; esac
                iptables -w -t "$table" -D "$chain" "$n"
            done
        done < <(iptables -w -t "$table" -S 2>/dev/null | awk '$1=="-N"{print $2} $1=="-P"{print $2}')
    done
    for chain in "${chains[@]}"; do
        case "$chain" in *-HOSTPORT-*) continue ;; esac
        iptables -w -t "${chain%%:*}" -F "${chain#*:}" 2>/dev/null || true
        iptables -w -t "${chain%%:*}" -X "${chain#*:}" 2>/dev/null || true
    done
}

# The kubelet's own chains (KUBE-FIREWALL guards 127.0.0.0/8 from route_localnet; the
# canaries detect a flush): kube-proxy --cleanup leaves them.
cleanup_kubelet_iptables() {
    local ipt table chain
    for ipt in iptables ip6tables; do
        command -v "$ipt" >/dev/null || continue
        while "$ipt" -w -t filter -D INPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
        while "$ipt" -w -t filter -D OUTPUT -j KUBE-FIREWALL 2>/dev/null; do :; done
        for table in filter nat mangle; do
            for chain in KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
                if "$ipt" -w -t "$table" -F "$chain" 2>/dev/null; then
                    "$ipt" -w -t "$table" -X "$chain" 2>/dev/null || true
                fi
            done
        done
    done
}

stop_cluster() {
    mkdir -p "$RUN"
    take_lock
    local t=$SECONDS
    # 1. The kubelet first (it would restart what is killed below), then kube-proxy and
    #    its rules. Pods stay in the API: like a node's reboot, the next start runs
    #    them again (new sandboxes, new IPs).
    stop_daemon kubelet kube-proxy
    if [ -x "$KBIN/kube-proxy" ]; then
        "$KBIN/kube-proxy" --cleanup --v=0 >>"$LOGS/kube-proxy.log" 2>&1 || true
    fi
    # 2. Whatever still runs in the cluster's containerd: killed, its namespaces freed.
    local netns=() id
    if healthy containerd; then
        for id in $(ctr_ containers ls -q 2>/dev/null); do
            local ns
            ns="$(ctr_ containers info "$id" 2>/dev/null |
                sed -n 's#.*"path": "\(/var/run/netns/[^"]*\)".*#\1#p; s#.*"path": "\(/run/netns/[^"]*\)".*#\1#p' |
                head -n1)"
            [ -n "$ns" ] && netns+=("$ns")
            ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true
        done
        sleep 1
        for id in $(ctr_ containers ls -q 2>/dev/null); do
            ctr_ tasks rm -f "$id" >/dev/null 2>&1 || true
            ctr_ containers rm "$id" >/dev/null 2>&1 || true
            # libcni's cache of the sandbox's networks (eth0 on our bridge, lo).
            rm -f "/var/lib/cni/results/hpcbox-kube-$id-eth0" \
                "/var/lib/cni/results/cni-loopback-$id-lo"
        done
    fi
    stop_daemon kube-controller-manager kube-scheduler kube-apiserver
    stop_daemon etcd
    stop_daemon containerd
    # Shims of our containerd that outlived it (their command line names our socket).
    local pid
    for pid in $(pgrep -f containerd-shim 2>/dev/null || true); do
        if tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$SOCK"; then
            kill -KILL "$pid" 2>/dev/null || true
        fi
    done
    # 3. Mounts under the state dir (pod volumes, rootfs, shm), deepest first; netns.
    local m
    while read -r m; do
        umount -l "$m" 2>/dev/null || true
    done < <(awk -v s="$STATE/" 'index($5, s) == 1 {print $5}' /proc/self/mountinfo |
        sort -r)
    for m in "${netns[@]}"; do
        umount "$m" 2>/dev/null || true
        rm -f "$m"
    done
    # 4. Network: the bridge, CNI's rules and caches, the IP reservations.
    ip link del "$BRIDGE" 2>/dev/null || true
    cleanup_cni_iptables
    cleanup_kubelet_iptables
    rm -f /var/lib/cni/results/hpcbox-kube-* 2>/dev/null || true
    rm -rf "$STATE/cni/ipam"
    # 5. The kubelet's cgroups, its log links, the sysctls it changed.
    local d
    for d in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
        if [ -d "$d" ]; then
            find "$d" -depth -type d -exec rmdir {} + 2>/dev/null || true
        fi
    done
    if [ -d /var/log/containers ]; then
        for m in /var/log/containers/*.log; do
            [ -L "$m" ] && case "$(readlink "$m")" in "$STATE"/*) rm -f "$m" ;; esac
        done
        rmdir /var/log/containers 2>/dev/null || true
    fi
    # containerd 1.6 keeps its FIFOs and shim sockets in /run/containerd whatever its
    # state dir: removed when empty (a system containerd's would not be).
    for d in /run/containerd/fifo /run/containerd/s /run/containerd; do
        rmdir "$d" 2>/dev/null || true
    done
    restore_sysctls
    log "stopped in $((SECONDS - t)) s"
}

# --- Status and load -----------------------------------------------------------------
status() {
    local c pid rc=0
    for c in "${COMPONENTS[@]}"; do
        if pid="$(pid_of "$c")"; then
            if healthy "$c"; then
                printf '%-24s running (pid %s), healthy\n' "$c" "$pid"
            else
                printf '%-24s running (pid %s), NOT healthy\n' "$c" "$pid"
                rc=1
            fi
        else
            printf '%-24s stopped\n' "$c"
            rc=1
        fi
    done
    if [ "$rc" = 0 ]; then
        echo "kubeconfig: $ADMIN_KUBECONFIG"
        kubectl_ get nodes -o wide || rc=1
        kubectl_ get pods --all-namespaces -o wide || rc=1
    fi
    echo "state: $STATE  cache: $CACHE  logs: $LOGS"
    return "$rc"
}

load_images() {
    [ "$#" -gt 0 ] || die "usage: kube.sh load IMAGE..."
    healthy containerd || die "the cluster's containerd is not running: start it with scripts/kube.sh"
    local img want name
    for img in "$@"; do
        # The name asked for, as Podman spells it (an image has many names: the one
        # asked for is the one a pod spec names, not whichever Podman lists first).
        want="$img"
        case "${img##*/}" in *:*) ;; *) want="$img:latest" ;; esac
        name="$(podman image inspect --format '{{range .RepoTags}}{{println .}}{{end}}' "$img" 2>/dev/null |
            grep -Fx -e "$want" -e "localhost/$want" -e "docker.io/$want" -e "docker.io/library/$want" |
            head -n 1)" || true
        [ -n "$name" ] || die "no image $img in Podman's store"
        log "loading $name"
        podman save -q --format docker-archive "$name" | ctr_ images import - >/dev/null
        # Podman names an unqualified image localhost/NAME; a pod spec's NAME means
        # docker.io/NAME: both names point at it.
        # (docker.io/library/NAME for a one-part NAME).
        case "$name" in
        localhost/*/*)
            ctr_ images tag --force "$name" "docker.io/${name#localhost/}" >/dev/null
            ;;
        localhost/*)
            ctr_ images tag --force "$name" "docker.io/library/${name#localhost/}" >/dev/null
            ;;
        esac
    done
}

main() {
    local cmd="${1:-up}"
    case "$cmd" in
    up | start)
        up
        ;;
    build)
        ensure_packages
        build_binaries
        build_images
        log "built: $KBIN, $HELM, images in $IMAGES_DIR"
        ;;
    stop)
        stop_cluster
        ;;
    status)
        status
        ;;
    load)
        shift
        load_images "$@"
        ;;
    *) die "unknown command: $cmd (up|build|status|stop|load IMAGE...)" ;;
    esac
}

# One line: bash has read all of it before main runs, so an edit of this file during a
# long build cannot feed the running shell a half line.
main "$@"; exit
