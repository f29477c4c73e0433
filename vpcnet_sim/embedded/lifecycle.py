"""One pod through ADD -> CHECK -> DEL -> DEL at one CNI spec version, as a runtime of
that version runs the installed conflist (the demo does it for every version offered)."""

from __future__ import annotations

import ipaddress
from typing import Any

from vpcnet.domain import IpFamily
from vpcnet_sim import netns as nx
from vpcnet_sim.runtime import PodRuntime


def lifecycle_of(runtime: PodRuntime, family: IpFamily, version: str) -> dict[str, Any]:
    """``{"ok", "ips", "error"}``: ok when every call succeeded, the ADD result speaks
    ``version`` with one address of each of ``family``'s families, and after the DELs
    the pod's interface is gone. The pod's namespace is removed whatever happened."""
    pod = runtime.new_pod("default", f"lifecycle-{version.replace('.', '')}")
    outcome: dict[str, Any] = {"ok": False, "ips": [], "error": None}
    try:
        result = runtime.add(pod)
        outcome["ips"] = pod.ips
        if result.get("cniVersion") != version:
            raise RuntimeError(f"ADD answered cniVersion {result.get('cniVersion')!r}")
        wanted = sorted(v for v, on in ((4, family.wants_ipv4), (6, family.wants_ipv6)) if on)
        got = sorted(ipaddress.ip_address(a).version for a in pod.ips)
        if got != wanted:
            raise RuntimeError(f"ADD gave {pod.ips}, not one address per family of {family.value}")
        runtime.check(pod)
        runtime.delete(pod)
        runtime.delete(pod)  # again: DEL tolerates everything already being gone
        left = [li["ifname"] for li in nx.ip_json(pod.netns_name, "link", "show")]
        if pod.ifname in left:
            raise RuntimeError(f"{pod.ifname} still in the pod after DEL: {left}")
        outcome["ok"] = True
    except Exception as e:  # reported per version: the demo goes on and fails at the end
        outcome["error"] = f"{type(e).__name__}: {e}"
        runtime.delete(pod, ignore_errors=True)
    finally:
        runtime.remove_netns(pod)
    return outcome
