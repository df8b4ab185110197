#!/usr/bin/env bash
# The whole test suite, as CI runs it: set up, start PostgreSQL, lint, type-check,
# check the layering contracts, run the clean room (README's first command on a bare
# Debian 12 in a container: scripts/cleanroom.sh), then every test. Extra arguments
# go to pytest. HPCBOX_SKIP_CLEANROOM=1 leaves the clean room out while you iterate;
# CI (CI=true) refuses to.
set -euo pipefail
cd "$(dirname "$0")/.."
started=$SECONDS
if [ "${HPCBOX_SKIP_CLEANROOM:-0}" = 1 ] && [ "${CI:-}" = true ]; then
    echo "test.sh: CI runs the clean room; unset HPCBOX_SKIP_CLEANROOM" >&2
    exit 2
fi
bash scripts/setup.sh
HPCBOX_TEST_DATABASE_URL="$(bash scripts/postgres.sh)"
export HPCBOX_TEST_DATABASE_URL
# Redis: the Celery broker of the judge queue's tests.
HPCBOX_TEST_BROKER_URL="$(bash scripts/redis.sh)"
export HPCBOX_TEST_BROKER_URL
# Kubernetes: a real single node (scripts/kube.sh; docs/kubernetes.md). The first run
# on a machine builds it from Go modules (long); later runs reuse the cache.
HPCBOX_TEST_KUBECONFIG="$(bash scripts/kube.sh)"
export HPCBOX_TEST_KUBECONFIG
echo "==> ruff"
.venv/bin/ruff check src tests bench
.venv/bin/ruff format --check src tests bench
echo "==> mypy --strict"
.venv/bin/mypy
echo "==> import-linter"
.venv/bin/lint-imports
# Before pytest, so that pytest's summary is the run's closing line.
if [ "${HPCBOX_SKIP_CLEANROOM:-0}" = 1 ]; then
    echo "==> clean room SKIPPED (HPCBOX_SKIP_CLEANROOM=1)"
else
    echo "==> clean room (scripts/cleanroom.sh)"
    bash scripts/cleanroom.sh
fi
echo "==> pytest (set-up and checks took $((SECONDS - started)) s)"
mkdir -p test-artifacts
exec .venv/bin/pytest -p no:cacheprovider "$@"
