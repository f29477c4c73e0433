//go:build tools

// Package controlplane pins the programs scripts/build-controlplane.sh builds, so that
// `go mod tidy` keeps every module they need in go.mod and go.sum.
package controlplane

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
)
