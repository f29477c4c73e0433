#!/usr/bin/env bash
# Sets up and runs every check: lint (ruff), types (mypy --strict), the import contracts
# (import-linter), and all test suites
# (unit, integration, netns, e2e). Tests start their own services (redis-server on a free
# port, Celery workers, the EC2 and Kubernetes emulators, etcd and kube-apiserver built by
# scripts/build-controlplane.sh) and network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-go-builds
# The Go-built parts (helm; etcd and kube-apiserver: ~11.5 min cold on 2 cores, a no-op
# once cached) build at the lowest CPU priority while the lint and the suites that do not
# use them run. tests/conftest.py runs the tests that use them last, and those wait for the
# build in progress (each build script holds its cache's lock while it builds); a failed
# build fails them (the control plane's names this log; helm's is run again and shows its
# own output).
go_log=$(mktemp "${TMPDIR:-/tmp}/vpcnet-go-builds.XXXXXX")
export VPCNET_GO_BUILD_LOG=$go_log
echo "== Go builds in the background (log: $go_log)"
nice -n 19 bash scripts/build-helm.sh >"$go_log.helm" 2>&1 &
nice -n 19 bash scripts/build-controlplane.sh >"$go_log" 2>&1 &
echo "== ruff"; .venv/bin/ruff check vpcnet workers beat tests vpcnet_sim
echo "== mypy --strict"; .venv/bin/mypy
echo "== import contracts (pyproject.toml [tool.importlinter])"; .venv/bin/lint-imports --no-cache
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
