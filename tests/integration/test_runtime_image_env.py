"""The runtime image's environment runs the product: built the way the Dockerfile builds
it (its build context, its ``scripts/install-image.sh runtime`` step) into a fresh venv,
then every role the manifests give that image, each as a real process run from the venv
with nothing of this checkout on its path. The emulators, Redis and the namespaces come
from the test's own (dev) environment, as docker-compose's and a cluster's would.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis
from celery import Celery

from tests.fixtures import watcher as fx
from tests.fixtures.celery import CeleryProcs
from tests.fixtures.netns import SimEnv
from tests.fixtures.watcher import tasks_named, wait_for, watcher_env
from tests.integration.control_support import context_for, join, vpcnet_enis
from tests.unit.dockerfile_stages import (
    IMAGE_VENV,
    install_command,
    materialize_context,
    venv_source,
)
from vpcnet.cni.protocol import SUPPORTED_VERSIONS
from vpcnet.domain import NodePhase
from vpcnet.kube.client import KubeClient
from vpcnet.settings import Settings
from vpcnet.tasknames import PROVISION_NODE
from vpcnet_sim.ec2 import Ec2Emulator, World
from vpcnet_sim.kube import KubeEmulator

# The install from the pip cache takes a minute or two, once for the module.
pytestmark = pytest.mark.timeout(900)

kube_sim, broker, watcher_settings, kube = fx.kube_sim, fx.broker, fx.watcher_settings, fx.kube

# What the harness needs and the product must not carry (cfn-lint imports as cfnlint).
HARNESS_MODULES = ("vpcnet_sim", "moto", "werkzeug", "flask", "matplotlib", "numpy", "cfnlint",
                   "docker")
PROBE = """
import importlib.util, json, sys
import vpcnet
from vpcnet.install.launcher import PREBUILT
print(json.dumps({
    "found": [m for m in sys.argv[1:] if importlib.util.find_spec(m) is not None],
    "vpcnet": vpcnet.__file__,
    "prebuilt_launcher": str(PREBUILT) if PREBUILT.is_file() else None,
}))
"""


def clean_env() -> dict[str, str]:
    """This process's environment without anything that points back into the checkout."""
    return {k: v for k, v in os.environ.items()
            if k not in ("PYTHONPATH", "VIRTUAL_ENV") and not k.startswith("VPCNET_")}


