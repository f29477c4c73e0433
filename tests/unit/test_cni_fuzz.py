"""Fuzzed stdin and environment (hypothesis) against an oracle written from the spec:
an invocation the spec calls malformed gets a non-zero exit, one spec error JSON with
the code the oracle expects, and never reaches the agent; only a valid one succeeds
(VERSION answers alone; the others reach a real socket played by an agent that says
yes, exactly once). Nothing is ever spooled."""

from __future__ import annotations

import io
import json
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fixtures.cni import ScriptedAgent
from vpcnet.cni import plugin
from vpcnet.cni import protocol as p

SUPPORTED = ("0.4.0", "1.0.0", "1.1.0")
LATEST = "1.1.0"
COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
ADD_REPLY = {"ok": True, "ip": "10.0.1.7", "hostIf": "vpc0123456789ab", "hostMac": "02:00:00:00:00:01",
             "podMac": "0a:00:00:00:00:02", "mtu": 9001, "gateway": "169.254.1.1"}
GOOD_NETNS = "/run/netns/none"


class YesAgent(ScriptedAgent):
    """Answers every request as a healthy agent would."""

    def answer(self, frame: bytes) -> bytes:
        return json.dumps(ADD_REPLY if json.loads(frame).get("command") == "ADD" else {"ok": True}).encode()


@pytest.fixture(scope="module")
def agent(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[YesAgent, Path]]:
    root = tmp_path_factory.mktemp("fuzz")
    a = YesAgent(root / "agent.sock")
    yield a, root
    a.close()


# -- the oracle: what the spec (SPEC.md, and the plugin's documented config) requires -------

NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.\-]*", re.ASCII)  # container id, network name


def _env_error(env: dict[str, str], cmd: str) -> bool:
    """True when the environment is invalid for ``cmd`` (code 4)."""
    required = {"ADD": ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"], "CHECK": ["CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"],
                "DEL": ["CNI_CONTAINERID", "CNI_IFNAME"], "GC": ["CNI_PATH"]}.get(cmd, [])
    if any(not env.get(k) for k in required):
        return True
    if cmd not in ("ADD", "CHECK", "DEL"):
        return False
    cid, ifname, netns = env["CNI_CONTAINERID"], env["CNI_IFNAME"], env.get("CNI_NETNS", "")
    if not (len(cid) <= 1024 and NAME.fullmatch(cid)):
        return True
    raw = ifname.encode("utf-8", "surrogateescape")
    if not (1 <= len(raw) <= 15) or ifname in (".", "..") or any(
        c in "/:" or c.isspace() or not c.isprintable() for c in ifname
    ):
        return True
    if netns and not (netns.startswith("/") and len(netns) < 4096):
        return True
    pairs = [kv for kv in env.get("CNI_ARGS", "").split(";") if kv]
    return any("=" not in kv or kv.startswith("=") for kv in pairs)


def _absolute(value: Any) -> bool:
    return isinstance(value, str) and value.startswith("/") and "\x00" not in value


def _config_error(conf: dict[str, Any], cmd: str, env: dict[str, str]) -> int | None:
    """The code a decoded config earns (1 or 7), None when it is valid for ``cmd``."""
    version = conf.get("cniVersion")
    if not isinstance(version, str) or not version:
        return 7
    if version not in SUPPORTED:
        return 1
    if cmd in ("STATUS", "GC") and version != "1.1.0":
        return 1  # verbs of 1.1.0
    name = conf.get("name")
    if not (isinstance(name, str) and len(name) <= 1024 and NAME.fullmatch(name)):
        return 7
    sock = conf.get("agentSocket")
    if not (_absolute(sock) and len(sock) <= 107):
        return 7
    optional: dict[str, Any] = {  # absent or null, or of this shape
        "logFile": _absolute,
        "pendingDir": _absolute,
        "mtu": lambda v: type(v) is int and 576 <= v <= 9001,
        "dns": lambda v: isinstance(v, dict),
        "prevResult": lambda v: isinstance(v, dict),
    }
    for key, ok in optional.items():
        if conf.get(key) is not None and not ok(conf[key]):
            return 7
    timeout = conf.get("timeoutSeconds", 60)
    if not (type(timeout) in (int, float) and 0 < timeout <= 3600):
        return 7
    prev = conf.get("prevResult")
    if cmd == "ADD" and prev is not None:  # a Result: lists, and a dns object
        if any(prev.get(k) is not None and not isinstance(prev[k], list) for k in ("interfaces", "ips", "routes")):
            return 7
        if prev.get("dns") is not None and not isinstance(prev["dns"], dict):
            return 7
    if cmd == "CHECK" and not _prev_has_our_ip(prev, env["CNI_IFNAME"], env["CNI_NETNS"]):
        return 7
    if cmd == "GC":
        lists = [conf[k] for k in ("cni.dev/valid-attachments", "cni.dev/attachments") if k in conf]
        if not lists:
            return 7  # the list is required; without it everything would look stale
        for valid in lists:
            if not isinstance(valid, list) or not all(
                isinstance(a, dict) and isinstance(a.get("containerID"), str) and isinstance(a.get("ifname"), str)
                for a in valid
            ):
                return 7
    return None


