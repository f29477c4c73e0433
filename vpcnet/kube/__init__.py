"""Kubernetes-facing parts of the control plane.

- ``client``: :class:`KubeClient`, the only package importing ``kubernetes``.
- ``types``: frozen values converted from API objects at the edge.
- ``leader``: Lease-based leader election.
- ``tokenreview``: who a ServiceAccount token belongs to (pod, node), by TokenReview.
- ``nodeplan``: the watcher's pure per-node decision.
- ``source``, ``watchstate``, ``metrics``: the watcher's list+watch loop, its Redis and
  task-queue adapter, its Prometheus metrics (the process itself is ``vpcnet.watcher``).

Nothing is imported here, so ``import vpcnet.kube.types`` stays free of the client.
"""
