"""The simulated runtime gives the plugin at least the plugin's own timeout.

An ADD may wait its whole budget (the plugin's timeout, less a margin for the reply) for
an IP that is coming (issue 13). kubelet's runtime request timeout (2 min) is above the
plugin's 60 s default; a runtime that killed the plugin sooner would turn a slow but
successful ADD into a killed exec (``subprocess.TimeoutExpired``), not a CNI answer.
"""

from __future__ import annotations

from pathlib import Path

from vpcnet.cni.plugin import DEFAULT_TIMEOUT_SECONDS
from vpcnet_sim.runtime import PodRuntime


def test_the_runtime_outwaits_the_plugins_default_timeout(tmp_path: Path) -> None:
    runtime = PodRuntime(tmp_path / "net.conflist", [tmp_path], "p-")
    assert runtime.timeout > DEFAULT_TIMEOUT_SECONDS
