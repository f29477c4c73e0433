"""Install the CNI plugin so it runs on hosts without Python.

kubelet execs ``/opt/cni/bin/vpcnet-cni`` on the host, which may have no Python, no shell
and an older libc (Bottlerocket, minimal AMIs). The installer therefore writes:

- ``<runtime_dir>/v-<digest>/``: a self-contained runtime - the interpreter, its shared
  libraries including glibc's dynamic loader, and a zip of the precompiled stdlib subset
  plus ``vpcnet.cni`` (see :mod:`vpcnet.install.runtime`);
- ``<bin_dir>/vpcnet-cni``: a static launcher that execs that runtime's loader on its
  interpreter (see ``launcher.c``).

Used by the agent DaemonSet's init container (``vpcnet install-cni``), the agent itself
and ``vpcnet bench cni``::

    from vpcnet.install import install_plugin
    plugin = install_plugin(Path("/opt/cni/bin"), Path("/opt/vpcnet"))
"""

from __future__ import annotations

from vpcnet.install.installer import (
    PLUGIN_NAME,
    InstallResult,
    install,
    install_plugin,
    verify_plugin,
)

__all__ = ["PLUGIN_NAME", "InstallResult", "install", "install_plugin", "verify_plugin"]
