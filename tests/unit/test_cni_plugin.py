"""vpcnet-cni run in-process (its main() with injected streams) against a real unix
socket played by a scripted agent: spec validation, result shapes, prevResult, spooling."""

from __future__ import annotations

import io
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cni import ScriptedAgent
from vpcnet.cni import plugin
from vpcnet.cni import protocol as p

ADD_REPLY = {
    "ok": True,
    "ip": "10.0.1.7",
    "hostIf": "vpc0123456789ab",
    "hostMac": "02:00:00:00:00:01",
    "podMac": "0a:00:00:00:00:02",
    "mtu": 9001,
    "gateway": "169.254.1.1",
}


@pytest.fixture
def agent(scripted_agent: Callable[[Path], ScriptedAgent], tmp_path: Path) -> ScriptedAgent:
    return scripted_agent(tmp_path / "agent.sock")


def run(env: dict[str, str], conf: Any) -> tuple[int, Any]:
    out = io.BytesIO()
    data = conf if isinstance(conf, bytes) else json.dumps(conf).encode()
    rc = plugin.main(env, io.BytesIO(data), out)
    text = out.getvalue().decode()
    return rc, (json.loads(text) if text.strip() else None)


def conf(sock: Path | str, version: str = "1.1.0", **extra: Any) -> dict[str, Any]:
    return {"cniVersion": version, "name": "vpcnet", "type": "vpcnet-cni", "agentSocket": str(sock), **extra}


def env(command: str, cid: str = "abc123", netns: str = "/run/netns/pod", ifname: str = "eth0", **more: str) -> dict[str, str]:
    e = {"CNI_COMMAND": command, "CNI_CONTAINERID": cid, "CNI_NETNS": netns, "CNI_IFNAME": ifname, "CNI_PATH": "/opt/cni/bin"}
    e.update(more)
    return {k: v for k, v in e.items() if v != ""}


def test_version_answers_without_an_agent() -> None:
    rc, out = run({"CNI_COMMAND": "VERSION"}, {"cniVersion": "1.0.0"})
    assert (rc, out) == (0, {"cniVersion": "1.0.0", "supportedVersions": ["0.4.0", "1.0.0", "1.1.0"]})
    rc, out = run({"CNI_COMMAND": "VERSION"}, b"")
    assert rc == 0 and out["cniVersion"] == "1.1.0"


@pytest.mark.parametrize("version", ["0.4.0", "1.0.0", "1.1.0"])
def test_add_result_per_spec_version(agent: ScriptedAgent, version: str) -> None:
    agent.reply = ADD_REPLY
    rc, out = run(env("ADD", CNI_ARGS="IgnoreUnknown=1;K8S_POD_NAMESPACE=ns1;K8S_POD_NAME=web"), conf(agent.path, version, mtu=1500, dns={"nameservers": ["10.0.0.2"]}))
    assert rc == 0
    pod_if: dict[str, Any] = {"name": "eth0", "mac": "0a:00:00:00:00:02", "sandbox": "/run/netns/pod"}
    ip: dict[str, Any] = {"address": "10.0.1.7/32", "gateway": "169.254.1.1", "interface": 1}
    if version == "1.1.0":
        pod_if["mtu"] = 9001
    if version == "0.4.0":
        ip["version"] = "4"
    assert out == {
        "cniVersion": version,
        "interfaces": [{"name": "vpc0123456789ab", "mac": "02:00:00:00:00:01"}, pod_if],
        "ips": [ip],
        "routes": [{"dst": "0.0.0.0/0", "gw": "169.254.1.1"}],
        "dns": {"nameservers": ["10.0.0.2"]},
    }
    (req,) = agent.requests
    assert req == {
        "v": 1, "command": "ADD", "containerId": "abc123", "ifname": "eth0", "netns": "/run/netns/pod",
        "podNamespace": "ns1", "podName": "web", "mtu": 1500, "budgetSeconds": 55.0,
    }


def test_add_passes_a_prev_result_through(agent: ScriptedAgent) -> None:
    agent.reply = ADD_REPLY
    prev = {
        "cniVersion": "1.0.0",
        "interfaces": [{"name": "lo0", "sandbox": "/run/netns/pod"}],
        "ips": [{"address": "192.168.0.2/24", "interface": 0}],
        "routes": [{"dst": "192.168.0.0/16"}],
        "dns": {"search": ["x"]},
    }
    rc, out = run(env("ADD"), conf(agent.path, "1.0.0", prevResult=prev))
    assert rc == 0
    assert [i["name"] for i in out["interfaces"]] == ["lo0", "vpc0123456789ab", "eth0"]
    assert out["ips"] == [prev["ips"][0], {"address": "10.0.1.7/32", "gateway": "169.254.1.1", "interface": 2}]
    assert out["routes"][0] == {"dst": "192.168.0.0/16"} and out["dns"] == {"search": ["x"]}


