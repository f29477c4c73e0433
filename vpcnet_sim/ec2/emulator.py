"""``Ec2Emulator``: the embeddable EC2 + instance-metadata emulator.

    emu = Ec2Emulator(Ec2SimConfig.fast(), port=0).start()
    world = emu.bootstrap_vpc()
    iid = emu.run_instance(instance_type="m5.large", subnet_id=world.subnet_ids[0])
    ec2 = emu.client()            # boto3 over HTTP, as vpcnet's workers use it
    ...
    emu.stop()

The Python API (bootstrap_vpc, run_instance, terminate_instance, views, counters,
faults, config) stands for the cloud console / the instance launcher: it is never
throttled, delayed or counted. Everything vpcnet itself does goes through HTTP.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any

from vpcnet.errors import NotFoundError, UnknownInstanceTypeError
from vpcnet_sim.ec2.calllog import CallLog, LoggedCall
from vpcnet_sim.ec2.config import Ec2SimConfig
from vpcnet_sim.ec2.counters import Counters
from vpcnet_sim.ec2.faults import FaultInjector, FaultRule
from vpcnet_sim.ec2.imds import TokenStore
from vpcnet_sim.ec2.ipv6space import associate_vpc_ipv6, subnet_ipv6_block
from vpcnet_sim.ec2.limits import is_known
from vpcnet_sim.ec2.models import SimEc2Backend, SimInstance
from vpcnet_sim.ec2.server import Ec2App, HttpServer
from vpcnet_sim.ec2.throttle import Throttler
from vpcnet_sim.ec2.views import instance_view, subnet_view

DEFAULT_AMI = "ami-12c6146b"  # one of moto's built-in images


@dataclass(frozen=True, slots=True)
class World:
    """What bootstrap_vpc made. Also readable as a mapping (``world["vpc_id"]``)."""

    vpc_id: str
    vpc_cidr: str
    subnet_ids: tuple[str, ...]
    subnet_cidrs: tuple[str, ...]
    azs: tuple[str, ...]
    security_group_id: str
    vpc_ipv6_cidr: str = ""  # the VPC's /56
    subnet_ipv6_cidrs: tuple[str, ...] = ()  # per subnet, its /64 ("" for IPv4-only)

    @property
    def subnet_id(self) -> str:
        return self.subnet_ids[0]

    def __getitem__(self, key: str) -> Any:
        return getattr(self, key)

    def to_dict(self) -> dict[str, Any]:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


class Ec2Emulator:
    def __init__(
        self,
        config: Ec2SimConfig | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``clock`` drives attachment states (tests pass a fake one to step time)."""
        self.config = config or Ec2SimConfig()
        self.host = host
        self._requested_port = port
        self.rng = random.Random(self.config.seed)
        # RLock: admin calls take it and may call helpers that take it again.
        self.lock = threading.RLock()
        self._config_lock = threading.Lock()
        self.backend = SimEc2Backend(
            self.config.region,
            self.config.account_id,
            clock=clock,
            rng=random.Random(self.config.seed),
        )
        self.backend.attach_delay = self.config.attach_delay
        self.backend.detach_delay = self.config.detach_delay
        self.throttler = Throttler(self.config.bucket_overrides, time_scale=self.config.time_scale)
        self.faults = FaultInjector(self.config.seed)
        self.call_counters = Counters()
        self.call_log = CallLog()
        self.imds_tokens = TokenStore()
        self._http: HttpServer | None = None
        self._worlds: list[World] = []

    # -- lifecycle -------------------------------------------------------------------

    def start(self) -> Ec2Emulator:
        if self._http is None:
            self._http = HttpServer(Ec2App(self), self.host, self._requested_port)
            self._http.start()
        return self

    def serve_forever(self) -> None:
        """Serve in the calling thread (the CLI); stop() from another thread ends it."""
        if self._http is None:
            self._http = HttpServer(Ec2App(self), self.host, self._requested_port)
        self._http.serve_forever()

    def stop(self) -> None:
        if self._http is not None:
            self._http.stop()
            self._http = None

    def __enter__(self) -> Ec2Emulator:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._http is None:
            raise RuntimeError("emulator not started")
        return self._http.port

    @property
    def endpoint_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def imds_url(self, instance_id: str) -> str:
        """The base URL an agent uses in place of http://169.254.169.254."""
        return f"{self.endpoint_url}/_imds/{instance_id}"

    def client(self, max_attempts: int = 1) -> Any:
        """A boto3 EC2 client for tests (dummy credentials; ``max_attempts`` in total, so
        no retries by default)."""
        import boto3
        from botocore.config import Config

        return boto3.client(
            "ec2",
            endpoint_url=self.endpoint_url,
            region_name=self.config.region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(
                retries={"total_max_attempts": max_attempts, "mode": "standard"},
                max_pool_connections=50,
            ),
        )

    # -- world building (the "console") ----------------------------------------------

    def bootstrap_vpc(
        self,
        cidr: str = "10.0.0.0/16",
        subnets: Iterable[str] = ("10.0.0.0/19", "10.0.32.0/19", "10.0.64.0/19"),
        azs: Iterable[str] = ("us-east-1a", "us-east-1b", "us-east-1c"),
        ipv4_only_subnets: Iterable[str] | None = None,
    ) -> World:
        """A VPC (IPv4 ``cidr`` and an IPv6 /56), its subnets (each with a /64 of the
        /56 unless ``ipv4_only_subnets``, default the config's, names its IPv4 CIDR)
        and a security group."""
        subnet_cidrs = tuple(subnets)
        zones = tuple(azs)
        if not subnet_cidrs or not zones:
            raise ValueError("bootstrap_vpc needs at least one subnet and one AZ")
        v4_only = set(self.config.ipv4_only_subnets if ipv4_only_subnets is None
                      else ipv4_only_subnets)
        unknown = v4_only - set(subnet_cidrs)
        if unknown:
            raise ValueError(f"ipv4_only_subnets names no subnet of this VPC: {sorted(unknown)}")
        with self.lock:
            b = self.backend
            vpc = b.create_vpc(cidr)
            vpc6 = associate_vpc_ipv6(vpc, len(self._worlds) + 1)
            ids = []
            used_azs = []
            cidrs6 = []
            for i, sc in enumerate(subnet_cidrs):
                az = zones[i % len(zones)]
                sc6 = "" if sc in v4_only else str(subnet_ipv6_block(vpc6, i))
                subnet = b.create_subnet(vpc_id=vpc.id, cidr_block=sc, availability_zone=az,
                                         ipv6_cidr_block=sc6 or None)
                ids.append(subnet.id)
                used_azs.append(az)
                cidrs6.append(sc6)
            sg = b.create_security_group("vpcnet-nodes", "vpcnet simulated nodes", vpc_id=vpc.id)
            world = World(vpc.id, cidr, tuple(ids), subnet_cidrs, tuple(used_azs), sg.id,
                          str(vpc6), tuple(cidrs6))
            self._worlds.append(world)
        return world

    def run_instance(
        self,
        instance_type: str = "m5.large",
        subnet_id: str | None = None,
        name: str | None = None,
        security_group_ids: Iterable[str] | None = None,
        tags: Mapping[str, str] | None = None,
        private_ip: str | None = None,
    ) -> str:
        """Launch one running instance with its primary ENI (eth0), as RunInstances does."""
        if not is_known(instance_type):
            raise UnknownInstanceTypeError(f"unknown instance type {instance_type!r}")
        with self.lock:
            if subnet_id is None:
                if not self._worlds:
                    raise ValueError("subnet_id is required (or call bootstrap_vpc first)")
                subnet_id = self._worlds[-1].subnet_ids[0]
            subnet = self.backend.get_subnet(subnet_id)
            groups = list(security_group_ids or ())
            if not groups:
                groups = [w.security_group_id for w in self._worlds if w.vpc_id == subnet.vpc_id][:1]
            instance_tags = dict(tags or {})
            if name:
                instance_tags["Name"] = name
            reservation = self.backend.run_instances(
                DEFAULT_AMI,
                1,
                None,
                [],
                instance_type=instance_type,
                is_instance_type_default=False,
                subnet_id=subnet_id,
                security_group_ids=groups,
                private_ip=private_ip,
                tags={"instance": instance_tags} if instance_tags else {},
                region_name=self.config.region,
            )
            instance: SimInstance = reservation.instances[0]
            return str(instance.id)

    def terminate_instance(self, instance_id: str) -> None:
        """Terminate: DeleteOnTermination ENIs are deleted, the others detached."""
        with self.lock:
            self.backend.settle()
            self.backend.terminate_instances([instance_id])

    # -- views -----------------------------------------------------------------------

    def instance_view(self, instance_id: str) -> dict[str, Any]:
        """The instance with each of its ENIs (id, MAC, device index, status, subnet
        CIDR, primary/secondary IPs, prefixes...), as the /_sim/instances dump shows it."""
        with self.lock:
            self.backend.settle()
            instance = self.backend.instances_by_id.get(instance_id)
            if instance is None:
                raise NotFoundError(f"no instance {instance_id}")
            return instance_view(self.backend, instance)

    def subnets_view(self) -> list[dict[str, Any]]:
        """Every subnet with its IPv4 CIDR and IPv6 /64 (None for an IPv4-only one)."""
        with self.lock:
            subnets = [s for by_az in self.backend.subnets.values() for s in by_az.values()]
            return sorted((subnet_view(self.backend, s) for s in subnets),
                          key=lambda v: (v["vpc_id"], v["cidr"]))

    def instances_view(self) -> list[dict[str, Any]]:
        with self.lock:
            self.backend.settle()
            return [instance_view(self.backend, i) for i in self.backend.instances_by_id.values()]

    # -- counters, faults, config ----------------------------------------------------

    def counters(self) -> dict[str, Any]:
        return self.call_counters.snapshot()

    def reset_counters(self) -> None:
        self.call_counters.reset()
        self.call_log.reset()

    def calls(self, action: str | None = None) -> list[LoggedCall]:
        """The EC2 requests received since the last reset (of ``action``), in arrival
        order, each with when it arrived and when it was answered."""
        return self.call_log.calls(action)

    def set_faults(
        self, rate_5xx: float = 0.0, rules: Iterable[FaultRule | Mapping[str, Any]] = ()
    ) -> None:
        """Replace the fault set (``set_faults()`` clears it)."""
        parsed = [r if isinstance(r, FaultRule) else FaultRule.from_dict(r) for r in rules]
        self.faults.configure(rate_5xx, parsed)

    def set_config(
        self, config: Ec2SimConfig | None = None, *, preset: str | None = None, **changes: Any
    ) -> Ec2SimConfig:
        """Swap the config, or switch latency preset (``"aws"``/``"fast"``) and/or change
        fields (``throttle=False``, ``attach_delay=0.5``, ``bucket_overrides={...}``,
        ``latency={"CreateNetworkInterface": Latency(0.3)}``)."""
        if isinstance(changes.get("latency"), str):
            preset = changes.pop("latency")  # ``latency="aws"`` names a preset too
        with self._config_lock:
            old = self.config
            new = config or old
            if preset is not None:
                keep = {k: getattr(new, k) for k in ("region", "account_id", "throttle",
                                                     "bucket_overrides", "seed",
                                                     "ipv4_only_subnets")}
                new = Ec2SimConfig.preset_named(preset, **keep).time_scaled(new.time_scale)
            new = new.with_(**changes) if changes else new
            if (new.region, new.account_id) != (old.region, old.account_id):
                raise ValueError("region and account cannot change on a running emulator")
            with self.lock:
                self.backend.attach_delay = new.attach_delay
                self.backend.detach_delay = new.detach_delay
            if (new.bucket_overrides, new.time_scale) != (old.bucket_overrides, old.time_scale):
                self.throttler = Throttler(new.bucket_overrides, time_scale=new.time_scale)
            elif new.throttle and not old.throttle:
                self.throttler.reset()  # re-enabled throttling starts with full buckets
            self.config = new
            return new
