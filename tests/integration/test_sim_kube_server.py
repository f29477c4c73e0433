"""The emulator as a server: discovery, kubeconfig, CLI, routing, pagination, scale."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client, config, dynamic
from kubernetes.client import ApiException

from tests.fixtures.redis import free_port
from vpcnet_sim.kube import KubeEmulator
from vpcnet_sim.kube.resources import NODES


@pytest.fixture
def core(kube_api: Any) -> client.CoreV1Api:
    return client.CoreV1Api(kube_api)


def test_discovery(kube_api: Any) -> None:
    assert client.VersionApi(kube_api).get_code().git_version.startswith("v1.")
    assert client.CoreApi(kube_api).get_api_versions().versions == ["v1"]
    groups = {g.name: g.preferred_version.version for g in client.ApisApi(kube_api).get_api_versions().groups}
    assert groups == {"events.k8s.io": "v1", "coordination.k8s.io": "v1"}
    core_resources = {r.name for r in client.CoreV1Api(kube_api).get_api_resources().resources}
    assert {"nodes", "nodes/status", "pods", "pods/status", "namespaces", "events"} <= core_resources
    leases = client.CoordinationV1Api(kube_api).get_api_resources().resources
    assert [(r.name, r.kind, r.namespaced) for r in leases] == [("leases", "Lease", True)]


def test_dynamic_client_works_through_discovery(kube_api: Any, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("n1")
    nodes = dynamic.DynamicClient(kube_api).resources.get(api_version="v1", kind="Node")
    assert [n.metadata.name for n in nodes.get().items] == ["n1"]


def test_health_endpoints(kube_emulator: KubeEmulator) -> None:
    for path in ("/healthz", "/livez", "/readyz"):
        with urllib.request.urlopen(kube_emulator.url + path, timeout=5) as resp:
            assert resp.status == 200 and resp.read() == b"ok"


@pytest.mark.parametrize(("method", "path", "code"), [
    ("GET", "/api/v1/widgets", 404),
    ("GET", "/apis/apps/v1/deployments", 404),
    ("GET", "/api/v2/nodes", 404),
    ("GET", "/api/v1/nodes/n1/proxy", 404),
    ("GET", "/api/v1/pods/p1", 404),  # namespaced resource without a namespace
    ("POST", "/api/v1/pods", 405),
    ("PUT", "/api/v1/nodes", 405),
    ("GET", "/nothing", 404),
])
def test_unknown_routes(kube_emulator: KubeEmulator, method: str, path: str, code: int) -> None:
    request = urllib.request.Request(kube_emulator.url + path, method=method, data=b"{}" if method != "GET" else None)
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    assert err.value.code == code
    body = json.loads(err.value.read())
    assert body["kind"] == "Status" and body["code"] == code


def test_malformed_body_is_400(kube_emulator: KubeEmulator) -> None:
    request = urllib.request.Request(kube_emulator.url + "/api/v1/nodes", method="POST", data=b"{not json",
                                     headers={"Content-Type": "application/json"})
    with pytest.raises(urllib.error.HTTPError) as err:
        urllib.request.urlopen(request, timeout=5)
    assert err.value.code == 400


def test_kubeconfig_works_with_load_kube_config(kubeconfig_path: Path, kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("n1")
    api = config.new_client_from_config(config_file=str(kubeconfig_path))
    try:
        assert [n.metadata.name for n in client.CoreV1Api(api).list_node().items] == ["n1"]
    finally:
        api.close()
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(kubeconfig_path), client_configuration=configuration)
    assert configuration.host == kube_emulator.url


def test_chunked_list_through_the_client(core: client.CoreV1Api, kube_emulator: KubeEmulator) -> None:
    for i in range(7):
        kube_emulator.add_node(f"n{i}")
    names: list[str] = []
    token = None
    versions = set()
    while True:
        page = core.list_node(limit=3, _continue=token)
        names += [n.metadata.name for n in page.items]
        versions.add(page.metadata.resource_version)
        token = page.metadata._continue
        if not token:
            break
    assert names == [f"n{i}" for i in range(7)] and len(versions) == 1
    with pytest.raises(ApiException) as err:
        core.list_node(limit=3, _continue="garbage!")
    assert err.value.status == 400


def test_concurrent_writers_get_unique_increasing_versions(kube_emulator: KubeEmulator) -> None:
    kube_emulator.add_node("n1")
    versions: list[int] = []
    lock = threading.Lock()

    def writer(i: int) -> None:
        api = kube_emulator.api_client()
        try:
            core = client.CoreV1Api(api)
            for j in range(25):
                node = core.patch_node("n1", {"metadata": {"labels": {f"w{i}": str(j)}}})
                with lock:
                    versions.append(int(node.metadata.resource_version))
        finally:
            api.close()

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(versions) == 200 and len(set(versions)) == 200
    labels = kube_emulator.registry.get(NODES, None, "n1")["metadata"]["labels"]
    assert all(labels[f"w{i}"] == "24" for i in range(8))


def test_a_client_that_goes_away_frees_its_watch(kube_emulator: KubeEmulator) -> None:
    host, port = kube_emulator.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as sock:
        sock.sendall(b"GET /api/v1/nodes?watch=true HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(4096).startswith(b"HTTP/1.1 200")
        assert kube_emulator.open_watches == 1
    deadline = time.monotonic() + 10  # the server notices on its next poll (about 1 s)
    while kube_emulator.open_watches and time.monotonic() < deadline:
        time.sleep(0.05)
    assert kube_emulator.open_watches == 0


def test_cli_runs_standalone_until_sigterm(tmp_path: Path) -> None:
    port = free_port()
    kubeconfig = tmp_path / "kubeconfig"
    proc = subprocess.Popen(
        [sys.executable, "-m", "vpcnet.cli.main", "sim", "kube", "--port", str(port),
         "--kubeconfig", str(kubeconfig), "--history", "50"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[2])},
    )
    try:
        assert proc.stdout is not None
        first = proc.stdout.readline()
        assert f"http://127.0.0.1:{port}" in first, first
        assert "kubeconfig written" in proc.stdout.readline()
        api = config.new_client_from_config(config_file=str(kubeconfig))
        try:
            core = client.CoreV1Api(api)
            core.create_node(client.V1Node(metadata=client.V1ObjectMeta(name="n1")))
            assert [n.metadata.name for n in core.list_node().items] == ["n1"]
        finally:
            api.close()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_thousand_nodes(core: client.CoreV1Api, kube_emulator: KubeEmulator,
                          record_property: Any) -> None:
    """Correctness at the scale of the join-storm benchmark; timings are recorded, not asserted."""
    started = time.perf_counter()
    for i in range(1000):
        kube_emulator.add_node(f"ip-10-0-{i // 250}-{i % 250}", provider_id=f"aws:///us-east-1a/i-{i:017x}",
                               instance_type="m5.xlarge", labels={"shard": str(i % 4)})
    created = time.perf_counter()
    listed = core.list_node(_preload_content=False)
    raw = json.loads(listed.data)
    listed_raw = time.perf_counter()
    typed = core.list_node()
    listed_typed = time.perf_counter()
    assert len(raw["items"]) == 1000 and len(typed.items) == 1000
    assert len(core.list_node(label_selector="shard=1", _preload_content=False).json()["items"]) == 250
    pages, token = 0, None
    while True:
        page = core.list_node(limit=250, _continue=token, _preload_content=False).json()
        pages += 1
        token = page["metadata"].get("continue")
        if not token:
            break
    assert pages == 4
    record_property("create_1000_nodes_s", round(created - started, 3))
    record_property("list_1000_nodes_http_json_s", round(listed_raw - created, 3))
    record_property("list_1000_nodes_typed_client_s", round(listed_typed - listed_raw, 3))
    print(f"\n1000 nodes: create {created - started:.3f}s, list (raw JSON) {listed_raw - created:.3f}s, "
          f"list (typed client) {listed_typed - listed_raw:.3f}s")
