"""``KubeEmulator``: the Kubernetes API emulator, embeddable in tests, demo and benchmarks."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import yaml

from vpcnet_sim.kube import resources
from vpcnet_sim.kube.patch import clone
from vpcnet_sim.kube.registry import Registry, external, now
from vpcnet_sim.kube.server import KubeHTTPServer, ServerOptions
from vpcnet_sim.kube.store import Store

CONTEXT = "vpcnet-sim"


class KubeEmulator:
    """An in-memory kube-apiserver over HTTP that the real ``kubernetes`` client uses.

    ``history`` is the watch window: a watch may resume from any of the last
    ``history`` changes; older resourceVersions get 410 Gone (``Expired``).
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0, history: int = 1000, *,
                 bookmark_interval: float = 60.0, watch_timeout: float = 1800.0) -> None:
        self.host = host
        self.port = port
        self.store = Store(history)
        self.registry = Registry(self.store)
        self.options = ServerOptions(default_watch_timeout=watch_timeout,
                                     bookmark_interval=bookmark_interval)
        self._server: KubeHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # --- lifecycle ------------------------------------------------------------------

    def start(self) -> KubeEmulator:
        if self._server is not None:
            return self
        self._server = KubeHTTPServer((self.host, self.port), self.registry, self.options)
        self.port = int(self._server.server_address[1])
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
            name=f"kube-emulator:{self.port}", daemon=True,
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        self.store.close()  # ends every watch stream
        server.shutdown()
        server.wait_for_watches(timeout=5)
        server.close_connections()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> KubeEmulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def url(self) -> str:
        if self._server is None:
            raise RuntimeError("KubeEmulator is not started")
        return f"http://{self.host}:{self.port}"

    # --- clients --------------------------------------------------------------------

    def kubeconfig(self) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": CONTEXT, "cluster": {"server": self.url}}],
            "users": [{"name": CONTEXT, "user": {"token": "vpcnet-sim"}}],
            "contexts": [{"name": CONTEXT, "context": {
                "cluster": CONTEXT, "user": CONTEXT, "namespace": "default"}}],
            "current-context": CONTEXT,
            "preferences": {},
        }

    def write_kubeconfig(self, path: str | Path) -> Path:
        """Write a kubeconfig for ``kubernetes.config.load_kube_config(path)``, atomically."""
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(self.kubeconfig(), sort_keys=False))
        tmp.replace(path)
        return path

    def api_client(self) -> Any:
        """A ``kubernetes.client.ApiClient`` talking to this emulator."""
        from kubernetes import client

        configuration = client.Configuration()
        configuration.host = self.url
        configuration.api_key = {"authorization": "vpcnet-sim"}
        configuration.api_key_prefix = {"authorization": "Bearer"}
        return client.ApiClient(configuration)

    # --- conveniences for tests and the demo: same semantics as the HTTP API; they
    # return copies (the store's objects are never handed out for mutation)

    def add_node(self, name: str, provider_id: str | None = "aws:///us-east-1a/i-0abc",
                 labels: dict[str, str] | None = None, annotations: dict[str, str] | None = None,
                 instance_type: str | None = None, taints: list[dict[str, Any]] | None = None,
                 ) -> dict[str, Any]:
        """Register a node as a kubelet would (labels, Ready condition, providerID)."""
        node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64"}
        if instance_type:
            node_labels["node.kubernetes.io/instance-type"] = instance_type
            node_labels["beta.kubernetes.io/instance-type"] = instance_type
        zone = _zone(provider_id)
        if zone:
            node_labels["topology.kubernetes.io/zone"] = zone
            node_labels["topology.kubernetes.io/region"] = zone.rstrip("abcdefghijklmnopqrstuvwxyz")
        node_labels.update(labels or {})
        spec: dict[str, Any] = {}
        if provider_id:
            spec["providerID"] = provider_id
        if taints:
            spec["taints"] = taints
        stamp = now()
        body = {
            "metadata": {"name": name, "labels": node_labels, "annotations": dict(annotations or {})},
            "spec": spec,
            "status": {
                "conditions": [{
                    "type": "Ready", "status": "True", "reason": "KubeletReady",
                    "message": "kubelet is posting ready status",
                    "lastHeartbeatTime": stamp, "lastTransitionTime": stamp,
                }],
                "addresses": [{"type": "Hostname", "address": name}],
                "nodeInfo": {"architecture": "amd64", "operatingSystem": "linux",
                             "kubeletVersion": "v1.33.0", "containerRuntimeVersion": "containerd://2.0.0"},
            },
        }
        # as the node is once the lifecycle controller saw it Ready: without the
        # not-ready taint the TaintNodesByCondition admission puts on an API create
        node: dict[str, Any] = clone(self.registry.create(resources.NODES, None, body, admit=False))
        return node

    def get_node(self, name: str) -> dict[str, Any] | None:
        """The node as the API serves it, or None."""
        stored = self.store.get("nodes", "", name)
        return clone(external(resources.NODES, stored)) if stored is not None else None

    def delete_node(self, name: str) -> None:
        """Delete a node (as ``kubectl delete node``; finalizers are honoured)."""
        self.registry.delete(resources.NODES, None, name)

    def add_pod(self, name: str, namespace: str = "default", node_name: str | None = None,
                labels: dict[str, str] | None = None, image: str = "registry.k8s.io/pause:3.10",
                ) -> dict[str, Any]:
        """Create a pod (optionally already bound to ``node_name``)."""
        spec: dict[str, Any] = {"containers": [{"name": "main", "image": image}]}
        if node_name:
            spec["nodeName"] = node_name
        body = {"metadata": {"name": name, "labels": dict(labels or {})}, "spec": spec}
        pod: dict[str, Any] = clone(self.registry.create(resources.PODS, namespace, body))
        return pod

    def compact(self) -> None:
        """Drop the watch history: every watch resuming from before now gets 410 Gone."""
        self.store.compact()

    @property
    def resource_version(self) -> int:
        """The latest resourceVersion (the etcd revision): a list now would return it."""
        return self.store.rv

    @property
    def open_watches(self) -> int:
        """Watch streams currently open (0 when stopped)."""
        return self._server.open_watches if self._server is not None else 0


def _zone(provider_id: str | None) -> str | None:
    # aws:///us-east-1a/i-0abc -> us-east-1a
    if not provider_id or not provider_id.startswith("aws://"):
        return None
    parts = [p for p in provider_id[len("aws://"):].split("/") if p]
    return parts[0] if len(parts) == 2 else None