def _prev_has_our_ip(prev: Any, ifname: str, netns: str) -> bool:
    if not isinstance(prev, dict) or not isinstance(prev.get("interfaces"), list) or not isinstance(prev.get("ips"), list):
        return False
    ours = [i for i, itf in enumerate(prev["interfaces"])
            if isinstance(itf, dict) and itf.get("name") == ifname and itf.get("sandbox") == netns]
    return any(
        isinstance(e, dict) and e.get("interface") in ours and isinstance(e.get("address"), str) and "/" in e["address"]
        for e in prev["ips"]
    )


def _decode(stdin: bytes) -> Any:
    """The JSON document on stdin; raises ValueError when there is none."""
    try:
        return json.loads(stdin.decode("utf-8"))
    except (UnicodeDecodeError, RecursionError) as e:
        raise ValueError(str(e)) from e


def oracle(env: dict[str, str], stdin: bytes) -> tuple[int | None, str]:
    """(expected error code or None for success, the cniVersion the answer carries)."""
    cmd = env.get("CNI_COMMAND", "")
    if cmd not in COMMANDS:
        return 4, LATEST
    if _env_error(env, cmd):
        return 4, LATEST
    if cmd == "VERSION":
        if not stdin.strip():
            return None, LATEST
        try:
            doc = _decode(stdin)
        except ValueError:
            return 6, LATEST
        version = doc.get("cniVersion") if isinstance(doc, dict) else None
        return None, version if isinstance(version, str) else LATEST
    try:
        conf = _decode(stdin)
    except ValueError:
        return 6, LATEST
    if not isinstance(conf, dict):
        return 6, LATEST
    version = conf.get("cniVersion")
    in_use = version if isinstance(version, str) and version in SUPPORTED else LATEST
    return _config_error(conf, cmd, env), in_use


# -- the inputs ---------------------------------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
CONFIG_KEYS = ["cniVersion", "name", "type", "agentSocket", "mtu", "logFile", "prevResult", "dns",
               "timeoutSeconds", "pendingDir", "cni.dev/valid-attachments", "cni.dev/attachments"]
ENV_KEYS = ["CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH"]
env_text = st.text(st.characters(blacklist_characters="\x00", blacklist_categories=("Cs",)), max_size=24)
PREV = {"cniVersion": "1.1.0", "interfaces": [{"name": "eth0", "sandbox": GOOD_NETNS}],
        "ips": [{"address": "10.0.1.7/32", "interface": 0}], "routes": [], "dns": {}}


def valid_conf(sock: Path) -> dict[str, Any]:
    """Valid for every command (ADD ignores the GC list; prevResult is chained)."""
    return {"cniVersion": "1.1.0", "name": "vpcnet", "type": "vpcnet-cni", "agentSocket": str(sock),
            "prevResult": json.loads(json.dumps(PREV)), "cni.dev/valid-attachments": []}


@st.composite
def stdins(draw: st.DrawFn, sock: Path) -> bytes:
    kind = draw(st.sampled_from(["bytes", "json", "mutated", "mutated"]))
    if kind == "bytes":
        return draw(st.binary(max_size=200))
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    conf: dict[str, Any] = valid_conf(sock)
    conf["cniVersion"] = draw(st.sampled_from(SUPPORTED))
    for key in draw(st.lists(st.sampled_from(CONFIG_KEYS), max_size=3)):  # none: valid
        if draw(st.booleans()):
            conf.pop(key, None)
        else:
            conf[key] = draw(json_values | st.sampled_from(["1.1.0", "/abs/path", "vpcnet", 1500, 0.5]))
    # Never let a drawn path point outside the test's directory (the plugin would
    # honestly write a log or spool a DEL there).
    for key, safe in (("agentSocket", sock), ("logFile", sock.with_name("cni.log")),
                      ("pendingDir", sock.with_name("pending-del"))):
        if isinstance(conf.get(key), str) and conf[key].startswith("/"):
            conf[key] = str(safe)
    return json.dumps(conf).encode()


@st.composite
def environs(draw: st.DrawFn) -> dict[str, str]:
    command = draw(st.sampled_from(COMMANDS))
    good = {"CNI_COMMAND": command, "CNI_CONTAINERID": "c1", "CNI_NETNS": GOOD_NETNS, "CNI_IFNAME": "eth0",
            "CNI_ARGS": "K8S_POD_NAME=x", "CNI_PATH": "/opt/cni/bin"}
    env = dict(good)
    for key in draw(st.lists(st.sampled_from(ENV_KEYS), max_size=2)):  # none: valid
        if draw(st.booleans()):
            env.pop(key, None)
        else:
            env[key] = draw(env_text)
    return env


