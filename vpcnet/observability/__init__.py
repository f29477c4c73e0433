"""Observability: Prometheus metrics and structured JSON logs for every vpcnet process.

Who serves what (``/metrics`` over HTTP, 0 = off):

==========  =====================================  ==========================================
process     port setting (manifests)                metrics
==========  =====================================  ==========================================
watcher     ``--metrics-port`` (9810)               ``vpcnet_watcher_*`` (``vpcnet.kube.metrics``);
                                                    while it holds the Lease, the cluster view
                                                    from Redis: ``vpcnet_node_pool_ips``,
                                                    ``vpcnet_node_capacity_ips``, ``vpcnet_nodes``,
                                                    ``vpcnet_node_agent_*``
worker      ``VPCNET_METRICS_PORT`` (9811; the      ``vpcnet_ec2_*``, ``vpcnet_task*``,
            scan workers' pods 9813)                ``vpcnet_node_provisioning_seconds``,
                                                    ``vpcnet_queue_*``
agent       ``VPCNET_AGENT_METRICS_PORT`` (9812)    ``vpcnet_agent_*``
==========  =====================================  ==========================================

Each pod serves one of these ports, the one its ``prometheus.io/port`` annotation names
(the annotation takes one port per pod), and names it ``metrics``.

Submodules are imported where needed (the agent must not import Celery, the CNI plugin
imports none of this): ``logs`` (``configure_logging``), ``metrics`` (metric objects),
``collectors`` (Redis-reading scrape-time collectors), ``agent``, ``celery_hooks``.
"""
