"""The EC2 emulator as a process of its own (``vpcnet sim ec2``), driven over its admin API.

Big join storms need it: in-process, the emulator shares one GIL with the benchmark and the
Kubernetes emulator, and on a small machine it, not vpcnet, sets the pace. This class
offers the part of ``Ec2Emulator``'s API the embedded stack and the benchmarks use.
"""

from __future__ import annotations

import json
import sys
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vpcnet_sim.embedded.procs import ManagedProcess, free_port, wait_for


@dataclass(frozen=True)
class RemoteWorld:
    vpc_id: str
    subnet_ids: tuple[str, ...]
    security_group_id: str


class Ec2Process:
    def __init__(self, latency: str, throttle: bool, log_dir: Path, time_scale: float = 1.0) -> None:
        from vpcnet_sim.ec2 import Ec2SimConfig

        self.port = free_port()
        self.config = Ec2SimConfig.preset_named(latency, throttle=throttle).time_scaled(time_scale)
        argv = [
            str(Path(sys.executable).with_name("vpcnet")), "sim", "ec2",
            "--port", str(self.port), "--latency", latency,
            "--throttle" if throttle else "--no-throttle", "--time-scale", str(time_scale),
        ]
        self.proc = ManagedProcess("ec2-emulator", argv, log_dir)
        # No proxy for loopback, whatever the environment says.
        self._opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))

    @property
    def endpoint_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _admin(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(
            f"{self.endpoint_url}/_sim/{path}", data=data, method=method,
            headers={"Content-Type": "application/json"},
        )
        with self._opener.open(req, timeout=60) as resp:
            return json.loads(resp.read())

    def start(self) -> Ec2Process:
        self.proc.start()

        def healthy() -> bool:
            if not self.proc.alive():
                raise RuntimeError(f"the EC2 emulator exited:\n{self.proc.tail()}")
            try:
                return bool(self._admin("GET", "health").get("ok"))
            except OSError:
                return False

        wait_for(healthy, 60, "the EC2 emulator process")
        return self

    def stop(self) -> None:
        self.proc.stop()

    def client(self) -> Any:
        import boto3
        from botocore.config import Config

        return boto3.client(
            "ec2", region_name=self.config.region, endpoint_url=self.endpoint_url,
            aws_access_key_id="testing", aws_secret_access_key="testing",
            config=Config(retries={"total_max_attempts": 1}),
        )

    def bootstrap_vpc(self, cidr: str, subnets: tuple[str, ...], azs: tuple[str, ...]) -> RemoteWorld:
        w = self._admin("POST", "bootstrap", {"cidr": cidr, "subnets": list(subnets), "azs": list(azs)})
        return RemoteWorld(w["vpc_id"], tuple(w["subnet_ids"]), w["security_group_id"])

    def run_instance(
        self, instance_type: str, subnet_id: str, name: str, security_group_ids: list[str]
    ) -> str:
        view = self._admin("POST", "instances", {
            "instance_type": instance_type, "subnet_id": subnet_id, "name": name,
            "security_group_ids": security_group_ids,
        })
        return str(view["instance_id"])

    def instance_view(self, instance_id: str) -> dict[str, Any]:
        view: dict[str, Any] = self._admin("GET", f"instances/{instance_id}")
        return view

    def instances_view(self) -> list[dict[str, Any]]:
        views: list[dict[str, Any]] = self._admin("GET", "instances")
        return views

    def counters(self) -> dict[str, Any]:
        counters: dict[str, Any] = self._admin("GET", "counters")
        return counters

    def reset_counters(self) -> None:
        self._admin("POST", "counters/reset", {})