def assert_spec_error(rc: int, stdout: bytes) -> dict[str, Any]:
    assert rc != 0
    assert stdout.count(b"\n") == 1  # one JSON document, nothing else
    err = json.loads(stdout)
    assert set(err) == {"cniVersion", "code", "msg", "details"}
    assert type(err["code"]) is int and err["code"] > 0
    assert isinstance(err["msg"], str) and err["msg"] and isinstance(err["details"], str)
    assert err["cniVersion"] in p.SUPPORTED_VERSIONS
    return err


def assert_success(env: dict[str, str], stdin: bytes, version: str, text: bytes, sent: list[dict[str, Any]]) -> None:
    cmd = env["CNI_COMMAND"]
    if cmd == "VERSION":
        assert json.loads(text) == {"cniVersion": version, "supportedVersions": list(SUPPORTED)}
        assert sent == []
        return
    (req,) = sent  # exactly one request reached the agent
    assert req["command"] == cmd and req["v"] == 1
    if cmd != "ADD":
        assert text == b""
        return
    result = json.loads(text)
    conf = json.loads(stdin)
    prev = conf.get("prevResult") or {}
    assert result["cniVersion"] == version
    assert result["interfaces"][:-2] == (prev.get("interfaces") or [])
    assert result["interfaces"][-1]["sandbox"] == env["CNI_NETNS"]
    assert result["ips"][-1]["address"] == "10.0.1.7/32"
    assert result["ips"][-1]["interface"] == len(result["interfaces"]) - 1


@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_only_valid_invocations_succeed_and_malformed_ones_get_their_spec_code(
    agent: tuple[YesAgent, Path], data: st.DataObject
) -> None:
    server, root = agent
    sock = root / "agent.sock"
    env = data.draw(environs(), label="env")
    stdin = data.draw(stdins(sock), label="stdin")
    expected, version = oracle(env, stdin)
    before = len(server.requests)
    out = io.BytesIO()
    rc = plugin.main(env, io.BytesIO(stdin), out)
    text = out.getvalue()
    sent = server.requests[before:]
    if expected is None:
        assert rc == 0, text
        assert_success(env, stdin, version, text, sent)
    else:
        err = assert_spec_error(rc, text)
        assert (err["code"], err["cniVersion"]) == (expected, version), err
        assert sent == []  # decided alone, before anything reached the agent
    assert not (root / "pending-del").exists()


@pytest.mark.parametrize(
    ("env", "conf", "code"),
    [
        # the fuzz test's oracle, pinned on hand-written cases (so the oracle is tested too)
        ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": GOOD_NETNS, "CNI_IFNAME": "eth0"}, {}, None),
        ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": GOOD_NETNS, "CNI_IFNAME": "eth0"},
         {"prevResult": {"interfaces": 5}}, 7),
        ({"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": GOOD_NETNS, "CNI_IFNAME": "eth0"},
         {"prevResult": {"dns": "x"}}, 7),
        ({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, {"cni.dev/valid-attachments": None}, 7),
        ({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, {"cni.dev/attachments": [{"containerID": "a", "ifname": "b"}]}, None),
        ({"CNI_COMMAND": "GC", "CNI_PATH": "/x"}, {"cniVersion": "1.0.0"}, 1),
        ({"CNI_COMMAND": "CHECK", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/other", "CNI_IFNAME": "eth0"}, {}, 7),
        ({"CNI_COMMAND": "DEL", "CNI_CONTAINERID": "-c1", "CNI_IFNAME": "eth0"}, {}, 4),
        ({"CNI_COMMAND": "STATUS"}, {"timeoutSeconds": None}, 7),
        ({"CNI_COMMAND": "STATUS"}, {"mtu": None, "dns": None}, None),
    ],
)
def test_oracle_cases(agent: tuple[YesAgent, Path], env: dict[str, str], conf: dict[str, Any], code: int | None) -> None:
    server, root = agent
    doc = valid_conf(root / "agent.sock")
    if env["CNI_COMMAND"] == "GC" and ("cni.dev/attachments" in conf or "cni.dev/valid-attachments" in conf):
        doc.pop("cni.dev/valid-attachments")
    doc.update(conf)
    stdin = json.dumps(doc).encode()
    assert oracle(env, stdin)[0] == code
    before = len(server.requests)
    out = io.BytesIO()
    rc = plugin.main(env, io.BytesIO(stdin), out)
    if code is None:
        assert rc == 0 and len(server.requests) == before + 1
    else:
        assert assert_spec_error(rc, out.getvalue())["code"] == code and len(server.requests) == before


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
