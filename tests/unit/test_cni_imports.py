"""The plugin imports only the standard library, and only the cheap part of it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]

# Run an ADD against a socket that is not there (exercises the socket path), then list
# the modules loaded, with -I -S as the installed runtime runs it.
PROBE = r"""
import io, sys
sys.path.insert(0, {repo!r})
from vpcnet.cni.plugin import main
env = {{"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"}}
conf = b'{{"cniVersion": "1.1.0", "name": "vpcnet", "agentSocket": "/nonexistent/agent.sock"}}'
out = io.BytesIO()
rc = main(env, io.BytesIO(conf), out)
modules = sorted(sys.modules)
import json  # only now, for the report
sys.stdout.write(json.dumps([rc, out.getvalue().decode(), modules]))
"""


def test_plugin_imports_only_cheap_standard_library() -> None:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", PROBE.format(repo=str(REPO))],
        capture_output=True, text=True, timeout=60, check=True,
    )
    rc, output, modules = json.loads(proc.stdout)
    assert rc == 1 and json.loads(output)["code"] == 11  # it did reach for the socket
    ours = {m for m in modules if m == "vpcnet" or m.startswith("vpcnet.")}
    assert ours == {"vpcnet", "vpcnet.cni", "vpcnet.cni.plugin", "vpcnet.cni.protocol"}
    stdlib = set(sys.stdlib_module_names) | set(sys.builtin_module_names)
    foreign = {m for m in set(modules) - ours if m.split(".")[0] not in stdlib and m != "__main__"}
    assert foreign == set()
    # The expensive standard modules stay out of the start-up path.
    assert set(modules) & {"json", "socket", "re", "typing", "logging", "dataclasses", "enum", "os"} == set()
