"""EC2 emulator (moto's backend + AWS's ENI rules, latency, throttling, faults) and the
instance metadata emulator, served over HTTP for boto3 and node agents.

See ``emulator.Ec2Emulator`` for the Python API, ``admin`` for the ``/_sim/`` API and
``imds`` for ``/_imds/<instance-id>/``.
"""

from vpcnet_sim.ec2.config import Ec2SimConfig, Latency
from vpcnet_sim.ec2.emulator import Ec2Emulator, World
from vpcnet_sim.ec2.faults import FaultRule

__all__ = ["Ec2Emulator", "Ec2SimConfig", "FaultRule", "Latency", "World"]
