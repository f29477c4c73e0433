"""The Grafana dashboard queries only metrics the code exports, covers what operators
need, and ships as a ConfigMap the Grafana sidecar picks up; scrape annotations point
at the ports the processes serve."""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

import vpcnet.kube.metrics as watcher_metrics
import vpcnet.observability.metrics as worker_metrics
from tests.unit.manifests_render import BASE, MANIFESTS, find, pod_spec, render, workloads
from vpcnet.observability.agent import AgentCollector
from vpcnet.observability.collectors import ClusterPoolCollector, QueueCollector

DASHBOARD = MANIFESTS / "grafana-dashboard.json"
_METRIC = re.compile(r"\bvpcnet_[a-z0-9_]+\b")


def exported_series() -> set[str]:
    """Every series name the code can export (counters as ``_total``, histograms as
    ``_bucket`` / ``_sum`` / ``_count``)."""
    names: set[str] = set()
    for module in (watcher_metrics, worker_metrics):
        for obj in vars(module).values():
            if not isinstance(obj, MetricWrapperBase):
                continue
            base = obj._name
            if isinstance(obj, Counter):
                names.add(f"{base}_total")
            elif isinstance(obj, Histogram):
                names |= {f"{base}_bucket", f"{base}_sum", f"{base}_count"}
            elif isinstance(obj, Gauge):
                names.add(base)
    collectors: list[Any] = [
        QueueCollector(lambda: None, ()),  # type: ignore[arg-type,return-value]
        ClusterPoolCollector(lambda: None, "c"),  # type: ignore[arg-type,return-value]
        AgentCollector("n", None),  # type: ignore[arg-type]
    ]
    for c in collectors:
        names |= {family.name for family in c.describe()}
    return names


def dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def exprs(doc: dict[str, Any]) -> list[str]:
    return [t["expr"] for p in doc["panels"] for t in p.get("targets", [])]


def test_every_query_names_a_series_the_code_exports() -> None:
    known = exported_series()
    used = {m for e in exprs(dashboard()) for m in _METRIC.findall(e)}
    assert used, "no vpcnet metric queried"
    assert used <= known, f"unknown series: {sorted(used - known)}"


def test_the_dashboard_covers_what_operators_need() -> None:
    used = {m for e in exprs(dashboard()) for m in _METRIC.findall(e)}
    for needed in (
        "vpcnet_node_pool_ips", "vpcnet_agent_pool_ips", "vpcnet_nodes",
        "vpcnet_agent_cni_request_seconds_bucket", "vpcnet_agent_cni_requests_total",
        "vpcnet_ec2_calls_total", "vpcnet_ec2_errors_total", "vpcnet_ec2_call_duration_seconds_bucket",
        "vpcnet_ec2_ratelimit_wait_seconds_sum", "vpcnet_tasks_total", "vpcnet_task_retries_total",
        "vpcnet_queue_depth", "vpcnet_node_provisioning_seconds_bucket", "vpcnet_watcher_leader",
    ):
        assert needed in used, needed


def test_panels_are_well_formed() -> None:
    doc = dashboard()
    ids = [p["id"] for p in doc["panels"]]
    assert len(ids) == len(set(ids))
    for p in doc["panels"]:
        pos = p["gridPos"]
        assert 0 <= pos["x"] and pos["x"] + pos["w"] <= 24, p["title"]
        if p["type"] != "row":
            assert p["targets"] and p["datasource"]["uid"] == "${datasource}", p["title"]
            assert all(t["expr"].count("(") == t["expr"].count(")") for t in p["targets"]), p["title"]
    variables = {v["name"] for v in doc["templating"]["list"]}
    assert {"datasource", "node"} <= variables


def test_dashboard_ships_as_a_configmap_for_the_grafana_sidecar() -> None:
    cm = find(render(BASE), "ConfigMap", "vpcnet-grafana-dashboard")
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(cm["data"]["grafana-dashboard.json"]) == dashboard()


def served_metrics_ports(workload: dict[str, Any]) -> dict[str, set[str]]:
    """Container name -> the metrics ports it declares or tells its process to serve."""
    out: dict[str, set[str]] = {}
    for c in pod_spec(workload)["containers"]:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        ports = {str(p["containerPort"]) for p in c.get("ports", []) if p["name"].endswith("metrics")}
        ports |= {env[k] for k in ("VPCNET_METRICS_PORT", "VPCNET_AGENT_METRICS_PORT") if env.get(k)}
        ports |= {a.split("=", 1)[1] for a in c.get("args", []) if a.startswith("--metrics-port=")}
        if ports:
            out[c["name"]] = ports
    return out


def scrape_problems(docs: tuple[dict[str, Any], ...]) -> list[str]:
    """Each pod whose metrics an annotation-based scrape misses. ``prometheus.io/port``
    names one port per pod, so every metrics port a pod serves must be that one; the
    port is named ``metrics`` (what a PodMonitor's ``port:`` selects)."""
    problems = []
    for w in workloads(docs):
        name = w["metadata"]["name"]
        served = served_metrics_ports(w)
        ann = w["spec"]["template"]["metadata"].get("annotations", {})
        if not served:
            continue
        if ann.get("prometheus.io/scrape") != "true":
            problems.append(f"{name}: serves metrics but is not annotated for scraping")
            continue
        for container, ports in served.items():
            if ports != {ann["prometheus.io/port"]}:
                problems.append(f"{name}/{container}: serves {sorted(ports)}, "
                                f"annotation names {ann['prometheus.io/port']}")
        named = {p["name"] for c in pod_spec(w)["containers"] for p in c.get("ports", [])
                 if str(p["containerPort"]) == ann["prometheus.io/port"]}
        if named != {"metrics"}:
            problems.append(f"{name}: the scraped port is named {sorted(named)}, not metrics")
    return problems


def test_scrape_annotations_name_every_metrics_port_the_pods_serve() -> None:
    docs = render(BASE)
    assert scrape_problems(docs) == []
    annotated = {w["metadata"]["name"]: w["spec"]["template"]["metadata"]["annotations"]["prometheus.io/port"]
                 for w in workloads(docs) if served_metrics_ports(w)}
    assert annotated == {"vpcnet-watcher": "9810", "vpcnet-workers": "9811", "vpcnet-agent": "9812",
                         "vpcnet-scan-workers": "9813"}


def test_scrape_problems_sees_a_second_metrics_port_in_one_pod() -> None:
    docs = copy.deepcopy(render(BASE))
    workers = find(docs, "Deployment", "vpcnet-workers")
    (c,) = pod_spec(workers)["containers"]
    pod_spec(workers)["containers"].append(
        dict(copy.deepcopy(c), name="second", env=[{"name": "VPCNET_METRICS_PORT", "value": "9899"}]))
    assert scrape_problems(docs) == ["vpcnet-workers/second: serves ['9811', '9899'], annotation names 9811"]
