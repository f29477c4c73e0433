"""The installed CNI plugin runs without any Python of the host: env -i, no python on PATH,
and chrooted into a root that holds nothing but what the installer wrote."""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from vpcnet.cni.protocol import SUPPORTED_VERSIONS
from vpcnet.errors import InstallError
from vpcnet.install import install, install_plugin, verify_plugin
from vpcnet.install.runtime import RuntimeBundle, collect_bundle

HOST_BIN = Path("/opt/cni/bin")
HOST_RUNTIME = Path("/opt/vpcnet")
NO_PYTHON_PATH = "/nonexistent-bin"  # PATH with no python (and nothing else)


def run_plugin(argv: list[str], env: dict[str, str], stdin: bytes) -> tuple[int, dict[str, object]]:
    # env is the whole environment: nothing is inherited from this (Python) process.
    proc = subprocess.run(argv, input=stdin, env=env, capture_output=True, timeout=30, check=False)
    assert proc.stdout.endswith(b"\n"), (proc.stdout, proc.stderr)
    return proc.returncode, json.loads(proc.stdout)


@pytest.fixture(scope="module")
def bundle() -> RuntimeBundle:
    return collect_bundle()


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, bundle: RuntimeBundle) -> Path:
    """The plugin installed into plain directories (no root), as the bench uses it."""
    base = tmp_path_factory.mktemp("inst")
    return install_plugin(base / "bin", base / "runtime", bundle=bundle)


@pytest.fixture(scope="module")
def chroot_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A root holding only what ``vpcnet install-cni --root`` wrote (via the real CLI)."""
    root = tmp_path_factory.mktemp("hostroot")
    proc = subprocess.run(
        [sys.executable, "-m", "vpcnet.cli.main", "install-cni", "--root", str(root), "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    report = json.loads(proc.stdout)
    assert report["plugin"] == str(root / "opt/cni/bin/vpcnet-cni")
    return root


def test_version_with_empty_environment_and_no_python_on_path(installed: Path) -> None:
    rc, out = run_plugin(
        [str(installed)],
        {"CNI_COMMAND": "VERSION", "PATH": NO_PYTHON_PATH},
        b'{"cniVersion": "1.1.0"}',
    )
    assert rc == 0
    assert out == {"cniVersion": "1.1.0", "supportedVersions": list(SUPPORTED_VERSIONS)}


def test_launcher_is_static_and_runtime_ships_its_own_loader(installed: Path) -> None:
    ldd = subprocess.run(["ldd", str(installed)], capture_output=True, text=True, check=False)
    assert "not a dynamic executable" in ldd.stdout + ldd.stderr
    versions = [p for p in (installed.parent.parent / "runtime").iterdir() if p.name.startswith("v-")]
    assert len(versions) == 1
    manifest = json.loads((versions[0] / "manifest.json").read_text())
    assert (versions[0] / "lib" / manifest["loader"]).is_file()
    assert "libc.so.6" in manifest["libs"]
    assert "vpcnet.cni.plugin" in manifest["modules"]
    # Only the stdlib the plugin reaches, not the whole library.
    assert not {"asyncio", "tkinter", "ssl", "email"} & set(manifest["modules"])


def test_chroot_holds_only_installed_files(chroot_root: Path) -> None:
    assert sorted(p.name for p in chroot_root.iterdir()) == ["opt"]
    assert sorted(p.name for p in (chroot_root / "opt").iterdir()) == ["cni", "vpcnet"]
    assert sorted(p.name for p in (chroot_root / "opt/cni/bin").iterdir()) == ["vpcnet-cni"]


def _chroot(root: Path) -> list[str]:
    chroot = shutil.which("chroot")
    assert chroot, "chroot(8) is required (coreutils)"
    return [chroot, str(root), str(HOST_BIN / "vpcnet-cni")]


def test_version_chrooted(chroot_root: Path) -> None:
    for version in SUPPORTED_VERSIONS:
        rc, out = run_plugin(
            _chroot(chroot_root), {"CNI_COMMAND": "VERSION"}, json.dumps({"cniVersion": version}).encode()
        )
        assert rc == 0
        assert out["supportedVersions"] == list(SUPPORTED_VERSIONS)
    assert verify_plugin(chroot_root / "opt/cni/bin/vpcnet-cni", root=chroot_root)["cniVersion"]


def _conf(**extra: object) -> bytes:
    conf = {"cniVersion": "1.1.0", "name": "vpcnet", "type": "vpcnet-cni",
            "agentSocket": "/nonexistent-e5/agent.sock", **extra}
    return json.dumps(conf).encode()


_ADD_ENV = {"CNI_COMMAND": "ADD", "CNI_CONTAINERID": "c0ffee", "CNI_NETNS": "/run/netns/x",
            "CNI_IFNAME": "eth0", "CNI_PATH": "/opt/cni/bin"}


@pytest.mark.parametrize(
    ("env", "stdin"),
    [
        (_ADD_ENV, b"{not json"),
        (_ADD_ENV, _conf()),  # agent unreachable: socket + error paths
        ({**_ADD_ENV, "CNI_IFNAME": "x" * 40}, _conf()),
        ({"CNI_COMMAND": "NOPE"}, b"{}"),
        ({"CNI_COMMAND": "VERSION"}, b'{"cniVersion": "0.4.0"}'),
    ],
    ids=["undecodable", "agent-unreachable", "bad-ifname", "bad-command", "version-0.4.0"],
)
def test_installed_plugin_answers_like_the_in_tree_plugin(
    chroot_root: Path, env: dict[str, str], stdin: bytes
) -> None:
    """Paths that import more than VERSION does, chrooted, against the source tree's plugin."""
    installed = run_plugin(_chroot(chroot_root), env, stdin)
    reference = run_plugin(
        [sys.executable, "-c", "import sys;from vpcnet.cni.plugin import main;sys.exit(main())"],
        env, stdin,
    )
    assert installed[0] == reference[0]
    # details may carry object addresses; code and msg are the contract
    keep = ("cniVersion", "code", "msg", "supportedVersions")
    assert {k: v for k, v in installed[1].items() if k in keep} == {
        k: v for k, v in reference[1].items() if k in keep
    }


