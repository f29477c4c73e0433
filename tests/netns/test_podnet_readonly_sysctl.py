"""The pod path's sysctls on a read-only /proc/sys (the DaemonSet agent's view).

The init container sets what the node needs; the agent, whose /proc/sys is mounted
read-only, must then take a value that is already right as done instead of failing the
pod's ADD. The check runs in a child with its own mount namespace, where /proc/sys is
bind-mounted read-only, so the host's mounts are untouched.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import uuid

import pytest

pytestmark = pytest.mark.netns

_CHILD = textwrap.dedent(
    """
    import os, sys
    from vpcnet.agent.podnet import _write_sysctl
    from vpcnet.errors import PodNetworkError
    fd = os.open("/run/netns/" + sys.argv[1], os.O_RDONLY)
    # The namespace's value, already set as the node needs it: taken as done.
    _write_sysctl(fd, "net/ipv6/conf/all/forwarding", "1")
    # A value that would need a write: the read-only /proc/sys refuses it, clearly.
    try:
        _write_sysctl(fd, "net/ipv6/conf/all/forwarding", "0")
    except PodNetworkError as e:
        print("refused:", e)
    else:
        raise SystemExit("a write to a read-only /proc/sys went through")
    """
)


def test_a_sysctl_already_set_is_not_written_on_a_read_only_proc_sys() -> None:
    ns = f"vpcro{uuid.uuid4().hex[:8]}"
    subprocess.run(["ip", "netns", "add", ns], check=True)
    try:
        subprocess.run(["ip", "netns", "exec", ns, "sysctl", "-qw", "net.ipv6.conf.all.forwarding=1"], check=True)
        # Private mounts: the read-only bind of /proc/sys lives and dies with the child.
        out = subprocess.run(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c",
             'mount --bind /proc/sys /proc/sys && mount -o remount,ro,bind /proc/sys && exec "$0" -c "$1" "$2"',
             sys.executable, _CHILD, ns],
            capture_output=True, text=True, timeout=60,
        )
        assert out.returncode == 0, out.stderr
        assert "refused:" in out.stdout and "Read-only file system" in out.stdout, out.stdout
    finally:
        subprocess.run(["ip", "netns", "del", ns], check=False)
