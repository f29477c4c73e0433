#!/usr/bin/env bash
# Sets up and runs `vpcnet demo`: the whole system on this machine, no AWS account, no cluster.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --no-go-builds
exec .venv/bin/vpcnet demo "$@"
