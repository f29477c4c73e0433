"""``vpcnet-cni``: the CNI plugin kubelet's runtime execs for every pod. Standard library only.

It validates the invocation (environment + stdin config) against the CNI spec, asks the
node agent over its unix socket to do the work, and prints the spec result or error on
stdout. It never writes anything else to stdout; diagnostics go to ``logFile``.

Spec versions 0.4.0, 1.0.0 and 1.1.0; commands VERSION, ADD, DEL, CHECK, STATUS (1.1.0),
GC (1.1.0). Error codes: 1 incompatible version, 4 bad environment, 6 undecodable stdin,
7 invalid config, 11 try again later (agent unreachable, no free IP, node not ready),
50 STATUS not ready, 100+ ours (see ``vpcnet.cni.protocol``). Non-zero exit on error.

Plugin configuration (the first entry of the ``vpcnet`` conflist's ``plugins``)::

    {
      "type": "vpcnet-cni",
      "agentSocket": "/run/vpcnet/agent.sock",   # required, absolute path
      "logFile": "/var/log/vpcnet/cni.log",       # optional; one line per invocation
      "mtu": 9001,                                # optional, 576..9001; default: the agent's
      "timeoutSeconds": 60,                       # optional, budget for the agent's answer
                                                  # (an ADD waits for a coming IP up to
                                                  # this minus a margin for the reply)
      "pendingDir": "/run/vpcnet/pending-del",    # optional; default <socket dir>/pending-del
      "dns": {"nameservers": ["10.0.0.2"]}        # optional, copied into the ADD result
    }

plus the runtime's ``cniVersion``, ``name``, ``prevResult``, ``runtimeConfig`` and, for
GC, ``cni.dev/valid-attachments`` (or its draft name ``cni.dev/attachments``; both are
accepted, and a GC carrying neither is refused with code 7 and removes nothing). Chained plugins (``portmap``, ``bandwidth``) follow it
in the conflist: ADD passes a ``prevResult`` through with this plugin's interfaces, IPs
and routes appended.

DEL when the agent cannot be reached: the request is spooled into ``pendingDir`` and DEL
succeeds; the agent keeps the IP assigned until it has processed the spooled DEL (at
start, and before any ADD of the same attachment), so the IP is reclaimed later and
never handed out twice.

Start-up time is the product: nothing is imported that the command does not need; see
``vpcnet.cni.protocol`` for why JSON and sockets go through ``_json``/``_socket``. The
installed launcher skips it where it can: it hands the raw invocation to the agent, which
runs this module's ``main`` in-process (``vpcnet.agent.cniserver.inprocess``), and execs
this plugin when the agent does not answer.
"""

from __future__ import annotations

import posix  # not os: importing os costs ~1.2 ms of the plugin's start (stat, posixpath, ...)
import sys
import time

from vpcnet.cni import protocol as p
from vpcnet.cni.protocol import CniError, ForeignConfig

TYPE_CHECKING = False  # typing is not imported at run time (start-up cost)
if TYPE_CHECKING:
    from collections.abc import Callable, Mapping
    from typing import Any, BinaryIO

    Roundtrip = Callable[[str, bytes, float], bytes]  # (socket path, request, timeout) -> reply
    CheckConfig = Callable[[dict[str, Any]], None]

DEFAULT_TIMEOUT_SECONDS = 60.0
# Of the timeout, what an ADD leaves for the agent's reply after it stopped waiting for an
# IP (programming the pod, the checkpoint): at most 5 s, a quarter of a short timeout.
ADD_REPLY_MARGIN_SECONDS = 5.0
LATEST = p.SUPPORTED_VERSIONS[-1]


def _environ() -> dict[str, str]:
    """The CNI variables of this process (decoded as os.environ does)."""
    env = posix.environ
    out = {}
    for key in p.ENV_KEYS:
        raw = env.get(key.encode())
        if raw is not None:
            out[key] = raw.decode("utf-8", "surrogateescape")
    return out


