"""A minimal container runtime for the embedded default: pods as network namespaces.

It does what kubelet's runtime (containerd/CRI-O through libcni) does with a conflist:
for ADD, exec every plugin of the list in order, each with the CNI environment and its
own config on stdin, passing the previous plugin's result as ``prevResult``; DEL in
reverse order; CHECK in order with the cached result. Only the standard library, so the
demo, tests and benchmarks exercise the plugin exactly as a node would.
"""

from __future__ import annotations

import ipaddress
import json
import os
import subprocess
import time
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

NETNS_DIR = Path("/var/run/netns")


class CniError(Exception):
    """A plugin answered with a CNI error (the spec's JSON object in ``error``)."""

    def __init__(self, plugin: str, command: str, error: Mapping[str, Any], rc: int) -> None:
        self.plugin = plugin
        self.command = command
        self.error = dict(error)
        self.rc = rc
        super().__init__(f"{plugin} {command} failed (exit {rc}): {self.error}")

    @property
    def code(self) -> int:
        return int(self.error.get("code", 0))


@dataclass
class Pod:
    namespace: str
    name: str
    netns_name: str
    container_id: str
    ifname: str = "eth0"
    result: dict[str, Any] = field(default_factory=dict)
    # The runtime's capability args (e.g. ``portMappings`` for hostPorts), given to each
    # plugin that declares the capability, as ``runtimeConfig`` (libcni's rule).
    capability_args: dict[str, Any] = field(default_factory=dict)

    @property
    def netns_path(self) -> str:
        return str(NETNS_DIR / self.netns_name)

    @property
    def ip(self) -> str:
        """The pod's first address (Kubernetes' podIP), of either family."""
        for ip in self.result.get("ips", []):
            return str(ip["address"]).split("/")[0]
        return ""

    @property
    def ip4(self) -> str:
        return self._address_of(4)

    @property
    def ip6(self) -> str:
        return self._address_of(6)

    @property
    def ips(self) -> list[str]:
        """Every address of the result, in its order (Kubernetes' podIPs)."""
        return [str(ip["address"]).split("/")[0] for ip in self.result.get("ips", [])]

    def _address_of(self, version: int) -> str:
        for address in self.ips:
            if ipaddress.ip_address(address).version == version:
                return address
        return ""


# How long one plugin exec may run before the runtime kills it: as kubelet's runtime
# request timeout (2 min), above the plugin's own default timeout (60 s), so an ADD that
# waits its whole budget for an IP that is coming answers instead of being killed.
DEFAULT_EXEC_TIMEOUT_SECONDS = 120.0


def _run_ip(*args: str) -> None:
    subprocess.run(["ip", *args], check=True, capture_output=True)


