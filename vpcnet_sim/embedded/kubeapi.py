"""A real Kubernetes control plane on this machine: etcd and kube-apiserver v1.37.2.

The binaries are built from the published Go modules by ``scripts/build-controlplane.sh``
(:mod:`vpcnet_sim.embedded.kubebuild` runs it) into
``${VPCNET_CACHE:-/var/cache/vpcnet}/controlplane/v1.37.2``. Both processes listen on
loopback only, on free ports, with their data in ``workdir``. The apiserver authorizes
with ``Node,RBAC`` exactly as a cluster does; the admin is a static token in
``system:masters``, every other identity a ServiceAccount token from ``TokenRequest``
(:meth:`ApiServerEndpoint.service_account_token`), signed with a key made here.

:class:`KubeApiServer` offers what the embedded stack used of the emulator (``url``,
``api_client``, ``add_node``, ``stop``), so the stack runs on either.
"""

from __future__ import annotations

import base64
import json
import os
import secrets
import signal
import ssl
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client as k8s

from vpcnet_sim.embedded.kubepki import write_pki
from vpcnet_sim.embedded.procs import ManagedProcess, free_port

KUBE_VERSION = "v1.37.2"
ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "vpcnet-admin"
BINARIES = ("etcd", "kube-apiserver")
NODE_NOT_READY_TAINT = "node.kubernetes.io/not-ready"
_START_TIMEOUT = 180.0  # the apiserver's first start on a loaded 2-core machine


def controlplane_dir() -> Path:
    """Where the built binaries live (outside the repo, reused by every run)."""
    return Path(os.environ.get("VPCNET_CACHE", "/var/cache/vpcnet")) / "controlplane" / KUBE_VERSION


def missing_binaries(directory: Path | None = None) -> list[str]:
    where = directory or controlplane_dir()
    return [b for b in BINARIES if not (where / b).is_file()]


class ControlPlaneError(RuntimeError):
    """The control plane is not built, or did not come up (the message says why)."""


@dataclass(frozen=True)
class ApiServerEndpoint:
    """A running kube-apiserver and how to reach it as the admin or any token."""

    url: str  # https://127.0.0.1:<port>
    ca_file: str  # verifies the serving cert
    admin_token: str
    version: str  # gitVersion from /version

    def api_client(self, token: str | None = None) -> k8s.ApiClient:
        """A client authenticating with ``token`` (the admin's when None)."""
        cfg = k8s.Configuration()
        cfg.host = self.url
        cfg.ssl_ca_cert = self.ca_file
        cfg.verify_ssl = True
        cfg.api_key = {"BearerToken": token if token is not None else self.admin_token}
        cfg.api_key_prefix = {"BearerToken": "Bearer"}
        return k8s.ApiClient(cfg)

    def kubeconfig(self, token: str | None = None) -> dict[str, Any]:
        return {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [
                {"name": "vpcnet", "cluster": {"server": self.url,
                                               "certificate-authority": self.ca_file}}
            ],
            "users": [{"name": "vpcnet", "user": {"token": token or self.admin_token}}],
            "contexts": [{"name": "vpcnet", "context": {"cluster": "vpcnet", "user": "vpcnet"}}],
            "current-context": "vpcnet",
        }

    def write_kubeconfig(self, path: Path, token: str | None = None) -> Path:
        """A kubeconfig for this server as ``token`` (the admin when None), mode 0600."""
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        tmp.write_text(yaml.safe_dump(self.kubeconfig(token), sort_keys=False))
        tmp.chmod(0o600)
        tmp.replace(path)
        return path

    def service_account_token(
        self,
        namespace: str,
        name: str,
        *,
        audiences: list[str] | None = None,
        pod: tuple[str, str] | None = None,
        expiration_seconds: int = 3600,
    ) -> str:
        """A token for ServiceAccount ``namespace/name`` from the TokenRequest API.

        ``pod`` is (name, uid) of a Pod of that account to bind the token to: the token
        then names the pod and its node, and dies with the pod. ``audiences`` defaults to
        the apiserver's own (its issuer).
        """
        bound = (
            k8s.V1BoundObjectReference(api_version="v1", kind="Pod", name=pod[0], uid=pod[1])
            if pod is not None
            else None
        )
        request = k8s.AuthenticationV1TokenRequest(
            spec=k8s.V1TokenRequestSpec(
                audiences=audiences or [],
                expiration_seconds=expiration_seconds,
                bound_object_ref=bound,
            )
        )
        with self.api_client() as api:
            answer = k8s.CoreV1Api(api).create_namespaced_service_account_token(
                name, namespace, request
            )
        if answer.status is None or not answer.status.token:
            raise ControlPlaneError(f"TokenRequest for {namespace}/{name} returned no token")
        return str(answer.status.token)


