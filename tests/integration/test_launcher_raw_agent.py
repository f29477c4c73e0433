"""The compiled launcher's fast path against a scripted raw agent: what it sends, what it
does with each kind of answer, and that on every failure the exec'd program gets the
same stdin and environment it would have got without the fast path."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.fixtures.cni import ScriptedAgent
from vpcnet.agent.cniserver import inprocess
from vpcnet.install.launcher import build_launcher, embed_argv

# What the launcher execs in these tests: reports the stdin and CNI_* variables it got.
REPORT = r"""
import hashlib, json, os, sys
data = sys.stdin.buffer.read()
keys = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")
print(json.dumps({"exec": True, "len": len(data), "sha": hashlib.sha256(data).hexdigest(),
                  "env": {k: os.environ[k] for k in keys if k in os.environ}, "argv": sys.argv[1:]}))
sys.exit(3)
"""


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> bytes:
    return build_launcher(tmp_path_factory.mktemp("launcher-build")).read_bytes()


@pytest.fixture
def sock_dir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="vpcnet-l-") as d:  # sun_path: < 108 bytes
        yield Path(d)


@pytest.fixture
def agent(scripted_agent: Callable[[Path], ScriptedAgent], sock_dir: Path) -> ScriptedAgent:
    """The raw agent at sock_dir/agent.sock; answers "fallback" unless a test says otherwise."""
    a = scripted_agent(sock_dir / "agent.sock")
    a.reply = inprocess.FALLBACK_MAGIC
    return a


def launcher(template: bytes, where: Path, sock: str | None) -> str:
    path = where / "vpcnet-cni"
    path.write_bytes(embed_argv(template, [sys.executable, "-c", REPORT, "fixed"], sock))
    path.chmod(0o755)
    return str(path)


ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c1", "CNI_NETNS": "/run/netns/p", "CNI_IFNAME": "eth0",
       "CNI_ARGS": "", "HOME": "/nonexistent"}
STDIN = b'{"cniVersion":"1.1.0","pad":"' + b"x" * 300_000 + b'"}'  # more than a pipe holds


def run(plugin: str, stdin: bytes = STDIN, env: dict[str, str] | None = None) -> tuple[int, bytes]:
    proc = subprocess.run([plugin, "extra"], input=stdin, env=ENV if env is None else env,
                          capture_output=True, timeout=60)
    return proc.returncode, proc.stdout


def executed(stdout: bytes, stdin: bytes = STDIN, env: dict[str, str] | None = None) -> None:
    """The exec'd program got exactly the launcher's stdin, CNI_* variables and argv."""
    report: dict[str, Any] = json.loads(stdout)
    assert report["len"] == len(stdin) and report["sha"] == hashlib.sha256(stdin).hexdigest()
    assert report["env"] == {k: v for k, v in (ENV if env is None else env).items() if k.startswith("CNI_")}
    assert report["argv"] == ["fixed", "extra"]


def test_a_done_answer_is_printed_with_its_exit_status(
    template: bytes, sock_dir: Path, agent: ScriptedAgent
) -> None:
    agent.reply = inprocess.encode_done(7, b'{"cniVersion":"1.1.0"}\n')
    assert run(launcher(template, sock_dir, str(sock_dir / "agent.sock"))) == (7, b'{"cniVersion":"1.1.0"}\n')
    (frame,) = agent.frames
    inv = inprocess.decode_request(frame)
    # CNI_ARGS set but empty stays apart from CNI_PATH unset; other variables stay home.
    assert inv.env == {k: v for k, v in ENV.items() if k != "HOME"} and inv.stdin == STDIN


@pytest.mark.parametrize("reply", [
    inprocess.FALLBACK_MAGIC,
    None,  # the agent closed without answering
    b'{"ok": true}',  # not a raw reply (an old agent)
    inprocess.DONE_MAGIC,  # no exit status
    inprocess.DONE_MAGIC[:-1],
])
def test_anything_but_a_done_answer_execs_the_plugin_with_stdin_put_back(
    template: bytes, sock_dir: Path, agent: ScriptedAgent, reply: bytes | None
) -> None:
    agent.reply = reply
    rc, out = run(launcher(template, sock_dir, str(sock_dir / "agent.sock")))
    assert rc == 3
    executed(out)
    assert len(agent.frames) == 1


def test_no_agent_at_the_socket_execs_the_plugin(template: bytes, sock_dir: Path) -> None:
    rc, out = run(launcher(template, sock_dir, str(sock_dir / "absent.sock")))
    assert rc == 3
    executed(out)
    stale = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)  # bound, nobody listening
    stale.bind(str(sock_dir / "stale.sock"))
    stale.close()
    rc, out = run(launcher(template, sock_dir, str(sock_dir / "stale.sock")), stdin=b"", env={"CNI_COMMAND": "DEL"})
    assert rc == 3
    executed(out, b"", {"CNI_COMMAND": "DEL"})


def test_an_environment_above_the_allowance_is_left_to_the_plugin(
    template: bytes, sock_dir: Path, agent: ScriptedAgent
) -> None:
    env = dict(ENV, CNI_ARGS="K=" + "v" * inprocess.ENV_ALLOWANCE)
    rc, out = run(launcher(template, sock_dir, str(sock_dir / "agent.sock")), env=env)
    assert rc == 3
    executed(out, env=env)
    assert agent.frames == []


def test_without_a_socket_the_launcher_only_execs(
    template: bytes, sock_dir: Path, agent: ScriptedAgent
) -> None:
    rc, out = run(launcher(template, sock_dir, None))
    assert rc == 3
    executed(out)
    assert agent.frames == []


def test_a_closed_stdin_is_left_closed(template: bytes, sock_dir: Path, agent: ScriptedAgent) -> None:
    plugin = launcher(template, sock_dir, str(sock_dir / "agent.sock"))
    # The exec'd program sees no fd 0 at all (as without the fast path), and nothing was sent.
    proc = subprocess.run([plugin], env=ENV, capture_output=True, timeout=60, close_fds=True,
                          preexec_fn=lambda: os.close(0))
    assert proc.returncode != 0 and agent.frames == []


def test_without_memfd_stdin_is_put_back_through_a_pipe(
    tmp_path: Path, sock_dir: Path, agent: ScriptedAgent
) -> None:
    """The launcher compiled with memfd_create failing (an old kernel, a seccomp filter):
    the pipe fed by a child carries more than a pipe's buffer."""
    shim = tmp_path / "no_memfd.h"
    shim.write_text("#define _GNU_SOURCE\n#include <errno.h>\n#include <sys/mman.h>\n"
                    "#define memfd_create(name, flags) ((void)(name), (void)(flags), errno = ENOSYS, -1)\n")
    from vpcnet.install.launcher import SOURCE

    binary = tmp_path / "launcher-no-memfd"
    subprocess.run(["cc", "-static", "-Os", "-Wall", "-Werror", "-include", str(shim), "-o", str(binary),
                    str(SOURCE)], check=True, capture_output=True, timeout=120)
    plugin = launcher(binary.read_bytes(), sock_dir, str(sock_dir / "agent.sock"))
    for stdin in (STDIN, b""):
        rc, out = run(plugin, stdin=stdin)
        assert rc == 3
        executed(out, stdin)
    assert len(agent.frames) == 2


def test_an_agent_that_never_answers_is_given_up_on(
    tmp_path: Path, sock_dir: Path, agent: ScriptedAgent
) -> None:
    """The reply timeout (REPLY_TIMEOUT_SECONDS, built as 1 s here) ends in the plugin."""
    from vpcnet.install.launcher import SOURCE

    binary = tmp_path / "launcher-1s"
    subprocess.run(["cc", "-static", "-Os", "-Wall", "-Werror", "-DREPLY_TIMEOUT_SECONDS=1", "-o", str(binary),
                    str(SOURCE)], check=True, capture_output=True, timeout=120)
    agent.hold.set()
    agent.reply = inprocess.encode_done(0, b"too late")
    try:
        rc, out = run(launcher(binary.read_bytes(), sock_dir, str(sock_dir / "agent.sock")))
    finally:
        agent.release.set()
    assert rc == 3
    executed(out)
    assert len(agent.frames) == 1
