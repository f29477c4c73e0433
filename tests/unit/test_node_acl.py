"""The per-node ACL rules and the issuer's policy, pure (the Redis side is tested against
a real redis-server in tests/integration/test_node_isolation*.py)."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from vpcnet.credentials.errors import CredentialDenied
from vpcnet.credentials.policy import node_of, service_account_username
from vpcnet.state.acl import node_rules, node_username
from vpcnet.state.keys import NodeKeys

AGENT = service_account_username("vpcnet-system", "vpcnet-agent")


@pytest.mark.parametrize("node", ["*", "a*", "ip-10-0-0-1?", "a[b]", "a\\b", "A", "a b", "", "-a", "a/b", "a{b}"])
def test_names_that_could_widen_a_pattern_are_refused(node: str) -> None:
    with pytest.raises(ValueError):
        node_rules("prod", node)
    with pytest.raises(ValueError):
        node_username("prod", node)


def test_cluster_names_with_glob_characters_are_refused() -> None:
    for cluster in ("*", "p?", "p[1]", "p\\x"):
        with pytest.raises(ValueError):
            node_rules(cluster, "ip-10-0-0-1.ec2.internal")


def test_the_rules_name_exactly_the_agents_keys_and_channels() -> None:
    node = "ip-10-0-0-1.ec2.internal"
    k = NodeKeys("prod", node)
    rules = node_rules("prod", node)
    assert {r for r in rules if "~" in r} == {
        f"%R~{k.node}", f"%R~{k.enis}", f"%R~{k.release_req}",
        f"%W~{k.assigned}", f"%W~{k.cooldown}", f"%W~{k.release_ok}", f"%W~{k.agent}",
        f"%W~{k.demand}",
    }
    assert not any(r.startswith(("~", "allkeys", "&", "allchannels", "+@")) for r in rules)
    selectors = [r for r in rules if r.startswith("(")]
    assert selectors == [
        f"(+subscribe +unsubscribe resetchannels &{k.changed_channel})",
        "(+publish resetchannels &vpcnet:{prod}:agent-ready)",
    ]
    # Each apply starts from nothing, so rules removed in an upgrade go away.
    assert rules[:5] == ("on", "resetkeys", "resetchannels", "clearselectors", "-@all")


@dataclass(frozen=True)
class Who:
    username: str
    pod_name: str | None
    node_name: str | None


def test_the_node_is_the_one_the_token_is_bound_to() -> None:
    assert node_of(Who(AGENT, "vpcnet-agent-x", "ip-10-0-0-1"), agent_username=AGENT) == "ip-10-0-0-1"


@pytest.mark.parametrize(
    "who",
    [
        Who(service_account_username("vpcnet-system", "vpcnet-workers"), "p", "n1"),
        Who(service_account_username("kube-system", "vpcnet-agent"), "p", "n1"),
        Who("system:node:n1", "p", "n1"),
        Who(AGENT, None, "n1"),
        Who(AGENT, "p", None),
        Who(AGENT, "p", "N1*"),
    ],
)
def test_anything_else_is_refused(who: Who) -> None:
    with pytest.raises(CredentialDenied) as e:
        node_of(who, agent_username=AGENT)
    assert e.value.status == 403


def test_agent_settings_refuse_a_login_in_the_url_next_to_an_issuer() -> None:
    from vpcnet.errors import ConfigError
    from vpcnet.settings import AgentSettings

    ok = AgentSettings(node_name="n1", redis_url="redis://redis:6379/0",
                       credentials_url="https://vpcnet-credentials.vpcnet-system.svc:8443")
    ok.validate()
    for bad in (
        {"redis_url": "redis://agent:pw@redis:6379/0"},  # which login would it use?
        {"credentials_url": "file:///etc/passwd"},
    ):
        settings = AgentSettings(**{**{"node_name": "n1", "credentials_url": "http://x"}, **bad})
        with pytest.raises(ConfigError):
            settings.validate()
