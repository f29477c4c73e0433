"""coordination.k8s.io Leases: the store leader election compares and swaps in."""

from __future__ import annotations

from vpcnet.errors import NotFoundError
from vpcnet.kube.client.api import KubeApi
from vpcnet.kube.types import Lease, LeaseSpec


class LeasesApi(KubeApi):
    def _lease_path(self, namespace: str, name: str = "") -> str:
        base = f"/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases"
        return f"{base}/{name}" if name else base

    def get_lease(self, namespace: str, name: str) -> Lease | None:
        try:
            return Lease.from_api(self._json("GET", self._lease_path(namespace, name)))
        except NotFoundError:
            return None

    def create_lease(self, namespace: str, name: str, spec: LeaseSpec) -> Lease:
        """Create the Lease; :class:`KubeConflict` when someone else created it first."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {"name": name, "namespace": namespace},
            "spec": spec.to_api(),
        }
        return Lease.from_api(self._json("POST", self._lease_path(namespace), body=body))

    def update_lease(self, lease: Lease, spec: LeaseSpec) -> Lease:
        """Replace the Lease's spec if it is still at ``lease.resource_version`` (else 409)."""
        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": lease.name,
                "namespace": lease.namespace,
                "resourceVersion": lease.resource_version,
            },
            "spec": spec.to_api(),
        }
        path = self._lease_path(lease.namespace, lease.name)
        return Lease.from_api(self._json("PUT", path, body=body))
