"""The CNI conflist: contract with the plugin, atomic and only-if-changed writes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from vpcnet.agent.conflist import ensure_conflist, plan_conflist, probe_versions, remove_conflist
from vpcnet.errors import ConfigError, TemporaryError


def test_conflist_document_matches_the_plugin_contract() -> None:
    doc = plan_conflist(
        agent_socket="/run/vpcnet/agent.sock",
        log_file="/var/log/vpcnet/cni.log",
        mtu=9001,
        chained_plugins=("portmap", "bandwidth", "custom"),
    )
    assert doc["cniVersion"] == "1.1.0"  # ours when nothing chained limits it
    assert doc["cniVersions"] == ["0.4.0", "1.0.0", "1.1.0"]
    assert doc["name"] == "vpcnet"
    assert doc["plugins"][0] == {
        "type": "vpcnet-cni",
        "agentSocket": "/run/vpcnet/agent.sock",
        "logFile": "/var/log/vpcnet/cni.log",
        "mtu": 9001,
    }
    assert doc["plugins"][1] == {"type": "portmap", "capabilities": {"portMappings": True}, "snat": True}
    assert doc["plugins"][2]["capabilities"] == {"bandwidth": True}
    assert doc["plugins"][3] == {"type": "custom"}


@pytest.mark.parametrize("bad", ["", "../portmap", "a/b"])
def test_chained_plugin_names_are_validated(bad: str) -> None:
    with pytest.raises(ConfigError):
        plan_conflist(agent_socket="/s", log_file="/l", mtu=1500, chained_plugins=(bad,))


def test_relative_socket_is_refused() -> None:
    with pytest.raises(ConfigError):
        plan_conflist(agent_socket="run/agent.sock", log_file="/l", mtu=1500)


def test_write_is_atomic_idempotent_and_removable(tmp_path: Path) -> None:
    path = tmp_path / "net.d" / "10-vpcnet.conflist"
    doc = plan_conflist(agent_socket="/s.sock", log_file="/l", mtu=9001)
    assert ensure_conflist(path, doc) is True
    first = path.stat()
    assert json.loads(path.read_text()) == doc
    assert oct(first.st_mode & 0o777) == oct(0o644)
    assert ensure_conflist(path, doc) is False  # unchanged: not rewritten
    assert path.stat().st_ino == first.st_ino
    changed = plan_conflist(agent_socket="/s.sock", log_file="/l", mtu=1500)
    assert ensure_conflist(path, changed) is True
    assert path.stat().st_ino != first.st_ino  # replaced by rename, never edited in place
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temp files left
    assert remove_conflist(path) is True
    assert remove_conflist(path) is False
    assert not os.path.exists(path)


def test_chained_plugins_limit_the_announced_versions() -> None:
    doc = plan_conflist(
        agent_socket="/s",
        log_file="/l",
        mtu=9001,
        chained_plugins=("portmap",),
        chained_versions={"portmap": ["0.3.1", "0.4.0", "1.0.0"]},
    )
    assert doc["cniVersion"] == "1.0.0"
    assert doc["cniVersions"] == ["0.4.0", "1.0.0"]
    with pytest.raises(ConfigError):
        plan_conflist(
            agent_socket="/s", log_file="/l", mtu=9001, chained_versions={"old": ["0.2.0"]}
        )


def test_probe_versions_execs_the_plugin_like_a_runtime(tmp_path: Path) -> None:
    assert "1.0.0" in probe_versions(Path("/usr/lib/cni"), "portmap")
    with pytest.raises(TemporaryError):
        probe_versions(tmp_path, "portmap")
