"""What the CNI plugin and the agent say to each other, and the CNI spec constants.

Standard library only, and only the cheap part of it: the plugin is exec'd once per
pod and its start-up is the product. ``import json`` and ``import socket`` cost about
12 ms together on the target machines (``re``, ``enum``, ``functools`` behind them),
which is most of what the compiled reference plugins take for a whole ADD. So JSON goes
through CPython's C accelerator ``_json`` directly (the same scanner and encoder that
``json.loads``/``json.dumps`` use) and sockets through ``_socket``.

Wire format: one request per connection on the agent's unix socket. The client writes
one JSON object and shuts its write side; the agent reads until EOF (at most
``MAX_REQUEST_BYTES``), answers with one JSON object and closes. (The static launcher's
fast path sends a raw, NUL-led frame instead; see ``vpcnet.agent.cniserver.inprocess``.)

Request keys: ``v`` (``WIRE_VERSION``), ``command`` (ADD, DEL, CHECK, STATUS, GC),
``containerId``, ``ifname``, ``netns``, ``podNamespace``, ``podName``, ``mtu`` (int or
absent), ``expectIp`` / ``expectIp6`` (CHECK: the IPv4 / IPv6 address ``prevResult``
recorded for the pod's interface; each absent when it records none of that family, at
least one present), ``validAttachments``
(GC: list of ``[containerId, ifname]``), ``budgetSeconds`` (ADD: how long the agent may
wait for an IP that is coming before it must answer; the plugin's own timeout minus a
margin for the reply).

Replies: ``{"ok": true, ...}`` or ``{"ok": false, "code": N, "msg": ..., "details": ...}``
with a CNI error code. An ADD reply carries ``hostIf``, ``hostMac``, ``podMac`` and
``mtu``, and per family the pod got (an ipv4 pod the first pair, an ipv6 pod the
second, a dual pod both): ``ip`` (IPv4) with ``gateway`` (``POD_GATEWAY``) and ``eni``,
``ip6`` (IPv6) with ``gateway6`` (``POD_GATEWAY6``) and ``eni6`` (the ENI holding its /80).
"""

from __future__ import annotations

# typing costs ~2 ms to import; mypy treats any TYPE_CHECKING name as True.
TYPE_CHECKING = False

try:  # CPython: the C scanner/encoder without importing the json package
    import _json as _cjson
except ImportError:  # pragma: no cover - other interpreters
    _cjson = None  # type: ignore[assignment]

if TYPE_CHECKING:
    from typing import Any

WIRE_VERSION = 1
MAX_ADD_BUDGET_SECONDS = 3600.0
MAX_REQUEST_BYTES = 1 << 20  # a GC request lists every attachment; 1 MiB is ~20k of them
MAX_REPLY_BYTES = 1 << 20

SUPPORTED_VERSIONS = ("0.4.0", "1.0.0", "1.1.0")
# The CNI variables the plugin reads (and the launcher's fast path forwards).
ENV_KEYS = ("CNI_COMMAND", "CNI_CONTAINERID", "CNI_NETNS", "CNI_IFNAME", "CNI_ARGS", "CNI_PATH")
COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC", "VERSION")
AGENT_COMMANDS = ("ADD", "DEL", "CHECK", "STATUS", "GC")

# The pod's default gateway: a link-local address answered by a static neighbour
# entry pointing at the host veth, so pods never ARP for a real router.
POD_GATEWAY = "169.254.1.1"
# The same for IPv6: a link-local address on the host veth, answered the same way.
POD_GATEWAY6 = "fe80::1"

# CNI error codes (SPEC.md "Error"); 100+ are ours.
ERR_INCOMPATIBLE_VERSION = 1
ERR_UNSUPPORTED_FIELD = 2
ERR_UNKNOWN_CONTAINER = 3
ERR_INVALID_ENV = 4
ERR_IO = 5
ERR_DECODE = 6
ERR_INVALID_CONFIG = 7
ERR_TRY_AGAIN = 11
ERR_NOT_AVAILABLE = 50
ERR_NOT_AVAILABLE_LIMITED = 51
ERR_INTERNAL = 100  # unexpected failure inside the agent or the plugin
ERR_POD_NETWORK = 101  # programming the pod's interfaces/routes/rules failed
ERR_CHECK_FAILED = 102  # CHECK found something missing or different
ERR_AGENT_PROTOCOL = 103  # the agent answered something that is not a reply


class CniError(Exception):
    """An error the plugin reports with a CNI code (and the agent sends back)."""

    def __init__(self, code: int, msg: str, details: str = "") -> None:
        super().__init__(msg)
        self.code = code
        self.msg = msg
        self.details = details

    def to_reply(self) -> dict[str, Any]:
        return {"ok": False, "code": self.code, "msg": self.msg, "details": self.details}

    def to_result(self, cni_version: str) -> dict[str, Any]:
        return {"cniVersion": cni_version, "code": self.code, "msg": self.msg, "details": self.details}


