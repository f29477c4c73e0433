"""Pods: listed (all namespaces, or those on one node), never written."""

from __future__ import annotations

from vpcnet.kube.client.api import LIST_PAGE, KubeApi
from vpcnet.kube.types import PodObj


class PodsApi(KubeApi):
    def list_pods(self, node_name: str | None = None) -> list[PodObj]:
        """Pods in all namespaces, only those scheduled to ``node_name`` if given."""
        pods: list[PodObj] = []
        cont = ""
        while True:
            query = [("limit", str(LIST_PAGE))]
            if node_name:
                query.append(("fieldSelector", f"spec.nodeName={node_name}"))
            if cont:
                query.append(("continue", cont))
            page = self._json("GET", "/api/v1/pods", query=query)
            for item in page.get("items") or ():
                pod = PodObj.from_api(item)
                if node_name is None or pod.node_name == node_name:
                    pods.append(pod)
            cont = str((page.get("metadata") or {}).get("continue") or "")
            if not cont:
                return pods
