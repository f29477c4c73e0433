"""CNI_NETNS that is not a pod's network namespace (issue 11 finding 7): a spec error
with the right code, nothing allocated or created, and no agent thread left blocked
(a FIFO used to hold a request thread and the shared gate forever)."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cni import cni_env, exec_plugin, links, plugin_script, pod_rules
from vpcnet_sim.bench.cni_node import SimNode

# The agent answers in far less; a wedged one makes the plugin give up after this.
TIMEOUT = 10


def _veths(sim: SimNode) -> set[str]:
    return {name for name in links(sim.node_ns) if name.startswith("vpc")}


def _bad_netns(kind: str, sim: SimNode, tmp: Path) -> tuple[str, str]:
    """(CNI_NETNS, CNI_IFNAME) for one kind of wrong namespace path."""
    if kind == "fifo":
        os.mkfifo(tmp / "fifo")
        return str(tmp / "fifo"), "eth0"
    if kind == "regular file":
        (tmp / "file").write_text("")
        return str(tmp / "file"), "eth0"
    if kind == "directory":
        return str(tmp), "eth0"
    if kind == "uts namespace":
        return "/proc/self/ns/uts", "eth0"
    if kind == "the node's netns":
        return f"/run/netns/{sim.node_ns}", "eth0"
    if kind == "the agent's netns":
        assert sim.proc is not None
        # ifname lo: should the check ever be missing, the ADD ends at EEXIST in the
        # machine's namespace instead of creating an interface there.
        return f"/proc/{sim.proc.pid}/ns/net", "lo"
    assert kind == "missing"
    return "/run/netns/vpct1-does-not-exist", "eth0"


EXPECTED = {
    "fifo": 4,
    "regular file": 4,
    "directory": 4,
    "uts namespace": 4,
    "the node's netns": 4,
    "the agent's netns": 4,
    "missing": 3,
}


@pytest.mark.parametrize("kind", list(EXPECTED))
def test_add_into_a_path_that_is_not_a_pod_netns(cni_node: SimNode, tmp_path: Path, kind: str) -> None:
    plugin = plugin_script()
    conf = cni_node.conf(timeoutSeconds=TIMEOUT)
    netns, ifname = _bad_netns(kind, cni_node, tmp_path)
    rules_before = pod_rules(cni_node.node_ns)
    rc, err, _ = exec_plugin(plugin, cni_env("ADD", "bad1", netns, ifname=ifname), conf)
    assert rc == 1 and err["code"] == EXPECTED[kind], err
    if EXPECTED[kind] == 4:
        assert "CNI_NETNS" in err["msg"]  # the spec: name the invalid variable
    assert err["cniVersion"] == "1.1.0" and isinstance(err["details"], str)
    # Nothing half-done.
    assert cni_node.checkpoint()["allocations"] == []
    assert _veths(cni_node) == set() and pod_rules(cni_node.node_ns) == rules_before
    # No thread holds the shared gate: GC (exclusive) runs, then a real ADD works.
    gc = cni_node.conf(timeoutSeconds=TIMEOUT, **{"cni.dev/valid-attachments": []})
    rc, out, _ = exec_plugin(plugin, cni_env("GC"), gc)
    assert (rc, out) == (0, None)
    _, good = cni_node.new_pod()
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "good1", good), conf)
    assert rc == 0, res


def test_check_against_a_fifo_is_refused_without_blocking(cni_node: SimNode, tmp_path: Path) -> None:
    plugin = plugin_script()
    conf = cni_node.conf(timeoutSeconds=TIMEOUT)
    _, netns = cni_node.new_pod()
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "chk1", netns), conf)
    assert rc == 0
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    prev: dict[str, Any] = copy.deepcopy(res)
    prev["interfaces"][1]["sandbox"] = str(fifo)
    rc, err, _ = exec_plugin(plugin, cni_env("CHECK", "chk1", str(fifo)), cni_node.conf(timeoutSeconds=TIMEOUT, prevResult=prev))
    assert rc == 1 and err["code"] == 4 and "CNI_NETNS" in err["msg"], err
    rc, out, _ = exec_plugin(plugin, cni_env("CHECK", "chk1", netns), cni_node.conf(timeoutSeconds=TIMEOUT, prevResult=res))
    assert (rc, out) == (0, None)
    gc = cni_node.conf(timeoutSeconds=TIMEOUT, **{"cni.dev/valid-attachments": [{"containerID": "chk1", "ifname": "eth0"}]})
    assert exec_plugin(plugin, cni_env("GC"), gc)[0] == 0
    # DEL never opens the namespace: it cleans up from the node's side and succeeds.
    rc, out, _ = exec_plugin(plugin, cni_env("DEL", "chk1", str(fifo)), conf)
    assert (rc, out) == (0, None)
    assert cni_node.checkpoint()["allocations"] == []
