#!/usr/bin/env bash
# Sets up everything vpcnet needs on a Debian machine (run as root): system packages,
# a virtualenv in .venv with the package and its test/sim extras. Idempotent.
set -euo pipefail
cd "$(dirname "$0")/.."
# --no-go-builds: skip helm, etcd and kube-apiserver (the default demo runs on the
# Kubernetes emulator; `vpcnet demo --kube apiserver` builds the control plane itself).
go_builds=1
[ "${1:-}" = "--no-go-builds" ] && go_builds=0

# redis-server: the state store and Celery broker (tests start their own on a free port);
# redis-sentinel: the failover tests run a primary, a replica and three sentinels.
# iptables/iproute2: the agent's SNAT and netns; containernetworking-plugins: the reference
# ptp/host-local/portmap plugins for the CNI benchmark and chaining tests.
# gcc + libc6-dev: the plugin installer builds its small static launcher when no prebuilt one ships.
PKGS=(python3 python3-venv python3-dev gcc libc6-dev redis-server redis-sentinel iptables iproute2 containernetworking-plugins
      iputils-ping procps kmod ca-certificates)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "setup: missing packages ${missing[*]}; run as root" >&2
    exit 1
  fi
  echo "setup: apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
# The machine's own redis instance is never used; stop it so it holds no port or memory.
for unit in redis-server redis-sentinel; do
  if command -v systemctl >/dev/null 2>&1 && systemctl is-active -q "$unit" 2>/dev/null; then
    systemctl stop "$unit" || true
  fi
done

# helm, built from its Go module, for the chart's tests: minutes the first time, cached after.
[ "$go_builds" = 1 ] && bash scripts/build-helm.sh

PY=${PYTHON:-python3}
"$PY" -c 'import sys; assert sys.version_info >= (3, 11), sys.version' \
  || { echo "setup: Python >= 3.11 is required" >&2; exit 1; }
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
# The product and the harness (vpcnet-sim, never published) in one command, so pip
# resolves the test extra's vpcnet-sim from ./vpcnet_sim. Product first: the pip 23.2
# that Python 3.11 bundles fails to match vpcnet-sim's vpcnet==0.1.0 the other way round.
.venv/bin/python -m pip install -q -e '.[test]' -e ./vpcnet_sim
# The real control plane the apiserver tests run against (etcd, kube-apiserver), built from
# Go modules into a cache outside the repo: minutes the first time, a no-op after.
controlplane="not built (--no-go-builds)"
[ "$go_builds" = 1 ] && controlplane=$(bash scripts/build-controlplane.sh)
echo "setup: ok ($(.venv/bin/python --version), $(redis-server --version | awk '{print $3}' | sed 's/^v=//'), control plane: $controlplane)"
