"""The Kubernetes adapter: the only package of vpcnet that imports ``kubernetes``.

Requests and responses are plain JSON converted to the values of :mod:`vpcnet.kube.types`
right here, so nothing else sees SDK objects; library errors become :mod:`vpcnet.errors`
types. One idea per module, like kopf's ``_cogs/clients``:

- ``api``: the shared HTTP core (:class:`KubeApi`: connection, ``_open``/``_json``);
- ``config``: kubeconfig or in-cluster service account; ``errors``: HTTP status to error;
  ``conflicts``: the retry policy for writes refused with 409;
- one part per resource, each a ``KubeApi`` subclass: ``nodes`` (list, read, labels,
  annotations), ``taints``, ``node_watch``, ``events``, ``leases``, ``tokenreviews``, ``pods``;
- ``kubeclient``: :class:`KubeClient`, all parts in one object, the one the product uses.
"""

from vpcnet.kube.client.kubeclient import KubeClient
from vpcnet.kube.client.node_watch import NodeWatch

__all__ = ["KubeClient", "NodeWatch"]
