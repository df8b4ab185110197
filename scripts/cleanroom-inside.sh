#!/bin/bash
# Runs inside the clean room (see scripts/cleanroom.sh), as root, in a copy of the
# checkout at /src: what a new user types after cloning. Each check runs even when an
# earlier one failed, so that one run shows every failure; exit 1 if any failed.
set -uo pipefail
cd /src
t0=$SECONDS
failed=()
check() {
    local name="$1"
    shift
    local t=$SECONDS
    echo "==> [cleanroom] $name"
    if "$@"; then
        echo "==> [cleanroom] ok: $name ($((SECONDS - t)) s)"
    else
        echo "==> [cleanroom] FAILED: $name ($((SECONDS - t)) s)"
        failed+=("$name")
    fi
}

if [ -n "${PREINSTALL:-}" ]; then
    echo "==> [cleanroom] installing by hand first (an experiment, not a clean room): $PREINSTALL"
    apt-get update -qq && apt-get install -y -qq --no-install-recommends $PREINSTALL >/dev/null
fi

check "bash scripts/demo.sh (first run)" bash scripts/demo.sh
check "bash scripts/demo.sh (second run)" bash scripts/demo.sh

no_warnings() {
    local out
    out="$(.venv/bin/hpcbox cluster list 2>&1)" || { echo "$out"; return 1; }
    ! grep -i warning <<<"$out"
}
check "no warnings on the command line (hpcbox cluster list)" no_warnings
check "the test suite collects (pytest --collect-only)" \
    .venv/bin/pytest -p no:cacheprovider --collect-only -q -o addopts=""

judge() {
    cat >/tmp/sum.c <<'C'
#include <stdio.h>
int main(void) { int a, b; if (scanf("%d %d", &a, &b) != 2) return 1; printf("%d\n", a + b); return 0; }
C
    echo 'read a b; echo $((a + b))' >/tmp/sum.sh
    printf '2 3\n' >/tmp/in.txt
    printf '5\n' >/tmp/out.txt
    .venv/bin/hpcbox judge run /tmp/sum.c --lang c --stdin /tmp/in.txt --expected /tmp/out.txt &&
        .venv/bin/hpcbox judge run /tmp/sum.sh --lang bash --stdin /tmp/in.txt --expected /tmp/out.txt
}
check "the judge, as root, default state directory (a C and a Bash program)" judge

if ((${#failed[@]})); then
    printf '==> [cleanroom] FAILED: %s\n' "${failed[@]}"
    exit 1
fi
echo "==> [cleanroom] passed in $((SECONDS - t0)) s"
