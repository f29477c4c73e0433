"""The Helm chart's node credential issuer (templates/credentials.yaml) and the agent's
side of it (its projected token, the issuer's CA and URL in templates/agent.yaml).

With default values both are the kustomize base's (tests/unit/test_helm_chart.py compares
every object). Here: the agent's settings, read as the agent reads them, point at the
token and CA the DaemonSet mounts and at the issuer's Service; the values reach the
objects; and credentials.enabled=false - a state the base has no variant for - removes
the issuer's every object and the agent's token, CA and URL together, changing nothing
else."""

from __future__ import annotations

import copy
import posixpath
from typing import Any

import pytest
import yaml

from tests.fixtures.helm import Helm, HelmFailed, build_helm
from tests.unit.helm_compare import by_key, differences, without_helm_labels
from tests.unit.manifests_render import BASE, find, pod_spec, render
from vpcnet.settings import AgentSettings

ISSUER_OBJECTS = {
    ("ServiceAccount", "vpcnet-system", "vpcnet-credentials"),
    ("ClusterRole", "", "vpcnet-credentials"),
    ("ClusterRoleBinding", "", "vpcnet-credentials"),
    ("Deployment", "vpcnet-system", "vpcnet-credentials"),
    ("PodDisruptionBudget", "vpcnet-system", "vpcnet-credentials"),
    ("Service", "vpcnet-system", "vpcnet-credentials"),
}
AGENT_ISSUER_ENV = (
    "VPCNET_AGENT_CREDENTIALS_URL",
    "VPCNET_AGENT_CREDENTIALS_TOKEN_PATH",
    "VPCNET_AGENT_CREDENTIALS_CA_FILE",
)
AGENT_ISSUER_VOLUMES = ("credentials-token", "credentials-ca")
DISABLED = {"credentials": {"enabled": False}}


@pytest.fixture(scope="module")
def helm(tmp_path_factory: pytest.TempPathFactory) -> Helm:
    return Helm(build_helm(), tmp_path_factory.mktemp("helm-home"))


def agent_container(docs: tuple[dict[str, Any], ...]) -> dict[str, Any]:
    container: dict[str, Any] = pod_spec(find(docs, "DaemonSet", "vpcnet-agent"))["containers"][0]
    return container


def agent_settings(docs: tuple[dict[str, Any], ...], redis_url: str) -> AgentSettings:
    """The agent's settings as its pod gets them: the ConfigMap, then its own env, with the
    node name and the Secret's agent-url (``redis_url``) filled in."""
    namespace = find(docs, "DaemonSet", "vpcnet-agent")["metadata"]["namespace"]
    env: dict[str, str] = dict(by_key(docs)[("ConfigMap", namespace, "vpcnet-config")]["data"])
    for var in agent_container(docs)["env"]:
        if "value" in var:
            env[var["name"]] = var["value"]
        elif "fieldRef" in var["valueFrom"]:
            env[var["name"]] = "ip-10-0-0-1"
        else:
            assert var["valueFrom"]["secretKeyRef"]["key"] == "agent-url", var
            env[var["name"]] = redis_url
    return AgentSettings.from_env(env)


def mounted_file(docs: tuple[dict[str, Any], ...], volume: str, file: str) -> str:
    """Where ``file`` of the agent's ``volume`` is in its container."""
    (mount,) = [m for m in agent_container(docs)["volumeMounts"] if m["name"] == volume]
    path: str = posixpath.join(mount["mountPath"], file)
    return path


def test_agent_settings_point_at_the_mounted_token_ca_and_the_issuer_service(helm: Helm) -> None:
    docs = helm.template({"namespace": {"name": "cni"}})
    settings = agent_settings(docs, "redis://vpcnet-redis.cni.svc:6379/0")
    volumes = {v["name"]: v for v in pod_spec(find(docs, "DaemonSet", "vpcnet-agent"))["volumes"]}
    (source,) = volumes["credentials-token"]["projected"]["sources"]
    token = source["serviceAccountToken"]
    assert settings.credentials_token_path == mounted_file(docs, "credentials-token", token["path"])
    assert settings.credentials_ca_file == mounted_file(docs, "credentials-ca", "ca.crt")
    # The issuer accepts exactly that audience, from exactly this ServiceAccount.
    issuer = find(docs, "Deployment", "vpcnet-credentials")
    args = pod_spec(issuer)["containers"][0]["args"]
    assert f"--audience={token['audience']}" in args
    assert "--agent-service-account=cni/vpcnet-agent" in args
    assert pod_spec(find(docs, "DaemonSet", "vpcnet-agent"))["serviceAccountName"] == "vpcnet-agent"
    # The URL is the issuer's Service, in the release's namespace, on its port.
    service = find(docs, "Service", "vpcnet-credentials")
    (port,) = service["spec"]["ports"]
    assert settings.credentials_url == f"https://vpcnet-credentials.cni.svc:{port['port']}"


