#!/usr/bin/env bash
# Sets up and runs every check: lint (ruff), types (mypy --strict), the import contracts
# (import-linter), and all test suites
# (unit, integration, netns, e2e). Tests start their own services (redis-server on a free
# port, Celery workers, the EC2 and Kubernetes emulators, etcd and kube-apiserver built by
# setup's scripts/build-controlplane.sh) and network namespaces.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
echo "== ruff"; .venv/bin/ruff check vpcnet workers beat tests vpcnet_sim
echo "== mypy --strict"; .venv/bin/mypy
echo "== import contracts (pyproject.toml [tool.importlinter])"; .venv/bin/lint-imports --no-cache
echo "== pytest"
exec .venv/bin/python -m pytest "$@"
