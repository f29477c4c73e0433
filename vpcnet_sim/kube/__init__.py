"""Kubernetes API emulator: what vpcnet's watcher, workers and agents need of kube-apiserver.

Nodes (with status), Pods, Namespaces, core/v1 and events.k8s.io/v1 Events and
coordination.k8s.io/v1 Leases, served over HTTP to the real ``kubernetes`` client:
resourceVersions, list+watch with a bounded history (410 Gone past it), bookmarks,
label/field selectors, strategic/merge/JSON patches, 409 on stale writes.

    from vpcnet_sim.kube import KubeEmulator
    kube = KubeEmulator(port=0).start()
    kube.write_kubeconfig("/tmp/kubeconfig")
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from vpcnet_sim.kube.emulator import KubeEmulator

__all__ = ["KubeEmulator"]


def __getattr__(name: str) -> Any:
    # lazy, so that ``python -m vpcnet_sim.kube.openapi`` runs even with a broken table
    if name == "KubeEmulator":
        from vpcnet_sim.kube.emulator import KubeEmulator

        return KubeEmulator
    raise AttributeError(name)