def test_credentials_values_reach_the_issuer_and_the_agent(helm: Helm) -> None:
    small = {"requests": {"cpu": "1m", "memory": "1Mi"}, "limits": {"memory": "2Mi"}}
    docs = helm.template(
        {
            "credentials": {
                "replicas": 3,
                "tlsSecret": "issuer-tls",
                "caConfigMap": "issuer-ca",
                "resources": small,
            }
        }
    )
    issuer = find(docs, "Deployment", "vpcnet-credentials")
    assert issuer["spec"]["replicas"] == 3
    spec = pod_spec(issuer)
    assert spec["containers"][0]["resources"] == small
    assert {v["name"]: v for v in spec["volumes"]}["tls"]["secret"]["secretName"] == "issuer-tls"
    agent_volumes = {
        v["name"]: v for v in pod_spec(find(docs, "DaemonSet", "vpcnet-agent"))["volumes"]
    }
    assert agent_volumes["credentials-ca"]["configMap"] == {"name": "issuer-ca"}


def base_agent_without_the_issuer() -> dict[str, Any]:
    """The base's agent DaemonSet less its issuer env, token and CA: what the chart must
    render with credentials.enabled=false."""
    agent = copy.deepcopy(find(render(BASE), "DaemonSet", "vpcnet-agent"))
    spec = pod_spec(agent)
    container = spec["containers"][0]
    container["env"] = [e for e in container["env"] if e["name"] not in AGENT_ISSUER_ENV]
    container["volumeMounts"] = [
        m for m in container["volumeMounts"] if m["name"] not in AGENT_ISSUER_VOLUMES
    ]
    spec["volumes"] = [v for v in spec["volumes"] if v["name"] not in AGENT_ISSUER_VOLUMES]
    return agent


def test_disabled_issuer_removes_its_objects_and_the_agents_token_and_nothing_else(
    helm: Helm,
) -> None:
    base = by_key(render(BASE))
    docs = helm.template(DISABLED)
    chart = by_key(docs)
    assert ISSUER_OBJECTS <= set(base)
    assert sorted(chart) == sorted(set(base) - ISSUER_OBJECTS)
    expected = {
        **base,
        ("DaemonSet", "vpcnet-system", "vpcnet-agent"): base_agent_without_the_issuer(),
    }
    problems = [
        f"{'/'.join(k)} {d}"
        for k, doc in chart.items()
        for d in differences(expected[k], without_helm_labels(doc))
    ]
    assert not problems, "\n".join(problems)
    # Nothing left refers to the issuer, its Secret key, TLS Secret or CA.
    text = yaml.safe_dump_all(docs)
    for name in ("vpcnet-credentials", "credentials-url", "credentials-ca", "credentials-token"):
        assert name not in text, name


def test_disabled_issuer_leaves_an_agent_that_logs_in_with_the_url(helm: Helm) -> None:
    settings = agent_settings(
        helm.template(DISABLED), "redis://agent:secret@vpcnet-redis.vpcnet-system.svc:6379/0"
    )
    assert settings.credentials_url == ""
    assert "serviceAccountToken" not in yaml.safe_dump(
        pod_spec(find(helm.template(DISABLED), "DaemonSet", "vpcnet-agent"))
    )


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"env": {"VPCNET_AGENT_CREDENTIALS_URL": "https://x"}}, "set credentials.enabled instead"),
        ({"env": {"VPCNET_AGENT_CREDENTIALS_CA_FILE": "/ca"}}, "set credentials.enabled instead"),
        ({"credentials": {"replicas": 0}}, "replicas"),
        ({"credentials": {"tlsSecret": ""}}, "tlsSecret"),
        ({"credentials": {"caConfigMap": ""}}, "caConfigMap"),
        ({"credentials": {"enabled": "no"}}, "enabled"),
        ({"credentials": {"tlsSecert": "x"}}, "tlsSecert"),
    ],
    ids=["env-url", "env-ca", "no-replica", "tls-secret", "ca-configmap", "not-a-bool", "misspelt"],
)
def test_bad_credentials_values_fail(helm: Helm, values: dict[str, Any], message: str) -> None:
    with pytest.raises(HelmFailed, match=message):
        helm.template(values)