def test_del_with_agent_unreachable_spools_chrooted(chroot_root: Path) -> None:
    spool = chroot_root / "spool"
    try:
        proc = subprocess.run(
            _chroot(chroot_root), input=_conf(pendingDir="/spool"),
            env={**_ADD_ENV, "CNI_COMMAND": "DEL"}, capture_output=True, timeout=30, check=False,
        )
        assert proc.returncode == 0, proc.stdout
        assert len(list(spool.iterdir())) == 1
    finally:
        shutil.rmtree(spool, ignore_errors=True)


def test_reinstall_is_a_no_op(tmp_path: Path, bundle: RuntimeBundle) -> None:
    first = install(tmp_path / "bin", tmp_path / "rt", bundle=bundle)
    inode = first.plugin.stat().st_ino
    again = install(tmp_path / "bin", tmp_path / "rt", bundle=bundle)
    assert (first.runtime_changed, first.plugin_changed) == (True, True)
    assert (again.runtime_changed, again.plugin_changed) == (False, False)
    assert again.plugin.stat().st_ino == inode  # not even rewritten
    assert sorted(p.name for p in (tmp_path / "bin").iterdir()) == ["vpcnet-cni"]


def test_incomplete_version_dir_is_rebuilt(tmp_path: Path, bundle: RuntimeBundle) -> None:
    broken = tmp_path / "rt" / f"v-{bundle.digest[:16]}"
    (broken / "lib").mkdir(parents=True)  # e.g. damaged after the fact: no manifest
    result = install(tmp_path / "bin", tmp_path / "rt", bundle=bundle)
    assert result.runtime_changed
    rc, out = run_plugin([str(result.plugin)], {"CNI_COMMAND": "VERSION"}, b'{"cniVersion":"1.0.0"}')
    assert rc == 0 and out["cniVersion"] == "1.0.0"


@pytest.fixture
def hammer() -> Iterator[tuple[threading.Event, list[tuple[int, bytes]]]]:
    stop = threading.Event()
    results: list[tuple[int, bytes]] = []
    yield stop, results
    stop.set()


