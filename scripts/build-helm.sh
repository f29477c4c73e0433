#!/usr/bin/env bash
# Builds helm from its Go module (helm.sh/helm/v3/cmd/helm, pinned in tests/helm/go.mod)
# into a cache outside the repo, ${VPCNET_CACHE:-/var/cache/vpcnet}/helm/<version>/helm.
# No prebuilt download: the Go module proxy serves the source, `go build` compiles it.
# A binary already in the cache is reused, so only the first (cold) run pays for the build.
# Prints the binary's path as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

MODULE_DIR=tests/helm
# The version comes from go.mod (the one place it is pinned), not from a second constant here.
# Read from the file (no `go list`: it would resolve the whole module graph first).
mod_version() { awk -v m="$1" '$1 == m {print $2; exit}' "$MODULE_DIR/go.mod"; }
VERSION=$(mod_version helm.sh/helm/v3)
[ -n "$VERSION" ] || { echo "build-helm: no helm.sh/helm/v3 version in $MODULE_DIR/go.mod" >&2; exit 1; }
CACHE=${VPCNET_CACHE:-/var/cache/vpcnet}
OUT_DIR="$CACHE/helm/$VERSION"
OUT="$OUT_DIR/helm"

# A binary already in the cache: say so, print its path, done.
exit_if_cached() {
  if [ -x "$OUT" ]; then
    echo "build-helm: $VERSION cached"
    echo "$OUT"
    exit 0
  fi
}
exit_if_cached

# helm's own Makefile derives the Kubernetes version its lint rules and `.Capabilities`
# assume from client-go's version (v0.X.Y -> 1.X); do the same so `helm lint` and
# `helm template` target the Kubernetes that helm was built against.
CLIENT_GO=$(mod_version k8s.io/client-go)
K8S_MINOR=$(echo "$CLIENT_GO" | cut -d. -f2)
LDFLAGS="-s -w"
LDFLAGS+=" -X helm.sh/helm/v3/internal/version.version=$VERSION"
LDFLAGS+=" -X helm.sh/helm/v3/internal/version.gitTreeState=clean"
LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1"
LDFLAGS+=" -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$K8S_MINOR"
LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1"
LDFLAGS+=" -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$K8S_MINOR"

command -v go >/dev/null 2>&1 || { echo "build-helm: go is not on PATH (Go >= 1.26 is needed)" >&2; exit 1; }
mkdir -p "$OUT_DIR"
# One build at a time per cache (scripts/test.sh builds in the background while the tests
# that need helm may ask for it): a second run waits, then finds the first one's binary.
exec 9>"$OUT_DIR/.lock"
flock 9
exit_if_cached
start=$(date +%s)
echo "build-helm: downloading modules for helm $VERSION (client-go $CLIENT_GO)"
(cd "$MODULE_DIR" && go mod download)
echo "build-helm: modules ready after $(( $(date +%s) - start ))s"
echo "build-helm: compiling helm.sh/helm/v3/cmd/helm (a cold build takes a few minutes on 2 cores)"
# Build to a temporary name and rename: an interrupted build never leaves a half-written
# binary that a later run would take for a cached one.
tmp="$OUT.tmp.$$"
log="$OUT_DIR/build.log"
trap 'rm -f "$tmp"' EXIT
# -v names each package as it is compiled: every 50th is the progress line; the whole
# output goes to build.log, whose end is shown if the build fails.
if ! (cd "$MODULE_DIR" && CGO_ENABLED=0 go build -v -trimpath -ldflags "$LDFLAGS" -o "$tmp" helm.sh/helm/v3/cmd/helm 2>&1 \
  | tee "$log" \
  | awk '/^[^ \t]+$/ {n++; if (n % 50 == 0) printf "build-helm: %d packages compiled (last: %s)\n", n, $0; fflush()} END {printf "build-helm: %d packages compiled (any others came from the Go build cache)\n", n}'); then
  echo "build-helm: go build failed; the end of $log:" >&2
  tail -n 30 "$log" >&2
  exit 1
fi
[ -s "$tmp" ] || { echo "build-helm: go build produced no binary" >&2; exit 1; }
mv "$tmp" "$OUT"
trap - EXIT
echo "build-helm: built $("$OUT" version --short) in $(( $(date +%s) - start ))s"
echo "$OUT"
