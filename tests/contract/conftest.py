"""The two Kubernetes servers every contract test runs on: the emulator (vpcnet_sim.kube)
and a real etcd + kube-apiserver v1.37.2 (vpcnet_sim.embedded.kubeapi), each reached
through vpcnet's own ``KubeClient`` as an admin. A test passes only if both servers
answer it the same way.

The apiserver FAILS to start, rather than skip, when its binaries are not built
(scripts/build-controlplane.sh; ``controlplane_built``): a skipped contract would let the
emulator drift.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vpcnet.errors import NotFoundError
from vpcnet.kube.client import KubeClient
from vpcnet_sim.embedded.kubeapi import KubeApiServer
from vpcnet_sim.kube import KubeEmulator

SERVERS = ("emulator", "apiserver")
EVENT_NS = "default"


@dataclass(frozen=True)
class Server:
    """One server under contract, and what only a test harness may do to it."""

    name: str  # "emulator" | "apiserver"
    api_client: Callable[[], Any]  # a kubernetes.client.ApiClient as the admin
    add_node: Callable[..., Any]  # register a node as a kubelet would
    # Make every watch from a resourceVersion written before now expire (410): the
    # emulator compacts its window, the apiserver's watch cache starts over (etcd
    # compacted under it; see KubeApiServer.expire_watch_cache).
    expire_watch_history: Callable[[], None]

    def client(self, component: str = "contract") -> KubeClient:
        return KubeClient(self.api_client(), component=component, event_namespace=EVENT_NS)


@pytest.fixture(scope="session")
def _emulator() -> Iterator[Server]:
    with KubeEmulator(host="127.0.0.1", port=0, history=1000) as sim:
        yield Server("emulator", sim.api_client, sim.add_node, sim.compact)


@pytest.fixture(scope="session")
def _apiserver(controlplane_built: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    control = KubeApiServer(Path(tmp_path_factory.mktemp("contract-controlplane")), binaries=controlplane_built)
    endpoint = control.start()
    # no controller-manager runs to create it, and no pod is admitted without it
    with endpoint.api_client() as api:
        KubeClient(api)._json("POST", "/api/v1/namespaces/default/serviceaccounts",
                              body={"metadata": {"name": "default"}})
    try:
        yield Server("apiserver", control.api_client, control.add_node, control.expire_watch_cache)
    finally:
        control.stop()


@pytest.fixture(params=SERVERS)
def server(request: pytest.FixtureRequest, controlplane_built: Path) -> Server:
    # controlplane_built: every contract test needs the apiserver built (a contract is
    # both servers answering alike), and so runs after the build (tests/conftest.py).
    found: Server = request.getfixturevalue(f"_{request.param}")
    return found


@pytest.fixture
def kube(server: Server) -> Iterator[KubeClient]:
    client = server.client()
    yield client
    client.close()


@pytest.fixture
def node(server: Server) -> Iterator[str]:
    """A fresh node (unique name: the servers live for the whole session)."""
    name = f"c-{uuid.uuid4().hex[:8]}"
    server.add_node(name, provider_id="aws:///us-east-1b/i-0123456789abcdef0",
                    instance_type="m5.large")
    yield name
    client = server.client()
    with contextlib.suppress(NotFoundError):  # the test may have deleted it itself
        client._json("DELETE", f"/api/v1/nodes/{name}")
    client.close()