class KubeApiServer:
    """etcd and kube-apiserver as child processes; ``start()`` returns the endpoint."""

    def __init__(self, workdir: Path, *, binaries: Path | None = None) -> None:
        self.workdir = workdir
        self.binaries = binaries or controlplane_dir()
        self.etcd_url = ""
        self._etcd: ManagedProcess | None = None
        self._apiserver: ManagedProcess | None = None
        self._endpoint: ApiServerEndpoint | None = None

    @property
    def endpoint(self) -> ApiServerEndpoint:
        if self._endpoint is None:
            raise RuntimeError("KubeApiServer is not started")
        return self._endpoint

    @property
    def url(self) -> str:
        return self.endpoint.url

    @property
    def version(self) -> str:
        return self.endpoint.version

    def api_client(self, token: str | None = None) -> k8s.ApiClient:
        return self.endpoint.api_client(token)

    def write_kubeconfig(self, path: Path, token: str | None = None) -> Path:
        return self.endpoint.write_kubeconfig(path, token)

    # -- lifecycle ------------------------------------------------------------------

    def start(self) -> ApiServerEndpoint:
        missing = missing_binaries(self.binaries)
        if missing:
            raise ControlPlaneError(
                f"{', '.join(missing)} not built in {self.binaries}: "
                "run scripts/build-controlplane.sh (or `vpcnet demo --kube apiserver`, "
                "which builds it)"
            )
        self.workdir.mkdir(parents=True, exist_ok=True)
        pki = write_pki(self.workdir / "pki")
        admin_token = secrets.token_hex(24)
        tokens = self.workdir / "tokens.csv"
        # token,user,uid,"group,..." (the static-token file format)
        tokens.write_text(f'{admin_token},{ADMIN_USER},{ADMIN_USER},"system:masters"\n')
        tokens.chmod(0o600)

        etcd_port, etcd_peer_port, api_port = free_port(), free_port(), free_port()
        self.etcd_url = f"http://127.0.0.1:{etcd_port}"
        peer = f"http://127.0.0.1:{etcd_peer_port}"
        self._etcd = ManagedProcess(
            "etcd",
            [
                str(self.binaries / "etcd"),
                "--name=vpcnet",
                f"--data-dir={self.workdir / 'etcd'}",
                f"--listen-client-urls={self.etcd_url}",
                f"--advertise-client-urls={self.etcd_url}",
                f"--listen-peer-urls={peer}",
                f"--initial-advertise-peer-urls={peer}",
                f"--initial-cluster=vpcnet={peer}",
                "--log-level=warn",
                # a throwaway store: durability costs seconds per run and buys nothing
                "--unsafe-no-fsync",
            ],
            self.workdir,
        )
        self._apiserver = ManagedProcess(
            "kube-apiserver",
            [
                str(self.binaries / "kube-apiserver"),
                f"--etcd-servers={self.etcd_url}",
                "--bind-address=127.0.0.1",
                "--advertise-address=127.0.0.1",
                f"--secure-port={api_port}",
                f"--tls-cert-file={pki.serving_cert}",
                f"--tls-private-key-file={pki.serving_key}",
                "--authorization-mode=Node,RBAC",
                # as every real cluster's (kubeadm, EKS): the agent has a privileged init
                # container
                "--allow-privileged=true",
                "--anonymous-auth=false",
                f"--token-auth-file={tokens}",
                f"--service-account-issuer={ISSUER}",
                f"--service-account-key-file={pki.sa_public}",
                f"--service-account-signing-key-file={pki.sa_private}",
                "--service-cluster-ip-range=10.0.0.0/24",
                # No endpoints for the "kubernetes" Service: nothing here would reach them,
                # and loopback endpoints are invalid anyway.
                "--endpoint-reconciler-type=none",
                "--profiling=false",
                "--v=1",
            ],
            self.workdir,
        )
        url = f"https://127.0.0.1:{api_port}"
        ca = str(pki.ca_cert)
        try:
            self._etcd.start()
            _wait_http(f"{self.etcd_url}/health", None, None, self._etcd)
            self._apiserver.start()
            _wait_http(f"{url}/readyz", ca, admin_token, self._apiserver)
            info = json.loads(_get(f"{url}/version", ca, admin_token))
        except BaseException:
            self.stop()
            raise
        self._endpoint = ApiServerEndpoint(
            url=url, ca_file=ca, admin_token=admin_token, version=str(info["gitVersion"])
        )
        return self._endpoint

    def expire_watch_cache(self) -> None:
        """Make kube-apiserver's watch cache start over, with open watches intact until it
        does: the way a real cluster's clients meet 410 Gone.

        With the apiserver frozen (SIGSTOP), etcd's revision moves on and is compacted,
        and etcd restarts; thawed, the apiserver resumes its etcd watch from a compacted
        revision, its cache relists and ends every client watch cleanly, and a client
        re-watching from the version it last saw is answered 410 (too old). Returns once
        the node cache has started over."""
        apiserver, etcd = self._apiserver, self._etcd
        assert apiserver is not None and etcd is not None and apiserver.proc is not None
        before = self._node_cache_starts()
        pgid = apiserver.proc.pid
        os.killpg(pgid, signal.SIGSTOP)
        try:
            key = base64.b64encode(b"/vpcnet-harness/expire").decode()
            for _ in range(3):
                _post(f"{self.etcd_url}/v3/kv/put", {"key": key, "value": key})
            self.compact()
            etcd.stop(timeout=20)
            etcd.start()
            _wait_http(f"{self.etcd_url}/health", None, None, etcd)
        finally:
            os.killpg(pgid, signal.SIGCONT)
        deadline = time.monotonic() + _START_TIMEOUT
        while self._node_cache_starts() <= before:
            if time.monotonic() > deadline:
                raise ControlPlaneError("the apiserver's node cache did not start over")
            time.sleep(0.2)

    def _node_cache_starts(self) -> int:
        """How often the node watch cache was initialized (the apiserver's own metric)."""
        endpoint = self.endpoint
        text = _get(f"{endpoint.url}/metrics", endpoint.ca_file, endpoint.admin_token, 30)
        for line in text.decode().splitlines():
            if line.startswith("apiserver_watch_cache_initializations_total{") and (
                'resource="nodes"' in line
            ):
                return int(float(line.rsplit(" ", 1)[1]))
        return 0

    def stop(self) -> None:
        for proc in (self._apiserver, self._etcd):
            if proc is not None:
                proc.stop(timeout=20)

    def alive(self) -> bool:
        return all(p is not None and p.alive() for p in (self._etcd, self._apiserver))

    # -- what a kubelet and an etcd operator would do --------------------------------

    def add_node(
        self,
        name: str,
        provider_id: str | None = "aws:///us-east-1a/i-0abc",
        labels: dict[str, str] | None = None,
        instance_type: str | None = None,
        taints: list[dict[str, Any]] | None = None,
    ) -> dict[str, Any]:
        """Register a node as a kubelet would (labels, Ready condition, providerID); no
        kubelet runs, nothing here needs one."""
        node_labels = {"kubernetes.io/hostname": name, "kubernetes.io/os": "linux",
                       "kubernetes.io/arch": "amd64"}
        if instance_type:
            node_labels["node.kubernetes.io/instance-type"] = instance_type
        # what the cloud node controller labels from the providerID (aws:///<zone>/<id>)
        zone = (provider_id or "").removeprefix("aws:///").partition("/")[0]
        if provider_id and provider_id.startswith("aws:///") and zone:
            node_labels["topology.kubernetes.io/zone"] = zone
            node_labels["topology.kubernetes.io/region"] = zone.rstrip("abcdefghijklmnopqrstuvwxyz")
        node_labels.update(labels or {})
        spec: dict[str, Any] = {}
        if provider_id:
            spec["providerID"] = provider_id
        if taints:
            spec["taints"] = taints
        body: Any = {"apiVersion": "v1", "kind": "Node",
                "metadata": {"name": name, "labels": node_labels}, "spec": spec}
        with self.api_client() as api:
            core = k8s.CoreV1Api(api)
            core.create_node(body)
            stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
            status = {"status": {
                "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady",
                                "message": "kubelet is posting ready status",
                                "lastHeartbeatTime": stamp, "lastTransitionTime": stamp}],
                "addresses": [{"type": "Hostname", "address": name}],
            }}
            core.patch_node_status(name, status)
            # the node lifecycle controller, seeing it Ready, drops the not-ready taint
            # the TaintNodesByCondition admission plugin put on at create; guarded by the
            # version read, retried when another writer (the watcher's taint) came first
            for _ in range(20):
                current = core.read_node(name)
                on_node = (current.spec.taints if current.spec else None) or []
                kept = [t for t in on_node if t.key != NODE_NOT_READY_TAINT]
                version = current.metadata.resource_version if current.metadata else None
                try:
                    patched = core.patch_node(name, {
                        "metadata": {"resourceVersion": version},
                        "spec": {"taints": [api.sanitize_for_serialization(t) for t in kept]
                                 or None},
                    })
                except k8s.ApiException as e:
                    if e.status == 409:
                        continue
                    raise
                created: dict[str, Any] = api.sanitize_for_serialization(patched)
                return created
        raise ControlPlaneError(f"node {name}: its taints kept changing while registering")

    def etcd_revision(self) -> int:
        """etcd's current revision (what the apiserver serves as resourceVersion)."""
        key = base64.b64encode(b"\0").decode()
        answer = json.loads(_post(f"{self.etcd_url}/v3/kv/range", {"key": key, "limit": 1}))
        return int(answer["header"]["revision"])

    def compact(self) -> int:
        """Compact etcd's history up to now (as the apiserver does every 5 minutes): a
        watch or list from before it is answered 410 Gone. Returns the revision."""
        revision = self.etcd_revision()
        _post(f"{self.etcd_url}/v3/kv/compaction", {"revision": revision, "physical": True})
        return revision


