"""The installed launcher with the agent's socket embedded, against a real agent: ADD,
CHECK, DEL and VERSION run in the agent (no Python plugin exec'd), and every case the
agent cannot or should not serve is the exec'd plugin's (a DEL spooled while the agent
is gone, 11 on a dead socket, a conflist naming another agent)."""

from __future__ import annotations

import re
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.fixtures.cni import cni_env, exec_plugin
from vpcnet.cni import protocol as p
from vpcnet_sim.bench.cni_node import SimNode


@pytest.fixture(scope="module")
def runtime_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("cni-runtime")  # one bundled runtime for the module


def install(runtime_dir: Path, bin_dir: Path, agent_socket: Path) -> str:
    from vpcnet.install import install_plugin

    return str(install_plugin(bin_dir, runtime_dir, agent_socket=str(agent_socket)))


def log_pids(node: SimNode, command: str) -> list[int]:
    """The pid of each logFile line for ``command``: the agent's when it ran in-process."""
    return [int(m) for m in re.findall(rf"pid=(\d+) {command} ", node.log_file.read_text())]


def test_add_check_del_and_version_run_in_the_agent(cni_node: SimNode, runtime_dir: Path, tmp_path: Path) -> None:
    plugin = install(runtime_dir, tmp_path / "bin", cni_node.socket_path)
    assert cni_node.proc is not None
    agent_pid = cni_node.proc.pid
    _, netns = cni_node.new_pod()
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "fast1", netns), cni_node.conf())
    assert rc == 0, res
    assert res["ips"][0]["address"].startswith("10.77.") and res["interfaces"][1]["sandbox"] == netns
    rc, out, _ = exec_plugin(plugin, cni_env("CHECK", "fast1", netns), cni_node.conf(prevResult=res))
    assert (rc, out) == (0, None)
    # The plugin's own errors come back as it words them (code 4: a bad CNI_IFNAME).
    rc, out, _ = exec_plugin(plugin, cni_env("ADD", "fast2", netns, ifname="a/b"), cni_node.conf())
    assert rc == 1 and out["code"] == p.ERR_INVALID_ENV
    rc, out, _ = exec_plugin(plugin, cni_env("DEL", "fast1", netns), cni_node.conf(prevResult=res))
    assert (rc, out) == (0, None)
    rc, out, _ = exec_plugin(plugin, {"CNI_COMMAND": "VERSION"}, {"cniVersion": "1.1.0"})
    assert rc == 0 and out["supportedVersions"] == ["0.4.0", "1.0.0", "1.1.0"]
    assert cni_node.checkpoint()["allocations"] == []
    # Every line the plugin logged was written by the agent's process: nothing was exec'd.
    # (the bad ADD logs nothing: it failed before the config, which names the log, was read)
    assert log_pids(cni_node, "ADD") == log_pids(cni_node, "CHECK") == log_pids(cni_node, "DEL") == [agent_pid]
    cni_node.stop_agent()
    assert cni_node.agent_stats() == {"requests": 3, "inprocess": 5, "fallbacks": 0}


def test_with_the_agent_gone_del_is_spooled_and_a_dead_socket_fails_add_with_11(
    cni_node: SimNode, runtime_dir: Path, tmp_path: Path
) -> None:
    plugin = install(runtime_dir, tmp_path / "bin", cni_node.socket_path)
    _, netns = cni_node.new_pod()
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "gone1", netns), cni_node.conf())
    assert rc == 0, res
    cni_node.stop_agent()  # removes its socket
    assert not cni_node.socket_path.exists()
    rc, out, _ = exec_plugin(plugin, cni_env("DEL", "gone1", netns), cni_node.conf())
    assert (rc, out) == (0, None)
    assert [f.name for f in cni_node.pending_dir.iterdir()] == [p.pending_name("gone1", "eth0")]
    assert "agent unreachable, DEL spooled" in cni_node.log_file.read_text()
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # a socket file nobody serves
    stale.bind(str(cni_node.socket_path))
    stale.close()
    _, netns2 = cni_node.new_pod()
    rc, out, _ = exec_plugin(plugin, cni_env("ADD", "gone2", netns2), cni_node.conf())
    assert rc == 1 and out["code"] == p.ERR_TRY_AGAIN and out["msg"] == "vpcnet agent unreachable"
    # The agent back: the spooled DEL is replayed (as without the fast path).
    cni_node.socket_path.unlink()
    cni_node.start_agent()
    assert cni_node.checkpoint()["allocations"] == []
    assert list(cni_node.pending_dir.iterdir()) == []


def test_a_conflist_naming_another_agent_is_left_to_the_exec_d_plugin(
    make_cni_node: Callable[..., SimNode], runtime_dir: Path, tmp_path: Path
) -> None:
    ours, other = make_cni_node(5), make_cni_node(5)
    plugin = install(runtime_dir, tmp_path / "bin", ours.socket_path)  # the launcher asks `ours`
    _, netns = other.new_pod()
    conf = other.conf()  # ... but the config names `other`'s socket
    rc, res, _ = exec_plugin(plugin, cni_env("ADD", "foreign1", netns), conf)
    assert rc == 0, res
    rc, out, _ = exec_plugin(plugin, cni_env("DEL", "foreign1", netns), conf)
    assert (rc, out) == (0, None)
    assert other.proc is not None and other.proc.pid not in log_pids(other, "ADD")  # exec'd
    assert ours.checkpoint()["allocations"] == []
    ours.stop_agent()
    other.stop_agent()
    assert ours.agent_stats() == {"requests": 0, "inprocess": 0, "fallbacks": 2}
    assert other.agent_stats() == {"requests": 2, "inprocess": 0, "fallbacks": 0}
