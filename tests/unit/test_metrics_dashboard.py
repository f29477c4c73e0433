"""The Grafana dashboard queries only metrics the code exports, covers what operators
need, and ships as a ConfigMap the Grafana sidecar picks up; scrape annotations point
at the ports the processes serve."""

from __future__ import annotations

import json
import re
from typing import Any

from prometheus_client import Counter, Gauge, Histogram
from prometheus_client.metrics import MetricWrapperBase

import vpcnet.kube.metrics as watcher_metrics
import vpcnet.observability.metrics as worker_metrics
from tests.unit.manifests_render import BASE, MANIFESTS, find, pod_spec, render
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


def test_scrape_annotations_match_the_ports_the_processes_serve() -> None:
    docs = render(BASE)
    expected = {"vpcnet-watcher": "9810", "vpcnet-workers": "9811", "vpcnet-agent": "9812"}
    for (kind, name), port in zip(
        (("Deployment", "vpcnet-watcher"), ("Deployment", "vpcnet-workers"), ("DaemonSet", "vpcnet-agent")),
        expected.values(), strict=True,
    ):
        w = find(docs, kind, name)
        ann = w["spec"]["template"]["metadata"]["annotations"]
        assert ann["prometheus.io/scrape"] == "true" and ann["prometheus.io/port"] == port, name
        # The one container serving the annotated port (the workers pod's scan worker
        # serves another, its declared scan-metrics port; see the test below).
        (c,) = [c for c in pod_spec(w)["containers"]
                if {"name": "metrics", "containerPort": int(port), "protocol": "TCP"} in c.get("ports", [])]
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        args = c["args"]
        served = (
            env.get("VPCNET_METRICS_PORT") or env.get("VPCNET_AGENT_METRICS_PORT")
            or next((a.split("=", 1)[1] for a in args if a.startswith("--metrics-port=")), None)
        )
        assert served == port, name


def test_every_workers_container_serves_the_metrics_port_it_declares() -> None:
    w = find(render(BASE), "Deployment", "vpcnet-workers")
    for c in pod_spec(w)["containers"]:
        env = {e["name"]: e.get("value") for e in c.get("env", [])}
        (declared,) = [p["containerPort"] for p in c["ports"] if p["name"].endswith("metrics")]
        assert env["VPCNET_METRICS_PORT"] == str(declared), c["name"]
