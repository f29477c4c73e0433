"""The kustomizations build, every object validates against the Kubernetes OpenAPI
schemas, and the manifests agree with the code (settings, CLI, security invariants)."""

from __future__ import annotations

import argparse
import copy
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
from kubernetes_validate.utils import latest_version

from tests.unit.manifests_render import BASE, OVERLAYS, find, pod_spec, render, workloads
from vpcnet.cli.main import build_parser
from vpcnet.settings import AgentSettings, Settings

# The newest schema kubernetes-validate ships, and the oldest release still supported
# upstream when this was written.
K8S_VERSIONS = (latest_version(), "1.32.0")
IMAGE = "ghcr.io/vpcnet/vpcnet"
ALL_RENDERS = [BASE, *OVERLAYS]


def containers(spec: dict[str, Any]) -> list[dict[str, Any]]:
    return [*spec.get("initContainers", []), *spec["containers"]]


@pytest.mark.parametrize("directory", ALL_RENDERS, ids=lambda p: p.name)
@pytest.mark.parametrize("version", K8S_VERSIONS)
def test_every_object_validates_strictly(directory: Path, version: str) -> None:
    docs = render(directory)
    assert docs
    for doc in docs:
        kubernetes_validate.validate(doc, version, strict=True)


def test_validation_rejects_a_broken_object() -> None:
    """The schema check can fail: an unknown field and a wrong type are caught."""
    ds = copy.deepcopy(find(render(BASE), "DaemonSet", "vpcnet-agent"))
    pod_spec(ds)["hostNetwrok"] = True
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, K8S_VERSIONS[0], strict=True)
    ds = copy.deepcopy(find(render(BASE), "DaemonSet", "vpcnet-agent"))
    pod_spec(ds)["hostNetwork"] = "yes"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(ds, K8S_VERSIONS[0], strict=True)


def test_external_redis_overlay_drops_the_in_cluster_redis() -> None:
    (overlay,) = [o for o in OVERLAYS if o.name == "external-redis"]
    names = {(d["kind"], d["metadata"]["name"]) for d in render(overlay)}
    assert ("StatefulSet", "vpcnet-redis") not in names
    assert ("Service", "vpcnet-redis") not in names
    assert ("DaemonSet", "vpcnet-agent") in names


def test_configmap_is_valid_settings() -> None:
    data = find(render(BASE), "ConfigMap", "vpcnet-config")["data"]
    settings_keys = {f"VPCNET_{f.upper()}" for f in Settings.__dataclass_fields__}
    agent_keys = {f"VPCNET_AGENT_{f.upper()}" for f in AgentSettings.__dataclass_fields__}
    unknown = set(data) - settings_keys - agent_keys
    assert not unknown, f"keys no settings class reads: {sorted(unknown)}"
    # Both parse and validate as the processes will read them.
    settings = Settings.from_env(data)
    agent = AgentSettings.from_env({**data, "VPCNET_AGENT_NODE_NAME": "ip-10-0-0-1"})
    assert settings.cluster_name == agent.cluster_name
    # Credentials never sit in the ConfigMap.
    assert not {"VPCNET_REDIS_URL", "VPCNET_BROKER_URL", "VPCNET_AGENT_REDIS_URL"} & set(data)


def _argv(container: dict[str, Any]) -> list[str]:
    return [*container.get("command", []), *container.get("args", [])]


def test_vpcnet_commands_parse_with_the_real_cli() -> None:
    """Every `vpcnet ...` argv in the manifests (containers and exec probes) is accepted."""
    seen = 0
    for w in workloads(render(BASE)):
        for c in containers(pod_spec(w)):
            argvs = [_argv(c)]
            for probe in ("livenessProbe", "readinessProbe", "startupProbe"):
                if "exec" in c.get(probe, {}):
                    argvs.append(c[probe]["exec"]["command"])
            for argv in argvs:
                if argv and argv[0] == "vpcnet":
                    ns = build_parser(argv[1]).parse_args(argv[1:])
                    assert isinstance(ns, argparse.Namespace) and hasattr(ns, "func"), argv
                    seen += 1
    assert seen >= 4  # watcher, agent, its probe, install-cni


def test_one_image_everywhere() -> None:
    images = {
        c["image"]
        for w in workloads(render(BASE))
        if w["metadata"]["name"] != "vpcnet-redis"
        for c in containers(pod_spec(w))
    }
    assert images == {f"{IMAGE}:0.1.0"}


def test_resources_and_probes_on_every_long_running_container() -> None:
    for w in workloads(render(BASE)):
        spec = pod_spec(w)
        for c in containers(spec):
            res = c["resources"]
            assert res["requests"]["cpu"] and res["requests"]["memory"], c["name"]
            assert res["limits"]["memory"], c["name"]
        if w["metadata"]["name"] == "vpcnet-beat":
            continue  # nothing to probe; see the comment in beat.yaml
        for c in spec["containers"]:
            assert "livenessProbe" in c or "readinessProbe" in c, c["name"]