def main(
    environ: Mapping[str, str] | None = None,
    stdin: BinaryIO | None = None,
    stdout: BinaryIO | None = None,
    *,
    roundtrip: Roundtrip | None = None,
    check_config: CheckConfig | None = None,
) -> int:
    """Run one CNI invocation; returns the exit status. Streams are injectable for tests.

    Run for real (nothing injected), the process ends here with ``_exit`` once stdout
    is flushed: interpreter finalization would add ~1.3 ms to every pod's ADD and DEL,
    and there is nothing left to finalize (the log is written unbuffered).

    The agent runs this same code in-process for the launcher's fast path
    (``vpcnet.agent.cniserver.inprocess``): ``roundtrip`` replaces the unix-socket call
    (default ``_roundtrip``; an OSError from it is "agent unreachable", as here), and
    ``check_config`` sees the decoded config before anything else uses it and may raise
    ``protocol.ForeignConfig``, which propagates out of ``main``.
    """
    real_run = environ is None and stdin is None and stdout is None
    env = _environ() if environ is None else environ
    out = sys.stdout.buffer if stdout is None else stdout
    started = time.monotonic()
    inv = _Invocation(env, roundtrip or _roundtrip, check_config)
    try:
        text = inv.run(sys.stdin.buffer if stdin is None else stdin)
        rc = 0
    except ForeignConfig:
        raise  # before any side effect: the caller hands the request to the plugin proper
    except CniError as e:
        text = p.dumps(e.to_result(inv.cni_version))
        inv.note = f"error {e.code}: {e.msg} {e.details}".rstrip()
        rc = 1
    except Exception as e:  # never a traceback on stdout: the runtime parses it
        err = CniError(p.ERR_INTERNAL, "internal error in vpcnet-cni", f"{type(e).__name__}: {e}")
        text = p.dumps(err.to_result(inv.cni_version))
        inv.note = f"error {err.code}: {err.details}"
        rc = 1
    if text:
        try:
            out.write(text.encode() + b"\n")
            out.flush()
        except OSError:
            rc = 1
    inv.log(rc, time.monotonic() - started)
    if real_run:
        posix._exit(rc)
    return rc


