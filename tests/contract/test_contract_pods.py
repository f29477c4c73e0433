"""Pods as audit, status and inspect read them: every namespace, or one node's by field
selector, across pages."""

from __future__ import annotations

import ipaddress
import uuid

from vpcnet.kube.client import KubeClient


def test_pods_are_listed_per_node_with_their_ip(kube: KubeClient, node: str) -> None:
    other = f"c-node-{uuid.uuid4().hex[:8]}"  # a nodeName needs no Node object
    names = {f"c-pod-{uuid.uuid4().hex[:6]}": n for n in (node, node, other)}
    for pod, on in names.items():
        kube._json("POST", "/api/v1/namespaces/default/pods", body={
            "metadata": {"name": pod},
            "spec": {"nodeName": on, "containers": [{"name": "app", "image": "busybox"}]},
        })
    first = next(p for p, on in names.items() if on == node)
    kube._json("PATCH", f"/api/v1/namespaces/default/pods/{first}/status",
               content_type="application/merge-patch+json",
               body={"status": {"phase": "Running", "podIP": "10.0.1.7"}})
    try:
        mine = kube.list_pods(node)
        assert {p.name for p in mine} == {p for p, on in names.items() if on == node}
        pod = next(p for p in mine if p.name == first)
        assert pod.namespace == "default" and pod.node_name == node and pod.uid
        assert pod.phase == "Running" and pod.pod_ip == ipaddress.IPv4Address("10.0.1.7")
        assert set(names) <= {p.name for p in kube.list_pods()}
    finally:
        for pod in names:
            kube._json("DELETE", f"/api/v1/namespaces/default/pods/{pod}",
                       body={"gracePeriodSeconds": 0})