def _get(url: str, ca_file: str | None, token: str | None, timeout: float = 5.0) -> bytes:
    context = ssl.create_default_context(cafile=ca_file) if ca_file else None
    request = urllib.request.Request(url)
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    with urllib.request.urlopen(request, timeout=timeout, context=context) as resp:
        body: bytes = resp.read()
        return body


def _post(url: str, payload: dict[str, Any]) -> bytes:
    request = urllib.request.Request(url, data=json.dumps(payload).encode(), method="POST")
    request.add_header("Content-Type", "application/json")
    with urllib.request.urlopen(request, timeout=10) as resp:
        body: bytes = resp.read()
        return body


def _wait_http(url: str, ca_file: str | None, token: str | None, proc: ManagedProcess) -> None:
    deadline = time.monotonic() + _START_TIMEOUT
    last = ""
    while time.monotonic() < deadline:
        if not proc.alive():
            raise ControlPlaneError(f"{proc.name} exited while starting:\n{proc.tail(40)}")
        try:
            _get(url, ca_file, token)
            return
        except (urllib.error.URLError, OSError) as e:  # not listening or not ready yet
            last = str(e)
        time.sleep(0.25)
    raise ControlPlaneError(
        f"{proc.name} not ready after {_START_TIMEOUT:.0f}s ({last}):\n{proc.tail(40)}"
    )