@pytest.fixture(scope="module")
def runtime_venv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    base = tmp_path_factory.mktemp("runtime-image")
    build = venv_source("runtime")
    src = base / "src"
    materialize_context(build, src)
    venv = base / "venv"
    argv = [str(venv) if a == IMAGE_VENV else a for a in install_command(build)]
    proc = subprocess.run(argv, cwd=src, env=clean_env(), capture_output=True, text=True,
                          timeout=840, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return venv


def test_the_runtime_env_holds_the_product_and_no_harness(runtime_venv: Path,
                                                          tmp_path: Path) -> None:
    proc = subprocess.run([str(runtime_venv / "bin" / "python"), "-c", PROBE, *HARNESS_MODULES],
                          cwd=tmp_path, env=clean_env(), capture_output=True, text=True,
                          timeout=60, check=True)
    probe = json.loads(proc.stdout)
    assert probe["found"] == []
    assert Path(probe["vpcnet"]).is_relative_to(runtime_venv)
    assert probe["prebuilt_launcher"] == str(runtime_venv / "libexec/vpcnet/vpcnet-cni-launcher")
    check = subprocess.run([str(runtime_venv / "bin" / "python"), "-m", "pip", "check"],
                           env=clean_env(), capture_output=True, text=True, timeout=120,
                           check=False)
    assert check.returncode == 0, check.stdout


def test_install_cni_from_the_runtime_env_uses_the_prebuilt_launcher(
    runtime_venv: Path, tmp_path: Path
) -> None:
    bin_dir, runtime_dir = tmp_path / "bin", tmp_path / "runtime"
    proc = subprocess.run(
        [str(runtime_venv / "bin" / "vpcnet"), "install-cni", f"--bin-dir={bin_dir}",
         f"--runtime-dir={runtime_dir}", "--verify", "--json"],
        cwd=tmp_path, env=clean_env(), capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    report = json.loads(proc.stdout)
    assert report["plugin"] == str(bin_dir / "vpcnet-cni")
    assert SUPPORTED_VERSIONS[-1] in report["verify"]["supportedVersions"]
    manifest = json.loads((Path(report["version_dir"]) / "manifest.json").read_text())
    assert manifest["digest"] == report["digest"]
    # The image has no compiler: the installer took the launcher the script built, and
    # compiled none into its cache.
    assert not (runtime_dir / ".build").exists()
    ldd = subprocess.run(["ldd", report["plugin"]], capture_output=True, text=True, check=False)
    assert "not a dynamic executable" in ldd.stdout + ldd.stderr


def test_a_worker_from_the_runtime_env_provisions_a_node(
    runtime_venv: Path, control_settings: Settings, celery_procs: CeleryProcs,
    task_client: Celery, ec2_emulator: Ec2Emulator, ec2_world: World,
    kube_emulator: KubeEmulator,
) -> None:
    az = ec2_world.azs[0]
    iid = join(ec2_emulator, kube_emulator, ec2_world.subnet_ids[0], az, "node-r", "m5.large")
    celery_procs.installed = runtime_venv
    celery_procs.start_worker("runtime", concurrency=2)
    result = task_client.send_task("vpcnet.provision_node", args=["node-r", iid, az])
    assert "error" not in result.get(timeout=120)
    state = context_for(control_settings).state.read_node("node-r")
    assert state is not None and state.phase is NodePhase.PROVISIONED
    assert len(vpcnet_enis(ec2_emulator, iid)) > 1  # the primary and the ones it attached


@pytest.fixture
def runtime_watcher(runtime_venv: Path, watcher_settings: Settings,
                    tmp_path: Path) -> Iterator[subprocess.Popen[bytes]]:
    with open(tmp_path / "watcher.log", "wb") as log:
        proc = subprocess.Popen(
            [str(runtime_venv / "bin" / "vpcnet"), "watcher"], cwd=tmp_path,
            env={**clean_env(), **watcher_env(watcher_settings)}, stdout=log, stderr=log,
            start_new_session=True,
        )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(30)


def test_the_watcher_from_the_runtime_env_leads_and_enqueues_a_new_node(
    runtime_watcher: subprocess.Popen[bytes], kube_sim: KubeEmulator, kube: KubeClient,
    broker: redis.Redis[bytes], watcher_settings: Settings,
) -> None:
    def holder() -> str | None:
        lease = kube.get_lease(watcher_settings.lease_namespace, watcher_settings.lease_name)
        assert runtime_watcher.poll() is None, "the watcher exited"
        return lease.spec.holder_identity if lease else None

    # The holder identity is host_pid_random.
    identity = wait_for(holder, timeout=60, what="the watcher to hold the Lease")
    assert int(identity.rsplit("_", 2)[1]) == runtime_watcher.pid

    kube_sim.add_node("node-w", provider_id="aws:///us-east-1a/i-0123")
    (task,) = wait_for(
        lambda: [t for t in tasks_named(broker, PROVISION_NODE) if t.args[0] == "node-w"],
        timeout=60, what="node-w enqueued",
    )
    match = re.match(r"gen(\d+)@", task.origin)
    assert match and int(match.group(1)) == runtime_watcher.pid


@pytest.mark.netns
def test_the_agent_from_the_runtime_env_gets_ready_and_serves_a_pod(
    runtime_venv: Path, sim_env: SimEnv,
) -> None:
    node = sim_env.add_node("node-a")
    node.attach_eni(subnet_index=1, device_index=1, ip_count=3)
    agent = sim_env.agent(node)
    agent.env.pop("PYTHONPATH", None)
    agent.vpcnet_bin = runtime_venv / "bin" / "vpcnet"
    agent.start()
    agent.wait_ready(node.publish_state())
    # The agent installed the plugin (from the image's launcher) and then the conflist.
    assert (agent.bin_dir / "vpcnet-cni").exists()
    assert json.loads(agent.conflist_path.read_text())["plugins"][0]["type"] == "vpcnet-cni"
    assert not (Path(agent.env["VPCNET_AGENT_CNI_RUNTIME_DIR"]) / ".build").exists()
    runtime = agent.runtime()
    pod = sim_env.new_pod(runtime, "r1")
    runtime.add(pod)
    assert pod.ip in {str(ip) for r in node.records() for ip in r.pod_ips()}
    runtime.delete(pod)