class ForeignConfig(Exception):
    """Raised by the plugin's ``check_config`` hook: whoever runs ``plugin.main`` cannot
    honour this config.

    Neither an OSError nor a CniError, so nothing in ``main`` handles it: it propagates
    to the caller before any side effect (no agent call, no logFile line). The agent's
    in-process fast path raises it for a config naming another agent's socket, log file
    or spool directory, and lets the exec'd plugin serve the request instead.
    """


# -- JSON ----------------------------------------------------------------------------


class _ScanContext:
    # the attributes _json.make_scanner reads, as json.JSONDecoder has them
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int

    @staticmethod
    def parse_constant(name: str) -> float:
        return float(name)  # NaN, Infinity, -Infinity, as json.loads accepts them


_WS = " \t\n\r"

def _reference_loads(text: str) -> Any:
    import json

    try:
        return json.loads(text)
    except RecursionError:
        raise ValueError("JSON nested too deeply") from None


def _unencodable(obj: object) -> object:
    raise TypeError(f"{type(obj).__name__} is not JSON serializable")


if _cjson is not None:
    # typeshed wants a JSONDecoder; the C scanner only reads the attributes above.
    _scan = _cjson.make_scanner(_ScanContext())  # type: ignore[arg-type]
    _encode = _cjson.make_encoder(
        None, _unencodable, _cjson.encode_basestring_ascii, None, ":", ",", False, False, True
    )

    def loads(text: str) -> Any:
        """``json.loads`` for one document in ``text``; ValueError when it is not one.

        Only the success path is fast. On any failure the text goes to ``json.loads``,
        which is the reference and words the error (the C scanner builds its
        JSONDecodeError from ``json.decoder`` and, in 3.11, fails oddly without it).
        """
        start = len(text) - len(text.lstrip(_WS))
        try:
            obj, end = _scan(text, start)
        except (StopIteration, ValueError, SystemError, RecursionError):
            return _reference_loads(text)
        if text[end:].strip(_WS):
            return _reference_loads(text)
        return obj

    def dumps(obj: Any) -> str:
        """Compact ASCII JSON (``json.dumps(obj, separators=(",", ":"))``)."""
        try:
            return "".join(_encode(obj, 0))
        except RecursionError:
            raise ValueError("object nested too deeply to encode") from None

else:  # pragma: no cover

    def loads(text: str) -> Any:
        import json

        return json.loads(text)

    def dumps(obj: Any) -> str:
        import json

        return json.dumps(obj, separators=(",", ":"))


# -- validation shared by the plugin and the agent ------------------------------------------


def _is_name_char(c: str) -> bool:
    return c.isascii() and (c.isalnum() or c in "_.-")


def valid_container_id(value: str) -> bool:
    """SPEC: starts alphanumeric, then alphanumerics, ``_``, ``.`` or ``-``."""
    return (
        0 < len(value) <= 1024
        and value[0].isascii()
        and value[0].isalnum()
        and all(_is_name_char(c) for c in value)
    )


def valid_network_name(value: str) -> bool:
    return valid_container_id(value)


def valid_ifname(value: str) -> bool:
    """Linux rules: 1-15 bytes, not ``.``/``..``, no ``/``, ``:`` or whitespace."""
    return (
        0 < len(value.encode("utf-8", "surrogateescape")) < 16
        and value not in (".", "..")
        and value.isprintable()
        and not any(c in "/:" or c.isspace() for c in value)
    )


def valid_netns(value: str) -> bool:
    return value.startswith("/") and "\x00" not in value and len(value) < 4096


def version_tuple(version: str) -> tuple[int, int, int]:
    parts = version.split(".")
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise ValueError(f"not a semantic version: {version!r}")
    return int(parts[0]), int(parts[1]), int(parts[2])


def parse_cni_args(raw: str) -> dict[str, str]:
    """``CNI_ARGS``: ``K=V;K2=V2``; ValueError on a pair without ``=``."""
    out: dict[str, str] = {}
    for pair in raw.split(";"):
        if not pair:
            continue
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ValueError(f"CNI_ARGS pair {pair!r} is not KEY=VALUE")
        out[key] = value
    return out


def pending_name(container_id: str, ifname: str) -> str:
    """File name of a spooled DEL: unique per attachment, safe for any valid ifname."""
    return f"{container_id}.{ifname.encode('utf-8', 'surrogateescape').hex()}.json"


def pending_dir(conf: dict[str, Any]) -> str:
    """Where a DEL that cannot reach the agent is spooled: ``pendingDir``, by default
    ``pending-del`` next to ``agentSocket`` (the agent reads the same directory)."""
    import os  # not at import: the plugin's start-up (see plugin.py)

    return str(conf.get("pendingDir") or os.path.join(os.path.dirname(conf["agentSocket"]), "pending-del"))


def error_reply(code: int, msg: str, details: str = "") -> dict[str, Any]:
    return {"ok": False, "code": code, "msg": msg, "details": details}