def test_check_sends_the_ip_recorded_in_prev_result(agent: ScriptedAgent) -> None:
    agent.reply = ADD_REPLY
    _, added = run(env("ADD"), conf(agent.path))
    agent.reply = {"ok": True}
    rc, out = run(env("CHECK"), conf(agent.path, prevResult=added))
    assert (rc, out) == (0, None)
    assert agent.requests[-1]["expectIp"] == "10.0.1.7" and agent.requests[-1]["command"] == "CHECK"
    rc, err = run(env("CHECK"), conf(agent.path))  # the spec requires prevResult
    assert rc == 1 and err["code"] == 7
    other = dict(added, interfaces=[{"name": "eth0", "sandbox": "/run/netns/other"}])
    rc, err = run(env("CHECK"), conf(agent.path, prevResult=other))
    assert rc == 1 and err["code"] == 7


def test_agent_errors_are_passed_on_with_their_code(agent: ScriptedAgent) -> None:
    agent.reply = p.error_reply(11, "no free IP on this node", "0 free")
    rc, err = run(env("ADD"), conf(agent.path))
    assert (rc, err) == (1, {"cniVersion": "1.1.0", "code": 11, "msg": "no free IP on this node", "details": "0 free"})
    agent.reply = b"garbage"
    rc, err = run(env("ADD"), conf(agent.path))
    assert rc == 1 and err["code"] == p.ERR_AGENT_PROTOCOL
    agent.reply = {"ok": True, "ip": "10.0.1.7"}  # missing fields
    rc, err = run(env("ADD"), conf(agent.path))
    assert rc == 1 and err["code"] == p.ERR_AGENT_PROTOCOL


