"""Malformed stdin and environment (hypothesis): the plugin always answers a spec error
JSON with a non-zero exit, and leaves nothing behind (no request, no spooled DEL)."""

from __future__ import annotations

import io
import json
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vpcnet.cni import plugin
from vpcnet.cni import protocol as p

# Errors the plugin decides alone, before anything reaches the agent.
LOCAL_CODES = {1, 2, 4, 5, 6, 7}


class RefusingAgent:
    """A real socket that counts requests and refuses them all (code 11)."""

    def __init__(self, path: Path) -> None:
        self.requests = 0
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.bind(str(path))
        self.sock.listen(64)
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                while conn.recv(65536):
                    pass
                self.requests += 1
                conn.sendall(json.dumps(p.error_reply(11, "refused by the test agent")).encode())


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[RefusingAgent, Path]]:
    root = tmp_path_factory.mktemp("fuzz")
    a = RefusingAgent(root / "agent.sock")
    yield a, root
    a.sock.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
CONFIG_KEYS = ["cniVersion", "name", "type", "agentSocket", "mtu", "logFile", "prevResult", "dns",
               "timeoutSeconds", "pendingDir", "cni.dev/valid-attachments"]
ENV_KEYS = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"]
env_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=24)


def valid_conf(sock: Path) -> dict[str, Any]:
    return {"cniVersion": "1.1.0", "name": "vpcnet", "type": "vpcnet-cni", "agentSocket": str(sock)}


@st.composite
def stdins(draw: st.DrawFn, sock: Path) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    conf: dict[str, Any] = valid_conf(sock)
    for key in draw(st.lists(st.sampled_from(CONFIG_KEYS), min_size=1, max_size=3)):
        if draw(st.booleans()):
            conf.pop(key, None)
        else:
            conf[key] = draw(json_values)
    # Never let a drawn path point outside the test's directory (the plugin would
    # honestly write a log or spool a DEL there).
    for key, safe in (("agentSocket", sock), ("logFile", sock.with_name("cni.log")),
                      ("pendingDir", sock.with_name("pending-del"))):
        if isinstance(conf.get(key), str) and conf[key].startswith("/"):
            conf[key] = str(safe)
    return json.dumps(conf).encode()


@st.composite
def environs(draw: st.DrawFn) -> dict[str, str]:
    env = {}
    for key in ENV_KEYS:
        choice = draw(st.sampled_from(["absent", "good", "random"]))
        good = {"CNI_COMMAND": draw(st.sampled_from(list(p.COMMANDS))), "CNI_CONTAINERID": "c1",
                "CNI_NETNS": "/run/netns/none", "CNI_IFNAME": "eth0", "CNI_ARGS": "K8S_POD_NAME=x",
                "CNI_PATH": "/opt/cni/bin"}[key]
        if choice == "good":
            env[key] = good
        elif choice == "random":
            env[key] = draw(env_text)
    return env


def assert_spec_error(rc: int, stdout: bytes) -> dict[str, Any]:
    assert rc != 0
    err = json.loads(stdout)
    assert set(err) == {"cniVersion", "code", "msg", "details"}
    assert type(err["code"]) is int and err["code"] > 0
    assert isinstance(err["msg"], str) and err["msg"] and isinstance(err["details"], str)
    assert err["cniVersion"] in p.SUPPORTED_VERSIONS
    return err


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_malformed_input_always_gets_a_spec_error(agent: tuple[RefusingAgent, Path], data: st.DataObject) -> None:
    server, root = agent
    sock = root / "agent.sock"
    env = data.draw(environs())
    stdin = data.draw(stdins(sock))
    before = server.requests
    out = io.BytesIO()
    rc = plugin.main(env, io.BytesIO(stdin), out)
    text = out.getvalue()
    if rc == 0:
        # Valid after all (VERSION, or a DEL the agent never answered, ...): output is
        # empty or one JSON object.
        assert text.strip() == b"" or isinstance(json.loads(text), dict)
        return
    err = assert_spec_error(rc, text)
    if err["code"] in LOCAL_CODES:
        assert server.requests == before  # nothing reached the agent
    assert not (root / "pending-del").exists() or env.get("CNI_COMMAND") == "DEL"


@pytest.mark.parametrize(
    ("env", "stdin"),
    [
        ({}, b""),
        ({"CNI_COMMAND": "ADD"}, b"{}"),
        ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0"}, b"\xff\xfe{"),
        ({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "c", "CNI_IFNAME": "eth0"}, b'{"cniVersion":"9.9.9","name":"n"}'),
        ({"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": "c", "CNI_NETNS": "/x", "CNI_IFNAME": "eth0"},
         b'{"cniVersion":"1.1.0","name":"n","agentSocket":"/nonexistent/s"}'),
    ],
)
def test_real_exec_of_malformed_input(env: dict[str, str], stdin: bytes, tmp_path: Path) -> None:
    script = Path(sys.executable).with_name("vpcnet-cni")
    proc = subprocess.run([str(script)], input=stdin, env=env, capture_output=True, timeout=60, cwd=tmp_path)
    assert_spec_error(proc.returncode, proc.stdout)
    assert proc.stdout.count(b"\n") == 1  # one JSON line, nothing else
    assert list(tmp_path.iterdir()) == []
