"""KubeClient: the one object the product uses, composed from the per-resource parts."""

from __future__ import annotations

from vpcnet.kube.client.config import api_client_from_settings
from vpcnet.kube.client.events import EventsApi
from vpcnet.kube.client.leases import LeasesApi
from vpcnet.kube.client.node_watch import NodeWatchApi
from vpcnet.kube.client.pods import PodsApi
from vpcnet.kube.client.taints import NodeTaintsApi
from vpcnet.kube.client.tokenreviews import TokenReviewsApi
from vpcnet.settings import Settings


class KubeClient(NodeTaintsApi, NodeWatchApi, EventsApi, LeasesApi, TokenReviewsApi, PodsApi):
    """Typed, converging operations on Nodes, Events, Leases and Pods, and TokenReviews.

    Each base is one resource's calls over the shared HTTP core
    (:class:`~vpcnet.kube.client.api.KubeApi`); ``NodeTaintsApi`` brings ``NodesApi``.
    """

    @classmethod
    def from_settings(cls, settings: Settings, *, component: str = "vpcnet") -> KubeClient:
        """Kubeconfig when ``settings.kubeconfig`` is set, else the pod's service account."""
        api = api_client_from_settings(settings, component=component)
        return cls(api, component=component, event_namespace=settings.event_namespace)
