#!/usr/bin/env bash
# Builds the real control plane the apiserver tests run against: kube-apiserver and etcd,
# compiled from the published Go modules pinned by tests/controlplane/go.mod and go.sum
# (k8s.io/kubernetes v1.37.2, its staging modules at v0.37.2, etcd server v3.7.0).
#
# The binaries go to a cache outside the repo,
#   ${VPCNET_CACHE:-/var/cache/vpcnet}/controlplane/v1.37.2/{kube-apiserver,etcd}
# with a stamp holding the hash of the module files; a later run whose stamp matches does
# nothing. A cold build compiles ~3,000 packages (minutes on 2 cores), so it prints stages
# and a package count as it goes. Prints the directory of the binaries as its last line.
set -euo pipefail
cd "$(dirname "$0")/.."

KUBE_VERSION=v1.37.2
MODULE_DIR=tests/controlplane
CACHE_ROOT=${VPCNET_CACHE:-/var/cache/vpcnet}
OUT=$CACHE_ROOT/controlplane/$KUBE_VERSION
BINARIES=(kube-apiserver etcd)

# The stamp covers everything that decides what is built: the module's requirements and
# sums, etcd's main, and this script (its ldflags).
stamp=$(cat "$MODULE_DIR/go.mod" "$MODULE_DIR/go.sum" "$MODULE_DIR/etcd/main.go" "$0" \
  | sha256sum | cut -d' ' -f1)

have_current_build() {
  local b
  for b in "${BINARIES[@]}"; do [ -x "$OUT/$b" ] || return 1; done
  [ -f "$OUT/STAMP" ] && [ "$(cat "$OUT/STAMP")" = "$stamp" ]
}

if have_current_build; then
  echo "controlplane: cached ($OUT)" >&2
  echo "$OUT"
  exit 0
fi

# The machine's Go lives in /usr/local/go; a non-login shell may not have it on PATH.
PATH=$PATH:/usr/local/go/bin
command -v go >/dev/null || { echo "controlplane: the go command is required" >&2; exit 1; }
mkdir -p "$CACHE_ROOT/controlplane"
# One build at a time per cache: a second run waits and then finds the first one's result.
exec 9>"$CACHE_ROOT/controlplane/.lock"
flock 9
if have_current_build; then
  echo "controlplane: cached ($OUT)" >&2
  echo "$OUT"
  exit 0
fi

started=$SECONDS
stage() { echo "controlplane: [$((SECONDS - started))s] $*" >&2; }

# Build into a fresh directory beside the target and swap it in at the end, so an
# interrupted build never leaves binaries that look current.
work=$(mktemp -d "$CACHE_ROOT/controlplane/.build.XXXXXX")
trap 'rm -rf "$work"' EXIT

# Reads `go build -v` (one line per package compiled) and prints a count now and then.
progress() {
  awk -v what="$1" -v t0="$started" '
    /^#|: / { print > "/dev/stderr"; next }  # a compiler message, not a package name
    { n++; if (n % 250 == 0) { printf "controlplane: %s: %d packages compiled\n", what, n > "/dev/stderr"; fflush("/dev/stderr") } }
    END { printf "controlplane: %s: %d packages compiled in total\n", what, n > "/dev/stderr" }'
}

# What hack/lib/version.sh stamps into a release: client-go's and component-base's
# version variables, so /version reports the release rather than v0.0.0-master.
major=${KUBE_VERSION#v}; major=${major%%.*}
minor=${KUBE_VERSION#v*.}; minor=${minor%%.*}
build_date=$(date -u +'%Y-%m-%dT%H:%M:%SZ')
ldflags="-s -w"
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ldflags+=" -X '$pkg.gitVersion=$KUBE_VERSION' -X '$pkg.gitMajor=$major' -X '$pkg.gitMinor=$minor'"
  ldflags+=" -X '$pkg.gitTreeState=clean' -X '$pkg.buildDate=$build_date'"
done

cd "$MODULE_DIR"
# -buildvcs=false: what is built depends on the module files alone, not on the checkout.
export CGO_ENABLED=0 GOFLAGS="-mod=readonly -buildvcs=false"
stage "go $(go env GOVERSION): downloading modules (go.sum-verified)"
go mod download
stage "building etcd (go.etcd.io/etcd/server/v3 $(go list -m -f '{{.Version}}' go.etcd.io/etcd/server/v3))"
go build -v -trimpath -ldflags "-s -w" -o "$work/etcd" ./etcd 2>&1 | progress etcd
stage "building kube-apiserver (k8s.io/kubernetes $KUBE_VERSION)"
go build -v -trimpath -ldflags "$ldflags" -o "$work/kube-apiserver" k8s.io/kubernetes/cmd/kube-apiserver \
  2>&1 | progress kube-apiserver
for b in "${BINARIES[@]}"; do
  [ -x "$work/$b" ] || { echo "controlplane: $b was not built" >&2; exit 1; }
done
echo "$stamp" > "$work/STAMP"
chmod 755 "$work"

rm -rf "$OUT.old"
[ -d "$OUT" ] && mv "$OUT" "$OUT.old"
mv "$work" "$OUT"
rm -rf "$OUT.old"
trap - EXIT
stage "done: $OUT"
echo "$OUT"
