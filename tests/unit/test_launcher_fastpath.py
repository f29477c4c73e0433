"""The launcher's fast path, its pure parts: the socket in the blob, the raw frame, the
agent's refusal of configs it does not own, and the in-process plugin answering exactly
as the exec'd one does."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from vpcnet.agent.cniserver import inprocess
from vpcnet.agent.cniserver.inprocess import InProcess, decode_reply, decode_request, encode_request
from vpcnet.cni import plugin
from vpcnet.cni import protocol as p
from vpcnet.errors import InstallError
from vpcnet.install.launcher import BLOB_SIZE, MARKER, SOURCE, embed_argv

TEMPLATE = b"\x7fELF" + b"\x01" * 100 + MARKER.ljust(BLOB_SIZE, b"\0") + b"\x02" * 50
SOCK = "/run/vpcnet/agent.sock"


def region(binary: bytes) -> bytes:
    return binary[104 : 104 + BLOB_SIZE]


# -- the blob ---------------------------------------------------------------------------


def test_without_a_socket_the_blob_ends_after_the_argv() -> None:
    assert region(embed_argv(TEMPLATE, ["/rt/python", "-c", "x"])).rstrip(b"\0") == b"/rt/python\0-c\0x"


def test_the_socket_follows_the_argv_s_terminating_empty_string() -> None:
    blob = region(embed_argv(TEMPLATE, ["/rt/python", "-c", "x"], SOCK))
    assert blob.rstrip(b"\0") == b"/rt/python\0-c\0x\0\0" + SOCK.encode()
    assert blob[len(b"/rt/python\0-c\0x\0\0" + SOCK.encode())] == 0  # NUL-terminated


@pytest.mark.parametrize("sock", ["run/agent.sock", "", "/run/a\0b", "/" + "s" * 107])
def test_a_bad_socket_path_is_refused(sock: str) -> None:
    with pytest.raises(InstallError, match="agent socket"):
        embed_argv(TEMPLATE, ["/rt/python"], sock)


def test_the_socket_must_fit_in_the_blob() -> None:
    argv = ["/rt/python"] + ["a" * 128] * 63  # 8139 bytes of argv leaves no room
    embed_argv(TEMPLATE, argv)
    with pytest.raises(InstallError, match="blob holds"):
        embed_argv(TEMPLATE, argv, "/" + "s" * 100)


# -- constants shared with launcher.c -------------------------------------------------------


def c_defines() -> dict[str, str]:
    return dict(re.findall(r"^#define (\w+) (.+)$", SOURCE.read_text(), re.MULTILINE))


def c_string(literal: str) -> bytes:
    assert literal.startswith('"') and literal.endswith('"')
    return literal[1:-1].replace("\\0", "\0").encode()


def test_launcher_c_speaks_the_agent_s_frame() -> None:
    d = c_defines()
    assert c_string(d["REQ_MAGIC"]) == inprocess.REQ_MAGIC
    assert c_string(d["DONE_MAGIC"]) == inprocess.DONE_MAGIC
    assert c_string(d["FALLBACK_MAGIC"]) == inprocess.FALLBACK_MAGIC
    assert eval(d["MAX_REQUEST_BYTES"]) == p.MAX_REQUEST_BYTES
    assert eval(d["ENV_ALLOWANCE"]) == inprocess.ENV_ALLOWANCE
    assert eval(d["MAX_STDOUT_BYTES"]) == inprocess.MAX_STDOUT_BYTES
    # Above the largest timeoutSeconds plugin.py accepts (3600): the agent enforces it.
    assert eval(d["REPLY_TIMEOUT_SECONDS"]) > 3600
    for magic in (inprocess.REQ_MAGIC, inprocess.DONE_MAGIC, inprocess.FALLBACK_MAGIC):
        assert magic.startswith(b"\0")  # never a JSON request or reply
    for name in p.ENV_KEYS:
        assert f'"{name}"' in SOURCE.read_text()


# -- the frame -----------------------------------------------------------------------------


def test_a_frame_round_trips_and_keeps_absent_apart_from_empty() -> None:
    env = {"CNI_COMMAND": "ADD", "CNI_ARGS": "", "CNI_NETNS": "/run/netns/\udcff"}
    frame = encode_request(env, b'{"cniVersion":"1.1.0"}\0\xff')
    inv = decode_request(frame)
    assert inv.env == env and "CNI_PATH" not in inv.env
    assert inv.stdin == b'{"cniVersion":"1.1.0"}\0\xff'
    assert frame.startswith(b"\0")


@pytest.mark.parametrize("frame", [
    b'{"v":1}',
    inprocess.REQ_MAGIC + b"CNI_COMMAND=ADD",  # unterminated
    inprocess.REQ_MAGIC + b"HOME=/root\0\0",  # not a CNI variable
    inprocess.REQ_MAGIC + b"CNI_COMMAND=ADD\0CNI_COMMAND=DEL\0\0",
    inprocess.REQ_MAGIC + b"\0" + b" " * (p.MAX_REQUEST_BYTES + 2),
])
def test_a_malformed_frame_is_refused(frame: bytes) -> None:
    with pytest.raises(ValueError):
        decode_request(frame)


def test_replies() -> None:
    assert decode_reply(inprocess.encode_done(1, b"out\n")) == (1, b"out\n")
    assert decode_reply(inprocess.FALLBACK_MAGIC) is None
    with pytest.raises(ValueError):
        decode_reply(inprocess.DONE_MAGIC)


# -- the agent's side ----------------------------------------------------------------------


class Agent:
    """A Dispatcher stand-in that records what reaches it."""

    def __init__(self, reply: dict[str, Any] | None = None) -> None:
        self.seen: list[dict[str, Any]] = []
        self.reply = reply or {"ok": True}

    def __call__(self, raw: bytes) -> dict[str, Any]:
        self.seen.append(p.loads(raw.decode()))
        return self.reply


def fast(tmp_path: Path, agent: Agent) -> InProcess:
    return InProcess(agent, plugin.main, f"{tmp_path}/agent.sock", f"{tmp_path}/cni.log", f"{tmp_path}/pending-del")


DEL_ENV = {"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c1", "CNI_IFNAME": "eth0", "CNI_NETNS": "/run/netns/x"}


def conf(tmp_path: Path, **over: Any) -> bytes:
    doc: dict[str, Any] = {"cniVersion": "1.1.0", "name": "vpcnet", "agentSocket": f"{tmp_path}/agent.sock",
                           "logFile": f"{tmp_path}/cni.log"}
    doc.update(over)
    return p.dumps({k: v for k, v in doc.items() if v is not None}).encode()


def test_its_own_config_is_served_in_process_and_logged(tmp_path: Path) -> None:
    agent = Agent()
    srv = fast(tmp_path, agent)
    assert decode_reply(srv.answer(encode_request(DEL_ENV, conf(tmp_path)))) == (0, b"")
    assert [r["command"] for r in agent.seen] == ["DEL"] and srv.requests == 1
    assert f"pid={os.getpid()} DEL c1/eth0 rc=0" in (tmp_path / "cni.log").read_text()
    # No logFile: nothing logged, still served; the default pendingDir is the agent's.
    assert decode_reply(srv.answer(encode_request(DEL_ENV, conf(tmp_path, logFile=None)))) == (0, b"")
    assert srv.requests == 2


@pytest.mark.parametrize("over", [
    {"agentSocket": "/run/other/agent.sock"},
    {"agentSocket": 7},
    {"logFile": "/var/log/other.log"},
    {"pendingDir": "/run/other/pending"},
    {"pendingDir": ["x"]},
])
def test_a_config_the_agent_does_not_own_falls_back_before_any_side_effect(tmp_path: Path, over: Any) -> None:
    agent = Agent()
    srv = fast(tmp_path, agent)
    assert srv.answer(encode_request(DEL_ENV, conf(tmp_path, **over))) == inprocess.FALLBACK_MAGIC
    assert agent.seen == [] and srv.fallbacks == 1 and srv.requests == 0
    assert not (tmp_path / "cni.log").exists()
    assert not Path("/var/log/other.log").exists()


def test_a_check_config_hook_s_refusal_propagates_out_of_main(tmp_path: Path) -> None:
    def refuse(conf: dict[str, Any]) -> None:
        raise p.ForeignConfig("not mine")

    assert not issubclass(p.ForeignConfig, (OSError, p.CniError))
    with pytest.raises(p.ForeignConfig):
        plugin.main(DEL_ENV, io.BytesIO(conf(tmp_path)), io.BytesIO(), check_config=refuse)
    assert not (tmp_path / "cni.log").exists()  # main wrote no log line before it


def test_the_agent_not_answering_in_time_is_the_plugin_s_timeout(tmp_path: Path) -> None:
    import threading

    release = threading.Event()

    def slow(raw: bytes) -> dict[str, Any]:
        release.wait(30)
        return {"ok": True}

    srv = InProcess(slow, plugin.main, f"{tmp_path}/agent.sock", f"{tmp_path}/cni.log", f"{tmp_path}/pending-del")
    try:
        reply = decode_reply(srv.answer(encode_request(DEL_ENV, conf(tmp_path, timeoutSeconds=0.05))))
    finally:
        release.set()
    assert reply == (0, b"")  # DEL succeeds: spooled, as the exec'd plugin does
    assert [f.name for f in (tmp_path / "pending-del").iterdir()] == [p.pending_name("c1", "eth0")]
    add = dict(DEL_ENV, CNI_COMMAND="ADD")
    release.clear()
    try:
        reply = decode_reply(srv.answer(encode_request(add, conf(tmp_path, timeoutSeconds=0.05))))
    finally:
        release.set()
    assert reply is not None and reply[0] == 1
    assert p.loads(reply[1].decode())["code"] == p.ERR_TRY_AGAIN


def exec_plugin(env: dict[str, str], stdin: bytes) -> tuple[int, bytes]:
    proc = subprocess.run([sys.executable, "-m", "vpcnet.cni.plugin"], input=stdin, env=env,
                          capture_output=True, timeout=60, cwd=Path(__file__).resolve().parents[2])
    return proc.returncode, proc.stdout


@pytest.mark.parametrize("env, stdin", [
    ({"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"0.4.0"}'),
    ({"CNI_COMMAND": "VERSION"}, b""),
    ({"CNI_COMMAND": "ADD", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"}, b"{}"),  # no container id
    ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0",
      "CNI_ARGS": ""}, b"\xff{not json"),
    ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/x", "CNI_IFNAME": "eth0"}, b"[1]"),
    ({"CNI_COMMAND": "BOGUS"}, b""),
    ({}, b""),
])
def test_in_process_answers_byte_for_byte_as_the_exec_d_plugin(
    tmp_path: Path, env: dict[str, str], stdin: bytes
) -> None:
    agent = Agent()
    reply = decode_reply(fast(tmp_path, agent).answer(encode_request(env, stdin)))
    assert reply == exec_plugin(env, stdin)
    assert agent.seen == []


def test_the_agent_installs_the_launcher_with_the_socket_the_conflist_names(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from types import SimpleNamespace

    import vpcnet.install
    from vpcnet.agent.main import Agent
    from vpcnet.settings import AgentSettings

    calls: list[tuple[Any, ...]] = []
    monkeypatch.setattr(vpcnet.install, "install_plugin",
                        lambda *a, **kw: calls.append((*a, kw)) or tmp_path / "vpcnet-cni")
    monkeypatch.chdir(tmp_path)
    settings = AgentSettings(node_name="n", socket_path="run/agent.sock", cni_bin_dir="/b", cni_runtime_dir="/r")
    Agent._ensure_plugin(SimpleNamespace(_plugin_installed=False, settings=settings))  # type: ignore[arg-type]
    assert calls == [(Path("/b"), Path("/r"), {"agent_socket": f"{tmp_path}/run/agent.sock"})]