def test_watcher_has_two_replicas_and_a_pdb() -> None:
    docs = render(BASE)
    assert find(docs, "Deployment", "vpcnet-watcher")["spec"]["replicas"] == 2
    pdb = find(docs, "PodDisruptionBudget", "vpcnet-watcher")
    assert pdb["spec"]["minAvailable"] == 1


def test_beat_is_a_single_replica_replaced_not_rolled() -> None:
    beat = find(render(BASE), "Deployment", "vpcnet-beat")
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}


def test_workers_service_account_is_irsa_ready() -> None:
    sa = find(render(BASE), "ServiceAccount", "vpcnet-workers")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].startswith("arn:aws:iam::")


def test_flower_requires_auth_from_a_secret_and_has_events_on() -> None:
    flower = find(render(BASE), "Deployment", "vpcnet-flower")
    (c,) = pod_spec(flower)["containers"]
    env = {e["name"]: e for e in c["env"]}
    assert env["FLOWER_BASIC_AUTH"]["valueFrom"]["secretKeyRef"]["name"] == "vpcnet-flower-auth"
    assert "--enable_events=True" in c["args"]
    workers = find(render(BASE), "Deployment", "vpcnet-workers")
    assert "-E" in pod_spec(workers)["containers"][0]["args"]  # workers send task events


def test_redis_persists_with_aof_and_has_no_passwordless_user() -> None:
    docs = render(BASE)
    conf = find(docs, "ConfigMap", "vpcnet-redis-config")["data"]["redis.conf"]
    lines = {line.split()[0]: line.split()[1:] for line in conf.splitlines() if line and line[0] != "#"}
    assert lines["appendonly"] == ["yes"]
    assert lines["aclfile"] == ["/etc/redis/acl/users.acl"]
    assert "requirepass" not in lines
    sts = find(docs, "StatefulSet", "vpcnet-redis")
    assert sts["spec"]["volumeClaimTemplates"][0]["metadata"]["name"] == "data"
    volumes = {v["name"]: v for v in pod_spec(sts)["volumes"]}
    assert volumes["acl"]["secret"]["secretName"] == "vpcnet-redis-acl"
    # Every component authenticates as its own ACL user (URL from the Secret).
    for w in workloads(docs):
        for c in pod_spec(w)["containers"]:
            for e in c.get("env", []):
                if e["name"].endswith("REDIS_URL"):
                    ref = e["valueFrom"]["secretKeyRef"]
                    assert ref["name"] == "vpcnet-redis-credentials"


def test_agent_daemonset_security_and_host_mounts() -> None:
    ds = find(render(BASE), "DaemonSet", "vpcnet-agent")
    spec = pod_spec(ds)
    assert spec["hostNetwork"] is True
    assert spec["automountServiceAccountToken"] is False
    tolerations = spec["tolerations"]
    assert {"operator": "Exists", "effect": "NoSchedule"} in tolerations  # incl. vpcnet.io/not-ready
    (init,) = spec["initContainers"]
    assert init["args"][:2] == ["vpcnet", "install-cni"]
    (agent,) = spec["containers"]
    sc = agent["securityContext"]
    assert sc["privileged"] is False
    assert sorted(sc["capabilities"]["add"]) == ["NET_ADMIN", "NET_RAW", "SYS_ADMIN"]
    assert sc["capabilities"]["drop"] == ["ALL"]
    # Only the short-lived init container is privileged, in the whole base.
    for w in workloads(render(BASE)):
        for c in containers(pod_spec(w)):
            if c.get("securityContext", {}).get("privileged"):
                assert (w["metadata"]["name"], c["name"]) == ("vpcnet-agent", "install-cni")
    host = {v["name"]: v["hostPath"]["path"] for v in spec["volumes"] if "hostPath" in v}
    for path in ("/opt/cni/bin", "/etc/cni/net.d", "/run/vpcnet", "/var/lib/vpcnet", "/var/log/vpcnet"):
        assert path in host.values(), path
    # Paths in the container are the host's, so paths the agent writes into the
    # conflist and the installer writes into the launcher are valid on the host.
    mounts = {m["name"]: m["mountPath"] for c in containers(spec) for m in c["volumeMounts"]}
    for name, path in host.items():
        if name in mounts and name != "xtables-lock":
            assert mounts[name] == path, name
    cfg = find(render(BASE), "ConfigMap", "vpcnet-config")["data"]
    assert Path(cfg["VPCNET_AGENT_SOCKET_PATH"]).parent == Path("/run/vpcnet")
    # The launcher's fast path asks the agent at the socket the conflist names.
    assert f"--agent-socket={cfg['VPCNET_AGENT_SOCKET_PATH']}" in init["args"]
    assert agent["readinessProbe"]["exec"]["command"] == ["vpcnet", "agent", "--check-ready"]