def test_upgrade_is_atomic_under_concurrent_execs(
    tmp_path: Path, bundle: RuntimeBundle, hammer: tuple[threading.Event, list[tuple[int, bytes]]]
) -> None:
    """kubelet execs the plugin while it is replaced: every exec gets a working plugin."""
    stop, results = hammer
    bin_dir, rt = tmp_path / "bin", tmp_path / "rt"
    plugin = install_plugin(bin_dir, rt, bundle=bundle)

    def exec_loop() -> None:
        while not stop.is_set():
            proc = subprocess.run([str(plugin)], input=b'{"cniVersion":"1.1.0"}',
                                  env={"CNI_COMMAND": "VERSION"}, capture_output=True,
                                  timeout=30, check=False)
            results.append((proc.returncode, proc.stdout))

    worker = threading.Thread(target=exec_loop)
    worker.start()
    digests = []
    try:
        # Three upgrades to new runtime versions (same content, new digests).
        for n in range(3):
            upgraded = dataclasses.replace(bundle, digest=f"{n:x}" * 64)
            result = install(bin_dir, rt, bundle=upgraded)
            assert result.runtime_changed and result.plugin_changed
            digests.append(result.digest)
    finally:
        stop.set()
        worker.join()
    assert results, "the exec loop never ran"
    assert all(rc == 0 and b"supportedVersions" in out for rc, out in results), results[:3]
    # Garbage collection keeps the current and the previous version only.
    kept = sorted(p.name for p in rt.iterdir() if p.name.startswith("v-"))
    assert kept == sorted(f"v-{d[:16]}" for d in digests[-2:])
    assert sorted(p.name for p in bin_dir.iterdir()) == ["vpcnet-cni"]  # no temp files left


def test_missing_runtime_gives_a_cni_error(tmp_path: Path, bundle: RuntimeBundle) -> None:
    result = install(tmp_path / "bin", tmp_path / "rt", bundle=bundle)
    shutil.rmtree(result.version_dir)
    rc, out = run_plugin([str(result.plugin)], {"CNI_COMMAND": "VERSION"}, b"{}")
    assert rc == 1
    assert out["code"] == 100 and "cannot start its runtime" in str(out["msg"])


def test_plugin_importing_outside_stdlib_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pkg = tmp_path / "e5fakeplug" / "cni"
    pkg.mkdir(parents=True)
    (tmp_path / "e5fakeplug" / "__init__.py").write_text("")
    (pkg / "__init__.py").write_text("")
    (pkg / "plugin.py").write_text("def main() -> int:\n    import redis\n    return 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(InstallError, match="imports redis"):
        collect_bundle(entry_package="e5fakeplug.cni", entry_module="e5fakeplug.cni.plugin")


def test_relative_install_paths_are_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(InstallError, match="absolute"):
        install_plugin(Path("bin"), Path("rt"))


def test_install_cni_embeds_the_agent_socket_and_verifies_without_an_agent(tmp_path: Path) -> None:
    """``--agent-socket``: the launcher asks the agent there first; with no agent (as in
    the init container) it execs the plugin, so ``--verify`` passes all the same."""
    sock = "/run/vpcnet-test-absent/agent.sock"
    proc = subprocess.run(
        [sys.executable, "-m", "vpcnet.cli.main", "install-cni", "--bin-dir", str(tmp_path / "bin"),
         "--runtime-dir", str(tmp_path / "rt"), "--agent-socket", sock, "--verify", "--json"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["verify"]["supportedVersions"] == list(SUPPORTED_VERSIONS)
    data = (tmp_path / "bin" / "vpcnet-cni").read_bytes()
    assert b"\0\0" + sock.encode() + b"\0" in data  # right after the argv's empty string
    proc = subprocess.run(
        [sys.executable, "-m", "vpcnet.cli.main", "install-cni", "--bin-dir", str(tmp_path / "bin2"),
         "--runtime-dir", str(tmp_path / "rt"), "--agent-socket", "relative.sock"],
        capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 1 and "agent socket must be an absolute path" in proc.stderr
