"""The IMDSv2 client against a loopback server with the real metadata layout."""

from __future__ import annotations

import ipaddress
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from vpcnet.agent.imds import ImdsClient
from vpcnet.errors import ImdsError

MAC0 = "0a:00:00:00:00:01"
MAC1 = "0a:00:00:00:00:02"
META = {
    "instance-id": "i-0abc",
    "mac": MAC0,
    "local-ipv4": "10.0.0.4",
    "network/interfaces/macs/": f"{MAC0}/\n{MAC1}/",
    f"network/interfaces/macs/{MAC0}/device-number": "0",
    f"network/interfaces/macs/{MAC0}/interface-id": "eni-0",
    f"network/interfaces/macs/{MAC0}/subnet-id": "subnet-a",
    f"network/interfaces/macs/{MAC0}/subnet-ipv4-cidr-block": "10.0.0.0/20",
    f"network/interfaces/macs/{MAC0}/local-ipv4s": "10.0.0.4\n10.0.0.5",
    f"network/interfaces/macs/{MAC0}/vpc-ipv4-cidr-blocks": "10.0.0.0/16\n100.64.0.0/16",
    f"network/interfaces/macs/{MAC1}/device-number": "1",
    f"network/interfaces/macs/{MAC1}/interface-id": "eni-1",
    f"network/interfaces/macs/{MAC1}/subnet-id": "subnet-b",
    f"network/interfaces/macs/{MAC1}/subnet-ipv4-cidr-block": "10.0.16.0/20",
    f"network/interfaces/macs/{MAC1}/local-ipv4s": "10.0.16.9",
    f"network/interfaces/macs/{MAC1}/ipv4-prefix": "10.0.17.0/28",
}


class FakeImds:
    def __init__(self) -> None:
        self.tokens: set[str] = set()
        self.fail_next = 0  # answer this many requests with HTTP 500
        self.token_puts = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def _send(self, code: int, body: str = "") -> None:
                data = body.encode()
                self.send_response(code)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_PUT(self) -> None:
                if outer.fail_next:
                    outer.fail_next -= 1
                    return self._send(500)
                if self.path != "/latest/api/token" or not self.headers.get(
                    "X-aws-ec2-metadata-token-ttl-seconds"
                ):
                    return self._send(400)
                outer.token_puts += 1
                token = f"tok{outer.token_puts}"
                outer.tokens.add(token)
                self._send(200, token)

            def do_GET(self) -> None:
                if outer.fail_next:
                    outer.fail_next -= 1
                    return self._send(503)
                if self.headers.get("X-aws-ec2-metadata-token") not in outer.tokens:
                    return self._send(401)
                key = self.path.removeprefix("/latest/meta-data/")
                if key not in META:
                    return self._send(404)
                self._send(200, META[key])

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> None:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def imds() -> Iterator[FakeImds]:
    fake = FakeImds()
    fake.start()
    yield fake
    fake.server.shutdown()
    fake.server.server_close()


def client(url: str) -> ImdsClient:
    return ImdsClient(url, timeout=2.0, attempts=3, backoff=0.0, sleep=lambda _: None)


def test_identity_and_interfaces(imds: FakeImds) -> None:
    c = client(imds.url)
    ident = c.identity()
    assert (ident.instance_id, ident.primary_mac, str(ident.primary_ip)) == ("i-0abc", MAC0, "10.0.0.4")
    ifaces = c.interfaces()
    assert set(ifaces) == {MAC0, MAC1}
    eth0, eth1 = ifaces[MAC0], ifaces[MAC1]
    assert eth0.device_number == 0 and str(eth0.primary_ip) == "10.0.0.4"
    assert [str(c) for c in eth0.vpc_cidrs] == ["10.0.0.0/16", "100.64.0.0/16"]
    assert eth0.ipv4_prefixes == ()  # the key is absent (404) without prefixes
    assert eth1.ipv4_prefixes == (ipaddress.IPv4Network("10.0.17.0/28"),)
    assert eth1.subnet_cidr == ipaddress.IPv4Network("10.0.16.0/20")
    assert imds.token_puts == 1  # one session token for all of it


def test_transient_errors_are_retried(imds: FakeImds) -> None:
    imds.fail_next = 2
    assert client(imds.url).require("instance-id") == "i-0abc"


def test_persistent_errors_raise_imds_error(imds: FakeImds) -> None:
    imds.fail_next = 100
    with pytest.raises(ImdsError):
        client(imds.url).require("instance-id")


def test_a_rejected_token_is_renewed(imds: FakeImds) -> None:
    c = client(imds.url)
    assert c.require("mac") == MAC0
    imds.tokens.clear()  # e.g. IMDS restarted
    assert c.require("mac") == MAC0
    assert imds.token_puts == 2


def test_unreachable_imds_raises_after_bounded_attempts() -> None:
    c = ImdsClient("http://127.0.0.1:9", timeout=0.5, attempts=2, backoff=0.0, sleep=lambda _: None)
    with pytest.raises(ImdsError):
        c.identity()


def test_malformed_values_raise(imds: FakeImds) -> None:
    META["local-ipv4"] = "not-an-ip"
    try:
        with pytest.raises(ImdsError):
            client(imds.url).identity()
    finally:
        META["local-ipv4"] = "10.0.0.4"


def test_attached_enis_names_each_mac_and_refuses_an_empty_listing(
    imds: FakeImds, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert client(imds.url).attached_enis() == {MAC0: "eni-0", MAC1: "eni-1"}
    # Metadata without even the primary ENI cannot be the proof that ENIs are gone.
    monkeypatch.setitem(META, "network/interfaces/macs/", "")
    with pytest.raises(ImdsError):
        client(imds.url).attached_enis()