def test_status_and_gc(agent: ScriptedAgent) -> None:
    rc, out = run({"CNI_COMMAND": "STATUS"}, conf(agent.path))
    assert (rc, out) == (0, None) and agent.requests[-1] == {"v": 1, "command": "STATUS", "budgetSeconds": 55.0}
    valid = [{"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "net1"}]
    rc, out = run({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, conf(agent.path, **{"cni.dev/valid-attachments": valid}))
    assert (rc, out) == (0, None)
    assert agent.requests[-1]["validAttachments"] == [["a", "eth0"], ["b", "net1"]]
    rc, err = run({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, conf(agent.path, **{"cni.dev/valid-attachments": [{"ifname": 1}]}))
    assert rc == 1 and err["code"] == 7
    for command in ("STATUS", "GC"):  # 1.1.0 verbs
        rc, err = run({"CNI_COMMAND": command, "CNI_PATH": "/x"}, conf(agent.path, "1.0.0"))
        assert rc == 1 and err["code"] == 1


GC_ENV = {"CNI_COMMAND": "GC", "CNI_PATH": "/x"}


@pytest.mark.parametrize("lists", [{}, {"cni.dev/valid-attachments": None}, {"cni.dev/attachments": None}])
def test_gc_without_the_attachment_list_is_refused_and_reaches_no_agent(
    agent: ScriptedAgent, lists: dict[str, Any]
) -> None:
    """A GC that names no valid attachments must not read as "none is valid" (a wipe)."""
    rc, err = run(GC_ENV, conf(agent.path, **lists))
    assert rc == 1 and err["code"] == p.ERR_INVALID_CONFIG
    assert "attachments" in err["msg"]
    assert agent.requests == []


def test_gc_accepts_the_draft_key_and_keeps_the_union_of_both(agent: ScriptedAgent) -> None:
    a, b = {"containerID": "a", "ifname": "eth0"}, {"containerID": "b", "ifname": "eth0"}
    rc, _ = run(GC_ENV, conf(agent.path, **{"cni.dev/attachments": [a]}))
    assert rc == 0 and agent.requests[-1]["validAttachments"] == [["a", "eth0"]]
    # libcni 1.2.3 sends both names with the same list; the same entry is sent once.
    rc, _ = run(GC_ENV, conf(agent.path, **{"cni.dev/valid-attachments": [a], "cni.dev/attachments": [a, b]}))
    assert rc == 0 and agent.requests[-1]["validAttachments"] == [["a", "eth0"], ["b", "eth0"]]
    # An explicit empty list is the runtime saying "nothing is valid": that is GC's job.
    rc, _ = run(GC_ENV, conf(agent.path, **{"cni.dev/valid-attachments": []}))
    assert rc == 0 and agent.requests[-1]["validAttachments"] == []
    rc, err = run(GC_ENV, conf(agent.path, **{"cni.dev/valid-attachments": [a], "cni.dev/attachments": {"x": 1}}))
    assert rc == 1 and err["code"] == p.ERR_INVALID_CONFIG and len(agent.requests) == 3


@pytest.mark.parametrize(
    ("environ", "config", "code"),
    [
        ({}, {}, 4),
        ({"CNI_COMMAND": "FROB"}, {}, 4),
        (env("ADD", cid=""), None, 4),
        (env("ADD", cid="-bad"), None, 4),
        (env("ADD", ifname="a/b"), None, 4),
        (env("ADD", ifname="x" * 16), None, 4),
        (env("ADD", netns="relative/path"), None, 4),
        (env("ADD", CNI_ARGS="novalue"), None, 4),
        ({"CNI_COMMAND": "GC"}, None, 4),
        (env("ADD"), b"{not json", 6),
        (env("ADD"), b"[1, 2]", 6),
        (env("ADD"), {"name": "vpcnet", "agentSocket": "/x"}, 7),
        (env("ADD"), {"cniVersion": "0.3.1", "name": "vpcnet", "agentSocket": "/x"}, 1),
        (env("ADD"), {"cniVersion": "1.1.0", "agentSocket": "/x"}, 7),
        (env("ADD"), {"cniVersion": "1.1.0", "name": "vpcnet"}, 7),
        (env("ADD"), {"cniVersion": "1.1.0", "name": "vpcnet", "agentSocket": "rel"}, 7),
        (env("ADD"), {"cniVersion": "1.1.0", "name": "vpcnet", "agentSocket": "/x", "mtu": 70000}, 7),
        (env("ADD"), {"cniVersion": "1.1.0", "name": "vpcnet", "agentSocket": "/x", "mtu": True}, 7),
        (env("ADD"), {"cniVersion": "1.1.0", "name": "vpcnet", "agentSocket": "/x", "prevResult": []}, 7),
    ],
)
def test_bad_input_gets_the_spec_code(environ: dict[str, str], config: Any, code: int) -> None:
    rc, err = run(environ, config if config is not None else conf("/nonexistent.sock"))
    assert rc == 1
    assert err["code"] == code and isinstance(err["msg"], str) and err["cniVersion"] in p.SUPPORTED_VERSIONS


def test_agent_unreachable(tmp_path: Path) -> None:
    sock = tmp_path / "run" / "agent.sock"
    rc, err = run(env("ADD"), conf(sock))
    assert rc == 1 and err["code"] == 11
    rc, err = run({"CNI_COMMAND": "STATUS"}, conf(sock))
    assert rc == 1 and err["code"] == 50
    # DEL succeeds and leaves the agent a note: the IP stays held until it is replayed.
    rc, out = run(env("DEL", cid="gone1", netns=""), conf(sock))
    assert (rc, out) == (0, None)
    (spooled,) = (tmp_path / "run" / "pending-del").iterdir()
    assert spooled.name == p.pending_name("gone1", "eth0")
    assert json.loads(spooled.read_text())["containerId"] == "gone1"
    # ...unless even that is impossible: then DEL fails so the runtime retries.
    blocked = tmp_path / "blocked"
    blocked.write_text("")
    rc, err = run(env("DEL"), conf(sock, pendingDir=str(blocked / "sub")))
    assert rc == 1 and err["code"] == 11


def test_log_file_gets_one_line_and_stdout_only_the_result(agent: ScriptedAgent, tmp_path: Path) -> None:
    log = tmp_path / "cni.log"
    agent.reply = ADD_REPLY
    rc, out = run(env("ADD"), conf(agent.path, logFile=str(log)))
    assert rc == 0 and out["ips"]
    rc, _ = run(env("ADD"), {**conf(agent.path, logFile=str(log)), "mtu": 1})
    lines = log.read_text().splitlines()
    assert len(lines) == 2 and " ADD abc123/eth0 rc=0 " in lines[0] and "ip 10.0.1.7" in lines[0]
    assert "rc=1" in lines[1] and "error 7" in lines[1]


def test_json_codec_matches_the_json_module() -> None:
    doc = {"a": [1, -2.5e-3, None, True, False, "é\n\u2028"], "b": {"c": ""}}
    assert p.loads(json.dumps(doc)) == doc
    assert json.loads(p.dumps(doc)) == doc
    for bad in ["", "{", "[1,]", "{} {}", "\ufeff{}", '"\x01"', "nul"]:
        with pytest.raises(ValueError):
            p.loads(bad)
    with pytest.raises(TypeError):
        p.dumps({"x": object()})
