"""Every Prometheus metric vpcnet's workers and agents export, defined once.

The watcher's own metrics (``vpcnet_watcher_*``) live in ``vpcnet.kube.metrics``;
scrape-time collectors that read Redis (queue depth, per-node pools across the cluster)
are in ``vpcnet.observability.collectors``. Label values are bounded sets (EC2 action
names, AWS error codes, task names, CNI commands and codes): no per-node label on a
histogram, no IP or container id anywhere.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.registry import REGISTRY, CollectorRegistry

# -- workers: EC2 (recorded at the one choke point, ``vpcnet.aws.ec2.Ec2.call``) -------

EC2_CALLS = Counter(
    "vpcnet_ec2_calls_total",
    "EC2 API calls by action and outcome (ok, throttled, error)",
    ["action", "outcome"],
)
EC2_LATENCY = Histogram(
    "vpcnet_ec2_call_duration_seconds",
    "EC2 API call latency (request to response, throttled and failed calls included)",
    ["action"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0),
)
EC2_ERRORS = Counter(
    "vpcnet_ec2_errors_total",
    "EC2 API errors by action and AWS error code (RequestLimitExceeded included)",
    ["action", "code"],
)
RATELIMIT_WAIT = Histogram(
    "vpcnet_ec2_ratelimit_wait_seconds",
    "Time a call waited for a token of the shared (all-worker) EC2 rate limiter",
    ["action"],
    buckets=(0.0, 0.01, 0.05, 0.1, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0),
)

# -- workers: Celery tasks (recorded by ``vpcnet.observability.celery_hooks``) ---------

TASKS = Counter(
    "vpcnet_tasks_total",
    "Finished task runs by outcome: success, retry (a retry was scheduled), failure "
    "(an exception, or a permanent error surfaced on the node)",
    ["task", "outcome"],
)
TASK_RETRIES = Counter(
    "vpcnet_task_retries_total",
    "Retries scheduled, by task and the error that caused them",
    ["task", "reason"],
)
TASK_DURATION = Histogram(
    "vpcnet_task_duration_seconds",
    "Wall time of one task run (one attempt)",
    ["task"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0),
)
TASKS_ACTIVE = Gauge("vpcnet_tasks_active", "Task runs in progress in this worker", ["task"])
PROVISIONING = Histogram(
    "vpcnet_node_provisioning_seconds",
    "Per node: from the first enqueue of its provision_node (or the task's start when "
    "the message carries no enqueue time) to its ENIs and IPs written, phase provisioned",
    buckets=(1.0, 2.0, 5.0, 10.0, 20.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0),
)

# -- agents (recorded by ``vpcnet.observability.agent``) -------------------------------

CNI_REQUESTS = Counter(
    "vpcnet_agent_cni_requests_total",
    "CNI requests answered by the agent, by command and result code (0 = success, "
    "else the CNI error code: 11 try again / no free IP, 3 unknown container, 4 invalid "
    "env, 7 invalid config, 101 pod network, 102 check failed, 100 internal)",
    ["command", "code"],
)
CNI_LATENCY = Histogram(
    "vpcnet_agent_cni_request_seconds",
    "Time the agent took to answer a CNI request; command=ADD is the IP allocation "
    "latency (allocate, checkpoint, program the pod)",
    ["command"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)


def record_ec2_call(action: str, *, seconds: float, waited: float, throttled: bool = False,
                    error: str | None = None) -> None:
    """One EC2 call as ``Ec2.call`` saw it (``error``: the AWS code, or ConnectionError)."""
    outcome = "throttled" if throttled else "error" if error else "ok"
    EC2_CALLS.labels(action, outcome).inc()
    EC2_LATENCY.labels(action).observe(seconds)
    RATELIMIT_WAIT.labels(action).observe(waited)
    if error:
        EC2_ERRORS.labels(action, error).inc()


def serve_metrics(port: int, address: str = "0.0.0.0",
                  registry: CollectorRegistry = REGISTRY) -> int:
    """Serve ``/metrics`` over HTTP in a daemon thread; returns the bound port (0 = any)."""
    from prometheus_client import start_http_server

    server, _thread = start_http_server(port, addr=address, registry=registry)
    return int(server.server_port)


__all__ = [
    "CNI_LATENCY",
    "CNI_REQUESTS",
    "EC2_CALLS",
    "EC2_ERRORS",
    "EC2_LATENCY",
    "PROVISIONING",
    "RATELIMIT_WAIT",
    "TASKS",
    "TASKS_ACTIVE",
    "TASK_DURATION",
    "TASK_RETRIES",
    "record_ec2_call",
    "serve_metrics",
]