class _Invocation:
    def __init__(
        self, env: Mapping[str, str], roundtrip: Roundtrip, check_config: CheckConfig | None = None
    ) -> None:
        self.env = env
        self.roundtrip = roundtrip
        self.check_config = check_config
        self.command = env.get("CNI_COMMAND", "")
        self.cni_version = LATEST  # until the config says otherwise (errors use it)
        self.log_file: str | None = None
        self.note = ""

    # -- dispatch --------------------------------------------------------------------

    def run(self, stdin: BinaryIO) -> str:
        cmd = self.command
        if not cmd:
            raise CniError(p.ERR_INVALID_ENV, "required env variables [CNI_COMMAND] missing")
        if cmd not in p.COMMANDS:
            raise CniError(p.ERR_INVALID_ENV, f"unknown CNI_COMMAND: {cmd[:64]!r}")
        env = self._check_env(cmd)
        try:
            raw = stdin.read(p.MAX_REQUEST_BYTES + 1)
        except OSError as e:
            raise CniError(p.ERR_IO, "error reading from stdin", str(e)) from e
        if cmd == "VERSION":
            return self._version(raw)
        conf = self._decode(raw)
        if self.check_config is not None:  # before logFile is taken from it (see main)
            self.check_config(conf)
        self._check_version(cmd, conf)
        self._check_config(conf)
        if cmd == "ADD":
            return self._add(conf, env)
        if cmd == "DEL":
            return self._del(conf, env)
        if cmd == "CHECK":
            return self._check(conf, env)
        if cmd == "STATUS":
            # The same budget an ADD gets: "can a pod start" means within that time.
            self._call({"command": "STATUS", "budgetSeconds": _add_budget(conf)}, conf)
            return ""
        return self._gc(conf)

    # -- validation ----------------------------------------------------------------------

    def _check_env(self, cmd: str) -> dict[str, str]:
        required = {
            "ADD": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
            "CHECK": ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME"),
            "DEL": ("CNI_CONTAINERID", "CNI_IFNAME"),
            "GC": ("CNI_PATH",),
        }.get(cmd, ())
        missing = [k for k in required if not self.env.get(k)]
        if missing:
            raise CniError(p.ERR_INVALID_ENV, f"required env variables [{','.join(missing)}] missing")
        env = {
            k: self.env.get(k, "")
            for k in ("CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")
        }
        if cmd in ("ADD", "CHECK", "DEL"):
            if not p.valid_container_id(env["CNI_CONTAINERID"]):
                raise CniError(p.ERR_INVALID_ENV, "invalid CNI_CONTAINERID", env["CNI_CONTAINERID"][:256])
            if not p.valid_ifname(env["CNI_IFNAME"]):
                raise CniError(p.ERR_INVALID_ENV, "invalid CNI_IFNAME", env["CNI_IFNAME"][:64])
            if env["CNI_NETNS"] and not p.valid_netns(env["CNI_NETNS"]):
                raise CniError(p.ERR_INVALID_ENV, "invalid CNI_NETNS: not an absolute path", env["CNI_NETNS"][:256])
            try:
                p.parse_cni_args(env["CNI_ARGS"])
            except ValueError as e:
                raise CniError(p.ERR_INVALID_ENV, "invalid CNI_ARGS", str(e)[:256]) from e
        return env

    def _decode(self, raw: bytes) -> dict[str, Any]:
        if len(raw) > p.MAX_REQUEST_BYTES:
            raise CniError(p.ERR_DECODE, "network configuration too large", f"> {p.MAX_REQUEST_BYTES} bytes")
        try:
            conf = p.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CniError(p.ERR_DECODE, "error decoding network configuration", str(e)[:512]) from e
        if not isinstance(conf, dict):
            raise CniError(p.ERR_DECODE, "network configuration is not a JSON object", type(conf).__name__)
        return conf

    def _check_version(self, cmd: str, conf: dict[str, Any]) -> None:
        version = conf.get("cniVersion")
        if not isinstance(version, str) or not version:
            raise CniError(p.ERR_INVALID_CONFIG, "cniVersion missing or not a string")
        if version not in p.SUPPORTED_VERSIONS:
            raise CniError(
                p.ERR_INCOMPATIBLE_VERSION,
                "incompatible CNI versions",
                f"config is {version[:32]!r}, plugin supports {', '.join(p.SUPPORTED_VERSIONS)}",
            )
        self.cni_version = version
        if cmd in ("STATUS", "GC") and p.version_tuple(version) < (1, 1, 0):
            raise CniError(p.ERR_INCOMPATIBLE_VERSION, f"config version does not allow {cmd}", version)

    def _check_config(self, conf: dict[str, Any]) -> None:
        name = conf.get("name")
        if not isinstance(name, str) or not p.valid_network_name(name):
            raise CniError(p.ERR_INVALID_CONFIG, "missing or invalid network name", repr(name)[:128])
        log_file = conf.get("logFile")
        if log_file is not None and not _absolute_path(log_file):
            raise CniError(p.ERR_INVALID_CONFIG, "logFile must be an absolute path")
        self.log_file = log_file
        sock = conf.get("agentSocket")
        if not isinstance(sock, str) or not sock.startswith("/") or "\x00" in sock or len(sock) > 107:
            raise CniError(p.ERR_INVALID_CONFIG, "agentSocket must be an absolute path (at most 107 bytes)")
        mtu = conf.get("mtu")
        if mtu is not None and (type(mtu) is not int or not 576 <= mtu <= 9001):
            raise CniError(p.ERR_INVALID_CONFIG, "mtu must be an integer in 576..9001", repr(mtu)[:32])
        timeout = conf.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS)
        if type(timeout) not in (int, float) or not 0 < timeout <= 3600:
            raise CniError(p.ERR_INVALID_CONFIG, "timeoutSeconds must be a number in (0, 3600]")
        pending = conf.get("pendingDir")
        if pending is not None and not _absolute_path(pending):
            raise CniError(p.ERR_INVALID_CONFIG, "pendingDir must be an absolute path")
        dns = conf.get("dns")
        if dns is not None and not isinstance(dns, dict):
            raise CniError(p.ERR_INVALID_CONFIG, "dns must be an object")
        prev = conf.get("prevResult")
        if prev is not None and not isinstance(prev, dict):
            raise CniError(p.ERR_INVALID_CONFIG, "prevResult must be an object")

    def _pod_identity(self, env: dict[str, str]) -> dict[str, Any]:
        args = p.parse_cni_args(env["CNI_ARGS"])
        return {
            "containerId": env["CNI_CONTAINERID"],
            "ifname": env["CNI_IFNAME"],
            "netns": env["CNI_NETNS"],
            "podNamespace": args.get("K8S_POD_NAMESPACE", ""),
            "podName": args.get("K8S_POD_NAME", ""),
        }

    # -- commands ------------------------------------------------------------------------

    def _version(self, raw: bytes) -> str:
        version = LATEST
        if raw.strip():
            try:
                conf = p.loads(raw.decode("utf-8"))
            except (UnicodeDecodeError, ValueError) as e:
                raise CniError(p.ERR_DECODE, "error decoding VERSION input", str(e)[:512]) from e
            if isinstance(conf, dict) and isinstance(conf.get("cniVersion"), str):
                version = conf["cniVersion"]
        self.cni_version = version if version in p.SUPPORTED_VERSIONS else LATEST
        return p.dumps({"cniVersion": version, "supportedVersions": list(p.SUPPORTED_VERSIONS)})

    def _add(self, conf: dict[str, Any], env: dict[str, str]) -> str:
        prev = conf.get("prevResult")
        if prev is not None:  # a chained ADD passes it through: it must be a Result
            for key in ("interfaces", "ips", "routes"):
                if prev.get(key) is not None and not isinstance(prev[key], list):
                    raise CniError(p.ERR_INVALID_CONFIG, f"prevResult.{key} must be a list")
            if prev.get("dns") is not None and not isinstance(prev["dns"], dict):
                raise CniError(p.ERR_INVALID_CONFIG, "prevResult.dns must be an object")
        req = self._pod_identity(env)
        req["command"] = "ADD"
        if conf.get("mtu") is not None:
            req["mtu"] = conf["mtu"]
        req["budgetSeconds"] = _add_budget(conf)
        reply = self._call(req, conf)
        try:
            result = _add_result(self.cni_version, reply, env, conf)
        except (KeyError, TypeError, ValueError) as e:
            raise CniError(p.ERR_AGENT_PROTOCOL, "malformed ADD reply from the agent", repr(e)) from e
        self.note = f"ip {reply.get('ip')} ip6 {reply.get('ip6')} host {reply.get('hostIf')}"
        return p.dumps(result)

    def _del(self, conf: dict[str, Any], env: dict[str, str]) -> str:
        req = self._pod_identity(env)
        req["command"] = "DEL"
        try:
            self._call(req, conf, spool_on_failure=True)
        except _Spooled as e:
            self.note = f"agent unreachable, DEL spooled to {e}"
        return ""

    def _check(self, conf: dict[str, Any], env: dict[str, str]) -> str:
        prev = conf.get("prevResult")
        if not isinstance(prev, dict):
            raise CniError(p.ERR_INVALID_CONFIG, "required prevResult missing")
        req = self._pod_identity(env)
        req["command"] = "CHECK"
        req.update(_ips_of(prev, env["CNI_IFNAME"], env["CNI_NETNS"]))
        if conf.get("mtu") is not None:
            req["mtu"] = conf["mtu"]
        self._call(req, conf)
        return ""

    def _gc(self, conf: dict[str, Any]) -> str:
        reply = self._call({"command": "GC", "validAttachments": _valid_attachments(conf)}, conf)
        self.note = f"released {reply.get('released', 0)}"
        return ""

    # -- the agent -----------------------------------------------------------------------

    def _call(self, req: dict[str, Any], conf: dict[str, Any], spool_on_failure: bool = False) -> dict[str, Any]:
        req["v"] = p.WIRE_VERSION
        path: str = conf["agentSocket"]
        timeout = float(conf.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS))
        try:
            reply = self.roundtrip(path, p.dumps(req).encode(), timeout)
        except OSError as e:
            if spool_on_failure:
                raise _Spooled(_spool(req, conf)) from e
            if req["command"] == "STATUS":
                raise CniError(p.ERR_NOT_AVAILABLE, "vpcnet agent unreachable", f"{path}: {e}") from e
            raise CniError(p.ERR_TRY_AGAIN, "vpcnet agent unreachable", f"{path}: {e}") from e
        try:
            doc = p.loads(reply.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as e:
            raise CniError(p.ERR_AGENT_PROTOCOL, "undecodable reply from the agent", str(e)[:256]) from e
        if not isinstance(doc, dict) or not isinstance(doc.get("ok"), bool):
            raise CniError(p.ERR_AGENT_PROTOCOL, "malformed reply from the agent", repr(doc)[:256])
        if not doc["ok"]:
            code = doc.get("code")
            raise CniError(
                code if type(code) is int and code > 0 else p.ERR_INTERNAL,
                str(doc.get("msg", "agent error")),
                str(doc.get("details", "")),
            )
        return doc

    def log(self, rc: int, seconds: float) -> None:
        """One line per invocation in logFile; logging never fails the invocation."""
        if not self.log_file:
            return
        stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        who = f"{self.env.get('CNI_CONTAINERID', '-')[:64]}/{self.env.get('CNI_IFNAME', '-')[:16]}"
        line = f"{stamp} pid={posix.getpid()} {self.command[:16] or '-'} {who} rc={rc} ms={seconds * 1000:.1f} {self.note}"
        try:
            fd = posix.open(self.log_file, posix.O_WRONLY | posix.O_APPEND | posix.O_CREAT | posix.O_CLOEXEC, 0o600)
            try:
                posix.write(fd, (line.replace("\n", " ")[:4000] + "\n").encode("utf-8", "replace"))
            finally:
                posix.close(fd)
        except OSError:
            pass


def _add_budget(conf: Mapping[str, Any]) -> float:
    """How long the agent may wait for an IP: the timeout, less a margin for the reply."""
    timeout = float(conf.get("timeoutSeconds", DEFAULT_TIMEOUT_SECONDS))
    return timeout - min(ADD_REPLY_MARGIN_SECONDS, timeout / 4)


class _Spooled(Exception):
    """DEL could not reach the agent and was written to the pending directory."""


def _roundtrip(path: str, data: bytes, timeout: float) -> bytes:
    import _socket

    sock = _socket.socket(_socket.AF_UNIX, _socket.SOCK_STREAM)
    try:
        sock.settimeout(timeout)
        sock.connect(path)
        sock.sendall(data)
        sock.shutdown(_socket.SHUT_WR)
        chunks = []
        size = 0
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            size += len(chunk)
            if size > p.MAX_REPLY_BYTES:
                raise ConnectionError("reply from the agent too large")
            chunks.append(chunk)
    finally:
        sock.close()
    if not chunks:
        raise ConnectionError("the agent closed the connection without a reply")
    return b"".join(chunks)


def _spool(req: dict[str, Any], conf: dict[str, Any]) -> str:
    """Write the DEL for the agent to pick up; CniError 11 when even that fails.

    The temporary file's name is unique (mkstemp), not the pid's: the agent's in-process
    fast path runs many plugins in one process, and two DELs of one attachment spooled at
    once must each land whole. A failed write leaves no temporary file behind.
    """
    import os  # rare path: the agent is down
    import tempfile

    directory = p.pending_dir(conf)
    name = p.pending_name(req["containerId"], req["ifname"])
    target = os.path.join(directory, name)
    req["spooledAt"] = time.time()
    tmp = None
    try:
        os.makedirs(directory, mode=0o700, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{name}.", suffix=".tmp", dir=directory)  # 0600
        try:
            os.write(fd, p.dumps(req).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, target)
    except OSError as e:
        if tmp is not None:
            try:
                os.unlink(tmp)
            except OSError:
                pass  # gone already (replaced) or the directory is unwritable: nothing to undo
        raise CniError(p.ERR_TRY_AGAIN, "vpcnet agent unreachable and DEL could not be spooled", str(e)) from e
    return target


def _absolute_path(value: object) -> bool:
    return isinstance(value, str) and value.startswith("/") and "\x00" not in value


# SPEC.md section 2 names the GC key ``cni.dev/valid-attachments``; drafts said
# ``cni.dev/attachments`` and libcni 1.2.3 sends both (containernetworking/cni#1101).
GC_LIST_KEYS = ("cni.dev/valid-attachments", "cni.dev/attachments")


def _valid_attachments(conf: dict[str, Any]) -> list[list[str]]:
    """The attachments a GC must keep, as ``[containerId, ifname]`` pairs.

    The list is required (SPEC.md: the runtime provides it): a GC without it is an
    invalid config (7), never "nothing is valid", which would tear down every pod on
    the node. ``null`` is refused for the same reason. When both names are present,
    an attachment either one lists is kept (the union: the safer reading).
    """
    present = [k for k in GC_LIST_KEYS if k in conf]
    if not present:
        raise CniError(
            p.ERR_INVALID_CONFIG,
            "GC requires cni.dev/valid-attachments",
            "without the list of attachments still in use, nothing is removed",
        )
    keys: list[list[str]] = []
    seen: set[tuple[str, str]] = set()
    for name in present:
        valid = conf[name]
        if not isinstance(valid, list):
            raise CniError(p.ERR_INVALID_CONFIG, f"{name} must be a list", repr(valid)[:128])
        for item in valid:
            cid = item.get("containerID") if isinstance(item, dict) else None
            ifname = item.get("ifname") if isinstance(item, dict) else None
            if not isinstance(cid, str) or not isinstance(ifname, str):
                raise CniError(
                    p.ERR_INVALID_CONFIG,
                    f"{name} entries need string containerID and ifname",
                    repr(item)[:128],
                )
            if (cid, ifname) not in seen:
                seen.add((cid, ifname))
                keys.append([cid, ifname])
    return keys


def _add_result(version: str, reply: dict[str, Any], env: dict[str, str], conf: dict[str, Any]) -> dict[str, Any]:
    """The spec Result for ADD; a ``prevResult`` is passed through with ours appended."""
    prev = conf.get("prevResult") or {}
    interfaces = list(prev.get("interfaces") or [])
    ips = list(prev.get("ips") or [])
    routes = list(prev.get("routes") or [])
    host = {"name": str(reply["hostIf"]), "mac": str(reply["hostMac"])}
    pod: dict[str, Any] = {"name": env["CNI_IFNAME"], "mac": str(reply["podMac"]), "sandbox": env["CNI_NETNS"]}
    if version == "1.1.0":
        pod["mtu"] = int(reply["mtu"])
    interfaces += [host, pod]
    # One entry per family the agent gave (an ipv4, ipv6 or dual pod), all on the pod's
    # interface; 0.4.0 names each entry's family, 1.0.0 dropped that field.
    families = [f for f in _FAMILIES if reply.get(f[0]) is not None]
    if not families:
        raise ValueError("the ADD reply carries neither ip nor ip6")
    for key, gw_key, bits, default_dst, family in families:
        ip: dict[str, Any] = {
            "address": f"{reply[key]}/{bits}",
            "gateway": str(reply[gw_key]),
            "interface": len(interfaces) - 1,
        }
        if version == "0.4.0":
            ip["version"] = family
        ips.append(ip)
        routes.append({"dst": default_dst, "gw": str(reply[gw_key])})
    result = {
        "cniVersion": version,
        "interfaces": interfaces,
        "ips": ips,
        "routes": routes,
        "dns": conf.get("dns") or prev.get("dns") or {},
    }
    return result


# (reply address key, reply gateway key, prefix length, default route, 0.4.0 version)
_FAMILIES = (("ip", "gateway", 32, "0.0.0.0/0", "4"), ("ip6", "gateway6", 128, "::/0", "6"))


def _ips_of(prev: dict[str, Any], ifname: str, netns: str) -> dict[str, str]:
    """``expectIp`` / ``expectIp6``: the addresses ``prevResult`` records for our
    interface in the sandbox, per family (at least one)."""
    interfaces = prev.get("interfaces")
    ips = prev.get("ips")
    if not isinstance(interfaces, list) or not isinstance(ips, list):
        raise CniError(p.ERR_INVALID_CONFIG, "prevResult has no interfaces/ips")
    ours = {
        i
        for i, itf in enumerate(interfaces)
        if isinstance(itf, dict) and itf.get("name") == ifname and itf.get("sandbox") == netns
    }
    found: dict[str, str] = {}
    for entry in ips:
        if isinstance(entry, dict) and entry.get("interface") in ours:
            address = entry.get("address")
            if isinstance(address, str) and "/" in address:
                ip = address.split("/", 1)[0]
                found.setdefault("expectIp6" if ":" in ip else "expectIp", ip)  # the first of each
    if not found:
        raise CniError(p.ERR_INVALID_CONFIG, f"prevResult has no IP for {ifname} in {netns}")
    return found


if __name__ == "__main__":
    sys.exit(main())
