#!/usr/bin/env bash
# What a vpcnet image installs, by Dockerfile target, into the virtualenv VENV (created
# if absent). The Dockerfile's build stages run it for /usr/local/vpcnet, and
# tests/integration/test_runtime_image_env.py runs it for a temporary venv, so the test
# exercises exactly what the image holds.
#
#   scripts/install-image.sh runtime VENV   the product: vpcnet, workers, beat and their
#                                           dependencies (no harness), and the static CNI
#                                           launcher
#   scripts/install-image.sh dev VENV       runtime + the vpcnet-sim harness (emulators,
#                                           embedded stack, demo, chaos, bench) for
#                                           docker-compose and local work
#
# Installs from the source tree this script sits in (the Docker build context). Needs a
# C compiler with a static libc (the build stage's gcc + libc6-dev), never the runtime.
# pip options come from the environment (the Dockerfile sets PIP_NO_CACHE_DIR).
set -euo pipefail

usage="usage: install-image.sh runtime|dev VENV"
[ "$#" -eq 2 ] || { echo "$usage" >&2; exit 2; }
role=$1
venv=$2
src=$(cd "$(dirname "$0")/.." && pwd)

case "$role" in
  runtime) packages=("$src") ;;
  # One pip command: vpcnet-sim depends on vpcnet, resolved from the path beside it.
  dev) packages=("$src" "$src/vpcnet_sim") ;;
  *) echo "$usage" >&2; exit 2 ;;
esac

[ -x "$venv/bin/python" ] || "${PYTHON:-python3}" -m venv "$venv"
"$venv/bin/python" -m pip install --quiet "${packages[@]}"

# The launcher kubelet execs on hosts without Python: static, so it needs nothing there.
# vpcnet/install/launcher.py looks for it at <sys.prefix>/libexec/vpcnet/ (sys.prefix of
# a venv is the venv).
launcher_dir="$venv/libexec/vpcnet"
mkdir -p "$launcher_dir"
"${CC:-gcc}" -static -Os -s -Wall -o "$launcher_dir/vpcnet-cni-launcher" \
  "$src/vpcnet/install/launcher.c"
