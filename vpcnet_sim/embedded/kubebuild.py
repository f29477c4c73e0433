"""Build the real control plane when the cache lacks it: ``scripts/build-controlplane.sh``
(the one owner of how etcd and kube-apiserver are built), its progress lines handed on
as they come (a cold build compiles ~3,000 packages: minutes)."""

from __future__ import annotations

import subprocess
from collections.abc import Callable
from pathlib import Path

from vpcnet_sim.embedded.kubeapi import ControlPlaneError, controlplane_dir, missing_binaries

SCRIPT = Path(__file__).resolve().parents[2] / "scripts" / "build-controlplane.sh"


def ensure_controlplane(progress: Callable[[str], None]) -> Path:
    """The directory of the built binaries; builds them first if any is missing.

    The script itself is cheap when the cache is current (it checks a stamp), but it
    needs the repo's Go module files: an installed vpcnet without them can still use a
    cache built elsewhere."""
    if not missing_binaries():
        return controlplane_dir()
    if not SCRIPT.is_file():
        raise ControlPlaneError(
            f"etcd/kube-apiserver are not built in {controlplane_dir()} and {SCRIPT} is not "
            "here to build them (run it from a vpcnet checkout)"
        )
    progress(f"building the control plane into {controlplane_dir()} (cold: minutes)")
    with subprocess.Popen(
        ["bash", str(SCRIPT)], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        assert proc.stderr is not None and proc.stdout is not None
        tail: list[str] = []
        for line in proc.stderr:  # the script reports on stderr, its result on stdout
            line = line.rstrip()
            tail = [*tail[-19:], line]
            progress(line)
        out = proc.stdout.read().strip().splitlines()
        code = proc.wait()
    if code != 0:
        raise ControlPlaneError(f"{SCRIPT} failed ({code}):\n" + "\n".join(tail))
    missing = missing_binaries()
    if missing:
        raise ControlPlaneError(f"{SCRIPT} finished but {', '.join(missing)} are missing")
    return Path(out[-1]) if out else controlplane_dir()