class PodRuntime:
    """Creates pod namespaces and runs a CNI conflist on them, as a runtime does."""

    def __init__(
        self,
        conflist_path: Path,
        cni_path: Sequence[Path],
        netns_prefix: str,
        timeout: float = DEFAULT_EXEC_TIMEOUT_SECONDS,
        cni_version: str | None = None,
        host_netns: str | None = None,
    ) -> None:
        self.conflist_path = conflist_path
        # The node's namespace (simulation): plugins run there, as a runtime on the node
        # runs them, so that a chained portmap writes the node's iptables.
        self.host_netns = host_netns
        # Runs the list as a runtime speaking this spec version would (None: the list's).
        self.cni_version = cni_version
        self.cni_path = [Path(p) for p in cni_path]
        self.netns_prefix = netns_prefix
        self.timeout = timeout
        self.last_timings: list[tuple[str, str, float]] = []

    def load_conflist(self) -> dict[str, Any]:
        conf: dict[str, Any] = json.loads(self.conflist_path.read_text())
        if self.cni_version is not None:
            conf["cniVersion"] = self.cni_version
        return conf

    def _find(self, plugin_type: str) -> Path:
        for d in self.cni_path:
            candidate = d / plugin_type
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return candidate
        raise FileNotFoundError(f"CNI plugin {plugin_type!r} not found in {self.cni_path}")

    def exec_plugin(
        self,
        conflist: Mapping[str, Any],
        plugin_conf: Mapping[str, Any],
        command: str,
        pod: Pod,
        prev_result: Mapping[str, Any] | None,
        extra_args: str = "",
    ) -> dict[str, Any]:
        conf = dict(plugin_conf)
        conf["name"] = conflist["name"]
        conf["cniVersion"] = conflist["cniVersion"]
        if prev_result is not None:
            conf["prevResult"] = prev_result
        declared = conf.get("capabilities") or {}
        wanted = {k: v for k, v in pod.capability_args.items() if declared.get(k) is True}
        if wanted:
            conf["runtimeConfig"] = {**conf.get("runtimeConfig", {}), **wanted}
        cni_args = (
            f"IgnoreUnknown=1;K8S_POD_NAMESPACE={pod.namespace};K8S_POD_NAME={pod.name};"
            f"K8S_POD_INFRA_CONTAINER_ID={pod.container_id}"
        )
        if extra_args:
            cni_args += ";" + extra_args
        env = {
            "PATH": os.environ.get("PATH", "/usr/sbin:/usr/bin:/sbin:/bin"),
            "CNI_COMMAND": command,
            "CNI_CONTAINERID": pod.container_id,
            "CNI_NETNS": pod.netns_path,
            "CNI_IFNAME": pod.ifname,
            "CNI_ARGS": cni_args,
            "CNI_PATH": os.pathsep.join(str(p) for p in self.cni_path),
        }
        binary = self._find(str(conf["type"]))
        in_node = ["ip", "netns", "exec", self.host_netns] if self.host_netns else []
        started = time.perf_counter()
        proc = subprocess.run(
            [*in_node, str(binary)],
            input=json.dumps(conf).encode(),
            env=env,
            capture_output=True,
            timeout=self.timeout,
        )
        self.last_timings.append((str(conf["type"]), command, time.perf_counter() - started))
        out = proc.stdout.decode(errors="replace").strip()
        if proc.returncode != 0:
            try:
                err = json.loads(out) if out else {}
            except json.JSONDecodeError:
                err = {"code": 999, "msg": out or proc.stderr.decode(errors="replace")}
            raise CniError(str(conf["type"]), command, err, proc.returncode)
        if command in ("ADD",) and out:
            result: dict[str, Any] = json.loads(out)
            return result
        return {}

    def new_pod(self, namespace: str, name: str) -> Pod:
        suffix = uuid.uuid4().hex[:8]
        pod = Pod(
            namespace=namespace,
            name=name,
            netns_name=f"{self.netns_prefix}{suffix}",
            container_id=uuid.uuid4().hex + uuid.uuid4().hex,
        )
        _run_ip("netns", "add", pod.netns_name)
        _run_ip("-n", pod.netns_name, "link", "set", "lo", "up")
        return pod

    def add(self, pod: Pod) -> dict[str, Any]:
        """ADD through the whole list; on failure, DEL what was added (as libcni does)."""
        conflist = self.load_conflist()
        prev: dict[str, Any] | None = None
        try:
            for plugin_conf in conflist["plugins"]:
                prev = self.exec_plugin(conflist, plugin_conf, "ADD", pod, prev)
        except Exception:
            self.delete(pod, ignore_errors=True)
            raise
        pod.result = prev or {}
        return pod.result

    def check(self, pod: Pod) -> None:
        conflist = self.load_conflist()
        for plugin_conf in conflist["plugins"]:
            self.exec_plugin(conflist, plugin_conf, "CHECK", pod, pod.result)

    def delete(self, pod: Pod, ignore_errors: bool = False) -> None:
        conflist = self.load_conflist()
        prev = pod.result or None
        first_error: Exception | None = None
        for plugin_conf in reversed(conflist["plugins"]):
            try:
                self.exec_plugin(conflist, plugin_conf, "DEL", pod, prev)
            except Exception as e:  # keep going: every plugin gets its DEL
                first_error = first_error or e
        if first_error is not None and not ignore_errors:
            raise first_error

    def remove_netns(self, pod: Pod) -> None:
        subprocess.run(["ip", "netns", "del", pod.netns_name], capture_output=True)

    def destroy(self, pod: Pod) -> None:
        """DEL then remove the namespace, tolerating anything already gone."""
        try:
            self.delete(pod, ignore_errors=True)
        finally:
            self.remove_netns(pod)
