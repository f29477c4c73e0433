"""A node's IP family: the vpcnet.io/ip-family annotation, else its profile's, else the
cluster's; a bad value is a ConfigError quoting it, like a bad mode."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vpcnet.control.networking import Profile, load_profiles, node_networking, parse_profile
from vpcnet.domain import IpFamily, Mode
from vpcnet.errors import ConfigError
from vpcnet.wellknown import IP_FAMILY_ANNOTATION, PROFILE_ANNOTATION


def family(annotations: dict[str, str], profiles: dict[str, Profile] | None = None,
           labels: dict[str, str] | None = None,
           default: IpFamily = IpFamily.IPV4) -> IpFamily:
    return node_networking(Mode.FULL, labels or {}, annotations, profiles or {}, default).ip_family


def test_the_cluster_setting_is_the_default() -> None:
    assert family({}) is IpFamily.IPV4
    assert family({}, default=IpFamily.DUAL) is IpFamily.DUAL


def test_a_profile_overrides_the_cluster_setting() -> None:
    six = parse_profile({"name": "six", "node_selector": {"pool": "v6"}, "ip_family": "ipv6"})
    assert six.ip_family is IpFamily.IPV6
    assert family({}, {"six": six}, labels={"pool": "v6"}, default=IpFamily.DUAL) is IpFamily.IPV6
    assert family({PROFILE_ANNOTATION: "six"}, {"six": six}) is IpFamily.IPV6
    # A profile without an ip_family leaves the cluster's.
    plain = parse_profile({"name": "plain", "node_selector": {"pool": "a"}})
    assert family({}, {"plain": plain}, labels={"pool": "a"}, default=IpFamily.DUAL) is IpFamily.DUAL


def test_the_annotation_overrides_the_profile() -> None:
    six = parse_profile({"name": "six", "node_selector": {"pool": "v6"}, "ip_family": "ipv6"})
    got = family({IP_FAMILY_ANNOTATION: " dual "}, {"six": six}, labels={"pool": "v6"})
    assert got is IpFamily.DUAL


def test_a_bad_annotation_is_a_config_error_quoting_it() -> None:
    with pytest.raises(ConfigError, match=r"annotation vpcnet.io/ip-family: ip family 'ipv5'"):
        family({IP_FAMILY_ANNOTATION: "ipv5"})
    with pytest.raises(ConfigError, match=r"\.\.\."):  # shortened
        family({IP_FAMILY_ANNOTATION: "x" * 500})


def test_a_bad_profile_family_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps({"profiles": [{"name": "p", "ip_family": "both"}]}))
    with pytest.raises(ConfigError, match=r"profile 'p': ip family 'both'"):
        load_profiles(str(path))
